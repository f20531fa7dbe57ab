package worker

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/dlq"
	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/maintenance"
	"github.com/alertdesk/alertdesk/timer"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// TestTimerHandledThroughFate: a due timer reaches the handler of its kind
// with its body; a retryable failure brings it back (never dead-lettered),
// success removes it.
func TestTimerHandledThroughFate(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	opts := fastOptions()
	opts.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	w, err := New(e.res, e.api, e.resolver, e.mapping, opts)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	got := make(chan string, 4)
	w.timerHandlers["test"] = func(_ context.Context, f timer.Fired) (string, error) {
		if calls.Add(1) == 1 {
			return "", errors.New("TOPdesk is slow today") // retryable
		}
		got <- f.Key + " " + string(f.Body)
		return "", nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	if err := w.setTimer(t.Context(), "test", "alertdesk-abc", time.Now().Add(500*time.Millisecond), []byte("body")); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "alertdesk-abc body" {
			t.Fatalf("handler got %q", s)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("timer not handled after a retry (calls: %d)", calls.Load())
	}
	wait.For(t, 10*time.Second, "the handled timer to be removed", func() bool {
		n, err := e.res.Timers.Pending(t.Context())
		return err == nil && n == 0
	})
}

// TestTimerRejectedIsDeadLettered: TOPdesk rejects the close a resolve
// timer makes (a 4xx). The timer is dead-lettered as the resolve it stands
// for (class rejected, on an input-stream subject, with the resolve's
// first publish time) and removed; a replay of the dead letter, once the
// cause is fixed, closes the incident.
func TestTimerRejectedIsDeadLettered(t *testing.T) {
	e, _ := noiseEnv(t, "lifecycle: {resolveDelay: 300ms}\n", 1)
	const key = "db-7/disk-full"
	now := time.Now()
	e.publish(firing(key, "critical", "Disk full on db-7", now))
	e.waitSettled(10 * time.Second)
	e.sim.Inject(topdesktest.Fault{Method: http.MethodPatch, Path: "/tas/api/incidents", Status: http.StatusBadRequest})
	before := time.Now()
	e.publish(resolved(key, now.Add(10*time.Millisecond)))
	e.waitSettled(10 * time.Second)
	after := time.Now()

	wait.For(t, 15*time.Second, "the rejected timer to be dead-lettered and removed", func() bool {
		return len(e.dlqEntries()) == 1 && e.pendingTimers() == 0
	})
	dl := e.dlqEntries()[0]
	if dl.Class != dlq.ClassRejected || dl.AlertKey != key || dl.OriginalSubject != "alerts.timer" {
		t.Errorf("dead letter: class %q, key %q, subject %q; want %q, %q, alerts.timer", dl.Class, dl.AlertKey, dl.OriginalSubject, dlq.ClassRejected, key)
	}
	if dl.OriginalTime.Before(before) || dl.OriginalTime.After(after) {
		t.Errorf("dead letter's original time %s, want the resolve's publish time (between %s and %s)", dl.OriginalTime, before, after)
	}
	if incs := e.incidentsFor(key); len(incs) != 1 || incs[0].Closed {
		t.Fatalf("want one open incident (the close was rejected), got %+v", incs)
	}

	e.sim.ClearFaults()
	d := dlq.New(e.js, e.topo.DLQStream, dlq.WithReplayStream(e.topo.Stream))
	res, err := d.Replay(t.Context(), dlq.Filter{Class: dlq.ClassRejected}, false)
	if err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	e.waitSettled(10 * time.Second)
	wait.For(t, 15*time.Second, "the replayed resolve to close the incident", func() bool {
		incs := e.incidentsFor(key)
		closes, _ := e.closesAndReopens(key)
		return len(incs) == 1 && incs[0].Closed && closes == 1
	})
	if left := e.dlqEntries(); len(left) != 0 {
		t.Errorf("%d dead letters after the replay, want none", len(left))
	}
}

// TestWindowEndRejectedIsDeadLettered: TOPdesk rejects the create at a
// maintenance window's end. The timer is dead-lettered as the event held
// back, and a replay of it creates the incident.
func TestWindowEndRejectedIsDeadLettered(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	opts := fastOptions()
	opts.Maintenance = fixedWindow(t, "db-7", time.Now().Add(time.Second))
	e.startWorker(opts)
	e.sim.Inject(topdesktest.Fault{Method: http.MethodPost, Path: "/tas/api/incidents", Status: http.StatusBadRequest})
	e.publish(onHost("db-7", "critical", "Disk / at 97% on db-7"))
	e.waitSettled(10 * time.Second)

	wait.For(t, 15*time.Second, "the rejected window-end timer to be dead-lettered and removed", func() bool {
		return len(e.dlqEntries()) == 1 && e.pendingTimers() == 0
	})
	if dl := e.dlqEntries()[0]; dl.Class != dlq.ClassRejected || dl.AlertKey != "db-7/disk-full" || dl.OriginalSubject != "alerts.timer" {
		t.Errorf("dead letter: class %q, key %q, subject %q", dl.Class, dl.AlertKey, dl.OriginalSubject)
	}
	if n := len(e.incidentsFor("db-7/disk-full")); n != 0 {
		t.Fatalf("%d incidents, want none (the create was rejected)", n)
	}

	e.sim.ClearFaults()
	d := dlq.New(e.js, e.topo.DLQStream, dlq.WithReplayStream(e.topo.Stream))
	if res, err := d.Replay(t.Context(), dlq.Filter{Class: dlq.ClassRejected}, false); err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	wait.For(t, 15*time.Second, "the replayed event to create the incident", func() bool {
		incs := e.incidentsFor("db-7/disk-full")
		return len(incs) == 1 && incs[0].BriefDescription == "Disk / at 97% on db-7"
	})
}

// In a group whose members are held back by windows that end apart, a
// rejected replay at the first end dead-letters that member's event only;
// the member still held back keeps a window timer.
func TestWindowEndRejectedKeepsLaterMembers(t *testing.T) {
	e := groupEnv(t, "group: {by: [alertname, cluster]}\n")
	opts := fastOptions()
	ws, err := maintenance.Compile([]maintenance.Spec{
		{Match: map[string]string{"instance": "sw-1"}, From: time.Now().Add(-time.Minute), To: time.Now().Add(time.Second), Reason: "sw-1 swap"},
		{Match: map[string]string{"instance": "sw-2"}, From: time.Now().Add(-time.Minute), To: time.Now().Add(time.Hour), Reason: "sw-2 swap"},
	})
	if err != nil {
		t.Fatal(err)
	}
	opts.Maintenance = ws
	e.startWorker(opts)
	e.sim.Inject(topdesktest.Fault{Method: http.MethodPost, Path: "/tas/api/incidents", Status: http.StatusBadRequest})
	now := time.Now()
	e.publishInTurn(memberEvent("sw-1", "firing", now), memberEvent("sw-2", "firing", now.Add(time.Millisecond)))

	wait.For(t, 15*time.Second, "sw-1's rejected replay to be dead-lettered", func() bool { return len(e.dlqEntries()) == 1 })
	if dl := e.dlqEntries()[0]; dl.Class != dlq.ClassRejected || dl.AlertKey != "sw-1" {
		t.Errorf("dead letter: class %q, key %q; want rejected, sw-1", dl.Class, dl.AlertKey)
	}
	wait.For(t, 5*time.Second, "a window timer for sw-2", func() bool {
		st := e.stateOf(switchGroup)
		return st.Claim == nil && e.pendingTimers() == 1 && st.SuppressedMembers["sw-2"] != nil
	})
}
