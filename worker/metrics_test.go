package worker

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/alertdesk/alertdesk/internal/wait"
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
