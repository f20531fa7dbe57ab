package worker

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"time"

	"github.com/alertdesk/alertdesk/maintenance"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/timer"
)

// Maintenance windows (PRODUCT.md "Noise control"). While a window covers
// an alert at its event time, an event that would create or reopen an
// incident is held back instead: the key's state records it (suppression)
// and a durable timer of kind timerWindow fires at the end of the coverage.
// Updates and resolves of an open incident are not held back. The timer
// replays the held-back event through apply, judging coverage at the
// window's end: still covered (another window) holds it back again, else it
// creates or reopens as if it had just fired; the suppression ends only with
// the state written after that write, so a write that fails leaves it for
// the timer's redelivery. The timer fires at least every
// MaintenanceRecheck, so that a window removed early ends then. A newer event that is not
// held back (a resolve, a firing no window covers) ends the suppression and
// cancels the timer; an older one is stale, as if the held-back event had
// been applied. A key holds one event back, the latest. A group (grouping)
// holds one back per member (SuppressedMembers): a member's own events end
// or make stale only its own, and the timer replays each; the key's one
// timer fires at the earliest end among them.

// MaintenanceWindows says which maintenance window covers an alert's
// labels at an instant, and until when: maintenance.Windows (the mapping's)
// or *maintenance.Set (the mapping's and the ad-hoc ones, kept current).
type MaintenanceWindows interface {
	Cover(labels map[string]string, at time.Time) (maintenance.Coverage, bool)
}

// maxHeld bounds the members whose events a group's state holds back.
// Each carries its alert (labels and annotations, up to a few KB), so the
// state entry stays well under NATS's default max_payload of 1 MiB. A
// further member is not held back: it joins the incident when it fires
// again (an Alertmanager group notification re-sends every member).
const maxHeld = 100

const (
	// outcomeSuppressed: a maintenance window held the event back.
	outcomeSuppressed = "suppressed"
	// timerWindow is the timer kind of a window's end; its key is the
	// externalNumber and it has no body (the state holds the alert).
	timerWindow = "window"
)

// suppression is kept in a key's state while a maintenance window holds a
// firing event back.
type suppression struct {
	Window string    `json:"window"` // ID of the covering window
	Reason string    `json:"reason,omitempty"`
	Until  time.Time `json:"until"` // end of the coverage, when the window timer fires
	// At and Published are the held-back event's time and publish time;
	// Alert is the event itself, replayed when the window ends.
	At        time.Time      `json:"at"`
	Published time.Time      `json:"published"`
	Alert     *mapping.Alert `json:"alert"`
}

// KeySuppression is a maintenance window holding a key's firing event back
// (`alertdesk state get`).
type KeySuppression struct {
	Window string    `json:"window"`
	Reason string    `json:"reason,omitempty"`
	Until  time.Time `json:"until"`    // when the event is handled, unless resolved before
	At     time.Time `json:"event_at"` // event time of the held-back event
}

func (s *suppression) forPeople() *KeySuppression {
	if s == nil {
		return nil
	}
	return &KeySuppression{Window: s.Window, Reason: s.Reason, Until: s.Until, At: s.At}
}

// initMaintenance makes the mapping's windows the default and registers
// the window-end timer.
func (w *Worker) initMaintenance() {
	if w.opts.Maintenance == nil {
		w.opts.Maintenance = w.mapping.Maintenance()
	}
	if w.opts.MaintenanceRecheck <= 0 {
		w.opts.MaintenanceRecheck = time.Minute
	}
	w.timerHandlers[timerWindow] = w.windowEnded
}

// suppress applies maintenance windows to ev, for which decide chose d on
// st (at revision rev). done says that it settled the event itself, with
// outcome out or err; otherwise apply goes on with st, from which it may
// have removed an ended suppression.
func (w *Worker) suppress(ctx context.Context, st *incidentState, ev *keyEvent, d decision, rev uint64) (out string, done bool, err error) {
	held, replay := w.held(st, ev), !ev.windowEnd.IsZero()
	switch {
	case replay && (held == nil || !held.At.Equal(ev.at)):
		// Handled, resolved or replaced since the timer was set.
		return "", true, nil
	case !replay && held != nil && order(ev.at, string(ev.alert.Status), held.At, string(mapping.StatusFiring)) < 0:
		// Older than the event held back, which counts as applied.
		return outcomeStale, true, nil
	}
	if d == doCreate || d == doReopen {
		at := ev.at
		if replay {
			at = ev.windowEnd
		}
		if c, ok := w.opts.Maintenance.Cover(ev.alert.Labels, at); ok {
			if !replay {
				// Render it now, as if it were written: an event its
				// templates cannot render is dead-lettered while its
				// message is at hand, not when the window ends.
				if _, err := w.mapping.Render(ev.alert, ev.key, decisionOp[d]); err != nil {
					return "", true, err
				}
			}
			return w.holdBack(ctx, st, ev, c, rev)
		}
	}
	if held == nil {
		return "", false, nil
	}
	if replay && d != doStale {
		// The event held back is handled now. Its suppression ends with
		// the state written after its write (applied): a write that fails,
		// or a worker that dies during it, leaves it for the timer's next
		// delivery.
		return "", false, nil
	}
	// A newer event that is not held back ends the suppression; the timer
	// goes with the key's last one (an early timer re-checks the others).
	w.setHeld(st, ev, nil)
	if !replay && st.Suppressed == nil && st.SuppressedMembers == nil {
		if err := w.cancelTimer(ctx, timerWindow, ev.ext); err != nil {
			return "", true, err
		}
	}
	if d == doStale {
		// apply would write nothing: drop the suppression here.
		if _, err := w.state.put(ctx, opWrite, ev.ext, st, rev); err != nil || replay {
			return "", true, err
		}
		return outcomeStale, true, nil
	}
	return "", false, nil
}

