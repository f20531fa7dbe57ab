package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/timer"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// TestPlanNoise is the table of noise control's rules (planNoise).
func TestPlanNoise(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	fl := mapping.Flapping{Changes: 3, Window: time.Hour, Quiet: 10 * time.Minute}
	delay := mapping.Lifecycle{ResolveDelay: 2 * time.Minute}
	open := incidentState{IncidentID: "i1", Number: "I 1", Open: true, LastEvent: at(0), LastStatus: "firing"}
	with := func(st incidentState, f func(*incidentState)) incidentState { f(&st); return st }
	ev := func(status mapping.Status, s int, timer string) *keyEvent {
		return &keyEvent{alert: &mapping.Alert{Status: status}, at: at(s), timer: timer}
	}
	late := func(status mapping.Status, s, published int) *keyEvent {
		e := ev(status, s, "")
		e.published = at(published)
		return e
	}
	const (
		firing   = mapping.StatusFiring
		resolved = mapping.StatusResolved
	)
	tests := []struct {
		name string
		st   incidentState
		ev   *keyEvent
		d    decision
		lc   mapping.Lifecycle
		fl   mapping.Flapping
		now  time.Time // the worker's clock; zero = t0
		// want
		ok          bool
		write       decision
		outcome     string
		noteHas     string
		resolveAt   time.Time
		cancel      bool
		quietAt     time.Time
		wantState   func(*incidentState) bool
		started     bool
		ended       bool
		record      bool
		wantChanges int
	}{
		{name: "off: nothing to do", st: open, ev: ev(resolved, 60, ""), d: doResolve},
		{name: "stale event", st: open, ev: ev(resolved, -1, ""), d: doStale, lc: delay, fl: fl},
		{name: "resolve waits", st: open, ev: ev(resolved, 60, ""), d: doResolve, lc: delay,
			ok: true, write: doNothing, outcome: outcomeResolveDelayed, resolveAt: at(180), record: true,
			wantState: func(st *incidentState) bool { return st.ResolveAt.Equal(at(60)) && st.Open }},
		{name: "a late resolve waits from its publish time", st: open, ev: late(resolved, 60, 600), d: doResolve, lc: delay, now: at(590),
			ok: true, write: doNothing, outcome: outcomeResolveDelayed, resolveAt: at(720), record: true,
			wantState: func(st *incidentState) bool { return st.ResolveAt.Equal(at(60)) }},
		{name: "a replayed resolve waits from now", st: open, ev: late(resolved, 60, 100), d: doResolve, lc: delay, now: at(1000),
			ok: true, write: doNothing, outcome: outcomeResolveDelayed, resolveAt: at(1120), record: true,
			wantState: func(st *incidentState) bool { return st.ResolveAt.Equal(at(60)) }},
		{name: "a later resolve keeps the first's time", st: with(open, func(st *incidentState) {
			st.ResolveAt, st.LastEvent, st.LastStatus = at(60), at(60), "resolved"
		}), ev: ev(resolved, 90, ""), d: doResolve, lc: delay,
			ok: true, write: doNothing, outcome: outcomeResolveDelayed, record: true,
			wantState: func(st *incidentState) bool { return st.ResolveAt.Equal(at(60)) }},
		{name: "the same resolve again sets its timer again", st: with(open, func(st *incidentState) {
			st.ResolveAt, st.LastEvent, st.LastStatus = at(60), at(60), "resolved"
		}), ev: ev(resolved, 60, ""), d: doDuplicate, lc: delay,
			ok: true, write: doDuplicate, outcome: outcomeResolveDelayed, resolveAt: at(180)},
		{name: "firing cancels a waiting resolve", st: with(open, func(st *incidentState) {
			st.ResolveAt, st.LastEvent, st.LastStatus = at(60), at(60), "resolved"
		}), ev: ev(firing, 90, ""), d: doDuplicate, lc: delay,
			ok: true, write: doDuplicate, outcome: outcomeDuplicate, cancel: true, record: true,
			wantState: func(st *incidentState) bool { return st.ResolveAt.IsZero() }},
		{name: "firing without a waiting resolve: as decided", st: open, ev: ev(firing, 90, ""), d: doUpdate, lc: delay},
		{name: "resolve timer closes", st: with(open, func(st *incidentState) {
			st.ResolveAt, st.LastEvent, st.LastStatus = at(60), at(90), "resolved"
		}), ev: ev(resolved, 60, timerResolve), d: doStale, lc: delay,
			ok: true, write: doResolve, record: true,
			wantState: func(st *incidentState) bool { return st.ResolveAt.IsZero() }},
		{name: "resolve timer after a firing: nothing", st: with(open, func(st *incidentState) {
			st.LastEvent = at(90)
		}), ev: ev(resolved, 60, timerResolve), d: doStale, lc: delay, ok: true, write: doNothing},
		{name: "resolve timer, incident closed meanwhile: forgets the wait", st: with(open, func(st *incidentState) {
			st.Open, st.ResolveAt, st.LastEvent, st.LastStatus = false, at(60), at(60), "resolved"
		}), ev: ev(resolved, 60, timerResolve), d: doDuplicate, lc: delay, ok: true, write: doNothing, record: true},
		{name: "first change is counted", st: open, ev: ev(resolved, 60, ""), d: doResolve, fl: fl,
			ok: true, write: doResolve, outcome: outcomeClosed, record: true, wantChanges: 1},
		{name: "a change outside the window is dropped", st: with(open, func(st *incidentState) {
			st.Changes = []time.Time{at(-7200), at(-30)}
		}), ev: ev(resolved, 60, ""), d: doResolve, fl: fl,
			ok: true, write: doResolve, outcome: outcomeClosed, record: true, wantChanges: 2},
		{name: "flapping starts on a resolve: note, held open", st: with(open, func(st *incidentState) {
			st.Changes = []time.Time{at(-60), at(-30)}
		}), ev: ev(resolved, 60, ""), d: doResolve, lc: delay, fl: fl,
			ok: true, write: doActionOnly, outcome: outcomeFlapping, noteHas: "3 times within 1h", quietAt: at(660), started: true, record: true, wantChanges: 3,
			wantState: func(st *incidentState) bool { return st.FlappingSince.Equal(at(60)) && st.ResolveAt.IsZero() }},
		{name: "flapping starts on a reopen: the reopen carries the note", st: with(open, func(st *incidentState) {
			st.Open, st.LastStatus, st.Changes = false, "resolved", []time.Time{at(-60), at(-30)}
		}), ev: ev(firing, 60, ""), d: doReopen, fl: fl,
			ok: true, write: doReopen, outcome: outcomeReopened, noteHas: "Flapping", quietAt: at(660), started: true, record: true, wantChanges: 3},
		{name: "flapping starts on a firing that cancels a wait: note alone", st: with(open, func(st *incidentState) {
			st.LastStatus, st.ResolveAt, st.Changes = "resolved", at(-1), []time.Time{at(-60), at(-30)}
		}), ev: ev(firing, 60, ""), d: doDuplicate, lc: delay, fl: fl,
			ok: true, write: doActionOnly, outcome: outcomeFlapping, noteHas: "Flapping", cancel: true, quietAt: at(660), started: true, record: true, wantChanges: 3},
		{name: "flapping: a resolve is held", st: with(open, func(st *incidentState) {
			st.FlappingSince, st.Changes = at(-10), []time.Time{at(-60), at(-30), at(-10)}
		}), ev: ev(resolved, 60, ""), d: doResolve, lc: delay, fl: fl,
			ok: true, write: doNothing, outcome: outcomeFlapping, quietAt: at(660), record: true, wantChanges: 3},
		{name: "flapping: a late change waits the quiet from its arrival", st: with(open, func(st *incidentState) {
			st.FlappingSince, st.Changes = at(-10), []time.Time{at(-60), at(-30), at(-10)}
		}), ev: late(resolved, 60, 900), d: doResolve, lc: delay, fl: fl, now: at(900),
			ok: true, write: doNothing, outcome: outcomeFlapping, quietAt: at(1500), record: true, wantChanges: 3,
			wantState: func(st *incidentState) bool { return lastChange(st).Equal(at(60)) }},
		{name: "flapping: a firing is a duplicate and pushes the quiet", st: with(open, func(st *incidentState) {
			st.FlappingSince, st.LastStatus, st.Changes = at(-10), "resolved", []time.Time{at(-60), at(-30), at(-10)}
		}), ev: ev(firing, 60, ""), d: doDuplicate, fl: fl,
			ok: true, write: doDuplicate, outcome: outcomeDuplicate, quietAt: at(660), record: true, wantChanges: 3},
		{name: "flapping: an update without a change is as decided", st: with(open, func(st *incidentState) {
			st.FlappingSince, st.Changes = at(-10), []time.Time{at(-60), at(-30), at(-10)}
		}), ev: ev(firing, 60, ""), d: doUpdate, fl: fl},
		{name: "quiet, resolved: close with a note", st: with(open, func(st *incidentState) {
			st.FlappingSince, st.LastStatus, st.Changes = at(-10), "resolved", []time.Time{at(-60), at(-30), at(-10)}
		}), ev: ev(resolved, -10, timerFlapQuiet), d: doDuplicate, fl: fl,
			ok: true, write: doResolve, noteHas: "Flapping ended", ended: true, record: true,
			wantState: func(st *incidentState) bool { return st.FlappingSince.IsZero() && len(st.Changes) == 0 }},
		{name: "quiet, firing: note, stays open", st: with(open, func(st *incidentState) {
			st.FlappingSince, st.Changes = at(-10), []time.Time{at(-60), at(-30), at(-10)}
		}), ev: ev(firing, -10, timerFlapQuiet), d: doDuplicate, fl: fl,
			ok: true, write: doActionOnly, outcome: outcomeFlappingEnded, noteHas: "stays open", ended: true, record: true},
		{name: "quiet of an earlier change: nothing", st: with(open, func(st *incidentState) {
			st.FlappingSince, st.Changes = at(-10), []time.Time{at(-60), at(-30), at(-10)}
		}), ev: ev(firing, -30, timerFlapQuiet), d: doStale, fl: fl, ok: true, write: doNothing},
		{name: "quiet twice: nothing", st: open, ev: ev(resolved, -10, timerFlapQuiet), d: doStale, fl: fl, ok: true, write: doNothing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.st
			before.Changes = slices.Clone(tc.st.Changes)
			now := tc.now
			if now.IsZero() {
				now = t0
			}
			p, ok := planNoise(tc.st, tc.ev, tc.d, tc.lc, tc.fl, now)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v (plan %+v)", ok, tc.ok, p)
			}
			if !slices.Equal(tc.st.Changes, before.Changes) {
				t.Errorf("the state read was changed: %v", tc.st.Changes)
			}
			if !ok {
				return
			}
			if p.write != tc.write || p.outcome != tc.outcome || p.record != tc.record {
				t.Errorf("write, outcome, record = %v, %q, %v; want %v, %q, %v", p.write, p.outcome, p.record, tc.write, tc.outcome, tc.record)
			}
			if (tc.noteHas == "") != (p.note == "") || !strings.Contains(p.note, tc.noteHas) {
				t.Errorf("note = %q, want one with %q", p.note, tc.noteHas)
			}
			if !p.resolveAt.Equal(tc.resolveAt) || p.cancelResolve != tc.cancel || !p.quietAt.Equal(tc.quietAt) {
				t.Errorf("timers: resolve %v cancel %v quiet %v; want %v %v %v", p.resolveAt, p.cancelResolve, p.quietAt, tc.resolveAt, tc.cancel, tc.quietAt)
			}
			if p.started != tc.started || p.ended != tc.ended {
				t.Errorf("started, ended = %v, %v; want %v, %v", p.started, p.ended, tc.started, tc.ended)
			}
			if tc.wantChanges > 0 && len(p.st.Changes) != tc.wantChanges {
				t.Errorf("changes = %v, want %d", p.st.Changes, tc.wantChanges)
			}
			if tc.wantState != nil && !tc.wantState(&p.st) {
				t.Errorf("state after: %+v", p.st)
			}
		})
	}
}

