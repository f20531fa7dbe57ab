package worker

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/alertdesk/alertdesk/dlq"
	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// counter returns the value of a counter (summed over its labels) in reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// step publishes ev, waits until it is settled and checks the key's one
// incident.
func (e *testEnv) step(name, key string, ev any, wantClosed bool) {
	e.t.Helper()
	e.publish(ev)
	e.waitSettled(10 * time.Second)
	incs := e.incidentsFor(key)
	if len(incs) != 1 {
		e.t.Fatalf("%s: got %d incidents, want 1", name, len(incs))
	}
	if incs[0].Closed != wantClosed {
		e.t.Fatalf("%s: incident closed = %v, want %v", name, incs[0].Closed, wantClosed)
	}
}

// At equal event time a resolve comes after a firing: the same firing
// again is a duplicate, and a firing that arrives after the resolve of the
// same time creates or reopens nothing.
func TestEqualTimes(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.startWorker(fastOptions())
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

	e.step("firing", "eq", firing("eq", "critical", "x", at), false)
	e.step("resolved at the same time", "eq", resolved("eq", at), true)
	e.step("the firing redelivered", "eq", firing("eq", "critical", "x", at), true)
	e.step("the firing changed at the same time", "eq", firing("eq", "warning", "y", at), true)

	e.publish(resolved("late", at))
	e.waitSettled(10 * time.Second)
	e.publish(firing("late", "critical", "x", at))
	e.waitSettled(10 * time.Second)
	if incs := e.incidentsFor("late"); len(incs) != 0 {
		t.Fatalf("a firing after the resolve of the same time created %d incidents, want none", len(incs))
	}

	// Same time and status, changed content: an update.
	e.step("firing", "upd", firing("upd", "warning", "before", at), false)
	e.step("changed at the same time", "upd", firing("upd", "warning", "after", at), false)
	if got := e.incidentsFor("upd")[0].BriefDescription; got != "after" {
		t.Fatalf("brief description %q, want the changed content %q", got, "after")
	}
}

// An event without its own time is ordered by its own message's publish
// time, never by another message with the same bytes.
func TestEventWithoutTime(t *testing.T) {
	e, fire := untimedFireResolve(t, "untimed")
	e.step("the same firing bytes again", "untimed", fire, false)
}

// untimedFireResolve starts a worker, fires key and resolves it with
// events without their own time, and returns the firing event.
func untimedFireResolve(t *testing.T, key string) (*testEnv, event) {
	t.Helper()
	e := newEnv(t, topdesktest.Options{})
	e.startWorker(fastOptions())
	fire := event{"key": key, "status": "firing", "severity": "critical", "summary": "x", "source": "test"}
	e.step("firing", key, fire, false)
	e.step("resolved", key, event{"key": key, "status": "resolved", "source": "test"}, true)
	return e, fire
}

// An event time far in the future is clamped to the publish time and
// counted: it does not silence the key.
func TestFutureTimeClamped(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	rw := e.startWorker(fastOptions())
	e.step("firing stamped 2099", "future", firing("future", "critical", "x", time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)), false)
	e.step("resolved now", "future", resolved("future", time.Now()), true)
	if n := counter(t, rw.reg, "alertdesk_event_time_clamped_total"); n != 1 {
		t.Fatalf("alertdesk_event_time_clamped_total = %v, want 1", n)
	}
}

// A replayed event keeps the publish time of its original message
// (header Alertdesk-Original-Time): an old event never overrides a newer
// one.
func TestReplayKeepsTime(t *testing.T) {
	e, _ := untimedFireResolve(t, "replayed")

	// The dead-lettered event is an older one, with other content.
	b, err := json.Marshal(event{"key": "replayed", "status": "firing", "severity": "warning", "summary": "old", "source": "test"})
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg("alerts.test")
	msg.Data = b
	msg.Header.Set(dlq.HeaderOriginalTime, time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano))
	if _, err := e.js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	e.waitSettled(10 * time.Second)
	if incs := e.incidentsFor("replayed"); len(incs) != 1 || !incs[0].Closed {
		t.Fatalf("a replayed old firing changed the incident: %+v", incs)
	}
}

// Alertmanager re-sends a resolved alert with its original startsAt when
// it fires again: published more than reorderWindow after the applied
// resolve it reopens; an HA peer's late copy inside the window is stale.
func TestAlertmanagerRefire(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	var err error
	if e.mapping, err = mapping.Load([]byte("lifecycle:\n  reorderWindow: 500ms\n")); err != nil {
		t.Fatal(err)
	}
	e.startWorker(fastOptions())
	startsAt := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	amAlert := func(status string, endsAt time.Time) map[string]any {
		return map[string]any{"version": "4", "status": status, "receiver": "alertdesk",
			"alerts": []map[string]any{{
				"status": status, "labels": map[string]string{"alertname": "HostDown", "instance": "db-7", "severity": "critical"},
				"annotations": map[string]string{"summary": "db-7 down"},
				"startsAt":    startsAt.Format(time.RFC3339), "endsAt": endsAt.Format(time.RFC3339),
				"fingerprint": "aaaabbbbccccdddd",
			}}}
	}
	fire := amAlert("firing", time.Time{})
	b, err := json.Marshal(fire)
	if err != nil {
		t.Fatal(err)
	}
	alerts, err := mapping.Decode(b, mapping.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key, err := e.mapping.Key(&alerts[0])
	if err != nil {
		t.Fatal(err)
	}
	e.step("firing", key, fire, false)
	e.step("resolved", key, amAlert("resolved", time.Now().UTC().Truncate(time.Second)), true)
	resolvedAt := time.Now()
	e.step("an HA peer's late copy", key, fire, true)
	wait.For(t, 5*time.Second, "the reorder window has passed", func() bool { return time.Since(resolvedAt) > time.Second })
	e.step("the re-fire", key, fire, false)
	if creates, _ := e.writes(); creates != 1 {
		t.Fatalf("got %d creates, want 1 (the re-fire reopens)", creates)
	}
}