// memberOf is the alert key of the event held back, which names it among
// its group's members.
func (w *Worker) memberOf(held *suppression) string {
	if held.Alert == nil {
		return ""
	}
	key, err := w.mapping.Key(held.Alert)
	if err != nil {
		return ""
	}
	return key
}

// held returns the event held back for ev's alert: the key's, or in a group
// the member's (nil = none).
func (w *Worker) held(st *incidentState, ev *keyEvent) *suppression {
	if ev.member == "" {
		return st.Suppressed
	}
	if s := st.Suppressed; s != nil && w.memberOf(s) == ev.member {
		return s // held back when a group held one event back
	}
	return st.SuppressedMembers[ev.member]
}

// setHeld makes s the event held back for ev's alert (nil = none).
func (w *Worker) setHeld(st *incidentState, ev *keyEvent, s *suppression) {
	if ev.member == "" {
		st.Suppressed = s
		return
	}
	if st.Suppressed != nil && w.memberOf(st.Suppressed) == ev.member {
		st.Suppressed = nil
	}
	held := maps.Clone(st.SuppressedMembers) // the state's map may be shared with the worker's cache
	delete(held, ev.member)
	if s != nil {
		if held == nil {
			held = make(map[string]*suppression, 1)
		}
		held[ev.member] = s
	}
	if len(held) == 0 {
		held = nil
	}
	st.SuppressedMembers = held
}

// heldBack returns the events st holds back (the key's, or its group's
// members'), in the order their coverage ends.
func heldBack(st *incidentState) []*suppression {
	out := slices.Collect(maps.Values(st.SuppressedMembers))
	if st.Suppressed != nil {
		out = append(out, st.Suppressed)
	}
	slices.SortFunc(out, func(a, b *suppression) int { return cmp.Or(a.Until.Compare(b.Until), a.At.Compare(b.At)) })
	return out
}

// holdBack records ev in st as held back by coverage c, replacing an
// earlier event held back for its alert, and sets the key's timer for the
// earliest end of coverage among the events it holds back, or for the next
// re-check if that is sooner (a window removed early ends then).
func (w *Worker) holdBack(ctx context.Context, st *incidentState, ev *keyEvent, c maintenance.Coverage, rev uint64) (string, bool, error) {
	if ev.member != "" && w.held(st, ev) == nil && len(st.SuppressedMembers) >= maxHeld {
		// Full: not held back. The member joins when it fires again.
		return outcomeSuppressed, true, nil
	}
	w.setHeld(st, ev, &suppression{Window: c.Window.ID, Reason: c.Window.Reason, Until: c.End,
		At: ev.at, Published: ev.published, Alert: ev.alert})
	// The timer first: a state that names a timer always has one.
	if err := w.setTimer(ctx, timerWindow, ev.ext, w.windowDue(heldBack(st)[0].Until), nil); err != nil {
		return "", true, err
	}
	if _, err := w.state.put(ctx, opWrite, ev.ext, st, rev); err != nil {
		return "", true, err
	}
	if !ev.windowEnd.IsZero() {
		return "", true, nil // a replay is no new event
	}
	return outcomeSuppressed, true, nil
}

// windowDue is when the window timer of an event held back until until
// fires: then, or at the next re-check if that is sooner (a window removed
// early ends then).
func (w *Worker) windowDue(until time.Time) time.Time {
	if recheck := w.opts.Now().Add(w.opts.MaintenanceRecheck); recheck.Before(until) {
		return recheck
	}
	return until
}

// windowEnded handles the timer of a window's end: it replays each event
// held back for the key through apply (lock, load, decide, claim, write,
// commit), which re-checks everything and counts its outcome; a timer that
// fires twice, early or late finds nothing to do, or holds back again. A
// replay that fails has the timer delivered again, for it and those after
// it. Replays go in the order their coverage ends, so that one whose window
// ended, and that fails, comes before any held back again: that one sets
// the timer anew, which takes the place of this one and its redelivery.
func (w *Worker) windowEnded(ctx context.Context, f timer.Fired) (string, error) {
	// Read afresh: this worker's memory may hold an event held back
	// earlier, which another worker has replaced since.
	st, _, _, err := w.state.load(ctx, f.Key, true)
	if err != nil {
		return "", err
	}
	for _, held := range heldBack(&st) {
		if held.Alert == nil {
			continue
		}
		// As the event was prepared when it arrived: its key, group and
		// fingerprint; its time as it was held back.
		ev, err := w.newEvent(held.Alert, held.Published)
		if err != nil {
			return "", err
		}
		ev.key, ev.ext, ev.at, ev.windowEnd = st.Key, f.Key, held.At, maxTime(f.At, w.opts.Now())
		out, _, err := w.apply(ctx, ev)
		if err != nil {
			return "", err
		}
		if out != "" {
			w.m.outcome(out).Inc()
		}
	}
	return "", nil
}
