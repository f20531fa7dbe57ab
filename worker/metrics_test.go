package worker

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// TestStateOperationsAreTimed checks that the state operations of an
// event's path show in alertdesk_state_operation_duration_seconds: a new
// key (in a reconciled bucket) is claimed and committed without a read; so
// is an update of a key this worker wrote; a key it does not remember is
// read first.
func TestStateOperationsAreTimed(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	rw := e.startWorker(fastOptions())
	wait.For(t, 10*time.Second, "reconciled", func() bool { return rw.w.reconciled(t.Context()) })
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	const key = "db-7/disk-full"

	before := stateOpCounts(t, rw.reg)
	for i, step := range []struct {
		what   string
		ev     event
		forget bool
	}{
		{"a create", firing(key, "critical", "disk", t0), false},
		{"an update of a key this worker wrote", firing(key, "critical", "disk 99%", t0.Add(time.Minute)), false},
		{"a resolve of a key this worker does not remember", resolved(key, t0.Add(2*time.Minute)), true},
	} {
		if step.forget {
			rw.w.state.known.forget(mapping.ExternalNumber(key))
		}
		e.publish(step.ev)
		e.waitSettled(10 * time.Second)
		after := stateOpCounts(t, rw.reg)
		reads := uint64(0)
		if step.forget {
			reads = 1
		}
		if got := after[opRead] - before[opRead]; got != reads {
			t.Errorf("%d: %s read its state %d times, want %d", i, step.what, got, reads)
		}
		if after[opClaim] != before[opClaim]+1 || after[opCommit] != before[opCommit]+1 {
			t.Errorf("%d: %s claimed %d and committed %d times, want 1 and 1", i, step.what,
				after[opClaim]-before[opClaim], after[opCommit]-before[opCommit])
		}
		before = after
	}
}

// stateOpCounts returns the observation count per operation label.
func stateOpCounts(t *testing.T, reg *prometheus.Registry) map[stateOp]uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[stateOp]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "alertdesk_state_operation_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "operation" {
					counts[stateOp(l.GetValue())] = m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return counts
}
