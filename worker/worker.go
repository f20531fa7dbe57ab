package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/dlq"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
)

// incidentAPI is the slice of *topdesk.Client the worker needs.
type incidentAPI interface {
	Version(ctx context.Context) (string, error)
	CreateIncident(ctx context.Context, in *topdesk.IncidentRequest) (*topdesk.Incident, error)
	UpdateIncident(ctx context.Context, id string, in *topdesk.IncidentRequest) (*topdesk.Incident, error)
	FindIncidents(ctx context.Context, externalNumber string) ([]topdesk.Incident, error)
	ListIncidentsByPrefix(ctx context.Context, prefix string) ([]topdesk.Incident, error)
}

// nameResolver turns the names in a rendered request into TOPdesk ids
// (*topdesk.Resolver; names are resolved at start-up, so this is a cache hit).
type nameResolver interface {
	Apply(ctx context.Context, in *topdesk.IncidentRequest) error
}

// Options tunes a Worker. Zero values get the defaults in brackets.
type Options struct {
	Concurrency int // events in flight [16]
	MaxDeliver  int // deliveries of a retryable failure before it is dead-lettered [10]

	HandleTimeout   time.Duration // bound on one delivery, in-process retries included [60s]
	RetryInitial    time.Duration // first in-process retry delay [200ms]
	RetryMax        time.Duration // longest in-process retry delay [5s]
	RetryMaxElapsed time.Duration // in-process retry budget per delivery [15s]
	RedeliverMin    time.Duration // redelivery delay after the first failed delivery [1s]
	RedeliverMax    time.Duration // longest redelivery delay [5m]
	ClaimTTL        time.Duration // how long a key's claim holds [HandleTimeout+15s]
	ClockSkew       time.Duration // tolerated clock difference between workers [2s]

	BreakerThreshold int           // consecutive failed TOPdesk requests that open the breaker [5]
	BreakerCooldown  time.Duration // probe interval while the breaker is open [5s]
	AuthRetry        time.Duration // probe interval while TOPdesk rejects the credentials [30s]
	ShutdownTimeout  time.Duration // how long in-flight events may finish after Run's ctx ends [20s]
	LagInterval      time.Duration // how often consumer lag is read for the metrics [10s]
	ReconcileRetry   time.Duration // how often an unreconciled state bucket is reconciled [1m]
	SeenKeys         int           // keys whose newest applied event is remembered in memory [20000]

	Decode mapping.DecodeOptions

	ID         string                // worker identity in claims [hostname-pid-random]
	Logger     zerolog.Logger        // root logger; the worker adds component=worker
	Registerer prometheus.Registerer // where metrics are registered; nil = not registered
	Now        func() time.Time      // clock [time.Now]
}

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.MaxDeliver <= 0 {
		o.MaxDeliver = 10
	}
	def(&o.HandleTimeout, 60*time.Second)
	def(&o.RetryInitial, 200*time.Millisecond)
	def(&o.RetryMax, 5*time.Second)
	def(&o.RetryMaxElapsed, 15*time.Second)
	def(&o.RedeliverMin, time.Second)
	def(&o.RedeliverMax, 5*time.Minute)
	def(&o.ClaimTTL, o.HandleTimeout+15*time.Second)
	def(&o.ClockSkew, 2*time.Second)
	def(&o.BreakerCooldown, 5*time.Second)
	def(&o.AuthRetry, 30*time.Second)
	def(&o.ShutdownTimeout, 20*time.Second)
	def(&o.LagInterval, 10*time.Second)
	def(&o.ReconcileRetry, time.Minute)
	if o.SeenKeys <= 0 {
		o.SeenKeys = 20_000
	}
	if o.BreakerThreshold <= 0 {
		o.BreakerThreshold = 5
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ID == "" {
		host, _ := os.Hostname() // an empty host name still leaves pid and random part
		o.ID = fmt.Sprintf("%s-%d-%04x", host, os.Getpid(), rand.Uint32()&0xffff)
	}
}

// pullRetry is the pause after a failed pull, so that a persistent error
// does not spin.
const pullRetry = 250 * time.Millisecond