func TestRecentChangesBounded(t *testing.T) {
	fl := mapping.Flapping{Changes: 4, Window: time.Minute, Quiet: time.Minute}
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var changes []time.Time
	for i := range 100 {
		changes = recentChanges(changes, t0.Add(time.Duration(i)*time.Second), fl)
	}
	if len(changes) != 4 || !changes[3].Equal(t0.Add(99*time.Second)) {
		t.Fatalf("changes = %v, want the last 4", changes)
	}
	if got := recentChanges(changes, t0.Add(time.Hour), fl); len(got) != 1 {
		t.Fatalf("after the window: %v, want the new change alone", got)
	}
}

func TestSpan(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Hour: "1h", 30 * time.Minute: "30m", 90 * time.Minute: "1h30m", 2 * time.Second: "2s", 1500 * time.Millisecond: "1.5s"} {
		if got := span(d); got != want {
			t.Errorf("span(%s) = %q, want %q", d, got, want)
		}
	}
}

// noiseEnv is a test environment whose mapping is the default plus yaml,
// with n workers running.
func noiseEnv(t *testing.T, yaml string, n int) (*testEnv, []*runningWorker) {
	t.Helper()
	e := newEnv(t, topdesktest.Options{})
	m, err := mapping.Load([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	e.mapping = m
	var ws []*runningWorker
	for i := range n {
		opts := fastOptions()
		opts.ID = fmt.Sprintf("worker-%d", i)
		ws = append(ws, e.startWorker(opts))
	}
	return e, ws
}

// forWorkers runs f as a subtest with one worker and with three.
func forWorkers(t *testing.T, f func(t *testing.T, n int)) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d workers", n), func(t *testing.T) { f(t, n) })
	}
}

