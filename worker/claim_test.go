package worker

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// lostClaimAnswer is the state bucket with one fault: while lose is set,
// the next claim write lands and its answer is lost (a timeout), as when
// a worker stops or NATS answers too late.
type lostClaimAnswer struct {
	jetstream.KeyValue
	lose atomic.Bool
}

func (k *lostClaimAnswer) lost(value []byte, rev uint64, err error) (uint64, error) {
	if err == nil && bytes.Contains(value, []byte(`"claim":{`)) && k.lose.CompareAndSwap(true, false) {
		return 0, nats.ErrTimeout
	}
	return rev, err
}

func (k *lostClaimAnswer) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	rev, err := k.KeyValue.Create(ctx, key, value, opts...)
	return k.lost(value, rev, err)
}

func (k *lostClaimAnswer) Update(ctx context.Context, key string, value []byte, last uint64) (uint64, error) {
	rev, err := k.KeyValue.Update(ctx, key, value, last)
	return k.lost(value, rev, err)
}

// TestClaimTakenBackAfterLostAnswer: a claim write whose answer was lost
// but which landed is taken back at once (nothing was sent to TOPdesk
// under it): the key holds no claim afterwards.
func TestClaimTakenBackAfterLostAnswer(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	kv := &lostClaimAnswer{KeyValue: e.res.State}
	e.res.State = kv
	w, err := New(e.res, e.api, e.resolver, e.mapping, fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	const key = "db-7/disk-full"
	ext := mapping.ExternalNumber(key)
	st := incidentState{Key: key}
	claimed := st
	claimed.Claim = &claim{Owner: w.opts.ID, Op: "create"}
	kv.lose.Store(true)
	if _, err := w.claim(t.Context(), ext, &st, &claimed, 0); err == nil {
		t.Fatal("claim: no error although its answer was lost")
	}
	held, rev, _, err := w.state.load(t.Context(), ext, true)
	if err != nil {
		t.Fatal(err)
	}
	if rev == 0 || held.Claim != nil || held.Key != key {
		t.Fatalf("after the lost answer: revision %d, claim %+v, key %q; want the state as read, without the claim", rev, held.Claim, held.Key)
	}
}

// TestLostClaimAnswerDoesNotWait: an event whose claim answer was lost is
// applied on its next delivery, not after the handle timeout a claim left
// behind by its own worker would make the key wait.
func TestLostClaimAnswerDoesNotWait(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	kv := &lostClaimAnswer{KeyValue: e.res.State}
	e.res.State = kv
	kv.lose.Store(true)
	opts := fastOptions() // HandleTimeout 10s
	e.startWorker(opts)
	e.publish(firing("db-7/disk-full", "critical", "Disk / at 97% on db-7", time.Now()))
	wait.For(t, opts.HandleTimeout/2, "the incident to be created", func() bool {
		return len(e.incidentsFor("db-7/disk-full")) == 1
	})
	if kv.lose.Load() {
		t.Fatal("no claim answer was lost: the test tests nothing")
	}
	e.waitSettled(10 * time.Second)
	if n := len(e.incidentsFor("db-7/disk-full")); n != 1 {
		t.Fatalf("%d incidents, want 1", n)
	}
}