// Worker consumes alert events and keeps TOPdesk incidents in line with them.
type Worker struct {
	res      *Resources
	api      incidentAPI
	names    nameResolver
	mapping  *mapping.Mapping
	opts     Options
	log      zerolog.Logger
	m        *metrics
	state    stateStore
	locks    keyLocks
	seen     seenCache
	payloads *payloadCache
	dlq      *dlq.Stream
	gate     gate
	breaker  breaker

	heartbeat time.Duration
	authErr   atomic.Pointer[string] // last credentials failure, nil while accepted
}

// New builds a worker on provisioned resources. The mapping's names must
// already be resolved by names (topdesk.Resolver.ResolveAll).
func New(res *Resources, api incidentAPI, names nameResolver, m *mapping.Mapping, opts Options) (*Worker, error) {
	opts.setDefaults()
	if res == nil || res.Consumer == nil || res.State == nil || res.DLQ == nil || res.JS == nil {
		return nil, errors.New("worker: resources are not provisioned")
	}
	ackWait := res.Consumer.CachedInfo().Config.AckWait
	if opts.ClaimTTL <= opts.HandleTimeout {
		return nil, fmt.Errorf("worker: claim TTL %s must exceed the handle timeout %s", opts.ClaimTTL, opts.HandleTimeout)
	}
	if opts.RetryMaxElapsed >= opts.HandleTimeout {
		return nil, fmt.Errorf("worker: retry budget %s must be shorter than the handle timeout %s", opts.RetryMaxElapsed, opts.HandleTimeout)
	}
	w := &Worker{
		res:     res,
		api:     api,
		names:   names,
		mapping: m,
		opts:    opts,
		log:     opts.Logger.With().Str("component", "worker").Str("worker_id", opts.ID).Logger(),
		m:       newMetrics(opts.Registerer),
		state: stateStore{kv: res.State, recreate: func(ctx context.Context) (jetstream.KeyValue, error) {
			return ensureBucket(ctx, res.JS, res.Topology)
		}},
		dlq:       dlq.New(res.JS, res.DLQ.CachedInfo().Config.Name),
		heartbeat: ackWait / 3,
	}
	w.breaker.threshold = opts.BreakerThreshold
	w.seen.m.max = opts.SeenKeys
	w.state.known.m.max = opts.SeenKeys
	w.state.opTime = func(op stateOp, d time.Duration) { w.m.stateOps[op].Observe(d.Seconds()) }
	w.payloads = newPayloadCache(max(opts.SeenKeys/4, 1024))
	return w, nil
}

// Ready reports why the worker cannot do its job, or nil: NATS connected
// and TOPdesk credentials accepted.
func (w *Worker) Ready() error {
	if nc := w.res.JS.Conn(); nc == nil || !nc.IsConnected() {
		return errors.New("not connected to NATS")
	}
	if e := w.authErr.Load(); e != nil {
		return fmt.Errorf("TOPdesk rejects the credentials: %s", *e)
	}
	return nil
}

