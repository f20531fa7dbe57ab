package worker

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/maintenance"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/timer"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// onHost is a firing event of host's key, labelled with the host, at now.
func onHost(host, severity, summary string) event {
	ev := firing(host+"/disk-full", severity, summary, time.Now())
	ev["labels"] = map[string]string{"host": host}
	return ev
}

// fixedWindow returns a window covering host from a minute ago until end.
func fixedWindow(t *testing.T, host string, end time.Time) maintenance.Windows {
	t.Helper()
	ws, err := maintenance.Compile([]maintenance.Spec{{Match: map[string]string{"host": host},
		From: time.Now().Add(-time.Minute), To: end, Reason: "patching " + host}})
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// clusterWindow returns a window covering the switch group's cluster from
// a minute ago until end.
func clusterWindow(t *testing.T, end time.Time) maintenance.Windows {
	t.Helper()
	ws, err := maintenance.Compile([]maintenance.Spec{{Match: map[string]string{"cluster": "ams"},
		From: time.Now().Add(-time.Minute), To: end, Reason: "switch swap"}})
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// outcomes sums the events counter of outcome o over workers.
func outcomes(o string, rws ...*runningWorker) float64 {
	var n float64
	for _, rw := range rws {
		var m dto.Metric
		if err := rw.w.m.outcome(o).Write(&m); err != nil {
			panic(err) // a counter always writes
		}
		n += m.GetCounter().GetValue()
	}
	return n
}

// waitHeldBack waits until the workers counted n events held back: each
// suppressed, or stale when a newer one was held back first (handlers run
// concurrently). A message is counted just after it is acked.
func (e *testEnv) waitHeldBack(n float64, rws ...*runningWorker) {
	e.t.Helper()
	wait.For(e.t, 5*time.Second, fmt.Sprintf("%v events held back", n), func() bool {
		return outcomes(outcomeSuppressed, rws...)+outcomes(outcomeStale, rws...) == n
	})
	if outcomes(outcomeSuppressed, rws...) < 1 {
		e.t.Errorf("no event suppressed")
	}
}

func (e *testEnv) waitNoTimers() {
	e.t.Helper()
	wait.For(e.t, 10*time.Second, "no timer pending", func() bool {
		n, err := e.res.Timers.Pending(e.t.Context())
		return err == nil && n == 0
	})
}

// windowWorkers are workers that each follow the ad-hoc windows of store.
type windowWorkers struct {
	t       testing.TB
	store   *maintenance.Store
	sets    []*maintenance.Set
	workers []*runningWorker
}

func (e *testEnv) startWindowWorkers(n int, recheck time.Duration) *windowWorkers {
	t := e.t
	t.Helper()
	store, err := maintenance.Open(t.Context(), e.js, maintenance.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ws := &windowWorkers{t: t, store: store}
	for range n {
		set, err := store.Watch(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(set.Stop)
		opts := fastOptions()
		opts.Maintenance = set
		opts.MaintenanceRecheck = recheck
		ws.sets = append(ws.sets, set)
		ws.workers = append(ws.workers, e.startWorker(opts))
	}
	return ws
}

// add adds an ad-hoc window covering host from now until end, waits
// until every worker sees it, and returns its ID.
func (ws *windowWorkers) add(host string, end time.Time) string {
	ws.t.Helper()
	e, err := ws.store.Add(ws.t.Context(), maintenance.Entry{Match: map[string]string{"host": host}, To: end, Reason: "patching"})
	if err != nil {
		ws.t.Fatal(err)
	}
	ws.waitWindows(1)
	return e.ID
}

// waitWindows waits until every worker sees n windows.
func (ws *windowWorkers) waitWindows(n int) {
	ws.t.Helper()
	wait.For(ws.t, 5*time.Second, fmt.Sprintf("every worker to see %d windows", n), func() bool {
		for _, s := range ws.sets {
			if len(s.Windows()) != n {
				return false
			}
		}
		return true
	})
}

// TestMaintenanceHoldsBackUntilWindowEnd: a firing alert under a window
// creates no incident, also after re-checks; a later firing replaces the
// one held back; at the window's end the incident is created from the
// latest.
func TestMaintenanceHoldsBackUntilWindowEnd(t *testing.T) {
	forWorkers(t, testHoldsBackUntilWindowEnd)
}

func testHoldsBackUntilWindowEnd(t *testing.T, workers int) {
	e := newEnv(t, topdesktest.Options{})
	opts := fastOptions()
	end := time.Now().Add(3 * time.Second)
	opts.Maintenance = fixedWindow(t, "db-7", end)
	opts.MaintenanceRecheck = time.Second // re-checked, and held again, before the end
	var rws []*runningWorker
	for range workers {
		rws = append(rws, e.startWorker(opts))
	}

	e.publish(onHost("db-7", "warning", "Disk / at 91% on db-7"))
	e.publish(onHost("db-7", "critical", "Disk / at 97% on db-7"))
	e.waitSettled(10 * time.Second)
	if n := len(e.incidentsFor("db-7/disk-full")); n != 0 && time.Now().Before(end) {
		t.Fatalf("%d incidents while the window covers the alert, want none", n)
	}
	e.waitHeldBack(2, rws...)
	if s := e.keyState("db-7/disk-full").Suppressed; time.Now().Before(end) && (s == nil || s.Window != "maintenance[0]" || !s.Until.Equal(end)) {
		t.Errorf("state shows suppression %+v, want maintenance[0] until %s", s, end)
	}

	wait.For(t, 15*time.Second, "the incident at the window's end", func() bool { return len(e.incidentsFor("db-7/disk-full")) > 0 })
	if now := time.Now(); now.Before(end) {
		t.Fatalf("incident created at %s, before the window ended at %s", now, end)
	}
	e.waitNoTimers()
	incs := e.incidentsFor("db-7/disk-full")
	if len(incs) != 1 || incs[0].BriefDescription != "Disk / at 97% on db-7" {
		t.Fatalf("incidents %+v, want one from the latest event held back", incs)
	}
	if s := e.keyState("db-7/disk-full").Suppressed; s != nil {
		t.Errorf("state still shows suppression %+v", s)
	}
	wait.For(t, 5*time.Second, "the create counted", func() bool { return outcomes(outcomeCreated, rws...) == 1 })
}

// TestMaintenanceWindowEndWriteFails: a create at the window's end that
// TOPdesk refuses (429) leaves the event held back, so the timer's
// redelivery creates the incident once TOPdesk takes it (PRODUCT.md: an
// alert still firing when its window ends is handled then).
func TestMaintenanceWindowEndWriteFails(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	opts := fastOptions()
	opts.Maintenance = fixedWindow(t, "db-7", time.Now().Add(2*time.Second))
	opts.MaintenanceRecheck = time.Hour // only the window's end replays it
	e.startWorker(opts)
	const key = "db-7/disk-full"
	e.publish(onHost("db-7", "critical", "Disk / at 97% on db-7"))
	e.waitSettled(10 * time.Second)
	if s := e.keyState(key).Suppressed; s == nil {
		t.Fatal("the event is not held back")
	}

	e.sim.Inject(topdesktest.Fault{Method: http.MethodPost, Path: "/tas/api/incidents", Status: http.StatusTooManyRequests})
	// A create was refused and its claim released: the first attempt at
	// the window's end is over and has committed the key's state.
	wait.For(t, 15*time.Second, "a refused create at the window's end", func() bool {
		for _, r := range e.sim.Requests() {
			if r.Method == http.MethodPost && r.Status == http.StatusTooManyRequests {
				return e.keyState(key).Claim == nil
			}
		}
		return false
	})
	e.sim.ClearFaults()
	wait.For(t, 15*time.Second, "the incident once TOPdesk takes it", func() bool { return len(e.incidentsFor(key)) == 1 })
	e.waitNoTimers()
	if s := e.keyState(key).Suppressed; s != nil {
		t.Errorf("state still shows suppression %+v after the create", s)
	}
}

// TestMaintenanceResolvedMeanwhile: a resolve under the window cancels the
// timer and creates nothing; a window timer that fires anyway (late, or
// twice) finds nothing to do.
func TestMaintenanceResolvedMeanwhile(t *testing.T) {
	forWorkers(t, testResolvedMeanwhile)
}

func testResolvedMeanwhile(t *testing.T, workers int) {
	e := newEnv(t, topdesktest.Options{})
	opts := fastOptions()
	opts.Maintenance = fixedWindow(t, "db-7", time.Now().Add(time.Hour))
	rw := e.startWorker(opts)
	for range workers - 1 {
		e.startWorker(opts)
	}

	e.publish(onHost("db-7", "critical", "Disk / at 97% on db-7"))
	e.waitSettled(10 * time.Second)
	if n, err := e.res.Timers.Pending(t.Context()); err != nil || n != 1 {
		t.Fatalf("%d timers pending (%v), want the window's end", n, err)
	}
	e.publish(resolved("db-7/disk-full", time.Now()))
	e.waitSettled(10 * time.Second)
	e.waitNoTimers()
	if s := e.keyState("db-7/disk-full").Suppressed; s != nil {
		t.Errorf("state still shows suppression %+v after the resolve", s)
	}
	out, err := rw.w.windowEnded(t.Context(), timer.Fired{Kind: timerWindow, Key: mapping.ExternalNumber("db-7/disk-full"), At: time.Now()})
	if err != nil || out != "" {
		t.Errorf("a late window timer: outcome %q, error %v; want none", out, err)
	}
	if creates, updates := e.writes(); creates != 0 || updates != 0 {
		t.Errorf("%d creates and %d updates in TOPdesk, want none", creates, updates)
	}
}

// TestMaintenanceAdHocWindow: a window added with the store while the
// workers run holds the alert back in every one of them, and at its end
// exactly one incident is created, with one worker or three.
func TestMaintenanceAdHocWindow(t *testing.T) {
	for _, workers := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d workers", workers), func(t *testing.T) {
			e := newEnv(t, topdesktest.Options{})
			ws := e.startWindowWorkers(workers, time.Minute)
			end := time.Now().Add(3 * time.Second)
			ws.add("db-9", end)
			for i := range 5 {
				e.publish(onHost("db-9", "critical", fmt.Sprintf("Disk swap %d on db-9", i)))
			}
			e.waitSettled(10 * time.Second)
			if n := len(e.incidentsFor("db-9/disk-full")); n != 0 && time.Now().Before(end) {
				t.Fatalf("%d incidents under the window, want none", n)
			}
			e.waitHeldBack(5, ws.workers...)
			wait.For(t, 15*time.Second, "the incident at the window's end", func() bool { return len(e.incidentsFor("db-9/disk-full")) > 0 })
			e.waitNoTimers()
			if creates, _ := e.writes(); creates != 1 {
				t.Errorf("%d creates, want 1", creates)
			}
			if incs := e.incidentsFor("db-9/disk-full"); len(incs) != 1 || incs[0].BriefDescription != "Disk swap 4 on db-9" {
				t.Errorf("incidents %+v, want one from the last event", incs)
			}
		})
	}
}

// TestMaintenanceUpdatesStillApply: under a window an existing incident
// still gets updates and closes; firing again would reopen it, so that is
// held back until the window ends.
func TestMaintenanceUpdatesStillApply(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	ws := e.startWindowWorkers(1, time.Minute)
	rw := ws.workers[0]
	const key = "db-7/disk-full"

	e.step("created before the window", key, onHost("db-7", "warning", "Disk / at 91% on db-7"), false)
	end := time.Now().Add(3 * time.Second)
	ws.add("db-7", end)
	e.step("updated under the window", key, onHost("db-7", "critical", "Disk / at 97% on db-7"), false)
	e.step("closed under the window", key, resolved(key, time.Now()), true)
	e.step("reopen held back", key, onHost("db-7", "critical", "Disk / at 98% on db-7"), true)
	if time.Now().After(end) {
		t.Fatal("the window ended before the test could check it; the machine is too slow")
	}
	if creates, updates := e.writes(); creates != 1 || updates != 2 {
		t.Errorf("under the window: %d creates and %d updates, want 1 and 2 (an update and a close)", creates, updates)
	}
	e.waitHeldBack(1, rw)
	wait.For(t, 15*time.Second, "the reopen at the window's end", func() bool {
		incs := e.incidentsFor(key)
		return len(incs) == 1 && !incs[0].Closed
	})
	if got := e.incidentsFor(key)[0].BriefDescription; got != "Disk / at 98% on db-7" {
		t.Errorf("reopened with %q, want the event held back", got)
	}
}

// TestMaintenanceWindowRemovedEarly: an event held back by a window that is
// removed is handled at the next re-check, not at the window's planned end.
func TestMaintenanceWindowRemovedEarly(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	ws := e.startWindowWorkers(1, time.Second)
	id := ws.add("db-7", time.Now().Add(time.Hour))

	e.publish(onHost("db-7", "critical", "Disk / at 97% on db-7"))
	e.waitHeldBack(1, ws.workers...)
	if err := ws.store.Remove(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	ws.waitWindows(0)
	wait.For(t, 15*time.Second, "the incident after the window was removed", func() bool { return len(e.incidentsFor("db-7/disk-full")) == 1 })
	e.waitNoTimers()
	if creates, _ := e.writes(); creates != 1 {
		t.Errorf("%d creates, want 1", creates)
	}
}

// TestMaintenanceGroupMembers: in a group, a resolve of another member
// does not drop the member held back, and the group's incident is created
// from it at the window's end.
func TestMaintenanceGroupMembers(t *testing.T) {
	e := groupEnv(t, "group: {by: [alertname, cluster]}\n")
	opts := fastOptions()
	opts.Maintenance = clusterWindow(t, time.Now().Add(2*time.Second))
	rw := e.startWorker(opts)

	now := time.Now()
	e.publish(memberEvent("sw-1", "firing", now))
	e.waitHeldBack(1, rw)
	e.publish(memberEvent("sw-2", "resolved", now.Add(time.Millisecond)))
	e.waitSettled(10 * time.Second)
	if st := e.stateOf(switchGroup); len(st.SuppressedMembers) != 1 || st.SuppressedMembers["sw-1"] == nil {
		t.Fatalf("after another member resolved: suppressions %+v, want sw-1's event held back", st.SuppressedMembers)
	}
	wait.For(t, 15*time.Second, "the group's incident at the window's end", func() bool { return len(e.incidentsFor(switchGroup)) == 1 })
	// The state is committed just after the incident is created.
	var st incidentState
	wait.For(t, 5*time.Second, "the group's state after the create", func() bool {
		st = e.stateOf(switchGroup)
		return st.Claim == nil
	})
	if st.Suppressed != nil || st.SuppressedMembers != nil || st.Members["sw-1"].Status != "firing" {
		t.Errorf("group state: suppressions %+v %+v, members %v; want none, and sw-1 firing", st.Suppressed, st.SuppressedMembers, st.Members)
	}
}

// TestMaintenanceGroupMembersHeldBack: two members of a group that fire
// under one window are each held back, not the later in place of the
// earlier; at the window's end the group's incident has both (PRODUCT.md:
// an alert still firing when its window ends is handled then).
func TestMaintenanceGroupMembersHeldBack(t *testing.T) {
	e := groupEnv(t, "group: {by: [alertname, cluster]}\n")
	opts := fastOptions()
	opts.Maintenance = clusterWindow(t, time.Now().Add(2*time.Second))
	e.startWorker(opts)

	now := time.Now()
	e.publishInTurn(memberEvent("sw-1", "firing", now), memberEvent("sw-2", "firing", now.Add(time.Millisecond)))
	wait.For(t, 15*time.Second, "the group's incident at the window's end", func() bool { return len(e.incidentsFor(switchGroup)) == 1 })
	e.waitNoTimers()
	st := e.stateOf(switchGroup)
	if st.Members["sw-1"].Status != "firing" || st.Members["sw-2"].Status != "firing" {
		t.Errorf("group members %v; want sw-1 and sw-2 firing (both still fire at the window's end)", st.Members)
	}
}

// TestMaintenanceGroupHeldBackBefore: a group's state written when a group
// held one event back (in suppressed) still loads and works: another
// member held back joins it, and at the window's end both are handled.
func TestMaintenanceGroupHeldBackBefore(t *testing.T) {
	e := groupEnv(t, "group: {by: [alertname, cluster]}\n")
	opts := fastOptions()
	end := time.Now().Add(2 * time.Second)
	opts.Maintenance = clusterWindow(t, end)
	now := time.Now()
	b, err := json.Marshal(memberEvent("sw-1", "firing", now))
	if err != nil {
		t.Fatal(err)
	}
	alerts, err := mapping.Decode(b, mapping.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ext := mapping.ExternalNumber(switchGroup)
	old, err := json.Marshal(map[string]any{"key": switchGroup, "open": false, "suppressed": suppression{
		Window: "maintenance[0]", Reason: "switch swap", Until: end, At: now, Published: now, Alert: &alerts[0]}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.res.State.Create(t.Context(), ext, old); err != nil {
		t.Fatal(err)
	}
	if err := e.res.Timers.Set(t.Context(), timerWindow, ext, end, nil); err != nil {
		t.Fatal(err)
	}
	e.startWorker(opts)

	e.publishInTurn(memberEvent("sw-2", "firing", now.Add(time.Millisecond)))
	wait.For(t, 15*time.Second, "the group's incident at the window's end", func() bool { return len(e.incidentsFor(switchGroup)) == 1 })
	e.waitNoTimers()
	st := e.stateOf(switchGroup)
	if st.Members["sw-1"].Status != "firing" || st.Members["sw-2"].Status != "firing" {
		t.Errorf("group members %v; want sw-1 and sw-2 firing", st.Members)
	}
	if st.Suppressed != nil || st.SuppressedMembers != nil {
		t.Errorf("suppressions %+v %+v left after the window's end", st.Suppressed, st.SuppressedMembers)
	}
}

// TestMaintenanceTemplateErrorDeadLettered: an event a window holds back
// is rendered when it arrives; one its templates cannot render is
// dead-lettered then (class template), not lost when the window ends.
func TestMaintenanceTemplateErrorDeadLettered(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	var err error
	if e.mapping, err = mapping.Load([]byte("incident: {briefDescription: '{{ .Summary }}', request: '{{ .Annotations.runbook }}'}\n")); err != nil {
		t.Fatal(err)
	}
	opts := fastOptions()
	opts.Maintenance = fixedWindow(t, "db-7", time.Now().Add(time.Hour))
	e.startWorker(opts)
	e.publish(onHost("db-7", "critical", "Disk / at 97% on db-7")) // no runbook annotation
	e.waitSettled(10 * time.Second)
	dl := e.dlqEntries()
	if len(dl) != 1 || dl[0].Class != "template" {
		t.Fatalf("dead letters %+v, want the event, class template", dl)
	}
	if n, err := e.res.Timers.Pending(t.Context()); err != nil || n != 0 {
		t.Errorf("%d timers pending (%v), want none: nothing is held back", n, err)
	}
	if _, err := e.res.State.Get(t.Context(), mapping.ExternalNumber("db-7/disk-full")); err == nil {
		t.Errorf("the key has a state; want none for an event that was dead-lettered")
	}
}
