package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/debug"
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
	// The incident before an update, and objects by name (fields.go).
	GetIncident(ctx context.Context, id string) (*topdesk.Incident, error)
	ObjectsByName(ctx context.Context, name string) ([]topdesk.Option, error)
}

// nameResolver turns the names in a rendered request into TOPdesk ids
// (*topdesk.Resolver; names are resolved at start-up, so this is a cache hit).
type nameResolver interface {
	Apply(ctx context.Context, in *topdesk.IncidentRequest) error
}

// Options tunes a Worker. Zero values get the defaults in brackets.
type Options struct {
	// Concurrency is the number of TOPdesk requests in flight that the
	// topdesk client allows (ALERTDESK_CONCURRENCY). The worker handles
	// twice as many events at once, so that the state steps of some
	// (read, claim, commit) overlap the TOPdesk calls of others and the
	// TOPdesk slots stay busy [16].
	Concurrency int
	MaxDeliver  int // deliveries of a retryable failure before it is dead-lettered [10]

	HandleTimeout   time.Duration // bound on one delivery, in-process retries included [60s]
	RetryInitial    time.Duration // first in-process retry delay [200ms]
	RetryMax        time.Duration // longest in-process retry delay [5s]
	RetryMaxElapsed time.Duration // in-process retry budget per delivery [15s]
	RedeliverMin    time.Duration // redelivery delay after the first failed delivery [1s]
	RedeliverMax    time.Duration // longest redelivery delay [5m]
	ClaimTTL        time.Duration // how long a key's claim holds, by the NATS server's clock [HandleTimeout+15s]
	// OutcomeWait is how long after a write whose outcome is unknown no
	// other write for its key is sent: 3 × TOPDESK_TIMEOUT [3/4 HandleTimeout].
	OutcomeWait time.Duration

	BreakerThreshold int           // consecutive failed TOPdesk requests that open the breaker [5]
	BreakerCooldown  time.Duration // probe interval while the breaker is open [5s]
	AuthRetry        time.Duration // probe interval while TOPdesk rejects the credentials [30s]
	ShutdownTimeout  time.Duration // how long in-flight events may finish after Run's ctx ends [20s]
	LagInterval      time.Duration // how often consumer lag is read for the metrics [10s]
	ReconcileRetry   time.Duration // how often an unreconciled state bucket is reconciled [1m]
	SeenKeys         int           // keys whose state is cached in memory [20000]

	Decode mapping.DecodeOptions

	ID         string                // worker identity in claims [hostname-pid-random]
	Logger     zerolog.Logger        // root logger; the worker adds component=worker
	Registerer prometheus.Registerer // where metrics are registered; nil = not registered
	Now        func() time.Time      // clock [time.Now]

	// SyncInterval is how often one worker reads back alertdesk's
	// incidents changed in TOPdesk (sync.go); 0 = never (no default).
	SyncInterval time.Duration

	// Maintenance gives the maintenance windows, the ad-hoc ones included
	// [the mapping's windows only]. A held-back event re-checks its window
	// every MaintenanceRecheck, so that a window removed early releases it
	// [1m].
	Maintenance        MaintenanceWindows
	MaintenanceRecheck time.Duration
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
	def(&o.OutcomeWait, 3*o.HandleTimeout/4)
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

// stateTimeout bounds each state operation that ends a claim after the
// TOPdesk write (reading the server's time, writing the state): 1/8 of the
// handle timeout, between 250ms and 5s.
func stateTimeout(handleTimeout time.Duration) time.Duration {
	return min(max(handleTimeout/8, 250*time.Millisecond), 5*time.Second)
}

// LongestHold is the longest a worker holds a key's claim with the given
// handle timeout: the handle timeout, then reading the server's time and
// writing the state over the claim. A claim TTL must exceed it.
func LongestHold(handleTimeout time.Duration) time.Duration {
	return handleTimeout + 2*stateTimeout(handleTimeout)
}

// pullRetry is the pause after a failed pull, so that a persistent error
// does not spin.
const pullRetry = 250 * time.Millisecond

// Worker consumes alert events and keeps TOPdesk incidents in line with them.
type Worker struct {
	res     *Resources
	api     incidentAPI
	names   nameResolver
	mapping *mapping.Mapping
	opts    Options
	log     zerolog.Logger
	m       *metrics
	state   stateStore
	locks   keyLocks
	fates   fatePolicy
	waiting waitingKeys
	dlq     *dlq.Stream
	gate    gate
	breaker breaker
	// attempts counts, by stream sequence, the real failed attempts of the
	// messages this worker redelivers (MaxDeliver). It is this worker's own
	// count: attempts by other workers, or before a restart, are not in it,
	// so a message is retried at least MaxDeliver times, never fewer; a
	// forgotten count starts again.
	attempts bounded[uint64, uint64]

	// timerHandlers handle the due timers of each kind (see timers.go).
	timerHandlers map[string]timerHandler

	heartbeat time.Duration
	authErr   atomic.Pointer[string] // last credentials failure, nil while accepted

	sync     syncState     // two-way sync with TOPdesk (sync.go)
	fields   fieldsWork    // updates.fields, updates.repeat, incident.object (fields.go)
	claims   atomic.Uint64 // grouping: numbers the claims of storm entries
	payloads payloadCache  // what recent payloads decoded to (payloads.go)
}

// New builds a worker on provisioned resources. The mapping's names must
// already be resolved by names (topdesk.Resolver.ResolveAll).
func New(res *Resources, api incidentAPI, names nameResolver, m *mapping.Mapping, opts Options) (*Worker, error) {
	opts.setDefaults()
	if res == nil || res.Consumer == nil || res.State == nil || res.DLQ == nil || res.JS == nil {
		return nil, errors.New("worker: resources are not provisioned")
	}
	ackWait := res.Consumer.CachedInfo().Config.AckWait
	if hold := LongestHold(opts.HandleTimeout); opts.ClaimTTL <= hold {
		return nil, fmt.Errorf("worker: claim TTL %s must exceed %s, the longest a key is held: the handle timeout %s and the state writes after it",
			opts.ClaimTTL, hold, opts.HandleTimeout)
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
		state: stateStore{kv: res.State, js: res.JS, recreate: func(ctx context.Context) (jetstream.KeyValue, error) {
			kv, _, err := ensureBucket(ctx, res.JS, res.Topology)
			return kv, err
		}},
		dlq:           dlq.New(res.JS, res.DLQ.CachedInfo().Config.Name),
		heartbeat:     ackWait / 3,
		timerHandlers: map[string]timerHandler{},
	}
	w.breaker.threshold = opts.BreakerThreshold
	w.timerHandlers[timerMajor] = w.majorTimer // grouping: major calls close with their linked incidents
	w.initMaintenance()
	for _, risk := range res.Warnings {
		w.log.Warn().Msg(risk)
	}
	w.state.known.m.max = opts.SeenKeys
	w.waiting.m.max = opts.SeenKeys
	if res.StateKeyTTL {
		w.state.closedTTL = closedStateTTL(m.Lifecycle())
	}
	w.attempts.max = opts.SeenKeys
	w.timerHandlers[timerResolve], w.timerHandlers[timerFlapQuiet] = w.noiseTimer, w.noiseTimer // noise control: noise.go
	w.fields.init(m, opts)
	w.state.opTime = func(op stateOp, d time.Duration) { w.m.stateOps[op].Observe(d.Seconds()) }
	w.fates = fatePolicy{maxDeliver: opts.MaxDeliver, redeliverMin: opts.RedeliverMin, redeliverMax: opts.RedeliverMax,
		breakerCooldown: opts.BreakerCooldown, authRetry: opts.AuthRetry, jitter: halfJitter}
	w.initSync(opts.Registerer)
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
// ShutdownTimeout (then cancels them and hands them back too), waits until
// the server has every ack and nak, and returns: nothing it held waits for
// the ack wait.
func (w *Worker) Run(ctx context.Context) error {
	handlers := 2 * w.opts.Concurrency
	// The bucket is reconciled (or found so) before the first pull: until
	// it is marked, every new key costs a lookup in TOPdesk before its
	// create. A failure is retried and logged by keepReconciled.
	if err := w.reconcile(ctx); err != nil {
		w.log.Debug().Err(err).Msg("reconciliation before the first pull failed")
	}

	// Prefetch 6 messages per handler (192..1024) so that pull round trips
	// overlap with handling (duplicates are settled fast), and not more:
	// at the end of a burst the messages one worker holds wait while other
	// workers may be idle. docs/perf-notes.md has the measurements of both.
	// The buffer is bounded, and its messages are kept alive by the ack wait.
	it, err := w.res.Consumer.Messages(
		jetstream.PullMaxMessages(min(max(6*handlers, 192), 1024)),
		jetstream.WithMessagesErrOnMissingHeartbeat(false),
	)
	if err != nil {
		return fmt.Errorf("start consuming: %w", err)
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
	bg.Go(func() { w.runTimers(ctx) })
	bg.Go(func() { w.runSync(ctx) })
	w.log.Info().Int("concurrency", w.opts.Concurrency).Int("handlers", handlers).Int("max_deliver", w.opts.MaxDeliver).Msg("worker started")

	// A fixed pool of handlers: their stacks, grown once by template
	// execution and JSON decoding, are reused instead of grown per message.
	work := make(chan jetstream.Msg)
	idle := make(chan struct{}, handlers)
	var inflight sync.WaitGroup
	for range handlers {
		idle <- struct{}{}
		inflight.Go(func() {
			// Each handler's messages derive their contexts from one of its
			// own, so that starting and ending them does not lock a context
			// shared by every handler.
			ctx, cancel := context.WithCancel(workCtx)
			defer cancel()
			hb := w.newHeartbeat()
			for msg := range work {
				w.process(ctx, msg, hb)
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
			w.handBack(msg)
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
		w.handBack(msg)
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
	// Acks and naks are sent without waiting for the server: make sure they
	// arrived, so that a process that exits now holds nothing back until
	// the ack wait.
	if err := w.res.JS.Conn().FlushTimeout(5 * time.Second); err != nil {
		w.log.Warn().Err(err).Msg("settlements may not have reached NATS; unsettled messages return after the ack wait")
	}
	w.log.Info().Msg("worker stopped")
	return runErr
}

// result is what handling a message did, for settling and logging.
type result struct {
	key            string // alert key (of the first alert of a message, or of the one that failed)
	incidentNumber string
	outcomes       []string
	failed         []alertFailure // alerts of a multi-alert message that failed, the others applied
}

// alertFailure is one alert of a multi-alert message that failed.
type alertFailure struct {
	index int // in the message
	key   string
	err   error
}

// process handles one message and settles it; hb is its handler's.
func (w *Worker) process(ctx context.Context, msg jetstream.Msg, hb *heartbeat) {
	md, err := msg.Metadata()
	if err != nil {
		// Not a JetStream message: there is nothing to redeliver or settle.
		w.log.Error().Err(err).Str("subject", msg.Subject()).Msg("message without JetStream metadata; ignoring it")
		return
	}
	w.m.inFlight.Inc()
	defer w.m.inFlight.Dec()
	hctx, cancel := context.WithTimeout(ctx, w.opts.HandleTimeout)
	defer cancel()
	hb.start(msg)
	var res result
	err = w.handle(hctx, msg, md, &res)
	hb.stop()
	if (err != nil || len(res.failed) > 0) && ctx.Err() != nil {
		err, res.failed = errors.Join(errShutdown, err), nil
	}
	w.settle(msg, md, res, err)
}

// heartbeat tells the server every AckWait/3 that its handler's message
// is still being worked on, so that long retries are not redelivered
// elsewhere. Each handler has one, reused for each of its messages.
type heartbeat struct {
	every time.Duration
	log   *zerolog.Logger
	mu    sync.Mutex
	msg   jetstream.Msg // nil between messages
	t     *time.Timer
}

func (w *Worker) newHeartbeat() *heartbeat {
	h := &heartbeat{every: w.heartbeat, log: &w.log}
	if h.every > 0 {
		h.t = time.AfterFunc(h.every, h.beat)
		h.t.Stop()
	}
	return h
}

func (h *heartbeat) start(msg jetstream.Msg) {
	if h.t == nil {
		return
	}
	h.mu.Lock()
	h.msg = msg
	h.mu.Unlock()
	h.t.Reset(h.every)
}

func (h *heartbeat) stop() {
	if h.t == nil {
		return
	}
	h.mu.Lock()
	h.msg = nil
	h.t.Stop()
	h.mu.Unlock()
}

// beat runs on the timer. One that fired as a message ended may find the
// handler's next message: an early heartbeat for it is harmless.
func (h *heartbeat) beat() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.msg == nil {
		return
	}
	if err := h.msg.InProgress(); err != nil {
		h.log.Debug().Err(err).Msg("in-progress heartbeat failed")
	}
	h.t.Reset(h.every)
}

// handle decodes a message and applies each alert in it. A panic is
// recovered and logged with the key of the alert it happened in; the whole
// message is then redelivered, even if an alert before it failed for good:
// the alerts after it were not applied.
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, res *result) (err error) {
	var current string // the key of the alert being applied
	defer func() {
		if r := recover(); r != nil {
			w.log.Error().Str("alert_key", current).Uint64("stream_seq", md.Sequence.Stream).
				Str("panic", fmt.Sprint(r)).Bytes("stack", debug.Stack()).Msg("panic while handling an event")
			res.key, res.failed = current, nil
			err = fmt.Errorf("%w: %v", errPanic, r)
		}
	}()
	events, err := w.events(msg.Data(), publishTime(msg, md))
	if err != nil {
		return err
	}
	for i, e := range events {
		key := e.ev.key
		current = key
		out, number, err := w.applyAlert(ctx, e)
		if i == 0 || err != nil {
			res.key = key
		}
		if err != nil && len(events) == 1 {
			return err
		}
		if err != nil {
			// The others are applied; this one is settled alone.
			res.failed = append(res.failed, alertFailure{index: i, key: key, err: err})
			continue
		}
		if i == 0 {
			res.incidentNumber = number
		}
		res.outcomes = append(res.outcomes, out)
	}
	return nil
}

// applyAlert applies the event of one alert of a message: its outcome and
// incident number.
func (w *Worker) applyAlert(ctx context.Context, e alertEvent) (string, string, error) {
	if e.err != nil {
		return "", "", e.err
	}
	out, number, err := w.apply(ctx, e.ev)
	if err != nil {
		return "", number, fmt.Errorf("alert %s: %w", e.ev.key, err)
	}
	return out, number, nil
}

// publishTime is when the event's message was first published: the
// Alertdesk-Original-Time header of a replayed dead letter, else the
// message's own JetStream timestamp.
func publishTime(msg jetstream.Msg, md *jetstream.MsgMetadata) time.Time {
	if v := msg.Headers().Get(dlq.HeaderOriginalTime); v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t
		}
	}
	return md.Timestamp
}

// handBack settles a message that was pulled but not started because the
// worker is stopping: it goes to another worker at once.
func (w *Worker) handBack(msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		return
	}
	w.settle(msg, md, result{}, errShutdown)
}
