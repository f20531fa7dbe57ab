package worker

import (
	"strings"
	"testing"
	"time"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// TestClosedByOperator: a closed incident counts as an operator's close
// unless it looks like alertdesk's resolve under the lifecycle.
func TestClosedByOperator(t *testing.T) {
	eva := &topdesk.Ref{Name: "Jansen, Eva"}
	closed := func(code string) *topdesk.Incident {
		inc := &topdesk.Incident{Closed: true, Modifier: eva}
		if code != "" {
			inc.ClosureCode = &topdesk.Ref{Name: code}
		}
		return inc
	}
	completed := &topdesk.Incident{Completed: true, Modifier: eva}
	closeWith := func(code string) mapping.Lifecycle {
		return mapping.Lifecycle{Resolve: mapping.ResolveClose, ClosureCode: code}
	}
	for _, tc := range []struct {
		name string
		inc  *topdesk.Incident
		lc   mapping.Lifecycle
		want bool
	}{
		{"open", &topdesk.Incident{Modifier: eva}, closeWith(""), false},
		{"an answer without the closing fields", &topdesk.Incident{Closed: true}, closeWith("Solved by monitoring"), false},
		{"close, no code: as alertdesk closes", closed(""), closeWith(""), false},
		{"close, no code: a code", closed("Solved"), closeWith(""), true},
		{"close with a code: the same", closed("solved by monitoring"), closeWith("Solved by monitoring"), false},
		{"close with a code: another", closed("Duplicate"), closeWith("Solved by monitoring"), true},
		{"close with a code: none", closed(""), closeWith("Solved by monitoring"), true},
		{"complete: completed", completed, mapping.Lifecycle{Resolve: mapping.ResolveComplete}, false},
		{"complete: a code", closed("Solved"), mapping.Lifecycle{Resolve: mapping.ResolveComplete}, true},
		{"comment: closed", closed(""), mapping.Lifecycle{Resolve: mapping.ResolveComment}, true},
		{"comment: completed", completed, mapping.Lifecycle{Resolve: mapping.ResolveComment}, true},
	} {
		if got := closedByOperator(tc.inc, tc.lc); got != tc.want {
			t.Errorf("%s: closed by an operator %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestRebuiltStateKeepsOperatorClose: when the states are lost and the
// bucket is reconciled with TOPdesk, an incident an operator closed is
// rebuilt as closed by that operator (its last modifier), with its closure
// code, and the operator's close is still respected; one alertdesk closed
// is rebuilt as alertdesk's.
func TestRebuiltStateKeepsOperatorClose(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	rw := e.startWorker(fastOptions())
	e.waitReconciled(rw)
	t0 := time.Now().Add(-time.Hour)
	const byOperator, byAlertdesk = "db-7/disk-full", "db-8/disk-full"
	e.publish(firing(byOperator, "warning", "Disk / at 91% on db-7", t0))
	e.publish(firing(byAlertdesk, "warning", "Disk / at 91% on db-8", t0))
	e.waitSettled(10 * time.Second)
	if _, err := e.sim.Close("ejansen", e.only(byOperator).Number, "Solved"); err != nil {
		t.Fatal(err)
	}
	e.publish(resolved(byAlertdesk, t0.Add(time.Minute)))
	e.waitSettled(10 * time.Second)
	rw.stop()

	// The states are lost: a new worker reconciles the bucket.
	for _, k := range []string{reconciledKey, mapping.ExternalNumber(byOperator), mapping.ExternalNumber(byAlertdesk)} {
		if err := e.res.State.Delete(t.Context(), k); err != nil {
			t.Fatal(err)
		}
	}
	rw = e.startWorker(fastOptions())
	e.waitReconciled(rw)
	if ks := e.keyState(byOperator); ks.Open || ks.ClosedBy != "Jansen, Eva" || ks.ClosureCode != "Solved" {
		t.Errorf("rebuilt state of the incident the operator closed: open %v, closed by %q, closure code %q; want closed by Jansen, Eva with Solved",
			ks.Open, ks.ClosedBy, ks.ClosureCode)
	}
	if ks := e.keyState(byAlertdesk); ks.Open || ks.ClosedBy != "" {
		t.Errorf("rebuilt state of the incident alertdesk closed: open %v, closed by %q; want closed by alertdesk", ks.Open, ks.ClosedBy)
	}

	// The alert fires on: the operator's close is respected (the rebuilt
	// state knows no content, so the firing goes in as an action).
	creates, _ := e.writes()
	e.publish(firing(byOperator, "warning", "Disk / at 91% on db-7", t0.Add(2*time.Minute)))
	e.waitSettled(10 * time.Second)
	got := e.only(byOperator)
	if c, _ := e.writes(); c != creates || !got.Closed {
		t.Fatalf("a firing after the rebuild: %d creates (want %d), closed %v (want true: the operator's close respected)", c, creates, got.Closed)
	}
	if last := got.Actions[len(got.Actions)-1].Text; !strings.Contains(last, "stays closed") {
		t.Errorf("last action %q, want one saying the incident stays closed", last)
	}
}
