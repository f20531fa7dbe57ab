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
// (TOPdesk rejects the write) and stands for alert events has them
// dead-lettered, to be replayed as any other (timerEvents; deadLetter
// terminates the timer only after the dead-letter publish was acked); one
// without an event is removed with the error logged.
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
	verdict := decideFate(err, attempts, w.gate.paused(), policy)
	var dead []deadPart
	if verdict.kind == fateDeadLetter && mdErr == nil {
		var readErr error
		if dead, readErr = w.timerEvents(ctx, f); readErr != nil {
			// Its events cannot be read now: that error decides instead.
			err, verdict = readErr, decideFate(readErr, attempts, w.gate.paused(), policy)
		}
	}
	switch verdict.kind {
	case fateAck:
		if out != "" {
			w.m.outcome(out).Inc()
		}
		log.Debug().Str("outcome", out).Msg("timer handled")
		_ = f.Msg.Ack()
	case fateNak:
		log.Warn().Err(err).Dur("retry_in", verdict.delay).Msg("timer failed; retrying")
		_ = f.Msg.NakWithDelay(verdict.delay)
	default:
		if len(dead) == 0 {
			log.Error().Err(err).Msg("timer failed for good; removing it")
			_ = f.Msg.TermWithReason(fmt.Sprintf("%.200s", err.Error()))
			return
		}
		for i := range dead {
			dead[i].err, dead[i].class = fmt.Errorf("%s timer: %w", f.Kind, err), verdict.class
		}
		w.deadLetter(f.Msg, md, dead)
	}
}

// timerEvents are the alert events of timer f, which failed for good, as
// their dead letters carry them: a noise-control timer's event (its body),
// or the events a window-end timer replays, those held back in the key's
// state whose window has ended (a replay that fails keeps its event held
// back). Events held back for a window that has not ended are not
// dead-lettered: the key's window timer is set again for them. Each is a
// native event (mapping.Encode) on the input stream's subject for timers,
// with the event's first publish time in Alertdesk-Original-Time, so that
// a replay is ordered as the event was, and handled as it would have been
// then: held back again if a window still covers it.
func (w *Worker) timerEvents(ctx context.Context, f timer.Fired) ([]deadPart, error) {
	switch f.Kind {
	case timerResolve, timerFlapQuiet:
		var b noiseBody
		if json.Unmarshal(f.Body, &b) != nil || b.Alert == nil {
			return nil, nil // invalid: nothing to replay
		}
		p, err := w.timerPart(b.Alert, cmp.Or(b.Member, b.Key), b.Published)
		if err != nil {
			return nil, nil
		}
		return []deadPart{p}, nil
	case timerWindow:
		st, _, _, err := w.state.load(ctx, f.Key, true)
		if err != nil {
			return nil, err
		}
		ended := maxTime(f.At, w.opts.Now())
		var dead []deadPart
		for _, held := range heldBack(&st) {
			if held.Until.After(ended) {
				// Held back still: this timer was its timer too.
				return dead, w.setTimer(ctx, timerWindow, f.Key, w.windowDue(held.Until), nil)
			}
			if held.Alert == nil {
				continue
			}
			if p, err := w.timerPart(held.Alert, cmp.Or(w.memberOf(held), st.Key), held.Published); err == nil {
				dead = append(dead, p)
			}
		}
		return dead, nil
	}
	return nil, nil
}

// timerPart is the dead letter of alert a of key, first published at
// published, that a timer stood for.
func (w *Worker) timerPart(a *mapping.Alert, key string, published time.Time) (deadPart, error) {
	data, err := mapping.Encode(a)
	if err != nil {
		return deadPart{}, err
	}
	h := nats.Header{}
	if !published.IsZero() {
		h.Set(dlq.HeaderOriginalTime, published.UTC().Format(time.RFC3339Nano))
	}
	return deadPart{data: data, key: key, subject: w.timerSubject(), header: h}, nil
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
