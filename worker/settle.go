package worker

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/dlq"
	"github.com/alertdesk/alertdesk/topdesk"
)

// fateKind is what becomes of a message.
type fateKind int

const (
	fateAck        fateKind = iota // done: acknowledge
	fateNak                        // redeliver after the fate's delay
	fateDeadLetter                 // publish to the DLQ, then terminate
)

// fate is the settlement of a message: ack, nak after delay, or dead-letter
// with class. attempt says that the delivery was a real failed attempt,
// which counts toward MaxDeliver.
type fate struct {
	kind    fateKind
	delay   time.Duration
	class   dlq.Class
	attempt bool
}

// fatePolicy is what decideFate needs of the worker's options.
type fatePolicy struct {
	maxDeliver                 int
	redeliverMin, redeliverMax time.Duration
	breakerCooldown, authRetry time.Duration
	jitter                     func(time.Duration) time.Duration // spreads a redelivery delay
}

// decideFate is the one place that maps the result of handling a message
// (err), its attempts (the real attempts at it that failed before, plus
// this one) and whether TOPdesk is unavailable (the breaker is open or the
// credentials are refused: paused) to its fate:
//   - nil: ack;
//   - shutdown: nak at once, for another worker;
//   - a permanent error: dead-letter with its class;
//   - rejected credentials: nak after AuthRetry, never dead-letter;
//   - a retryable error: nak after an exponential delay (at least a
//     Retry-After, at most until a claim lapses, at least the breaker
//     cooldown while paused); it is a real attempt unless TOPdesk is
//     unavailable or the event waits for its key (another worker's claim,
//     an unknown outcome, which always ends); at MaxDeliver real attempts
//     dead-letter, class exhausted; a write whose outcome is unknown gets
//     one attempt more, whose lookup learns the outcome.
//
// Deliveries are not attempts: a message also comes back after it waited
// in a paused worker's pull buffer past the ack wait, or was handed back on
// shutdown, and such deliveries must not exhaust it.
func decideFate(err error, attempts uint64, paused bool, p fatePolicy) fate {
	if err == nil {
		return fate{kind: fateAck}
	}
	if errors.Is(err, errShutdown) {
		return fate{kind: fateNak}
	}
	switch k, class := classify(err); k {
	case kindPermanent:
		return fate{kind: fateDeadLetter, class: class}
	case kindAuth:
		return fate{kind: fateNak, delay: p.authRetry}
	}
	waiting := errors.Is(err, errKeyBusy) || errors.Is(err, errOutcomePending)
	limit := p.maxDeliver
	if topdesk.IsOutcomeUnknown(err) {
		// A write whose outcome is unknown has not failed until a lookup
		// says so: one more delivery looks it up.
		limit++
	}
	attempt := !paused && !waiting
	if int(attempts) >= limit && attempt {
		return fate{kind: fateDeadLetter, class: dlq.ClassExhausted}
	}
	d := p.redeliverMin
	for i := uint64(1); i < attempts && d < p.redeliverMax; i++ {
		d *= 2
	}
	delay := p.jitter(min(d, p.redeliverMax))
	var rl *retryLaterError
	if errors.As(err, &rl) && rl.within > 0 {
		delay = min(delay, rl.within)
	}
	if ra, ok := retryAfter(err); ok {
		delay = max(delay, ra)
	}
	if paused {
		delay = max(delay, p.breakerCooldown)
	}
	return fate{kind: fateNak, delay: delay, attempt: attempt}
}

// halfJitter returns a delay between d/2 and d.
func halfJitter(d time.Duration) time.Duration { return d/2 + rand.N(d/2+1) }

// deadAlert is a failed alert of a multi-alert message that is
// dead-lettered alone, with its class.
type deadAlert struct {
	alertFailure
	class dlq.Class
}

// messageFate is decideFate for a whole message whose handling returned
// err. For a multi-alert message whose other alerts were applied, failed
// lists the alerts that failed, and each has its own decideFate: if any is
// redelivered, the whole message is, after the longest of their delays (its
// applied alerts are then duplicates), and cause is that alert; else each
// failed alert is dead-lettered alone, as dead lists. The delivery is a real
// attempt if it was one for any redelivered alert.
func messageFate(err error, failed []alertFailure, attempts uint64, paused bool, p fatePolicy) (f fate, cause *alertFailure, dead []deadAlert) {
	if len(failed) == 0 {
		return decideFate(err, attempts, paused, p), nil, nil
	}
	f = fate{kind: fateDeadLetter}
	for i := range failed {
		af := &failed[i]
		switch pf := decideFate(af.err, attempts, paused, p); {
		case pf.kind == fateDeadLetter:
			dead = append(dead, deadAlert{alertFailure: *af, class: pf.class})
		case f.kind != fateNak || pf.delay > f.delay:
			pf.attempt = pf.attempt || f.attempt
			f, cause = pf, af
		case pf.attempt:
			f.attempt = true
		}
	}
	return f, cause, dead
}