// Run consumes until ctx is done. Then it stops pulling, hands unstarted
// messages back to the stream, lets in-flight events finish for up to
// ShutdownTimeout (then cancels them, and they are redelivered), and returns.
func (w *Worker) Run(ctx context.Context) error {
	// Prefetch 16 messages per handler (256..1024) so that pull round trips
	// overlap with handling: with 4 per handler a duplicate storm ran at
	// 32k events/s, with 16 at 48k (alertdesk-bench scenario b). The buffer
	// is bounded, and its messages are kept alive by the ack wait.
	it, err := w.res.Consumer.Messages(
		jetstream.PullMaxMessages(min(max(16*w.opts.Concurrency, 256), 1024)),
		jetstream.WithMessagesErrOnMissingHeartbeat(false),
	)
	if err != nil {
		return fmt.Errorf("start consuming: %w", err)
	}
	br, err := newBatchReader(ctx, w.res.JS, w.state.bucket(), w.log)
	switch {
	case err != nil:
		w.log.Warn().Err(err).Msg("state reads go one by one")
	case br == nil:
		w.log.Info().Msg("the state bucket does not allow direct gets; state reads go one by one")
	default:
		w.state.batch = br
		defer func() {
			if err := br.close(); err != nil {
				w.log.Debug().Err(err).Msg("closing batched state reads")
			}
		}()
	}
	// In-flight work outlives ctx by up to ShutdownTimeout.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	var bg sync.WaitGroup
	bg.Go(func() {
		<-ctx.Done()
		it.Drain()
	})
	bg.Go(func() { w.probe(ctx) })
	bg.Go(func() { w.keepReconciled(ctx) })
	w.log.Info().Int("concurrency", w.opts.Concurrency).Int("max_deliver", w.opts.MaxDeliver).Msg("worker started")

	// A fixed pool of handlers: their stacks, grown once by template
	// execution and JSON decoding, are reused instead of grown per message.
	work := make(chan jetstream.Msg)
	idle := make(chan struct{}, w.opts.Concurrency)
	var inflight sync.WaitGroup
	for range w.opts.Concurrency {
		idle <- struct{}{}
		inflight.Go(func() {
			for msg := range work {
				w.process(workCtx, msg)
				idle <- struct{}{}
			}
		})
	}
	var runErr error
loop:
	for {
		if err := w.gate.wait(ctx); err != nil {
			break
		}
		select {
		case <-idle:
		case <-ctx.Done():
			break loop
		}
		msg, err := it.Next()
		if err != nil {
			idle <- struct{}{}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				break
			}
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				runErr = fmt.Errorf("consumer %s: %w", w.res.Consumer.CachedInfo().Name, err)
				break
			}
			w.log.Warn().Err(err).Msg("pull from JetStream failed")
			pause := time.NewTimer(pullRetry)
			select {
			case <-ctx.Done():
			case <-pause.C:
			}
			pause.Stop()
			continue
		}
		if ctx.Err() != nil {
			idle <- struct{}{}
			w.settleUnstarted(msg)
			continue
		}
		work <- msg // a handler is idle: it takes it at once
	}
	close(work)
	if runErr != nil {
		it.Stop()
	}
	// Messages buffered but not started go back at once.
	for {
		msg, err := it.Next()
		if err != nil {
			break
		}
		w.settleUnstarted(msg)
	}

	done := make(chan struct{})
	go func() { inflight.Wait(); close(done) }()
	timer := time.NewTimer(w.opts.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		w.log.Warn().Dur("shutdown_timeout", w.opts.ShutdownTimeout).Msg("in-flight events did not finish in time; cancelling them for redelivery")
		cancelWork()
		<-done
	}
	bg.Wait()
	w.log.Info().Msg("worker stopped")
	return runErr
}

// result is what handling a message did, for settling and logging.
type result struct {
	key            string // alert key (of the first alert of a message)
	incidentNumber string
	outcomes       []string
}

// process handles one message and settles it.
func (w *Worker) process(ctx context.Context, msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		w.log.Error().Err(err).Str("subject", msg.Subject()).Msg("message without JetStream metadata; terminating it")
		if err := msg.Term(); err != nil {
			w.log.Warn().Err(err).Msg("term failed")
		}
		return
	}
	w.m.inFlight.Inc()
	defer w.m.inFlight.Dec()
	sum := w.payloads.sum(msg.Data())
	if res, ok := w.fromMemory(sum); ok {
		// Nothing to do and nothing to wait for: no deadline, no heartbeats.
		w.settle(msg, md, res, nil)
		return
	}
	hctx, cancel := context.WithTimeout(ctx, w.opts.HandleTimeout)
	stop := w.keepAlive(msg)
	res, err := w.handle(hctx, msg, md, sum)
	stop()
	cancel()
	if err != nil && ctx.Err() != nil {
		err = errors.Join(errShutdown, err)
	}
	w.settle(msg, md, res, err)
}

// keepAlive tells the server every AckWait/3 that the message is still
// being worked on, so that long retries are not redelivered elsewhere.
func (w *Worker) keepAlive(msg jetstream.Msg) (stop func()) {
	if w.heartbeat <= 0 {
		return func() {}
	}
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	t = time.AfterFunc(w.heartbeat, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if err := msg.InProgress(); err != nil {
			w.log.Debug().Err(err).Msg("in-progress heartbeat failed")
		}
		t.Reset(w.heartbeat)
	})
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
}