// closesAndReopens counts the simulator's updates that closed or reopened
// an incident of key.
func (e *testEnv) closesAndReopens(key string) (closes, reopens int) {
	ids := map[string]bool{}
	for _, inc := range e.incidentsFor(key) {
		ids[inc.ID] = true
	}
	for _, r := range e.sim.Requests() {
		if r.Method != "PATCH" && r.Method != "PUT" || !ids[r.Path[strings.LastIndex(r.Path, "/")+1:]] || r.Status/100 != 2 {
			continue
		}
		switch {
		case bytes.Contains(r.Body, []byte(`"closed":true`)):
			closes++
		case bytes.Contains(r.Body, []byte(`"closed":false`)):
			reopens++
		}
	}
	return closes, reopens
}

// actionsWith counts the actions of key's incidents that contain s.
func (e *testEnv) actionsWith(key, s string) int {
	n := 0
	for _, inc := range e.incidentsFor(key) {
		for _, a := range inc.Actions {
			if strings.Contains(a.Text, s) {
				n++
			}
		}
	}
	return n
}

// sum adds a metric over the workers (counter, by label value when given).
func sum(t *testing.T, ws []*runningWorker, name, outcome string) float64 {
	t.Helper()
	var n float64
	for _, rw := range ws {
		for _, m := range gathered(t, rw.reg, name) {
			if outcome == "" || slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetValue() == outcome }) {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

func (e *testEnv) pendingTimers() uint64 {
	e.t.Helper()
	n, err := e.res.Timers.Pending(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// TestResolveDelay: a resolve followed by a firing within the delay never
// closes the incident (its timer is cancelled); a resolve followed by
// nothing closes it after the delay, exactly once.
func TestResolveDelay(t *testing.T) {
	forWorkers(t, func(t *testing.T, n int) {
		e, ws := noiseEnv(t, "lifecycle: {resolveDelay: 1500ms}\n", n)
		const flappy, calm = "db-7/disk-full", "web-3/down"
		now := time.Now()
		for i, ev := range []event{
			firing(flappy, "critical", "Disk full on db-7", now),
			firing(calm, "critical", "web-3 is down", now),
			resolved(flappy, now.Add(10*time.Millisecond)),
			firing(flappy, "critical", "Disk full on db-7", now.Add(20*time.Millisecond)),
			resolved(calm, now.Add(30*time.Millisecond)),
		} {
			e.publish(ev)
			e.waitSettled(10 * time.Second)
			if i == 3 && e.pendingTimers() != 0 {
				t.Fatalf("the firing left %d timers; the resolve timer should be cancelled", e.pendingTimers())
			}
		}
		if incs := e.incidentsFor(calm); len(incs) != 1 || incs[0].Closed {
			t.Fatalf("the resolve closed at once: %+v", incs)
		}
		if got := sum(t, ws, "alertdesk_events_total", outcomeResolveDelayed); got != 2 {
			t.Errorf("%v resolve-delayed events, want 2", got)
		}
		// The calm key resolved last: when it is closed, the delay of the
		// flappy key's resolve has passed too.
		wait.For(t, 15*time.Second, "the calm key's incident to close after the delay", func() bool {
			incs := e.incidentsFor(calm)
			return len(incs) == 1 && incs[0].Closed
		})
		if got := time.Since(now); got < 1500*time.Millisecond {
			t.Errorf("closed after %s, before the delay", got)
		}
		wait.For(t, 10*time.Second, "the timers to be handled", func() bool { return e.pendingTimers() == 0 })
		if closes, reopens := e.closesAndReopens(calm); closes != 1 || reopens != 0 {
			t.Errorf("calm key: %d closes and %d reopens, want 1 and 0", closes, reopens)
		}
		if incs := e.incidentsFor(flappy); len(incs) != 1 || incs[0].Closed {
			t.Fatalf("flappy key: %d incidents (closed: %v), want one, open", len(incs), len(incs) == 1 && incs[0].Closed)
		}
		if closes, reopens := e.closesAndReopens(flappy); closes != 0 || reopens != 0 {
			t.Errorf("flappy key: %d closes and %d reopens, want none", closes, reopens)
		}
		if got := sum(t, ws, "alertdesk_events_total", outcomeClosed); got != 1 {
			t.Errorf("%v closed events, want 1", got)
		}

		// The resolve timer again (a redelivery), and a quiet timer of a
		// key that does not flap: nothing happens.
		body, err := json.Marshal(noiseBody{Key: calm, At: now.Add(30 * time.Millisecond),
			Alert: &mapping.Alert{Key: calm, Status: mapping.StatusResolved, Summary: "resolved", Source: "test", Timestamp: now.Add(30 * time.Millisecond)}})
		if err != nil {
			t.Fatal(err)
		}
		for _, kind := range []string{timerResolve, timerFlapQuiet} {
			out, err := ws[0].w.noiseTimer(t.Context(), timer.Fired{Kind: kind, Key: mapping.ExternalNumber(calm), Body: body})
			if out != "" || err != nil {
				t.Errorf("%s timer again: %q, %v; want nothing done", kind, out, err)
			}
		}
		if closes, _ := e.closesAndReopens(calm); closes != 1 {
			t.Errorf("calm key: %d closes after the timer came again, want 1", closes)
		}
	})
}

// TestFlapping: a key flapping 8 times gets one flapping action, no close
// or reopen once flapping started, and is closed after the quiet period.
func TestFlapping(t *testing.T) {
	forWorkers(t, func(t *testing.T, n int) {
		e, ws := noiseEnv(t, "flapping: {changes: 3, window: 1h, quiet: 2s}\n", n)
		const key = "db-7/disk-full"
		now := time.Now()
		for i := range 9 {
			at := now.Add(time.Duration(i) * 10 * time.Millisecond)
			if i%2 == 0 {
				e.publish(firing(key, "critical", "Disk full on db-7", at))
			} else {
				e.publish(resolved(key, at))
			}
			e.waitSettled(10 * time.Second)
		}
		// fire (create), resolve (close, change 1), fire (reopen, 2),
		// resolve (3: flapping; held open), then nothing but duplicates.
		if incs := e.incidentsFor(key); len(incs) != 1 || incs[0].Closed {
			t.Fatalf("while flapping: %d incidents (closed %v), want one, open", len(incs), len(incs) == 1 && incs[0].Closed)
		}
		if closes, reopens := e.closesAndReopens(key); closes != 1 || reopens != 1 {
			t.Errorf("%d closes and %d reopens before flapping was seen, want 1 and 1", closes, reopens)
		}
		if got := e.actionsWith(key, "Flapping: the alert changed"); got != 1 {
			t.Errorf("%d flapping actions, want 1", got)
		}
		e.publish(resolved(key, now.Add(100*time.Millisecond)))
		e.waitSettled(10 * time.Second)
		wait.For(t, 15*time.Second, "the incident to close after the quiet period", func() bool {
			incs := e.incidentsFor(key)
			return len(incs) == 1 && incs[0].Closed
		})
		wait.For(t, 10*time.Second, "the timers to be handled", func() bool { return e.pendingTimers() == 0 })
		if closes, reopens := e.closesAndReopens(key); closes != 2 || reopens != 1 {
			t.Errorf("%d closes and %d reopens in all, want 2 and 1", closes, reopens)
		}
		if got := e.actionsWith(key, "Flapping ended"); got != 1 {
			t.Errorf("%d flapping-ended actions, want 1", got)
		}
		if s, f := sum(t, ws, "alertdesk_flapping_started_total", ""), sum(t, ws, "alertdesk_flapping_ended_total", ""); s != 1 || f != 1 {
			t.Errorf("flapping started %v, ended %v; want 1 and 1", s, f)
		}
	})
}

// TestFlappingWithResolveDelay: with both, a flapping key's incident is
// never closed while it flaps, and closed exactly once after the quiet
// period; a quiet period that ends while the alert fires leaves it open.
func TestFlappingWithResolveDelay(t *testing.T) {
	forWorkers(t, func(t *testing.T, n int) {
		e, ws := noiseEnv(t, "lifecycle: {resolveDelay: 1s}\nflapping: {changes: 3, window: 1h, quiet: 2s}\n", n)
		const key, firingKey = "db-7/disk-full", "web-3/down"
		now := time.Now()
		for i := range 6 {
			at := now.Add(time.Duration(i) * 10 * time.Millisecond)
			if i%2 == 0 {
				e.publish(firing(key, "critical", "Disk full on db-7", at))
				e.publish(firing(firingKey, "critical", "web-3 is down", at))
			} else {
				e.publish(resolved(key, at))
				if i < 5 {
					e.publish(resolved(firingKey, at))
				}
			}
			e.waitSettled(10 * time.Second)
		}
		wait.For(t, 15*time.Second, "the incident to close after the quiet period", func() bool {
			incs := e.incidentsFor(key)
			return len(incs) == 1 && incs[0].Closed
		})
		wait.For(t, 10*time.Second, "the timers to be handled", func() bool { return e.pendingTimers() == 0 })
		if closes, reopens := e.closesAndReopens(key); closes != 1 || reopens != 0 {
			t.Errorf("%d closes and %d reopens, want 1 and 0", closes, reopens)
		}
		if closes, reopens := e.closesAndReopens(firingKey); closes != 0 || reopens != 0 {
			t.Errorf("still-firing key: %d closes and %d reopens, want none", closes, reopens)
		}
		if incs := e.incidentsFor(firingKey); len(incs) != 1 || incs[0].Closed {
			t.Fatalf("still-firing key: want one open incident")
		}
		for _, k := range []string{key, firingKey} {
			if s, f := e.actionsWith(k, "Flapping: the alert changed"), e.actionsWith(k, "Flapping ended"); s != 1 || f != 1 {
				t.Errorf("%s: %d flapping and %d flapping-ended actions, want 1 and 1", k, s, f)
			}
		}
		if got := sum(t, ws, "alertdesk_events_total", outcomeFlappingEnded); got != 1 {
			t.Errorf("%v flapping-ended outcomes, want 1", got)
		}
	})
}

// TestResolveTimerSurvivesWorkerStop: a worker stops with a resolve
// waiting; a new worker closes the incident when the delay has passed.
func TestResolveTimerSurvivesWorkerStop(t *testing.T) {
	e, ws := noiseEnv(t, "lifecycle: {resolveDelay: 3s}\n", 1)
	const key = "db-7/disk-full"
	now := time.Now()
	e.publish(firing(key, "critical", "Disk full on db-7", now))
	e.waitSettled(10 * time.Second)
	e.publish(resolved(key, now.Add(10*time.Millisecond)))
	e.waitSettled(10 * time.Second)
	ws[0].stop()
	if incs := e.incidentsFor(key); len(incs) != 1 || incs[0].Closed {
		t.Fatalf("closed before the delay (or no incident): %+v", incs)
	}
	if got := e.pendingTimers(); got != 1 {
		t.Fatalf("%d timers pending after the stop, want 1", got)
	}
	opts := fastOptions()
	opts.ID = "second-worker"
	e.startWorker(opts)
	// The simulator records a request just after it applied it: wait for
	// the record, not only the closed incident.
	wait.For(t, 15*time.Second, "the new worker to close the incident", func() bool {
		incs := e.incidentsFor(key)
		closes, _ := e.closesAndReopens(key)
		return len(incs) == 1 && incs[0].Closed && closes > 0
	})
	if closes, _ := e.closesAndReopens(key); closes != 1 {
		t.Errorf("%d closes, want 1", closes)
	}
}

// timerDue is the time the timer kind of key is stored for (its
// timer.HeaderAt), whether a pending schedule or a redelivery-mode timer;
// false when no such timer is stored.
func (e *testEnv) timerDue(kind, key string) (time.Time, bool) {
	e.t.Helper()
	s, err := e.js.Stream(e.t.Context(), timer.DefaultStream)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, state := range []string{"set", "due"} {
		m, err := s.GetLastMsgForSubject(e.t.Context(), timer.SubjectPrefix+state+"."+kind+"."+mapping.ExternalNumber(key))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			e.t.Fatal(err)
		}
		at, err := time.Parse(time.RFC3339Nano, m.Header.Get(timer.HeaderAt))
		if err != nil {
			e.t.Fatal(err)
		}
		return at, true
	}
	return time.Time{}, false
}

// TestResolveDelayLateResolve: a resolve whose event time is older than
// the delay (Alertmanager's endsAt, a backlog, a replay) waits the delay
// from when it arrived, not from its event time; a firing within that
// delay keeps the incident open.
func TestResolveDelayLateResolve(t *testing.T) {
	e, _ := noiseEnv(t, "lifecycle: {resolveDelay: 1m}\n", 1)
	const key = "db-7/disk-full"
	now := time.Now()
	e.publish(firing(key, "critical", "Disk full on db-7", now.Add(-10*time.Minute)))
	e.waitSettled(10 * time.Second)
	before := time.Now()
	e.publish(resolved(key, now.Add(-2*time.Minute)))
	e.waitSettled(10 * time.Second)
	after := time.Now()
	due, ok := e.timerDue(timerResolve, key)
	if !ok {
		t.Fatalf("no resolve timer stored (incidents: %+v)", e.incidentsFor(key))
	}
	if due.Before(before.Add(time.Minute)) || due.After(after.Add(time.Minute)) {
		t.Fatalf("resolve timer due %s after the resolve arrived, want 1m", due.Sub(before).Round(time.Millisecond))
	}
	e.publish(firing(key, "critical", "Disk full on db-7", time.Now()))
	e.waitSettled(10 * time.Second)
	if _, ok := e.timerDue(timerResolve, key); ok {
		t.Errorf("the firing within the delay left the resolve timer")
	}
	if incs := e.incidentsFor(key); len(incs) != 1 || incs[0].Closed {
		t.Fatalf("want one open incident, got %+v", incs)
	}
	if closes, reopens := e.closesAndReopens(key); closes != 0 || reopens != 0 {
		t.Errorf("%d closes and %d reopens, want none", closes, reopens)
	}
}
