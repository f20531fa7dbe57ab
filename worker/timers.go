package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/alertdesk/alertdesk/dlq"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/timer"
)

// timerHandler handles a due timer of one kind (timer.Fired.Kind) for the
// key named by f.Key (an externalNumber). It must re-check the key's state:
// a timer may fire twice, or after what it was set for no longer applies.
// It returns the outcome for the events counter ("" = none) and an error
// whose fate decideFate decides, as for an event.
type timerHandler func(ctx context.Context, f timer.Fired) (outcome string, err error)

// setTimer makes the timer kind for the key ext fire at at with body,
// replacing an earlier one of the same kind and key.
func (w *Worker) setTimer(ctx context.Context, kind, ext string, at time.Time, body []byte) error {
	if w.res.Timers == nil {
		return errors.New("timers are not provisioned")
	}
	return w.res.Timers.Set(ctx, kind, ext, at, body)
}

// cancelTimer removes the timer kind for the key ext, if any.
func (w *Worker) cancelTimer(ctx context.Context, kind, ext string) error {
	if w.res.Timers == nil {
		return nil
	}
	return w.res.Timers.Cancel(ctx, kind, ext)
}

// runTimers hands due timers to their handlers until ctx is done, at most
// Concurrency at once, and returns when every handler it started returned.
func (w *Worker) runTimers(ctx context.Context) {
	if w.res.Timers == nil {
		return
	}
	mode, why := w.res.Timers.Mode()
	ev := w.log.Info()
	if mode != timer.ModeSchedules {
		ev = w.log.Warn()
	}
	ev.Str("timer_mode", mode.String()).Str("why", why).Msg("durable timers")

	slots := make(chan struct{}, w.opts.Concurrency)
	var handlers sync.WaitGroup
	err := w.res.Timers.Run(ctx, func(_ context.Context, f timer.Fired) {
		slots <- struct{}{} // blocks the delivery of more timers while all slots are busy
		handlers.Go(func() {
			defer func() { <-slots }()
			w.fireTimer(f)
		})
	})
	if err != nil {
		w.log.Error().Err(err).Msg("timers stopped")
	}
	handlers.Wait()
}

// fireTimer handles one due timer and settles its message with the fate
// decideFate gives its result. A timer is never dead-lettered for its
// attempts: what it stands for (a close, a window end) must happen, so it
// is retried until it succeeds or fails for good. One that fails for good
// (TOPdesk rejects the write) and stands for an alert event is
// dead-lettered as that event, to be replayed as any other (deadLetter:
// the timer is terminated only after the dead-letter publish was acked);
// one without an event is removed with the error logged.
func (w *Worker) fireTimer(f timer.Fired) {
	log := w.log.With().Str("timer", f.Kind).Str("external_number", f.Key).Logger()
	h, ok := w.timerHandlers[f.Kind]
	if !ok {
		log.Error().Msg("timer of an unknown kind; removing it")
		_ = f.Msg.TermWithReason("unknown timer kind " + f.Kind)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.HandleTimeout)
	defer cancel()
	ev := w.timerEvent(ctx, f) // before handling it, which may drop it from the state
	out, err := safely(ctx, f, h)
	if errors.Is(err, errPanic) {
		log.Error().Err(err).Msg("panic while handling a timer")
	}
	attempts := uint64(1)
	md, mdErr := f.Msg.Metadata()
	if mdErr == nil {
		attempts = md.NumDelivered
	}
	policy := w.fates
	policy.maxDeliver = math.MaxInt
	switch fate := decideFate(err, attempts, w.gate.paused(), policy); fate.kind {
	case fateAck:
		if out != "" {
			w.m.outcome(out).Inc()
		}
		log.Debug().Str("outcome", out).Msg("timer handled")
		_ = f.Msg.Ack()
	case fateNak:
		log.Warn().Err(err).Dur("retry_in", fate.delay).Msg("timer failed; retrying")
		_ = f.Msg.NakWithDelay(fate.delay)
	default:
		if ev == nil || mdErr != nil {
			log.Error().Err(err).Msg("timer failed for good; removing it")
			_ = f.Msg.TermWithReason(fmt.Sprintf("%.200s", err.Error()))
			return
		}
		ev.err, ev.class = fmt.Errorf("%s timer: %w", f.Kind, err), fate.class
		w.deadLetter(f.Msg, md, []deadPart{*ev})
	}
}

// timerEvent is the alert event that timer f stands for, as its dead
// letter carries it: a noise-control timer's event (its body), or the
// event a window-end timer replays, held back in the key's state (read
// before the timer is handled, which removes it there). It is a native
// event (mapping.Encode) on the input stream's subject for timers, with
// the event's first publish time in Alertdesk-Original-Time, so that a
// replay is ordered as the event was. Nil when f stands for no event.
func (w *Worker) timerEvent(ctx context.Context, f timer.Fired) *deadPart {
	var (
		a         *mapping.Alert
		key       string
		published time.Time
	)
	switch f.Kind {
	case timerResolve, timerFlapQuiet:
		var b noiseBody
		if json.Unmarshal(f.Body, &b) != nil || b.Alert == nil {
			return nil // invalid: nothing to replay
		}
		a, key, published = b.Alert, cmp.Or(b.Member, b.Key), b.Published
	case timerWindow:
		st, _, _, err := w.state.load(ctx, f.Key, true)
		if err != nil || st.Suppressed == nil || st.Suppressed.Alert == nil {
			return nil // the handler finds the same, or fails for the same reason
		}
		a, key, published = st.Suppressed.Alert, cmp.Or(w.memberOf(st.Suppressed), st.Key), st.Suppressed.Published
	default:
		return nil
	}
	data, err := mapping.Encode(a)
	if err != nil {
		return nil
	}
	h := nats.Header{}
	if !published.IsZero() {
		h.Set(dlq.HeaderOriginalTime, published.UTC().Format(time.RFC3339Nano))
	}
	return &deadPart{data: data, key: key, subject: w.timerSubject(), header: h}
}

// timerSubject is the input-stream subject a timer's dead letter is
// replayed to: the input stream's first subject with each wildcard token
// replaced by "timer" (alerts.> gives alerts.timer).
func (w *Worker) timerSubject() string {
	if len(w.res.Topology.Subjects) == 0 {
		return ""
	}
	toks := strings.Split(w.res.Topology.Subjects[0], ".")
	for i, t := range toks {
		if t == "*" || t == ">" {
			toks[i] = "timer"
		}
	}
	return strings.Join(toks, ".")
}

// safely runs h, turning a panic into an error (with its stack) that
// redelivers the timer.
func safely(ctx context.Context, f timer.Fired, h timerHandler) (out string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v\n%s", errPanic, r, debug.Stack())
		}
	}()
	return h(ctx, f)
}
