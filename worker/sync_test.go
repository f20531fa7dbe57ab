package worker

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/ingest"
	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// keyState reads a key's state as `alertdesk state get` does.
func (e *testEnv) keyState(key string) KeyState {
	e.t.Helper()
	ks, err := ReadState(e.t.Context(), e.res.State, key, Options{})
	if err != nil {
		e.t.Fatalf("state of %s: %v", key, err)
	}
	return ks
}

// waitClosedBy waits until the key's state says that who closed its
// incident.
func (e *testEnv) waitClosedBy(key, who string, timeout time.Duration) KeyState {
	e.t.Helper()
	var ks KeyState
	wait.For(e.t, timeout, key+" closed by "+who, func() bool {
		ks = e.keyState(key)
		return ks.ClosedBy == who
	})
	if ks.Open {
		e.t.Fatalf("state of %s: closed by %s but open", key, who)
	}
	return ks
}

// queueEvent does what POST /v1/topdesk/events does for incident number.
func (e *testEnv) queueEvent(number string) {
	e.t.Helper()
	if err := QueueTopdeskEvent(e.t.Context(), e.js, number); err != nil {
		e.t.Fatal(err)
	}
}

// TestOperatorCloseRespected: an incident an operator closed while its
// alert fires stays closed (respect, the default): the same content is a
// duplicate, changed content goes in as an action; after a resolve, the
// next firing reopens it. `alertdesk state get` shows who closed it.
func TestOperatorCloseRespected(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.startWorker(fastOptions())
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	const key = "db-7/disk-full"

	e.publish(firing(key, "warning", "Disk / at 91% on db-7", t0))
	e.waitSettled(10 * time.Second)
	inc := e.only(key)
	if _, err := e.sim.Close("ejansen", inc.Number, "Solved"); err != nil {
		t.Fatal(err)
	}
	e.queueEvent(inc.Number)
	ks := e.waitClosedBy(key, "Jansen, Eva", 10*time.Second)
	if ks.ClosureCode != "Solved" || ks.WontFix || ks.ClosedAt.IsZero() {
		t.Errorf("state: closure code %q, wontFix %v, closed at %s; want Solved, false, TOPdesk's closing time", ks.ClosureCode, ks.WontFix, ks.ClosedAt)
	}
	creates, updates := e.writes()

	e.publish(firing(key, "warning", "Disk / at 91% on db-7", t0.Add(time.Minute)))
	e.waitSettled(10 * time.Second)
	if c, u := e.writes(); c != creates || u != updates || !e.only(key).Closed {
		t.Fatalf("a duplicate after the operator's close: %d creates, %d updates (want %d, %d), closed %v (want true)", c, u, creates, updates, e.only(key).Closed)
	}

	e.publish(firing(key, "critical", "Disk / at 97% on db-7", t0.Add(2*time.Minute)))
	e.waitSettled(10 * time.Second)
	got := e.only(key)
	if c, u := e.writes(); c != creates || u != updates+1 || !got.Closed {
		t.Fatalf("changed content after the operator's close: %d creates, %d updates (want %d, %d), closed %v (want true)", c, u, creates, updates+1, got.Closed)
	}
	last := got.Actions[len(got.Actions)-1]
	if !strings.Contains(last.Text, "stays closed") || !strings.Contains(last.Text, "97%") || strings.Contains(got.BriefDescription, "97%") {
		t.Errorf("the change went in as %q, brief %q; want an action saying it stays closed, with the change, and the fields left alone", last.Text, got.BriefDescription)
	}

	e.publish(resolved(key, t0.Add(3*time.Minute)))
	e.waitSettled(10 * time.Second) // two events of a key published together may be handled in either order
	e.publish(firing(key, "critical", "Disk / at 97% on db-7", t0.Add(4*time.Minute)))
	e.waitSettled(10 * time.Second)
	if got := e.only(key); got.Closed {
		t.Fatal("a firing after a resolve did not reopen the incident the operator closed")
	}
	if ks := e.keyState(key); !ks.Open || ks.ClosedBy != "" {
		t.Errorf("state after the reopen: open %v, closed by %q; want open, no one", ks.Open, ks.ClosedBy)
	}
	if dl := e.dlqEntries(); len(dl) != 0 {
		t.Errorf("%d dead letters, want none", len(dl))
	}
}

