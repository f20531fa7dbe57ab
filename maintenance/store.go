package maintenance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// DefaultBucket is the KV bucket that holds ad-hoc windows.
const DefaultBucket = "alertdesk_maintenance"

// markerTTL is how long the bucket keeps the marker of a window that expired
// or was removed, so that watchers that are briefly disconnected still see
// it go.
const markerTTL = 15 * time.Minute

// ErrNotFound is returned by Store.Remove for an ID the bucket does not hold
// (never added, removed, or expired).
var ErrNotFound = errors.New("no such maintenance window")

// Entry is one ad-hoc window as stored: one KV entry per window, key ID,
// value this struct as JSON. The entry expires by itself at To.
type Entry struct {
	ID        string            `json:"id"`
	Match     map[string]string `json:"match"`
	From      time.Time         `json:"from"`
	To        time.Time         `json:"to"`
	Reason    string            `json:"reason"`
	CreatedBy string            `json:"created_by"`
	CreatedAt time.Time         `json:"created_at"`
}

// window validates e and returns it as a Window named by its ID.
func (e *Entry) window() (*Window, error) {
	s := Spec{Match: e.Match, From: e.From, To: e.To, Reason: e.Reason}
	w, err := s.Compile(e.ID)
	if e.Reason == "" {
		err = errors.Join(err, errors.New("reason: an ad-hoc window needs a reason"))
	}
	return w, err
}

// Options configure a Store.
type Options struct {
	Bucket   string // KV bucket; "" = DefaultBucket
	Replicas int    // replicas when the bucket is created; 0 = 1
	// Log receives warnings about entries a Set cannot use.
	Log zerolog.Logger
	// Now is the clock; nil = time.Now.
	Now func() time.Time
}

// Store keeps ad-hoc maintenance windows in a JetStream KV bucket.
type Store struct {
	kv  jetstream.KeyValue
	log zerolog.Logger
	now func() time.Time
}

// Open returns the store, creating its bucket when missing. The bucket needs
// per-key TTLs (NATS server 2.11 or later); an existing bucket created
// without them is reported, not changed.
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Store, error) {
	if opts.Bucket == "" {
		opts.Bucket = DefaultBucket
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// Creating a bucket that exists with the same settings returns it.
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         opts.Bucket,
		Description:    "alertdesk: ad-hoc maintenance windows",
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       opts.Replicas,
		LimitMarkerTTL: markerTTL,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		// It exists with other settings: use it as it is, if it has TTLs.
		kv, err = js.KeyValue(ctx, opts.Bucket)
	}
	if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
		return nil, fmt.Errorf("maintenance bucket %s: per-key TTLs need NATS server 2.11 or later: %w", opts.Bucket, err)
	}
	if err != nil {
		return nil, fmt.Errorf("maintenance bucket %s: %w", opts.Bucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("maintenance bucket %s: %w", opts.Bucket, err)
	}
	if st.LimitMarkerTTL() == 0 {
		return nil, fmt.Errorf("maintenance bucket %s exists without per-key TTLs (limit marker TTL); delete it and let alertdesk create it", opts.Bucket)
	}
	return &Store{kv: kv, log: opts.Log.With().Str("component", "maintenance").Logger(), now: opts.Now}, nil
}

// Add stores a new window and returns it with its ID and creation time set.
// From defaults to now; To must be in the future, since the entry expires at
// To. The error names every problem of e.
func (s *Store) Add(ctx context.Context, e Entry) (Entry, error) {
	now := s.now()
	e.CreatedAt = now.UTC()
	if e.From.IsZero() {
		e.From = now
	}
	e.From, e.To = e.From.UTC(), e.To.UTC()
	id, err := newID()
	if err != nil {
		return Entry{}, err
	}
	e.ID = id
	_, err = e.window()
	// A TTL is whole seconds, at least one.
	ttl := e.To.Sub(now).Truncate(time.Second) + time.Second
	if !e.To.After(now) {
		err = errors.Join(err, fmt.Errorf("to: %s is not in the future", e.To.Format(time.RFC3339)))
	}
	if err != nil {
		return Entry{}, fmt.Errorf("invalid maintenance window:\n%w", err)
	}
	data, err := json.Marshal(e)
	if err != nil {
		return Entry{}, fmt.Errorf("encode maintenance window: %w", err)
	}
	if _, err := s.kv.Create(ctx, e.ID, data, jetstream.KeyTTL(ttl)); err != nil {
		return Entry{}, fmt.Errorf("store maintenance window %s: %w", e.ID, err)
	}
	return e, nil
}

