package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// Readers that arrive while a request is out share the next request, and
// each gets its own key's newest entry; deleted and absent keys are not
// found; the reconciliation mark comes with every answer.
func TestBatchReaderSharesRequests(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	kv := e.res.State
	ctx := t.Context()
	revs := map[string]uint64{}
	for i := range 40 {
		k := fmt.Sprintf("alertdesk-k%02d", i)
		rev, err := kv.Put(ctx, k, []byte(fmt.Sprintf(`{"key":"k%02d"}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		revs[k] = rev
	}
	// A deleted key, and a key written twice (the newest value counts).
	if _, err := kv.Put(ctx, "alertdesk-gone", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "alertdesk-gone"); err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Put(ctx, "alertdesk-k00", []byte(`{"key":"k00","open":true}`))
	if err != nil {
		t.Fatal(err)
	}
	revs["alertdesk-k00"] = rev

	r, err := newBatchReader(ctx, e.js, kv, zerolog.Nop())
	if err != nil || r == nil {
		t.Fatalf("newBatchReader = %v, %v; want a reader", r, err)
	}
	t.Cleanup(func() {
		if err := r.close(); err != nil {
			t.Error(err)
		}
	})

	// Hold the reader as if a request were out, so that every reader below
	// gathers in the next one.
	r.mu.Lock()
	r.sending = true
	r.mu.Unlock()
	keys := []string{"alertdesk-gone", "alertdesk-never"}
	for k := range revs {
		keys = append(keys, k)
	}
	type answer struct {
		e             kvEntry
		found, marked bool
		err           error
	}
	answers := make([]answer, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() {
			var a answer
			a.e, a.found, a.marked, a.err = r.read(ctx, k)
			answers[i] = a
		})
	}
	waitFor(t, 5*time.Second, "every reader waits in the open batch", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.open != nil && len(r.open.keys) == len(keys)
	})
	r.mu.Lock()
	b := r.open
	r.open = nil
	r.mu.Unlock()
	r.run(b)
	wg.Wait()

	if r.seq != 1 {
		t.Fatalf("%d requests for %d readers, want 1", r.seq, len(keys))
	}
	for i, k := range keys {
		a := answers[i]
		if a.err != nil {
			t.Fatalf("read %s: %v", k, a.err)
		}
		if a.marked {
			t.Fatalf("read %s: marked, but the bucket has no reconciliation mark", k)
		}
		want, ok := revs[k]
		if a.found != ok {
			t.Fatalf("read %s: found = %v, want %v", k, a.found, ok)
		}
		if !ok {
			continue
		}
		got, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if a.e.rev != want || string(a.e.value) != string(got.Value()) {
			t.Fatalf("read %s: revision %d value %s, want %d %s", k, a.e.rev, a.e.value, want, got.Value())
		}
	}

	// Idle again: a read goes out at once, and sees the mark.
	if _, err := kv.Put(ctx, reconciledKey, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	_, found, marked, err := r.read(ctx, "alertdesk-never")
	if err != nil || found || !marked {
		t.Fatalf("read after marking: found=%v marked=%v err=%v, want not found, marked", found, marked, err)
	}
}

// A server that does not know multi_last (before 2.11) reads the request as
// empty and answers 408; the reader then steps aside for good, and the
// store reads the key on its own.
func TestBatchReaderOldServerFallsBack(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	ctx := t.Context()
	r, err := newBatchReader(ctx, e.js, e.res.State, zerolog.Nop())
	if err != nil || r == nil {
		t.Fatalf("newBatchReader = %v, %v; want a reader", r, err)
	}
	t.Cleanup(func() {
		if err := r.close(); err != nil {
			t.Error(err)
		}
	})
	r.api = "test.old-server.direct-get"
	sub, err := e.nc.Subscribe(r.api, func(m *nats.Msg) {
		reply := nats.NewMsg(m.Reply)
		reply.Header.Set("Status", "408")
		reply.Header.Set("Description", "Empty Request")
		if err := m.RespondMsg(reply); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sub.Unsubscribe(); err != nil {
			t.Error(err)
		}
	})

	rev, err := e.res.State.Put(ctx, "alertdesk-x", []byte(`{"key":"x","open":true,"number":"I 2611 001"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.read(ctx, "alertdesk-x"); !errors.Is(err, errBatchUnavailable) {
		t.Fatalf("read against an old server: %v, want errBatchUnavailable", err)
	}
	if _, _, _, err := r.read(ctx, "alertdesk-x"); !errors.Is(err, errBatchUnavailable) || r.seq != 1 {
		t.Fatalf("second read: %v after %d requests; want errBatchUnavailable without a request", err, r.seq)
	}

	s := &stateStore{kv: e.res.State, batch: r, known: knownStates{m: bounded[string, knownState]{max: 10}}}
	st, gotRev, _, err := s.look(ctx, "alertdesk-x")
	if err != nil || gotRev != rev || st.Number != "I 2611 001" || !st.Open {
		t.Fatalf("look = %+v, %d, %v; want the stored state at revision %d", st, gotRev, err, rev)
	}
}

// A bucket whose stream does not allow direct gets is read key by key.
func TestBatchReaderNeedsDirectGet(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	ctx := t.Context()
	info, err := e.js.Stream(ctx, "KV_"+e.topo.StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.CachedInfo().Config
	cfg.AllowDirect = false
	if _, err := e.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	kv, err := e.js.KeyValue(ctx, e.topo.StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	r, err := newBatchReader(ctx, e.js, kv, zerolog.Nop())
	if err != nil || r != nil {
		t.Fatalf("newBatchReader = %v, %v; want none", r, err)
	}
}

// The state a worker remembers for a key may be outdated by another
// worker's write. The compare-and-swap then fails and the key is read
// again: here the remembered state says "open, same content", the bucket
// says "closed", and the firing event must reopen, not pass as a duplicate.
func TestOutdatedKnownStateIsReadAgain(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	rw := e.startWorker(fastOptions())
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

// Closing the reader ends a read whose answer is still out at once, and
// later reads go one by one.
func TestBatchReaderClose(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	ctx := t.Context()
	r, err := newBatchReader(ctx, e.js, e.res.State, zerolog.Nop())
	if err != nil || r == nil {
		t.Fatalf("newBatchReader = %v, %v; want a reader", r, err)
	}
	// A responder that takes the request and never answers.
	r.api = "test.silent.direct-get"
	asked := make(chan struct{}, 1)
	sub, err := e.nc.Subscribe(r.api, func(*nats.Msg) { asked <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sub.Unsubscribe(); err != nil {
			t.Error(err)
		}
	})

	done := make(chan error, 1)
	go func() {
		_, _, _, err := r.read(ctx, "alertdesk-x")
		done <- err
	}()
	<-asked
	if err := r.close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, errBatchUnavailable) {
		t.Fatalf("read cut off by close: %v, want errBatchUnavailable", err)
	}
	if _, _, _, err := r.read(ctx, "alertdesk-x"); !errors.Is(err, errBatchUnavailable) {
		t.Fatalf("read after close: %v, want errBatchUnavailable", err)
	}
}