// TestWontFixCreatesNew: an incident closed with a wontFix closure code is
// never reopened; the next firing after a resolve creates a new one.
func TestWontFixCreatesNew(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	m, err := mapping.Load([]byte("lifecycle:\n  wontFix: [Duplicate]\n"))
	if err != nil {
		t.Fatal(err)
	}
	e.mapping = m
	e.startWorker(fastOptions())
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	const key = "web-1/5xx"

	e.publish(firing(key, "warning", "5xx on web-1", t0))
	e.waitSettled(10 * time.Second)
	first := e.only(key)
	if _, err := e.sim.Close("tbakker", first.Number, "Duplicate"); err != nil {
		t.Fatal(err)
	}
	e.queueEvent(first.Number)
	if ks := e.waitClosedBy(key, "Bakker, Tom", 10*time.Second); !ks.WontFix {
		t.Fatalf("state: closure code %q, wontFix false; want true", ks.ClosureCode)
	}
	e.publish(resolved(key, t0.Add(time.Minute)))
	e.waitSettled(10 * time.Second)
	e.publish(firing(key, "warning", "5xx on web-1", t0.Add(2*time.Minute)))
	e.waitSettled(10 * time.Second)
	incs := e.incidentsFor(key)
	if len(incs) != 2 || !incs[0].Closed || incs[1].Closed || incs[0].ClosureCode != "Duplicate" {
		t.Fatalf("got %d incidents %+v; want the wontFix one closed as it was and a new open one", len(incs), incs)
	}
}

// TestArchivedCreatesNew: an archived incident is forgotten, whether
// alertdesk learns it from TOPdesk's answer to a write (a 400) or from the
// webhook; the next firing creates a new incident and nothing is
// dead-lettered.
func TestArchivedCreatesNew(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.startWorker(fastOptions())
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	const written, told = "db-1/archived-on-write", "db-2/archived-on-webhook"
	for _, key := range []string{written, told} {
		e.publish(firing(key, "warning", "down: "+key, t0))
	}
	e.waitSettled(10 * time.Second)
	for _, key := range []string{written, told} {
		if _, err := e.sim.Archive("ejansen", e.only(key).Number, ""); err != nil {
			t.Fatal(err)
		}
	}
	// The webhook: the key forgets it, and even the same content creates.
	e.queueEvent(e.only(told).Number)
	wait.For(t, 10*time.Second, "the archived incident forgotten", func() bool { return e.keyState(told).IncidentID == "" })
	e.publish(firing(told, "warning", "down: "+told, t0.Add(time.Minute)))
	// A write: changed content updates, TOPdesk refuses, a new one is made.
	e.publish(firing(written, "critical", "down: "+written, t0.Add(time.Minute)))
	e.waitSettled(10 * time.Second)

	for _, key := range []string{written, told} {
		incs := e.incidentsFor(key)
		if len(incs) != 2 || !incs[0].Archived || incs[1].Archived || incs[1].Closed {
			t.Errorf("%s: %d incidents %+v; want the archived one and a new open one", key, len(incs), incs)
		}
	}
	if dl := e.dlqEntries(); len(dl) != 0 {
		t.Errorf("%d dead letters (%+v), want none", len(dl), dl)
	}
}

// TestWebhookDetectsClose: TOPdesk's automated action (the simulator's
// callback) calls POST /v1/topdesk/events; the key learns of the close at
// once.
func TestWebhookDetectsClose(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.startWorker(fastOptions())
	const token = "events-token"
	h := ingest.NewTopdeskEvents(ingest.TopdeskEventsOptions{Token: token, Logger: zerolog.Nop(),
		Queue: func(ctx context.Context, number string) error { return QueueTopdeskEvent(ctx, e.js, number) }})
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.sim.SetCallback(topdesktest.Callback{URL: srv.URL + ingest.TopdeskEventsPath, Token: token})

	const key = "api/latency"
	e.publish(firing(key, "warning", "API slow", time.Now()))
	e.waitSettled(10 * time.Second)
	if _, err := e.sim.Close("ejansen", e.only(key).Number, "Solved"); err != nil {
		t.Fatal(err)
	}
	e.waitClosedBy(key, "Jansen, Eva", 5*time.Second)
	calls := e.sim.Callbacks()
	if len(calls) != 1 || calls[0].Status != http.StatusAccepted {
		t.Errorf("callbacks %+v, want one answered 202", calls)
	}
}

