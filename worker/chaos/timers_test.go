package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/mapping"
)

// TestChaosTimerSurvivesKills: a resolve waits for lifecycle.resolveDelay
// on a durable timer; the worker process is SIGKILLed and then nats-server
// too, with the timer pending; both restart (NATS on the same store). The
// incident is closed exactly once, and not before the delay.
func TestChaosTimerSurvivesKills(t *testing.T) {
	const delay = 4 * time.Second
	file := filepath.Join(t.TempDir(), "mapping.yaml")
	if err := os.WriteFile(file, []byte("lifecycle: {resolveDelay: 4s}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, 1, false, []string{"ALERTDESK_MAPPING_FILE=" + file})
	const key = "timer/db-7"
	ext := mapping.ExternalNumber(key)
	publish := func(status string, at time.Time) {
		t.Helper()
		b, err := json.Marshal(map[string]any{"key": key, "status": status, "severity": "critical",
			"summary": "Disk full on db-7", "timestamp": at.UTC().Format(time.RFC3339Nano)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if _, err := e.js.Publish(ctx, "alerts.test", b); err != nil {
			t.Fatal(err)
		}
	}
	incident := func() (found, closed bool) {
		for _, inc := range e.sim.Incidents() {
			if inc.ExternalNumber == ext {
				return true, inc.Closed
			}
		}
		return false, false
	}
	publish("firing", time.Now())
	wait.For(t, 30*time.Second, "the incident", func() bool { found, _ := incident(); return found })
	resolvedAt := time.Now()
	publish("resolved", resolvedAt)
	wait.For(t, 30*time.Second, "the resolve timer", func() bool {
		s, err := e.js.Stream(t.Context(), "ALERTDESK_TIMERS")
		return err == nil && s.CachedInfo().State.Msgs == 1
	})

	if err := e.workers.kill(0); err != nil {
		t.Fatal(err)
	}
	if err := e.nats[0].p.kill(); err != nil {
		t.Fatal(err)
	}
	if _, closed := incident(); closed {
		t.Fatal("closed before the delay")
	}
	if err := e.nats[0].start(t.Context()); err != nil {
		t.Fatalf("restart nats-server: %v", err)
	}
	if err := e.workers.start(0); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 60*time.Second, "the close after the delay", func() bool { _, closed := incident(); return closed })
	if took := time.Since(resolvedAt); took < delay {
		t.Errorf("closed %s after the resolve, before the delay of %s", took, delay)
	}
	closes := func() int {
		n := 0
		for _, r := range e.sim.Requests() {
			if (r.Method == "PATCH" || r.Method == "PUT") && r.Status/100 == 2 && bytes.Contains(r.Body, []byte(`"closed":true`)) {
				n++
			}
		}
		return n
	}
	// The simulator records a request once it has applied it: the close
	// can be seen before its record.
	wait.For(t, 10*time.Second, "the record of the close", func() bool { return closes() > 0 })
	if n := closes(); n != 1 {
		t.Errorf("%d closing writes, want exactly 1", n)
	}
}
