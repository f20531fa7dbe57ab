package maintenance_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/maintenance"
	"github.com/alertdesk/alertdesk/worker/workertest"
)

// waitTimeout bounds every wait for the watcher or the server's TTL expiry.
const waitTimeout = 10 * time.Second

// openStores starts an embedded JetStream and opens the store on two
// connections: one that writes, one that watches.
func openStores(t *testing.T) (writer, watcher *maintenance.Store, js jetstream.JetStream) {
	t.Helper()
	ns := workertest.StartJetStream(t)
	_, js = workertest.Connect(t, ns)
	_, js2 := workertest.Connect(t, ns)
	var err error
	if writer, err = maintenance.Open(t.Context(), js, maintenance.Options{}); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if watcher, err = maintenance.Open(t.Context(), js2, maintenance.Options{Log: zerolog.Nop()}); err != nil {
		t.Fatalf("Open on the second connection: %v", err)
	}
	return writer, watcher, js
}

func watch(t *testing.T, s *maintenance.Store, static maintenance.Windows) *maintenance.Set {
	t.Helper()
	set, err := s.Watch(t.Context(), static)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	t.Cleanup(set.Stop)
	return set
}

func TestStoreAddSeenByWatcherThenRemoved(t *testing.T) {
	writer, watcher, _ := openStores(t)
	static, err := maintenance.Compile([]maintenance.Spec{{Match: map[string]string{"env": "staging"}, Schedule: "0 * * * *", Duration: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	set := watch(t, watcher, static)
	db7 := map[string]string{"host": "db-7", "env": "prod"}
	if _, ok := set.Cover(db7, time.Now()); ok {
		t.Fatal("db-7 covered before any window was added")
	}
	if cov, ok := set.Cover(map[string]string{"env": "staging"}, time.Now()); !ok || cov.Window.ID != "maintenance[0]" {
		t.Errorf("staging coverage = %+v, %v; want the static window maintenance[0]", cov, ok)
	}

	before := time.Now()
	added, err := writer.Add(t.Context(), maintenance.Entry{
		Match: map[string]string{"host": "db-7"}, To: before.Add(2 * time.Hour), Reason: "disk swap", CreatedBy: "alice",
	})
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	if len(added.ID) != 8 || added.From.Before(before.Add(-time.Second)) || added.CreatedAt.IsZero() || added.CreatedBy != "alice" {
		t.Errorf("Add returned %+v; want an 8-digit ID, From about now, CreatedAt set", added)
	}

	var cov maintenance.Coverage
	wait.For(t, waitTimeout, "the watcher on the other connection sees the window", func() bool {
		var ok bool
		cov, ok = set.Cover(db7, time.Now())
		return ok
	})
	if cov.Window.ID != added.ID || cov.Window.Reason != "disk swap" || !cov.End.Equal(added.To) {
		t.Errorf("coverage = %s (%q) until %s, want %s (disk swap) until %s", cov.Window.ID, cov.Window.Reason, cov.End, added.ID, added.To)
	}

	list, err := watcher.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if diff := cmp.Diff([]maintenance.Entry{added}, list); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}

	if err := writer.Remove(t.Context(), added.ID); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	wait.For(t, waitTimeout, "the watcher sees the window removed", func() bool {
		_, ok := set.Cover(db7, time.Now())
		return !ok
	})
	if err := writer.Remove(t.Context(), added.ID); !errors.Is(err, maintenance.ErrNotFound) {
		t.Errorf("second Remove = %v, want ErrNotFound", err)
	}
	if list, err := writer.List(t.Context()); err != nil || len(list) != 0 {
		t.Errorf("List after Remove = %v, %v; want none", list, err)
	}
	if got := len(set.Windows()); got != 1 {
		t.Errorf("the set holds %d windows after Remove, want the static one", got)
	}
}

func TestStoreWindowExpiresByItself(t *testing.T) {
	writer, watcher, js := openStores(t)
	now := time.Now()
	// Ends in 10ms: the entry's TTL is the server's minimum, one second.
	added, err := writer.Add(t.Context(), maintenance.Entry{
		Match: map[string]string{"host": "db-7"}, From: now.Add(-time.Hour), To: now.Add(10 * time.Millisecond), Reason: "reboot",
	})
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	set := watch(t, watcher, nil)
	kv, err := js.KeyValue(t.Context(), maintenance.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	wait.For(t, waitTimeout, "the server expires the entry and the watcher drops it", func() bool {
		_, err := kv.Get(t.Context(), added.ID)
		return errors.Is(err, jetstream.ErrKeyNotFound) && len(set.Windows()) == 0
	})
}

// TestStoreWatchLoadsStoredWindows checks that Watch returns with the
// windows stored before it was called.
func TestStoreWatchLoadsStoredWindows(t *testing.T) {
	writer, watcher, _ := openStores(t)
	to := time.Now().Add(time.Hour)
	for _, host := range []string{"db-7", "db-8"} {
		if _, err := writer.Add(t.Context(), maintenance.Entry{Match: map[string]string{"host": host}, To: to, Reason: "patching"}); err != nil {
			t.Fatalf("Add: %v", err)
		}
	}
	set := watch(t, watcher, nil)
	for _, host := range []string{"db-7", "db-8"} {
		if _, ok := set.Cover(map[string]string{"host": host}, time.Now()); !ok {
			t.Errorf("%s not covered right after Watch returned", host)
		}
	}
}

func TestStoreIgnoresInvalidEntries(t *testing.T) {
	writer, watcher, js := openStores(t)
	kv, err := js.KeyValue(t.Context(), maintenance.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "garbage", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "nomatch", []byte(`{"from":"2026-01-01T00:00:00Z","to":"2099-01-01T00:00:00Z","reason":"x"}`)); err != nil {
		t.Fatal(err)
	}
	set := watch(t, watcher, nil)
	if got := len(set.Windows()); got != 0 {
		t.Errorf("the set holds %d windows, want the invalid entries left out", got)
	}
	if _, err := writer.List(t.Context()); err == nil || !strings.Contains(err.Error(), "garbage") {
		t.Errorf("List = %v, want an error naming the undecodable entry", err)
	}
}

func TestStoreAddRejects(t *testing.T) {
	writer, _, _ := openStores(t)
	now := time.Now()
	_, err := writer.Add(t.Context(), maintenance.Entry{Match: map[string]string{"host": ""}, From: now, To: now.Add(-time.Minute)})
	if err == nil {
		t.Fatal("Add succeeded, want an error")
	}
	for _, want := range []string{"match.host: the value is empty", "to: ", "is not after from", "reason: an ad-hoc window needs a reason", "is not in the future"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Add error %q does not mention %q", err, want)
		}
	}
	if list, err := writer.List(t.Context()); err != nil || len(list) != 0 {
		t.Errorf("List = %v, %v; want nothing stored", list, err)
	}
}

func TestOpenRejectsBucketWithoutTTL(t *testing.T) {
	ns := workertest.StartJetStream(t)
	_, js := workertest.Connect(t, ns)
	if _, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "mw"}); err != nil {
		t.Fatal(err)
	}
	_, err := maintenance.Open(t.Context(), js, maintenance.Options{Bucket: "mw"})
	if err == nil || !strings.Contains(err.Error(), "without per-key TTLs") {
		t.Errorf("Open = %v, want the missing per-key TTLs reported", err)
	}
}