// fromMemory settles payload bytes applied before without decoding them,
// when the key's newest applied event shows that they change nothing.
func (w *Worker) fromMemory(sum payloadSum) (result, bool) {
	p, ok := w.payloads.get(sum)
	if !ok {
		return result{}, false
	}
	out, settled, err := w.settledFromSeen(p.ext, p.at, p.status, func() (string, error) { return p.fingerprint, nil })
	if err != nil || !settled {
		return result{}, false
	}
	return result{key: p.key, outcomes: []string{out}}, true
}

// handle decodes a message and applies each alert in it. A single-alert
// payload that was applied is remembered under sum for fromMemory.
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, sum payloadSum) (result, error) {
	var res result
	alerts, err := mapping.Decode(msg.Data(), w.opts.Decode)
	if err != nil {
		return res, err
	}
	for i := range alerts {
		a := &alerts[i]
		key, err := w.mapping.Key(a)
		if err != nil {
			return res, err
		}
		if i == 0 {
			res.key = key
		}
		at := a.EventTime(md.Timestamp)
		fp := &lazyFingerprint{m: w.mapping, a: a, key: key}
		ext := mapping.ExternalNumber(key)
		out, number, err := w.apply(ctx, a, key, ext, at, fp)
		if err != nil {
			res.key = key
			return res, fmt.Errorf("alert %s: %w", key, err)
		}
		if i == 0 {
			res.incidentNumber = number
		}
		res.outcomes = append(res.outcomes, out)
		if v, known := fp.known(); len(alerts) == 1 && (known || a.Status == mapping.StatusResolved) {
			w.payloads.put(sum, settledPayload{ext: ext, key: key, at: at, status: a.Status, fingerprint: v})
		}
	}
	return res, nil
}

// settle decides the fate of a message: ack, delayed nak, or dead-letter
// then term. It is the only place that acknowledges messages, and it logs
// the fate once.
func (w *Worker) settle(msg jetstream.Msg, md *jetstream.MsgMetadata, res result, err error) {
	if err == nil {
		ackErr := msg.Ack()
		w.m.endToEnd.Observe(w.opts.Now().Sub(md.Timestamp).Seconds())
		lvl := zerolog.DebugLevel
		for _, o := range res.outcomes {
			w.m.outcome(o).Inc()
			if o != outcomeDuplicate && o != outcomeStale {
				lvl = zerolog.InfoLevel
			}
		}
		if ackErr != nil {
			// The state is written, so the redelivery is a duplicate.
			l := w.msgLog(msg, md, res)
			l.Warn().Err(ackErr).Msg("ack failed; the event will be redelivered as a duplicate")
		}
		// Duplicates are the bulk of the traffic: build their log line only
		// when the level is on.
		if w.log.GetLevel() <= lvl && zerolog.GlobalLevel() <= lvl {
			l := w.msgLog(msg, md, res)
			ev := l.WithLevel(lvl).Str("outcome", strings.Join(res.outcomes, ","))
			if res.incidentNumber != "" {
				ev = ev.Str("incident_number", res.incidentNumber)
			}
			ev.Msg("event handled")
		}
		return
	}
	l := w.msgLog(msg, md, res)

	if errors.Is(err, errShutdown) {
		if nakErr := msg.Nak(); nakErr != nil {
			l.Warn().Err(nakErr).Msg("nak on shutdown failed; redelivered after the ack wait")
		}
		l.Debug().Msg("handed back on shutdown")
		return
	}

	k, class := classify(err)
	if k == kindRetry && int(md.NumDelivered) >= w.opts.MaxDeliver {
		switch {
		case w.gate.paused():
			// TOPdesk is down or refusing us: an outage never dead-letters.
			l.Warn().Err(err).Msg("delivery limit reached while TOPdesk is unavailable; keeping the event")
		case errors.Is(err, errKeyBusy):
			// Another worker's claim on the key always lapses, so waiting
			// for it is bounded; deliveries spent waiting (or lost to killed
			// workers) must not dead-letter the event.
			l.Warn().Err(err).Msg("delivery limit reached while the key is claimed by another worker; keeping the event")
		default:
			k, class = kindPermanent, dlq.ClassExhausted
		}
	}
	switch k {
	case kindPermanent:
		w.deadLetter(msg, md, res, err, class, l)
	case kindAuth:
		w.authFailed(err)
		w.nak(msg, w.opts.AuthRetry, l)
		l.Warn().Err(err).Str("outcome", outcomeRetried).Dur("delay", w.opts.AuthRetry).Msg("TOPdesk rejected the credentials; event will be retried")
		w.m.outcome(outcomeRetried).Inc()
	default:
		delay := w.redeliverDelay(md.NumDelivered)
		var rl *retryLaterError
		if errors.As(err, &rl) && rl.within > 0 && delay > rl.within {
			// A busy key: deliveries lost to killed workers must not push
			// the retry far past the moment the claim lapses.
			delay = rl.within
		}
		if ra, ok := retryAfter(err); ok && ra > delay {
			delay = ra
		}
		if w.gate.paused() && delay < w.opts.BreakerCooldown {
			delay = w.opts.BreakerCooldown
		}
		w.nak(msg, delay, l)
		w.m.outcome(outcomeRetried).Inc()
		ev := l.Warn()
		if errors.Is(err, errKeyBusy) {
			ev = l.Debug()
		}
		ev.Err(err).Str("outcome", outcomeRetried).Dur("delay", delay).Msg("event will be retried")
	}
}

