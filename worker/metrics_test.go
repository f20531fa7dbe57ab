package worker

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/topdesk"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// TestStateOperationsAreTimed checks that the state operations of an
// event's path show in alertdesk_state_operation_duration_seconds: a new
// key is read, claimed and committed; its resolve, whose state this worker
// wrote, is claimed and committed without a read.
func TestStateOperationsAreTimed(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	rw := e.startWorker(fastOptions())
	wait.For(t, 10*time.Second, "reconciled", func() bool { return rw.w.reconciled(t.Context()) })
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

	e.publish(firing("db-7/disk-full", "critical", "disk", t0))
	e.waitSettled(10 * time.Second)
	got := stateOpCounts(t, rw.reg)
	for _, op := range []stateOp{opRead, opClaim, opCommit} {
		if got[op] < 1 {
			t.Errorf("after a create: %d %s operations observed, want at least 1 (all: %v)", got[op], op, got)
		}
	}

	e.publish(resolved("db-7/disk-full", t0.Add(time.Minute)))
	e.waitSettled(10 * time.Second)
	after := stateOpCounts(t, rw.reg)
	if after[opClaim] != got[opClaim]+1 || after[opCommit] != got[opCommit]+1 {
		t.Errorf("a resolve claimed %d and committed %d times, want 1 and 1", after[opClaim]-got[opClaim], after[opCommit]-got[opCommit])
	}
	if after[opRead] != got[opRead] {
		t.Errorf("a resolve of a key this worker wrote read its state %d times, want 0", after[opRead]-got[opRead])
	}
}

// TestTOPdeskWaitIsNotLatency: with one TOPdesk slot and four new keys
// at once, creates wait in the worker for the slot. That wait shows in
// alertdesk_topdesk_wait_seconds, and alertdesk_topdesk_request_duration_seconds
// stays TOPdesk's latency.
func TestTOPdeskWaitIsNotLatency(t *testing.T) {
	const latency = 200 * time.Millisecond
	e := newEnv(t, topdesktest.Options{Latency: latency})
	td, err := topdesk.NewClient(e.sim.URL(), topdesk.Options{Username: topdesktest.DefaultUsername,
		Password: topdesktest.DefaultPassword, Timeout: 2 * time.Second, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	e.api = td
	opts := fastOptions()
	opts.Concurrency = 1 // two events in flight: one at TOPdesk, one waiting for the slot
	rw := e.startWorker(opts)
	wait.For(t, 10*time.Second, "reconciled", func() bool { return rw.w.reconciled(t.Context()) })
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	for i := range 4 {
		e.publish(firing(fmt.Sprintf("db-%d/disk-full", i), "critical", "disk", t0))
	}
	e.waitSettled(20 * time.Second)

	waited, latencies := histogram(t, rw.reg, "alertdesk_topdesk_wait_seconds", "create"),
		histogram(t, rw.reg, "alertdesk_topdesk_request_duration_seconds", "create")
	if waited.GetSampleCount() != 4 || latencies.GetSampleCount() != 4 {
		t.Fatalf("%d waits and %d latencies of creates observed, want 4 each", waited.GetSampleCount(), latencies.GetSampleCount())
	}
	// Three of the four found the slot taken by a create at TOPdesk.
	if sum := time.Duration(waited.GetSampleSum() * float64(time.Second)); sum < latency {
		t.Errorf("creates waited %s in all for the one slot, want at least %s", sum, latency)
	}
	// Waits included, the mean would be about 1.75 latencies.
	if mean := time.Duration(latencies.GetSampleSum() / 4 * float64(time.Second)); mean < latency || mean > latency*5/4 {
		t.Errorf("mean create latency %s, want TOPdesk's %s (the wait for the slot left out)", mean, latency)
	}
}

// histogram returns the histogram of metric name with operation label op.
func histogram(t *testing.T, reg *prometheus.Registry, name, op string) *dto.Histogram {
	t.Helper()
	for _, m := range gathered(t, reg, name) {
		if slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == "operation" && l.GetValue() == op }) {
			return m.GetHistogram()
		}
	}
	t.Fatalf("no %s{operation=%q}", name, op)
	return nil
}

// gathered returns the series of metric name in reg.
func gathered(t *testing.T, reg prometheus.Gatherer, name string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	return nil
}

// stateOpCounts returns the observation count per operation label.
func stateOpCounts(t *testing.T, reg *prometheus.Registry) map[stateOp]uint64 {
	t.Helper()
	counts := map[stateOp]uint64{}
	for _, m := range gathered(t, reg, "alertdesk_state_operation_duration_seconds") {
		for _, l := range m.GetLabel() {
			if l.GetName() == "operation" {
				counts[stateOp(l.GetValue())] = m.GetHistogram().GetSampleCount()
			}
		}
	}
	return counts
}
