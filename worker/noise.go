package worker

// Noise control (PRODUCT.md "Noise control", docs/noise.md): a resolve that
// waits for lifecycle.resolveDelay before it closes, and flap damping. The
// rules are the pure planNoise; applyNoise performs a plan on the apply path
// (claim, write, commit) and sets the durable timers after the state is
// written, so that a timer that fires at once finds the state it stands for.
// A due timer comes back as an event of its key (keyEvent.timer) through
// apply: the key's lock, a fresh read of its state, the claim.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/timer"
	"github.com/alertdesk/alertdesk/topdesk"
)

// Timer kinds of noise control; the timer key is the alert's externalNumber.
const (
	timerResolve   = "resolve"   // a resolve waited lifecycle.resolveDelay without a firing
	timerFlapQuiet = "flapquiet" // a flapping key went flapping.quiet without a change
)

// Outcomes of noise control, for alertdesk_events_total.
const (
	// outcomeResolveDelayed: a resolve of an open incident waits for
	// lifecycle.resolveDelay; the close follows (outcome closed) unless the
	// alert fires again first.
	outcomeResolveDelayed = "resolve-delayed"
	// outcomeFlapping: a resolve that did not close the incident because
	// the key flaps (or starts to).
	outcomeFlapping = "flapping"
	// outcomeFlappingEnded: a flapping key went quiet while firing; its
	// incident stays open.
	outcomeFlappingEnded = "flapping-ended"
)

// doActionOnly writes only noise control's note, as an action, to the key's open
// incident (doNote, of observe.go, is an update sent as an action to an
// incident an operator closed).
const doActionOnly decision = 100

// noisePlan is what noise control does with one event or due timer.
type noisePlan struct {
	st      incidentState // the key's state after it
	write   decision      // what to write to TOPdesk: a decision of decide, doActionOnly, or doNothing
	note    string        // plain text added to the write's action
	outcome string        // the outcome when nothing is written ("" for a timer that no longer applies)
	record  bool          // st differs from the state read: write it

	resolveAt     time.Time // set the resolve timer for this time
	cancelResolve bool      // cancel the resolve timer
	quietAt       time.Time // set the flap-quiet timer for this time

	started, ended bool // flapping started or ended (metrics)
}