func (w *Worker) nak(msg jetstream.Msg, delay time.Duration, l zerolog.Logger) {
	if err := msg.NakWithDelay(delay); err != nil {
		l.Warn().Err(err).Msg("nak failed; redelivered after the ack wait")
	}
}

// settleUnstarted hands a message back that was pulled but not started
// because the worker is stopping.
func (w *Worker) settleUnstarted(msg jetstream.Msg) {
	if err := msg.Nak(); err != nil {
		w.log.Debug().Err(err).Str("subject", msg.Subject()).Msg("nak on shutdown failed; redelivered after the ack wait")
	}
}

// msgLog is the logger with a message's fixed fields.
func (w *Worker) msgLog(msg jetstream.Msg, md *jetstream.MsgMetadata, res result) zerolog.Logger {
	c := w.log.With().Str("subject", msg.Subject()).Uint64("stream_seq", md.Sequence.Stream).
		Uint64("deliveries", md.NumDelivered)
	if res.key != "" {
		c = c.Str("alert_key", res.key)
	}
	return c.Logger()
}

// redeliverDelay grows exponentially with the delivery count, with jitter.
func (w *Worker) redeliverDelay(deliveries uint64) time.Duration {
	d := w.opts.RedeliverMin
	for i := uint64(1); i < deliveries && d < w.opts.RedeliverMax; i++ {
		d *= 2
	}
	d = min(d, w.opts.RedeliverMax)
	return d/2 + rand.N(d/2+1)
}

// deadLetter publishes the evidence to the DLQ stream and terminates the
// original only after the DLQ publish was acked; otherwise the original is
// redelivered.
func (w *Worker) deadLetter(msg jetstream.Msg, md *jetstream.MsgMetadata, res result, cause error, class dlq.Class, l zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := w.dlq.Publish(ctx, dlq.Failure{
		OriginalStream:  md.Stream,
		OriginalSubject: msg.Subject(),
		OriginalSeq:     md.Sequence.Stream,
		Published:       md.Timestamp,
		Header:          msg.Headers(),
		Data:            msg.Data(),
		Err:             cause.Error(),
		Class:           class,
		Deliveries:      int(md.NumDelivered),
		FailedAt:        w.opts.Now(),
		AlertKey:        res.key,
	})
	if err != nil {
		w.nak(msg, w.redeliverDelay(md.NumDelivered), l)
		l.Error().Err(errors.Join(cause, err)).Str("class", string(class)).Str("outcome", outcomeRetried).
			Msg("dead-letter publish failed; event will be redelivered")
		w.m.outcome(outcomeRetried).Inc()
		return
	}
	if err := msg.TermWithReason(string(class)); err != nil {
		// The DLQ holds it; a redelivery dead-letters it again under the same
		// Nats-Msg-Id, which the DLQ stream drops as a duplicate.
		l.Warn().Err(err).Msg("term failed after dead-lettering")
	}
	w.m.dlq.WithLabelValues(string(class)).Inc()
	w.m.events.WithLabelValues(outcomeDeadLettered).Inc()
	l.Error().Err(cause).Str("class", string(class)).Str("outcome", outcomeDeadLettered).Msg("event dead-lettered")
}
