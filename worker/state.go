package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// incidentState is what the KV bucket holds per alert key. The bucket key is
// the incident's externalNumber, so the key -> incident link is the same in
// KV and in TOPdesk.
type incidentState struct {
	Key         string    `json:"key"` // the alert key in plain text, for operators
	IncidentID  string    `json:"incident_id,omitempty"`
	Number      string    `json:"number,omitempty"`
	Open        bool      `json:"open"`
	ClosedAt    time.Time `json:"closed_at,omitzero"`
	LastEvent   time.Time `json:"last_event,omitzero"` // event time of the newest applied event
	LastStatus  string    `json:"last_status,omitempty"`
	Fingerprint string    `json:"fingerprint,omitempty"` // content fingerprint of the last applied firing event
	// Uncertain says that a write to TOPdesk may or may not have happened
	// (a lost response, a worker killed mid-call): before creating, the
	// incident must be looked up by externalNumber.
	Uncertain bool   `json:"uncertain,omitempty"`
	Claim     *claim `json:"claim,omitempty"`
}

// claim marks a TOPdesk write in progress for a key. While it is valid no
// other worker writes to TOPdesk for that key. A claim that outlives its
// owner (a killed worker) lapses at Until.
type claim struct {
	Owner string    `json:"owner"`
	Op    string    `json:"op"`
	Until time.Time `json:"until"`
}

// stateStore reads and writes incident state with compare-and-swap on the
// KV revision. Revision 0 means "no state".
type stateStore struct {
	mu sync.RWMutex
	kv jetstream.KeyValue
	// recreate makes the bucket again after it was deleted; nil = don't.
	recreate func(context.Context) (jetstream.KeyValue, error)
}

func (s *stateStore) bucket() jetstream.KeyValue {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.kv
}

// recovered reports whether err means the bucket is gone and, if so,
// creates it again: the state is then rebuilt key by key from TOPdesk.
func (s *stateStore) recovered(ctx context.Context, err error) bool {
	if s.recreate == nil || !(errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	kv, rerr := s.recreate(ctx)
	if rerr != nil {
		return false
	}
	s.kv = kv
	return true
}

var errStateConflict = errors.New("state changed concurrently")

func (s *stateStore) get(ctx context.Context, bucketKey string) (incidentState, uint64, error) {
	e, err := s.bucket().Get(ctx, bucketKey)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) && s.recovered(ctx, err) {
		e, err = s.bucket().Get(ctx, bucketKey)
	}
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return incidentState{}, 0, nil
	}
	if err != nil {
		return incidentState{}, 0, fmt.Errorf("read state: %w", err)
	}
	var st incidentState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		// Unreadable state is treated as lost: the TOPdesk lookup by
		// externalNumber rebuilds it, and the write below replaces it.
		return incidentState{Uncertain: true}, e.Revision(), nil
	}
	return st, e.Revision(), nil
}

// put writes st if the key is still at rev (0 = absent) and returns the new
// revision. A lost race is errStateConflict.
func (s *stateStore) put(ctx context.Context, bucketKey string, st *incidentState, rev uint64) (uint64, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return 0, fmt.Errorf("encode state: %w", err)
	}
	write := func() (uint64, error) {
		if rev == 0 {
			return s.bucket().Create(ctx, bucketKey, b)
		}
		return s.bucket().Update(ctx, bucketKey, b, rev)
	}
	n, err := write()
	if err != nil && s.recovered(ctx, err) {
		// A fresh bucket has no revision to compare with.
		return 0, errStateConflict
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return 0, errStateConflict
	case err != nil:
		return 0, fmt.Errorf("write state: %w", err)
	}
	return n, nil
}

// keyLocks serialises the handling of one alert key inside this process, so
// that events of a key queue up locally instead of racing on the KV
// revision. Across processes the KV claim does the same job.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds one token while locked
	refs int
}

// lock waits for the key's lock or ctx; the returned func unlocks.
func (l *keyLocks) lock(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = make(map[string]*keyLock)
	}
	k := l.locks[key]
	if k == nil {
		k = &keyLock{ch: make(chan struct{}, 1)}
		l.locks[key] = k
	}
	k.refs++
	l.mu.Unlock()

	release := func() {
		l.mu.Lock()
		k.refs--
		if k.refs == 0 {
			delete(l.locks, key)
		}
		l.mu.Unlock()
	}
	select {
	case k.ch <- struct{}{}:
		return func() { <-k.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

// seen is the newest applied event of a key that this worker observed.
type seen struct {
	at          time.Time
	status      string
	fingerprint string
}

// seenCache remembers, per key, the newest applied event this worker saw in
// the KV state. An applied event time only ever grows, so an event that is
// older than one seen here, or the same event again, changes nothing
// whatever other workers did since: it is settled without reading the
// state. That keeps duplicate storms off the KV bucket. Bounded: past max
// keys an arbitrary entry is forgotten, which only costs a KV read.
type seenCache struct {
	mu  sync.Mutex
	m   map[string]seen
	max int
}

func (c *seenCache) get(key string) (seen, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.m[key]
	return s, ok
}

// remember records st's newest applied event for key.
func (c *seenCache) remember(key string, st *incidentState) {
	if st.LastEvent.IsZero() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]seen)
	}
	if old, ok := c.m[key]; ok && old.at.After(st.LastEvent) {
		return
	}
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[key] = seen{at: st.LastEvent, status: st.LastStatus, fingerprint: st.Fingerprint}
}
