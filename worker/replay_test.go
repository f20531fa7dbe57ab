package worker

import (
	"testing"
	"time"

	"github.com/alertdesk/alertdesk/dlq"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// The operator's loop: a poison event is dead-lettered, found, its cause
// fixed (the mapping), and replayed into exactly one incident; replaying
// again changes nothing.
func TestDeadLetterFixReplay(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	broken, err := mapping.Load([]byte("incident:\n  briefDescription: '{{ .Labels.instance }}: {{ .Summary }}'\n"))
	if err != nil {
		t.Fatal(err)
	}
	e.mapping = broken
	first := e.startWorker(fastOptions())
	e.publish(firing("web-1/http-5xx", "critical", "5xx rate above 5%", time.Now()))
	e.waitSettled(10 * time.Second)

	d := dlq.New(e.js, e.topo.DLQStream, dlq.WithReplayStream(e.topo.Stream))
	dead, err := d.List(t.Context(), dlq.Filter{Class: dlq.ClassTemplate})
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].AlertKey != "web-1/http-5xx" {
		t.Fatalf("got dead letters %+v, want the one template failure", dead)
	}
	if n := len(e.sim.Incidents()); n != 0 {
		t.Fatalf("%d incidents before the fix, want none", n)
	}

	// The fix: a mapping that copes without the label; workers restart.
	first.stop()
	e.mapping = mapping.Default()
	e.startWorker(fastOptions())

	for round := range 2 {
		results, err := d.Replay(t.Context(), dlq.Filter{Class: dlq.ClassTemplate}, false)
		if err != nil {
			t.Fatal(err)
		}
		if want := []int{1, 0}[round]; len(results) != want {
			t.Fatalf("replay %d: replayed %d entries, want %d", round+1, len(results), want)
		}
		e.waitSettled(10 * time.Second)
		if incs := e.incidentsFor("web-1/http-5xx"); len(incs) != 1 {
			t.Fatalf("after replay %d: %d incidents, want exactly 1", round+1, len(incs))
		}
	}
	if left, err := d.List(t.Context(), dlq.Filter{}); err != nil || len(left) != 0 {
		t.Fatalf("DLQ after the replay: %d entries (%v), want none", len(left), err)
	}
}