// planNoise decides what noise control makes of event ev whose decision
// by decide is d, given its key's state st, when the worker handles it at
// now. It is false when noise control has nothing to do with the event: d
// then stands as decided. It is always true for a due timer.
//
// The event time is the identity of a timer (the state's ResolveAt, the
// flap changes) and orders it against the key's other events, but the
// resolve delay and the quiet period are waited from when the event
// arrived: the latest of its event time, its publish time (the NATS
// server's clock) and now (the worker's clock). A resolve stamped in the
// past (Alertmanager's endsAt, a backlog, a dead letter replayed) so waits
// the whole delay for a firing. With the later of the two clocks the timer
// never fires before the delay has passed since the publish time, whatever
// the worker's clock says; a worker whose clock is ahead of the server's
// only makes it fire later.
func planNoise(st incidentState, ev *keyEvent, d decision, lc mapping.Lifecycle, fl mapping.Flapping, now time.Time) (noisePlan, bool) {
	p := noisePlan{st: st, write: d, outcome: decisionOutcome[d], record: true}
	switch ev.timer {
	case timerResolve:
		return p.resolveDue(ev), true
	case timerFlapQuiet:
		return p.quietEnd(ev), true
	}
	if d == doStale || (lc.ResolveDelay == 0 && !fl.On() && st.ResolveAt.IsZero() && st.FlappingSince.IsZero()) {
		return p, false
	}
	status := string(ev.alert.Status)
	arrived := maxTime(ev.at, maxTime(ev.published, now))
	if d == doDuplicate && !st.LastEvent.IsZero() && order(ev.at, status, st.LastEvent, st.LastStatus) == 0 {
		// The event applied last, again (a redelivery): set the timer it
		// set once more, in case that failed after the state was written.
		p.record = false
		switch {
		case status == string(mapping.StatusResolved) && st.ResolveAt.Equal(ev.at):
			p.resolveAt, p.outcome = arrived.Add(lc.ResolveDelay), outcomeResolveDelayed
		case !st.FlappingSince.IsZero() && lastChange(&st).Equal(ev.at):
			p.quietAt = arrived.Add(fl.Quiet)
		default:
			return p, false
		}
		return p, true
	}

	change := st.LastStatus != "" && st.LastStatus != status
	if change && fl.On() {
		p.st.Changes = recentChanges(st.Changes, ev.at, fl)
	}
	if ev.alert.Status == mapping.StatusFiring {
		if !st.ResolveAt.IsZero() {
			// The alert fires again within the delay: the incident stays
			// open, the firing is handled as usual.
			p.st.ResolveAt, p.cancelResolve = time.Time{}, true
		}
		if p.flapStarts(fl) && d == doDuplicate {
			p.write, p.outcome = doActionOnly, outcomeFlapping
		}
	} else if d == doResolve {
		switch {
		case !st.FlappingSince.IsZero():
			p.write, p.outcome = doNothing, outcomeFlapping // held open
		case p.flapStarts(fl):
			p.write, p.outcome = doActionOnly, outcomeFlapping
		case lc.ResolveDelay > 0:
			p.write, p.outcome = doNothing, outcomeResolveDelayed
			if st.ResolveAt.IsZero() { // a later resolve does not push the close back
				p.st.ResolveAt, p.resolveAt = ev.at, arrived.Add(lc.ResolveDelay)
			}
		}
	}
	if !p.st.FlappingSince.IsZero() && change {
		p.quietAt = arrived.Add(fl.Quiet)
	}
	return p, p.write != d || p.note != "" || p.cancelResolve || !p.resolveAt.IsZero() || !p.quietAt.IsZero() ||
		!slices.Equal(p.st.Changes, st.Changes)
}

// flapStarts starts flapping when the key's changes reached flapping.changes
// and it is not flapping yet: the write gets the note.
func (p *noisePlan) flapStarts(fl mapping.Flapping) bool {
	if !fl.On() || !p.st.FlappingSince.IsZero() || len(p.st.Changes) < fl.Changes {
		return false
	}
	p.st.FlappingSince, p.started = lastChange(&p.st), true
	p.note = fmt.Sprintf("Flapping: the alert changed between firing and resolved %d times within %s. "+
		"alertdesk holds this incident open and closes it once the alert has been resolved for %s without a change.",
		len(p.st.Changes), span(fl.Window), span(fl.Quiet))
	return true
}

// resolveDue plans the resolve timer of event ev: close the incident if
// the resolve still waits (no firing came, flapping did not take over).
func (p noisePlan) resolveDue(ev *keyEvent) noisePlan {
	st := p.st
	p.write, p.outcome, p.record = doNothing, "", false
	if st.ResolveAt.IsZero() || !st.ResolveAt.Equal(ev.at) || st.LastStatus != string(mapping.StatusResolved) {
		return p // a firing cancelled it, or it fired before
	}
	p.st.ResolveAt, p.record = time.Time{}, true
	if st.Open && st.IncidentID != "" && st.FlappingSince.IsZero() {
		p.write = doResolve
	}
	return p
}

// quietEnd plans the flap-quiet timer of the change ev: flapping ends; a
// resolved alert's incident closes, a firing one's stays open; each with a
// note.
func (p noisePlan) quietEnd(ev *keyEvent) noisePlan {
	st := p.st
	p.write, p.outcome, p.record = doNothing, "", false
	if st.FlappingSince.IsZero() || !lastChange(&st).Equal(ev.at) {
		return p // ended before, or a later change set the timer again
	}
	p.st.FlappingSince, p.st.Changes, p.record, p.ended = time.Time{}, nil, true, true
	switch {
	case !st.Open || st.IncidentID == "":
	case st.LastStatus == string(mapping.StatusResolved):
		p.write = doResolve
		p.note = "Flapping ended: the alert has been resolved without a change since " + ev.at.UTC().Format(time.RFC3339) + "; alertdesk closes this incident."
	default:
		p.write, p.outcome = doActionOnly, outcomeFlappingEnded
		p.note = "Flapping ended: the alert has been firing without a change since " + ev.at.UTC().Format(time.RFC3339) + "; the incident stays open."
	}
	return p
}

