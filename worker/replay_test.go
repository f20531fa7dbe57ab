package worker

import (
	"testing"
	"time"

	"github.com/alertdesk/alertdesk/dlq"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// brokenMapping fails to render any event without an "instance" label.
func brokenMapping(t *testing.T) *mapping.Mapping {
	t.Helper()
	m, err := mapping.Load([]byte("incident:\n  briefDescription: '{{ .Labels.instance }}: {{ .Summary }}'\n"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The operator's loop: a poison event is dead-lettered, found, its cause
// fixed (the mapping), and replayed into exactly one incident; replaying
// again changes nothing.
func TestDeadLetterFixReplay(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.mapping = brokenMapping(t)
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

// Replay keeps time: a dead letter records when its event was first
// published, the replay carries that time on, and dead-lettering the replay
// again keeps the first time rather than the replay's own.
func TestReplayKeepsOriginalTime(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.mapping = brokenMapping(t)
	// The work-queue stream removes the original once it is settled: read
	// it before a worker runs.
	seq := e.publish(firing("web-1/http-5xx", "critical", "5xx rate above 5%", time.Now()))
	orig, err := e.res.Stream.GetMsg(t.Context(), seq)
	if err != nil {
		t.Fatal(err)
	}
	rw := e.startWorker(fastOptions())
	e.waitSettled(10 * time.Second)
	// No worker while the replay is read back: it would settle (and so
	// remove) the replayed message first.
	rw.stop()
	want := orig.Time.UTC().Format(time.RFC3339Nano)

	d := dlq.New(e.js, e.topo.DLQStream, dlq.WithReplayStream(e.topo.Stream))
	first := e.dlqEntries()
	if len(first) != 1 || first[0].Header.Get(dlq.HeaderOriginalTime) != want || !first[0].OriginalTime.Equal(orig.Time) {
		t.Fatalf("dead letters %+v, want one with %s %s", first, dlq.HeaderOriginalTime, want)
	}

	// The mapping is still broken: the replay fails again.
	res, err := d.Replay(t.Context(), dlq.Filter{Seqs: []uint64{first[0].Seq}}, false)
	if err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	replayed, err := e.res.Stream.GetMsg(t.Context(), res[0].NewSeq)
	if err != nil {
		t.Fatal(err)
	}
	if got := replayed.Header.Get(dlq.HeaderOriginalTime); got != want {
		t.Errorf("replayed message: %s = %q, want %q", dlq.HeaderOriginalTime, got, want)
	}
	e.startWorker(fastOptions())
	e.waitSettled(10 * time.Second)
	second := e.dlqEntries()
	if len(second) != 1 || second[0].OriginalSeq != res[0].NewSeq {
		t.Fatalf("dead letters after the replay %+v, want one for input seq %d", second, res[0].NewSeq)
	}
	if got := second[0].Header.Get(dlq.HeaderOriginalTime); got != want {
		t.Errorf("replay dead-lettered again: %s = %q, want the first publish time %q (the replay was published at %s)",
			dlq.HeaderOriginalTime, got, want, replayed.Time.UTC().Format(time.RFC3339Nano))
	}
}