// newID returns a short random window ID (8 hex digits). Add stores it with
// Create, so a clash fails instead of overwriting.
func newID() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("maintenance window id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// List returns the windows that have not ended, ordered by From, then ID.
func (s *Store) List(ctx context.Context) ([]Entry, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list maintenance windows: %w", err)
	}
	defer func() {
		// Stop fails only if the listing is already stopped.
		_ = lister.Stop()
	}()
	now := s.now()
	var out []Entry
	for key := range lister.Keys() {
		kve, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // removed or expired meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("read maintenance window %s: %w", key, err)
		}
		e, err := decodeEntry(kve)
		if err != nil {
			return nil, err
		}
		if e.To.After(now) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := a.From.Compare(b.From); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

func decodeEntry(kve jetstream.KeyValueEntry) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(kve.Value(), &e); err != nil {
		return Entry{}, fmt.Errorf("decode maintenance window %s: %w", kve.Key(), err)
	}
	e.ID = kve.Key()
	return e, nil
}

// Remove ends the window id now. It returns ErrNotFound if the bucket does
// not hold it.
func (s *Store) Remove(ctx context.Context, id string) error {
	kve, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return fmt.Errorf("read maintenance window %s: %w", id, err)
	}
	// Purge drops the value; the purge marker itself goes after markerTTL.
	if err := s.kv.Purge(ctx, id, jetstream.LastRevision(kve.Revision()), jetstream.PurgeTTL(markerTTL)); err != nil {
		return fmt.Errorf("remove maintenance window %s: %w", id, err)
	}
	return nil
}

// Watch returns a Set holding static (the mapping's windows) and the ad-hoc
// windows, kept current by a KV watcher: a window added, removed or expired
// on any connection shows in the Set as soon as the watcher delivers it.
// Watch returns once the Set holds every window stored at the time of the
// call. The Set follows the bucket until ctx is done or Stop is called.
func (s *Store) Watch(ctx context.Context, static Windows) (*Set, error) {
	kw, err := s.kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch maintenance windows: %w", err)
	}
	set := &Set{static: static, adhoc: map[string]*Window{}, watcher: kw, done: make(chan struct{})}
	for kve := range kw.Updates() {
		if kve == nil { // every stored window has been delivered
			go set.follow(kw.Updates(), s.log)
			return set, nil
		}
		set.apply(kve, s.log)
	}
	// The channel closed before the initial values were in.
	close(set.done)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("watch maintenance windows: %w", err)
	}
	return nil, errors.New("watch maintenance windows: the watcher stopped before delivering the stored windows")
}

// Set is the live set of maintenance windows a worker queries. It is safe
// for concurrent use.
type Set struct {
	static  Windows
	watcher jetstream.KeyWatcher
	done    chan struct{}

	mu    sync.RWMutex
	adhoc map[string]*Window
}

// follow applies updates until the watcher stops.
func (set *Set) follow(updates <-chan jetstream.KeyValueEntry, log zerolog.Logger) {
	defer close(set.done)
	for kve := range updates {
		if kve != nil {
			set.apply(kve, log)
		}
	}
}

// apply records one KV update: a put adds or replaces a window, a delete,
// purge or TTL expiry removes it. An entry that is not a valid window is
// logged and left out.
func (set *Set) apply(kve jetstream.KeyValueEntry, log zerolog.Logger) {
	set.mu.Lock()
	defer set.mu.Unlock()
	if kve.Operation() != jetstream.KeyValuePut {
		delete(set.adhoc, kve.Key())
		return
	}
	e, err := decodeEntry(kve)
	var w *Window
	if err == nil {
		w, err = e.window()
	}
	if err != nil {
		delete(set.adhoc, kve.Key())
		log.Warn().Err(err).Str("maintenance_id", kve.Key()).Msg("ignoring an invalid ad-hoc maintenance window")
		return
	}
	set.adhoc[kve.Key()] = w
}

// Cover reports which window, static or ad hoc, covers labels at instant
// at, as Windows.Cover does.
func (set *Set) Cover(labels map[string]string, at time.Time) (Coverage, bool) {
	return set.Windows().Cover(labels, at)
}

// Windows returns a snapshot of every window in the set: the static ones,
// then the ad-hoc ones ordered by ID. Ad-hoc windows that have ended may
// linger until their expiry reaches the watcher; they cover nothing.
func (set *Set) Windows() Windows {
	set.mu.RLock()
	defer set.mu.RUnlock()
	ws := slices.Clone(set.static)
	for _, id := range slices.Sorted(maps.Keys(set.adhoc)) {
		ws = append(ws, set.adhoc[id])
	}
	return ws
}

// Stop stops following the bucket and waits until the Set's goroutine has
// ended. The Set keeps answering from what it last saw.
func (set *Set) Stop() {
	// Unsubscribe fails only when the watcher is stopped already (ctx done,
	// connection closed); either way the updates channel closes.
	_ = set.watcher.Stop()
	<-set.done
}