// TestReadBackDetectsClose: the read-back finds a close within one sync
// interval (plus the time to read and write), with no webhook.
func TestReadBackDetectsClose(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	opts := fastOptions()
	opts.SyncInterval = time.Second
	rw := e.startWorker(opts)
	const key = "queue/backlog"
	e.publish(firing(key, "warning", "Backlog growing", time.Now()))
	e.waitSettled(10 * time.Second)
	if _, err := e.sim.Close("ejansen", e.only(key).Number, "Solved"); err != nil {
		t.Fatal(err)
	}
	e.waitClosedBy(key, "Jansen, Eva", opts.SyncInterval+2*time.Second)
	if n := counter(t, rw.reg, "alertdesk_sync_runs_total"); n < 1 {
		t.Errorf("alertdesk_sync_runs_total = %v, want at least 1", n)
	}
	if n := counter(t, rw.reg, "alertdesk_operator_changes_total"); n != 1 {
		t.Errorf("alertdesk_operator_changes_total = %v, want 1", n)
	}
}

// leaseHolder is the worker holding the read-back lease ("" = none).
func (e *testEnv) leaseHolder() string {
	e.t.Helper()
	entry, err := e.res.State.Get(e.t.Context(), syncLeaseKey)
	if err != nil {
		return ""
	}
	var c claim
	if err := json.Unmarshal(entry.Value(), &c); err != nil {
		e.t.Fatal(err)
	}
	return c.Owner
}

// TestSyncLeaseTakenOver: one worker of two reads back; when it stops,
// the other takes the lease and the read-back goes on. A lease left by a
// killed worker is taken over once it lapses.
func TestSyncLeaseTakenOver(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	// A worker killed while holding the lease left it behind.
	b, err := json.Marshal(claim{Owner: "w-killed", Op: "sync"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.res.State.Create(t.Context(), syncLeaseKey, b); err != nil {
		t.Fatal(err)
	}
	opts := fastOptions()
	opts.SyncInterval = 300 * time.Millisecond
	opts.ID = "w-a"
	a := e.startWorker(opts)
	opts.ID = "w-b"
	b2 := e.startWorker(opts)
	wait.For(t, 5*time.Second, "the lapsed lease taken over", func() bool { return e.leaseHolder() != "w-killed" && e.leaseHolder() != "" })

	holder, other := a, b2
	if e.leaseHolder() == "w-b" {
		holder, other = b2, a
	}
	const key = "db-9/replication"
	e.publish(firing(key, "warning", "Replication lag", time.Now()))
	e.waitSettled(10 * time.Second)
	holder.stop()
	wait.For(t, 5*time.Second, "the other worker holds the lease", func() bool { return e.leaseHolder() == other.w.opts.ID })
	if _, err := e.sim.Close("ejansen", e.only(key).Number, "Solved"); err != nil {
		t.Fatal(err)
	}
	e.waitClosedBy(key, "Jansen, Eva", opts.SyncInterval+2*time.Second)
	if n := counter(t, other.reg, "alertdesk_operator_changes_total"); n != 1 {
		t.Errorf("the remaining worker saw %v operator changes, want 1", n)
	}
}

// TestStaleSnapshotChangesNothing: a read-back page read before alertdesk
// reopened and closed the incident shows states alertdesk itself has since
// replaced; observing it must not take them for an operator's.
func TestStaleSnapshotChangesNothing(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	rw := e.startWorker(fastOptions())
	const key = "queue/backlog"
	t0 := time.Now()
	e.publish(firing(key, "warning", "Backlog growing", t0))
	e.waitSettled(10 * time.Second)
	openSnap, err := e.td.GetIncident(t.Context(), e.only(key).ID)
	if err != nil {
		t.Fatal(err)
	}
	e.publish(resolved(key, t0.Add(time.Second)))
	e.waitSettled(10 * time.Second)
	closedSnap, err := e.td.GetIncident(t.Context(), e.only(key).ID)
	if err != nil {
		t.Fatal(err)
	}
	// Stale: the incident is closed now, the snapshot open.
	if change, err := rw.w.observeIncident(t.Context(), openSnap, viaReadBack); err != nil || change != "" {
		t.Fatalf("an open snapshot of a closed incident: change %q, err %v; want none", change, err)
	}
	e.publish(firing(key, "warning", "Backlog growing", t0.Add(2*time.Second)))
	e.waitSettled(10 * time.Second)
	// Stale: the incident is reopened now, the snapshot closed.
	if change, err := rw.w.observeIncident(t.Context(), closedSnap, viaReadBack); err != nil || change != "" {
		t.Fatalf("a closed snapshot of a reopened incident: change %q, err %v; want none", change, err)
	}
	if ks := e.keyState(key); !ks.Open || ks.ClosedBy != "" {
		t.Fatalf("state %+v, want open and closed by nobody", ks)
	}
}
