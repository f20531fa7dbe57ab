package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/mapping"
)

// TestStormEntriesExpire: a storm's entry carries a TTL of its window and
// is gone once the window passed; a major call's entry is kept while the
// major call is open and, once alertdesk closed it, expires like the state
// of a closed incident (reopen window plus margin).
func TestStormEntriesExpire(t *testing.T) {
	// Windows of seconds: the checks between the writes and the expiry
	// must fit in them on a loaded machine.
	e := groupEnv(t, "lifecycle:\n  reopenWindow: 3s\n  reorderWindow: 500ms\n"+
		"routes:\n  - match: {team: network}\n    majorIncident: {threshold: 1, window: 6s}\n")
	rw := e.startWorker(fastOptions())
	e.waitReconciled(rw)
	rule, _ := e.mapping.MajorIncidentFor(&mapping.Alert{Labels: map[string]string{"team": "network"}})
	stormKey := "storm-" + rule.ID
	publish := func(status string, at time.Time) {
		for i := range 3 {
			ev := memberEvent(fmt.Sprintf("port-%d", i), status, at)
			ev["labels"] = map[string]string{"team": "network"}
			e.publish(ev)
		}
		e.waitSettled(30 * time.Second)
	}
	t0 := time.Now()
	publish("firing", t0)

	var s storm
	if !e.entry(stormKey, &s) || s.Major == nil || s.Major.ID == "" {
		t.Fatalf("no major call recorded in the storm entry after 3 new incidents within the window: %+v", s)
	}
	majorEntry := majorKey(s.Major.Ext)
	if ttl := e.entryTTL(stormKey); ttl != 6*time.Second {
		t.Errorf("storm entry TTL %s, want the window, 6s", ttl)
	}
	if ttl := e.entryTTL(majorEntry); ttl != 0 {
		t.Errorf("the open major call's entry has TTL %s, want none", ttl)
	}

	publish("resolved", t0.Add(time.Minute))
	var ms majorState
	wait.For(t, 30*time.Second, "the major call's entry says closed", func() bool {
		return e.entry(majorEntry, &ms) && ms.Closed
	})
	want := closedStateTTL(e.mapping.Lifecycle()).total
	if ttl := e.entryTTL(majorEntry); ttl != want {
		t.Errorf("the closed major call's entry has TTL %s, want %s (reopen window plus margin)", ttl, want)
	}
	wait.For(t, 30*time.Second, "the storm entry and the closed major call's entry expire", func() bool {
		return !e.entry(stormKey, &storm{}) && !e.entry(majorEntry, &majorState{})
	})
}

// entry reads the state bucket's entry key into v and reports whether it
// exists.
func (e *testEnv) entry(key string, v any) bool {
	e.t.Helper()
	entry, err := e.res.State.Get(e.t.Context(), key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false
	}
	if err != nil {
		e.t.Fatalf("read %s: %v", key, err)
	}
	if err := json.Unmarshal(entry.Value(), v); err != nil {
		e.t.Fatalf("read %s: %v", key, err)
	}
	return true
}

// entryTTL is the per-key TTL the state bucket's entry key was last written
// with (0: none).
func (e *testEnv) entryTTL(key string) time.Duration {
	e.t.Helper()
	s, err := e.js.Stream(e.t.Context(), "KV_"+e.topo.StateBucket)
	if err != nil {
		e.t.Fatal(err)
	}
	msg, err := s.GetLastMsgForSubject(e.t.Context(), "$KV."+e.topo.StateBucket+"."+key)
	if err != nil {
		e.t.Fatalf("read %s: %v", key, err)
	}
	h := msg.Header.Get(jetstream.MsgTTLHeader)
	if h == "" {
		return 0
	}
	d, err := time.ParseDuration(h)
	if err != nil {
		e.t.Fatalf("%s: TTL header %q: %v", key, h, err)
	}
	return d
}

// TestEntryTTL: a storm entry is kept its window, in whole seconds rounded
// up, unless it holds a claim on a major call not yet recorded; a major
// call's entry once closed, as long as a closed incident's state; nothing
// expires in a bucket without per-key TTLs.
func TestEntryTTL(t *testing.T) {
	lc := mapping.Lifecycle{ReopenWindow: time.Hour, ReorderWindow: time.Minute}
	w := &Worker{state: stateStore{closedTTL: closedStateTTL(lc)}}
	closed := closedStateTTL(lc).total
	for _, tc := range []struct {
		name string
		v    any
		want time.Duration
	}{
		{"storm", &storm{Window: 5 * time.Minute}, 5 * time.Minute},
		{"storm, window rounded up", &storm{Window: 1500 * time.Millisecond}, 2 * time.Second},
		{"storm, window under a second", &storm{Window: 10 * time.Millisecond}, time.Second},
		{"storm with its major call", &storm{Window: time.Minute, Major: &stormMajor{ID: "m", Ext: "x"}}, time.Minute},
		{"storm claiming a major call", &storm{Window: time.Minute, Major: &stormMajor{Ext: "x", Claim: "w/1"}}, 0},
		{"storm written before its window was", &storm{}, 0},
		{"open major call", &majorState{ID: "m", Linked: []string{"a"}}, 0},
		{"major call being closed", &majorState{ID: "m", Claim: "w"}, 0},
		{"closed major call", &majorState{ID: "m", Closed: true}, closed},
	} {
		if got := w.entryTTL(tc.v); got != tc.want {
			t.Errorf("%s: TTL %s, want %s", tc.name, got, tc.want)
		}
	}
	w.state.closedTTL = stateTTL{}
	if got := w.entryTTL(&storm{Window: time.Minute}); got != 0 {
		t.Errorf("without per-key TTLs: TTL %s, want none", got)
	}
}
