package worker

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// The state a worker remembers for a key may be outdated by another
// worker's write. The compare-and-swap then fails and the key is read
// again: here the remembered state says "open, same content", the bucket
// says "closed", and the firing event must reopen, not pass as a duplicate.
func TestOutdatedKnownStateIsReadAgain(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	rw := e.startWorker(fastOptions())
	// A reconciliation that lists the new incident would race the worker
	// for its state.
	e.waitReconciled(rw)
	t0 := time.Now().Add(-time.Hour).UTC()
	const key = "web-3/http-5xx"
	e.publish(firing(key, "critical", "5xx rate high", t0))
	e.waitSettled(10 * time.Second)
	ext := mapping.ExternalNumber(key)
	if _, _, ok := rw.w.state.known.get(ext); !ok {
		t.Fatal("the worker does not remember the state it wrote")
	}

	// Another worker resolved it meanwhile.
	entry, err := e.res.State.Get(t.Context(), ext)
	if err != nil {
		t.Fatal(err)
	}
	var st incidentState
	if err := json.Unmarshal(entry.Value(), &st); err != nil {
		t.Fatal(err)
	}
	st.Open, st.ClosedAt = false, t0.Add(time.Minute)
	st.LastEvent, st.LastStatus = t0.Add(time.Minute), "resolved"
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.res.State.Update(t.Context(), ext, b, entry.Revision()); err != nil {
		t.Fatal(err)
	}

	e.publish(firing(key, "critical", "5xx rate high", t0.Add(2*time.Minute)))
	e.waitSettled(10 * time.Second)
	if creates, updates := e.writes(); creates != 1 || updates != 1 {
		t.Fatalf("got %d creates and %d updates, want 1 create and 1 update (the reopen)", creates, updates)
	}
	entry, err = e.res.State.Get(t.Context(), ext)
	if err != nil {
		t.Fatal(err)
	}
	var after incidentState
	if err := json.Unmarshal(entry.Value(), &after); err != nil {
		t.Fatal(err)
	}
	if !after.Open || !after.LastEvent.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("state after the event: open=%v last_event=%s; want open at %s", after.Open, after.LastEvent, t0.Add(2*time.Minute))
	}
}