// settle performs the fate of a message and logs it once. Nothing else
// acknowledges, naks or terminates a message.
func (w *Worker) settle(msg jetstream.Msg, md *jetstream.MsgMetadata, res result, err error) {
	failed, _ := w.attempts.get(md.Sequence.Stream)
	attempts := failed + 1
	f, cause, deadAlerts := messageFate(err, res.failed, attempts, w.gate.paused(), w.fates)
	if cause != nil {
		err, res.key = cause.err, cause.key
	}
	var dead []deadPart
	switch {
	case f.kind != fateDeadLetter:
	case len(res.failed) == 0:
		dead = []deadPart{{data: msg.Data(), key: res.key, err: err, class: f.class}}
	default:
		for _, d := range deadAlerts {
			data, perr := alertAlone(msg.Data(), d.index)
			if perr != nil {
				// Should not happen: the payload decoded. Keep all of it.
				data = msg.Data()
			}
			dead = append(dead, deadPart{data: data, key: d.key, err: d.err, class: d.class})
		}
	}
	if f.kind == fateNak && f.attempt {
		w.attempts.put(md.Sequence.Stream, attempts)
	} else if f.kind != fateNak {
		w.attempts.delete(md.Sequence.Stream)
	}
	// The message's fields are added to a line only when it is logged:
	// most messages log nothing at the default level.
	l := func(e *zerolog.Event) *zerolog.Event { return w.msgFields(e, msg, md, res) }
	if f.kind != fateNak && res.key != "" {
		if since, ok := w.waiting.end(res.key); ok {
			l(w.log.Info()).Dur("waited", w.opts.Now().Sub(since)).Msg("events of this alert key no longer wait")
		}
	}
	switch f.kind {
	case fateAck:
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
			l(w.log.Warn()).Err(ackErr).Msg("ack failed; the event will be redelivered as a duplicate")
		}
		ev := l(w.log.WithLevel(lvl)).Str("outcome", strings.Join(res.outcomes, ","))
		if res.incidentNumber != "" {
			ev = ev.Str("incident_number", res.incidentNumber)
		}
		ev.Msg("event handled")
	case fateDeadLetter:
		for _, o := range res.outcomes {
			w.m.outcome(o).Inc() // the applied alerts of a multi-alert message
		}
		w.deadLetter(msg, md, dead)
	case fateNak:
		if f.delay > 0 {
			err = errors.Join(err, msg.NakWithDelay(f.delay))
		} else {
			err = errors.Join(err, msg.Nak())
		}
		if errors.Is(err, errShutdown) {
			l(w.log.Debug()).Err(err).Msg("handed back on shutdown")
			return
		}
		w.m.outcome(outcomeRetried).Inc()
		// Say once why a key's events wait and for how long; each further
		// redelivery only at debug.
		reason := waitReason(err)
		ev := l(w.log.Debug())
		if res.key == "" || w.waiting.start(res.key, reason, w.opts.Now()) {
			ev = l(w.log.Warn())
		}
		ev.Err(err).Str("outcome", outcomeRetried).Str("reason", reason).Dur("delay", f.delay).Msg("event waits; it will be retried")
	}
}

// msgFields adds a message's fixed fields to a log line; a line of a
// disabled level (nil) stays nil.
func (w *Worker) msgFields(e *zerolog.Event, msg jetstream.Msg, md *jetstream.MsgMetadata, res result) *zerolog.Event {
	if e == nil {
		return nil
	}
	e = e.Str("subject", msg.Subject()).Uint64("stream_seq", md.Sequence.Stream).Uint64("deliveries", md.NumDelivered)
	if res.key != "" {
		e = e.Str("alert_key", res.key)
	}
	return e
}

// deadPart is what is dead-lettered of a message: all of it, or one alert
// of a multi-alert message as a one-alert message of the same shape, or
// the event a timer stands for (timerEvent).
type deadPart struct {
	data  []byte
	key   string
	err   error
	class dlq.Class
	// subject and header, when subject is set, replace the message's own:
	// a timer's event is replayed to the input stream, not to the timers.
	subject string
	header  nats.Header
}

// deadLetter publishes the evidence of each part to the DLQ stream and
// terminates the original only after every DLQ publish was acked;
// otherwise the original is redelivered (a part already published is then
// dropped by the DLQ stream as a duplicate).
func (w *Worker) deadLetter(msg jetstream.Msg, md *jetstream.MsgMetadata, dead []deadPart) {
	l := func(e *zerolog.Event) *zerolog.Event { return w.msgFields(e, msg, md, result{}) }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range dead {
		subject, header := msg.Subject(), msg.Headers()
		if p.subject != "" {
			subject, header = p.subject, p.header
		}
		err := w.dlq.Publish(ctx, dlq.Failure{
			OriginalStream:  md.Stream,
			OriginalSubject: subject,
			OriginalSeq:     md.Sequence.Stream,
			Published:       md.Timestamp,
			Header:          header,
			Data:            p.data,
			Err:             p.err.Error(),
			Class:           p.class,
			Deliveries:      int(md.NumDelivered),
			FailedAt:        w.opts.Now(),
			AlertKey:        p.key,
		})
		if err != nil {
			if nakErr := msg.NakWithDelay(w.fates.redeliverMin); nakErr != nil {
				err = errors.Join(err, nakErr)
			}
			l(w.log.Error()).Err(errors.Join(p.err, err)).Str("class", string(p.class)).Str("outcome", outcomeRetried).
				Msg("dead-letter publish failed; event will be redelivered")
			w.m.outcome(outcomeRetried).Inc()
			return
		}
	}
	if err := msg.TermWithReason(string(dead[0].class)); err != nil {
		// The DLQ holds it; a redelivery dead-letters it again under the same
		// Nats-Msg-Id, which the DLQ stream drops as a duplicate.
		l(w.log.Warn()).Err(err).Msg("term failed after dead-lettering")
	}
	for _, p := range dead {
		w.m.dlq.WithLabelValues(string(p.class)).Inc()
		w.m.events.WithLabelValues(outcomeDeadLettered).Inc()
		ev := l(w.log.Error())
		if p.key != "" {
			ev = ev.Str("alert_key", p.key)
		}
		ev.Err(p.err).Str("class", string(p.class)).Str("outcome", outcomeDeadLettered).Msg("event dead-lettered")
	}
}
