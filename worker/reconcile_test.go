package worker

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// finds counts searches by externalNumber.
func (e *testEnv) finds() int {
	n := 0
	for _, r := range e.sim.Requests() {
		if r.Method == http.MethodGet && r.Path == "/tas/api/incidents" && strings.Contains(r.RawQuery, "externalNumber%3D%3D") {
			n++
		}
	}
	return n
}

func (e *testEnv) waitReconciled(rw *runningWorker) {
	e.t.Helper()
	wait.For(e.t, 10*time.Second, "the state bucket is reconciled", func() bool { return rw.w.reconciled(e.t.Context()) })
}

// After reconciliation a new key is created with one request: no lookup.
func TestReconciledBucketSkipsLookups(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	rw := e.startWorker(fastOptions())
	e.waitReconciled(rw)
	e.sim.ResetRequests()
	for i := range 20 {
		e.publish(firing(fmt.Sprintf("new-%d", i), "critical", "x", time.Now()))
	}
	e.waitSettled(10 * time.Second)
	if n := e.finds(); n != 0 {
		t.Fatalf("%d lookups by externalNumber for new keys in a reconciled bucket, want 0", n)
	}
	if creates, _ := e.writes(); creates != 20 {
		t.Fatalf("got %d creates, want 20", creates)
	}
}

// An incident whose externalNumber only starts like alertdesk's (an
// operator typed it) is not alertdesk's: the reconciliation passes it over
// instead of failing on it for ever, and adopts the others.
func TestReconcilePassesOverForeignExternalNumbers(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	for _, ext := range []string{"alertdesk-ticket 42", "alertdesk-42", mapping.ExternalNumber("ours")} {
		if _, err := e.td.CreateIncident(t.Context(), &topdesk.IncidentRequest{
			Caller: &topdesk.Caller{DynamicName: "operator"}, BriefDescription: ext, ExternalNumber: ext,
		}); err != nil {
			t.Fatal(err)
		}
	}
	rw := e.startWorker(fastOptions())
	e.waitReconciled(rw)
	keys, err := e.res.State.ListKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for k := range keys.Keys() {
		if strings.HasPrefix(k, "alertdesk-") {
			states = append(states, k)
		}
	}
	if want := mapping.ExternalNumber("ours"); len(states) != 1 || states[0] != want {
		t.Fatalf("states written %v, want only %s", states, want)
	}
}

// Incidents alertdesk made before its state was lost are adopted by the
// reconciliation: a firing event does not create a second one, a resolved
// event closes the existing one.
func TestReconcileAdoptsIncidents(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	for _, key := range []string{"old-open", "old-resolved"} {
		if _, err := e.td.CreateIncident(t.Context(), &topdesk.IncidentRequest{
			Caller: &topdesk.Caller{DynamicName: "alertdesk"}, BriefDescription: key, ExternalNumber: mapping.ExternalNumber(key),
		}); err != nil {
			t.Fatal(err)
		}
	}
	rw := e.startWorker(fastOptions())
	e.waitReconciled(rw)
	e.sim.ResetRequests()
	e.publish(firing("old-open", "critical", "x", time.Now()))
	e.publish(resolved("old-resolved", time.Now()))
	e.waitSettled(10 * time.Second)
	if n := e.finds(); n != 0 {
		t.Fatalf("%d lookups after reconciliation, want 0", n)
	}
	if incs := e.incidentsFor("old-open"); len(incs) != 1 || incs[0].Closed {
		t.Fatalf("old-open: got %+v, want the one adopted open incident", incs)
	} else if incs[0].BriefDescription != "x" {
		// Its content was unknown, so the firing event wrote its own.
		t.Fatalf("old-open: brief description %q, want the event's %q", incs[0].BriefDescription, "x")
	}
	if incs := e.incidentsFor("old-resolved"); len(incs) != 1 || !incs[0].Closed {
		t.Fatalf("old-resolved: got %+v, want the one adopted incident, closed", incs)
	}
}

// A TOPdesk that cannot list by prefix leaves the bucket unmarked, and new
// keys are looked up: slower, still correct.
func TestNoReconcileWithoutFIQL(t *testing.T) {
	e := newEnv(t, topdesktest.Options{DisableFIQL: true})
	rw := e.startWorker(fastOptions())
	wait.For(t, 10*time.Second, "a reconciliation was tried", func() bool {
		for _, r := range e.sim.Requests() {
			if strings.Contains(r.RawQuery, "sw%3D") {
				return true
			}
		}
		return false
	})
	e.publish(firing("k", "critical", "x", time.Now()))
	e.waitSettled(10 * time.Second)
	if rw.w.reconciled(t.Context()) {
		t.Fatal("bucket marked reconciled although TOPdesk cannot list incidents")
	}
	legacy := 0
	for _, r := range e.sim.Requests() {
		if strings.Contains(r.RawQuery, "external_number=") {
			legacy++
		}
	}
	if legacy == 0 {
		t.Fatal("the new key was created without a lookup")
	}
}
