package worker

import (
	"strings"
	"testing"
	"time"

	"github.com/alertdesk/alertdesk/internal/wait"
)

// TestGroupResolveDelay: a group's incident closes only when its last
// member resolved and lifecycle.resolveDelay passed; a member firing again
// within the delay keeps it open.
func TestGroupResolveDelay(t *testing.T) {
	e := groupEnv(t, "group: {by: [alertname, cluster]}\nlifecycle: {resolveDelay: 1s}\n")
	e.startWorker(fastOptions())
	now := time.Now()
	e.publishInTurn(
		memberEvent("h-1", "firing", now),
		memberEvent("h-2", "firing", now.Add(time.Millisecond)),
		memberEvent("h-1", "resolved", now.Add(2*time.Millisecond)),
		memberEvent("h-2", "resolved", now.Add(3*time.Millisecond)),
		memberEvent("h-2", "firing", now.Add(4*time.Millisecond)), // within the delay
	)
	wait.For(t, 10*time.Second, "the cancelled resolve timer to go", func() bool { return e.pendingTimers() == 0 })
	if incs := e.incidentsFor(switchGroup); len(incs) != 1 || incs[0].Closed {
		t.Fatalf("the group's incident closed although a member fired within the delay: %+v", incs)
	}
	e.publish(memberEvent("h-2", "resolved", now.Add(5*time.Millisecond)))
	e.waitSettled(10 * time.Second)
	if incs := e.incidentsFor(switchGroup); len(incs) != 1 || incs[0].Closed {
		t.Fatalf("the last resolve closed the group's incident at once: %+v", incs)
	}
	wait.For(t, 15*time.Second, "the group's incident to close after the delay", func() bool {
		closes, _ := e.closesAndReopens(switchGroup)
		return closes > 0
	})
	if incs := e.incidentsFor(switchGroup); len(incs) != 1 || !incs[0].Closed {
		t.Fatalf("want the group's one incident closed: %+v", incs)
	}
	if closes, reopens := e.closesAndReopens(switchGroup); closes != 1 || reopens != 0 {
		t.Errorf("%d closes and %d reopens, want 1 and 0", closes, reopens)
	}
}

// TestGroupIgnoresFlapping: flapping is judged per alert key, and a group's
// members are not its changes: members that resolve and fire again while
// another still fires never make the group's incident flap, and the last
// member's resolve closes it at once, without a flapping action or a
// held-open incident.
func TestGroupIgnoresFlapping(t *testing.T) {
	e := groupEnv(t, "group: {by: [alertname, cluster]}\nflapping: {changes: 2, window: 1h, quiet: 1s}\n")
	e.startWorker(fastOptions())
	now := time.Now()
	e.publishInTurn(
		memberEvent("h-1", "firing", now),
		memberEvent("h-2", "firing", now.Add(time.Millisecond)),
		memberEvent("h-1", "resolved", now.Add(2*time.Millisecond)),
		memberEvent("h-1", "firing", now.Add(3*time.Millisecond)),
		memberEvent("h-1", "resolved", now.Add(4*time.Millisecond)),
		memberEvent("h-2", "resolved", now.Add(5*time.Millisecond)), // the last firing member
	)
	incs := e.incidentsFor(switchGroup)
	if len(incs) != 1 || !incs[0].Closed {
		t.Fatalf("want the group's one incident closed by its last member's resolve: %+v", incs)
	}
	for _, a := range incs[0].Actions {
		if strings.Contains(a.Text, "Flapping") {
			t.Errorf("the group's incident got a flapping action: %q", a.Text)
		}
	}
	wait.For(t, 10*time.Second, "no timer left", func() bool { return e.pendingTimers() == 0 })
	if closes, reopens := e.closesAndReopens(switchGroup); closes != 1 || reopens != 0 {
		t.Errorf("%d closes and %d reopens, want 1 and 0", closes, reopens)
	}
}

// publishInTurn publishes each event once the one before it is settled.
func (e *testEnv) publishInTurn(evs ...event) {
	e.t.Helper()
	for _, ev := range evs {
		e.publish(ev)
		e.waitSettled(10 * time.Second)
	}
}
