package worker

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/worker/workertest"
)

// TestReadStateJudgesLikeTheWorker: a claim older than ClaimTTL is lapsed
// and its key waits HandleTimeout + OutcomeWait after the claim was
// written; members a newer worker writes are kept as they are; an
// unreadable entry says so; list skips the reconciliation marks and
// filters.
func TestReadStateJudgesLikeTheWorker(t *testing.T) {
	ctx := t.Context()
	_, js := workertest.Connect(t, workertest.StartJetStream(t))
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "state"})
	if err != nil {
		t.Fatal(err)
	}
	if states, err := ListStates(ctx, kv, StateFilter{}, Options{}); err != nil || len(states) != 0 {
		t.Fatalf("list of an empty bucket = %v, %v; want none", states, err)
	}
	put := func(key, value string) {
		t.Helper()
		if _, err := kv.Put(ctx, key, []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
	put(mapping.ExternalNumber("dead"), `{"key":"dead","incident_id":"i1","number":"I 1","open":true,"claim":{"owner":"w-dead","op":"update"}}`)
	put(mapping.ExternalNumber("later"), `{"key":"later","open":false,"grouped_by":"cluster","flapping":true}`)
	put(mapping.ExternalNumber("flappy"), `{"key":"flappy","open":true,"flapping_since":"2026-11-22T10:00:00Z","changes":["2026-11-22T09:50:00Z","2026-11-22T10:00:00Z"],"members":{"h-1":{"status":"firing","at":"2026-11-22T10:00:00Z"}}}`)
	put(mapping.ExternalNumber("garbage"), `{not json`)
	put(reconciledKey, `{}`)

	o := Options{ClaimTTL: time.Millisecond, HandleTimeout: time.Second, OutcomeWait: time.Hour}
	var dead KeyState
	wait.For(t, 10*time.Second, "the claim to lapse by the server's clock", func() bool {
		if dead, err = ReadState(ctx, kv, "dead", o); err != nil {
			t.Fatal(err)
		}
		return !dead.Claim.Live
	})
	if dead.Claim.Holder != "w-dead" || dead.Claim.Op != "update" || dead.Number != "I 1" || !dead.Open || dead.Reconciled {
		t.Errorf("state = %+v, claim %+v", dead, dead.Claim)
	}
	if dead.Wait == nil || !dead.Wait.SentAt.Equal(dead.Written.Add(time.Second)) || !dead.Wait.Until.Equal(dead.Wait.SentAt.Add(time.Hour)) || !dead.Waiting() {
		t.Errorf("wait = %+v, want from the claim's write + HandleTimeout for OutcomeWait", dead.Wait)
	}

	later, err := ReadState(ctx, kv, mapping.ExternalNumber("later"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if later.Key != "later" || string(later.Other["grouped_by"]) != `"cluster"` || string(later.Other["flapping"]) != "true" || len(later.Other) != 2 {
		t.Errorf("state read by its externalNumber = %+v, want the unknown members grouped_by and flapping", later)
	}
	if garbage, err := ReadState(ctx, kv, "garbage", Options{}); err != nil || !garbage.Unreadable || garbage.Key != "garbage" {
		t.Errorf("unreadable state = %+v, %v", garbage, err)
	}
	if _, err := ReadState(ctx, kv, "none", Options{}); !errors.Is(err, ErrNoState) {
		t.Errorf("missing key: err = %v, want ErrNoState", err)
	}

	list := func(f StateFilter) []string {
		t.Helper()
		states, err := ListStates(ctx, kv, f, o)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, s := range states {
			keys = append(keys, s.ExternalNumber)
		}
		return keys
	}
	if got := list(StateFilter{}); len(got) != 4 {
		t.Errorf("list = %q, want the four keys without the reconciliation mark", got)
	}
	if got := list(StateFilter{Flapping: true}); len(got) != 1 || got[0] != mapping.ExternalNumber("flappy") {
		t.Errorf("list flapping = %q, want only flappy", got)
	}
	flappy, err := ReadState(ctx, kv, "flappy", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if flappy.FlappingSince.IsZero() || len(flappy.Changes) != 2 || flappy.Members["h-1"].Status != "firing" || len(flappy.Other) != 0 {
		t.Errorf("flapping group state = %+v, want its flap and member read", flappy)
	}
	if got := list(StateFilter{Open: true}); len(got) != 2 {
		t.Errorf("list open = %q, want dead and flappy", got)
	}
	if got := list(StateFilter{Claimed: true}); len(got) != 1 || got[0] != mapping.ExternalNumber("dead") {
		t.Errorf("list claimed = %q, want only dead", got)
	}
	if got := list(StateFilter{Since: time.Now().Add(time.Hour)}); len(got) != 0 {
		t.Errorf("list since an hour ahead = %q, want none", got)
	}
}