// recentChanges adds the change at at to changes and keeps those within
// the window before it, at most flapping.changes of them (a new slice).
func recentChanges(changes []time.Time, at time.Time, fl mapping.Flapping) []time.Time {
	out := make([]time.Time, 0, fl.Changes)
	for _, c := range changes {
		if at.Sub(c) < fl.Window && c.Before(at) {
			out = append(out, c)
		}
	}
	out = append(out, at)
	return out[max(len(out)-fl.Changes, 0):]
}

func lastChange(st *incidentState) time.Time {
	if len(st.Changes) == 0 {
		return time.Time{}
	}
	return st.Changes[len(st.Changes)-1]
}

// span writes a duration as a mapping would: 1h, 30m, 1h30m, 2s.
func span(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// noise is planNoise with the mapping's settings.
func (w *Worker) noise(st incidentState, ev *keyEvent, d decision) (noisePlan, bool) {
	fl := w.mapping.Flapping()
	if ev.member != "" {
		// Flapping is judged per alert key: a group's members coming and
		// going are its incident's content, not its changes (a member that
		// resolves and fires again adds one action). Flapping fields a
		// group's state may hold are dropped.
		fl = mapping.Flapping{}
		st.Changes, st.FlappingSince = nil, time.Time{}
	}
	return planNoise(st, ev, d, w.mapping.Lifecycle(), fl, w.opts.Now())
}

// applyNoise performs plan p for event ev on the apply path: under a claim
// when it writes to TOPdesk, else as a plain state write; then it sets and
// cancels the plan's timers. A timer that cannot be set fails the event,
// whose redelivery sets it again (planNoise, "the event applied last").
func (w *Worker) applyNoise(ctx context.Context, ev *keyEvent, st *incidentState, rev uint64, p noisePlan, found []topdesk.Incident) (string, string, error) {
	read := *st
	*st = p.st
	out := p.outcome
	op, writes := decisionOp[p.write]
	switch {
	case writes || p.write == doActionOnly || len(openIncidents(found)) > 1:
		claimed := *st
		claimed.Claim = &claim{Owner: w.opts.ID, Op: "note"}
		if writes {
			claimed.Claim.Op = op.String()
		}
		crev, err := w.claim(ctx, ev.ext, &read, &claimed, rev)
		if err != nil {
			return "", st.Number, err
		}
		ev.note = p.note
		if out, err = w.noisePerform(ctx, ev, st, p, found); err != nil {
			// Noise control's part of the state is as read: the event is
			// planned again when it comes back.
			st.ResolveAt, st.Changes, st.FlappingSince = read.ResolveAt, read.Changes, read.FlappingSince
			return "", st.Number, w.release(ctx, ev.ext, st, crev, err)
		}
		if ev.timer == "" {
			w.applied(st, ev)
		}
		if err := w.commit(ev.ext, st, crev); err != nil {
			return "", st.Number, fmt.Errorf("incident %s written but its state was not: %w", st.Number, err)
		}
	case p.record:
		if ev.timer == "" {
			w.applied(st, ev)
		}
		if _, err := w.state.put(ctx, opWrite, ev.ext, st, rev); err != nil {
			return "", st.Number, err
		}
	}
	if p.started {
		w.m.flapStarted.Inc()
	}
	if p.ended {
		w.m.flapEnded.Inc()
	}
	if p.cancelResolve {
		if err := w.cancelTimer(ctx, timerResolve, ev.ext); err != nil {
			// Harmless: the timer finds no resolve waiting and does nothing.
			w.log.Debug().Err(err).Str("alert_key", ev.key).Msg("cancelling the resolve timer failed")
		}
	}
	for _, t := range []struct {
		kind string
		at   time.Time
	}{{timerResolve, p.resolveAt}, {timerFlapQuiet, p.quietAt}} {
		if t.at.IsZero() {
			continue
		}
		body, err := json.Marshal(noiseBody{Key: ev.key, Member: ev.member, Alert: ev.alert, At: ev.at, Published: ev.published})
		if err != nil {
			return "", st.Number, fmt.Errorf("encode %s timer: %w", t.kind, err)
		}
		if err := w.setTimer(ctx, t.kind, ev.ext, t.at, body); err != nil {
			return "", st.Number, err
		}
	}
	return out, st.Number, nil
}

// noisePerform writes plan p under the key's claim: a decision as perform
// does (with the plan's note added to its action), or the note alone.
func (w *Worker) noisePerform(ctx context.Context, ev *keyEvent, st *incidentState, p noisePlan, found []topdesk.Incident) (string, error) {
	if p.write != doActionOnly {
		out, err := w.perform(ctx, ev, st, p.write, found)
		if _, writes := decisionOp[p.write]; !writes {
			out = p.outcome
		}
		return out, err
	}
	if open := openIncidents(found); len(open) > 1 {
		if err := w.repair(ctx, ev, open); err != nil {
			return "", err
		}
	}
	var req topdesk.IncidentRequest
	w.mapping.Note(&req, p.note)
	_, err := w.update(ctx, st.IncidentID, &req)
	if topdesk.IsNotFound(err) {
		// Deleted or archived in TOPdesk: the key forgets it.
		st.IncidentID, st.Number, st.Open, st.Fingerprint = "", "", false, ""
		return outcomeDuplicate, nil
	}
	if err != nil {
		return "", err
	}
	return p.outcome, nil
}

// noiseBody is the body of a noise-control timer: the event that set it,
// which the close renders.
type noiseBody struct {
	Key       string         `json:"key"`
	Member    string         `json:"member,omitempty"` // the member's own key, when Key is its group's
	Alert     *mapping.Alert `json:"alert"`
	At        time.Time      `json:"at"`
	Published time.Time      `json:"published"`
}

// noiseTimer handles a due resolve or flap-quiet timer: the event that set
// it goes through apply again as that timer (see planNoise).
func (w *Worker) noiseTimer(ctx context.Context, f timer.Fired) (string, error) {
	var b noiseBody
	if err := json.Unmarshal(f.Body, &b); err != nil || b.Alert == nil || mapping.ExternalNumber(b.Key) != f.Key {
		return "", fmt.Errorf("%w: %s timer %s does not carry an event of its key", mapping.ErrInvalid, f.Kind, f.Key)
	}
	out, _, err := w.apply(ctx, keyEvent{alert: b.Alert, key: b.Key, member: b.Member, ext: f.Key, at: b.At, published: b.Published, timer: f.Kind})
	return out, err
}

// noiseMetrics adds noise control's metrics to m and registers them with
// reg (nil = not registered). Flapping keys now = started - ended.
func noiseMetrics(m *metrics, reg prometheus.Registerer) {
	m.flapStarted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "alertdesk_flapping_started_total",
		Help: "Alert keys that started flapping (flapping.changes within flapping.window); minus alertdesk_flapping_ended_total: the keys flapping now.",
	})
	m.flapEnded = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "alertdesk_flapping_ended_total",
		Help: "Flapping alert keys that went quiet (flapping.quiet without a change) and ended flapping.",
	})
	for _, o := range []string{outcomeResolveDelayed, outcomeFlapping, outcomeFlappingEnded} {
		m.outcomes[o] = m.events.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(m.flapStarted, m.flapEnded)
	}
}
