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
	// batch reads unknown keys together with the reconciliation mark; nil
	// = one by one.
	batch *batchReader
	known knownStates
	// opTime observes how long a state operation that went to NATS took;
	// nil = not observed.
	opTime func(op stateOp, d time.Duration)
}

// stateOp names a state operation for the duration histogram.
type stateOp string

const (
	opRead   stateOp = "read"   // a key's state read from the bucket (batched or alone)
	opClaim  stateOp = "claim"  // the claim written before a TOPdesk write
	opCommit stateOp = "commit" // the state written after a TOPdesk write, releasing the claim
	opWrite  stateOp = "write"  // any other state write (a newer duplicate, reconciliation)
)

// observe records an operation started at start.
func (s *stateStore) observe(op stateOp, start time.Time) {
	if s.opTime != nil {
		s.opTime(op, time.Since(start))
	}
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
	s.known.clear()
	return true
}

var errStateConflict = errors.New("state changed concurrently")

// mark is what a read of a key's state says about the bucket's
// reconciliation mark.
type mark uint8

const (
	markUnread  mark = iota // not read with the state
	markAbsent              // read with the state: the bucket is not reconciled
	markPresent             // read with the state: the bucket is reconciled
)

// look is the first read of a key for an event: the state this worker
// last read or wrote, else a batched read, else a read of its own. Any of
// them may be stale by the time it is used, which is harmless: every write
// is a compare-and-swap on the revision, and a lost one reads again with
// get. A batched read also says whether the bucket's reconciliation mark
// was there.
func (s *stateStore) look(ctx context.Context, bucketKey string) (st incidentState, rev uint64, m mark, err error) {
	if st, rev, ok := s.known.get(bucketKey); ok {
		return st, rev, markUnread, nil
	}
	defer s.observe(opRead, time.Now())
	if s.batch != nil {
		e, found, marked, err := s.batch.read(ctx, bucketKey)
		m := markAbsent
		if marked {
			m = markPresent
		}
		switch {
		case err == nil && !found:
			return incidentState{}, 0, m, nil
		case err == nil:
			st, rev := s.decode(bucketKey, e.value, e.rev)
			return st, rev, m, nil
		case ctx.Err() != nil:
			return incidentState{}, 0, markUnread, err
		}
	}
	st, rev, err = s.read(ctx, bucketKey)
	return st, rev, markUnread, err
}

// get reads a key's state from the bucket.
func (s *stateStore) get(ctx context.Context, bucketKey string) (incidentState, uint64, error) {
	defer s.observe(opRead, time.Now())
	return s.read(ctx, bucketKey)
}

func (s *stateStore) read(ctx context.Context, bucketKey string) (incidentState, uint64, error) {
	e, err := s.bucket().Get(ctx, bucketKey)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) && s.recovered(ctx, err) {
		e, err = s.bucket().Get(ctx, bucketKey)
	}
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		s.known.forget(bucketKey)
		return incidentState{}, 0, nil
	}
	if err != nil {
		return incidentState{}, 0, fmt.Errorf("read state: %w", err)
	}
	st, rev := s.decode(bucketKey, e.Value(), e.Revision())
	return st, rev, nil
}

// decode reads a stored state and remembers it as known.
func (s *stateStore) decode(bucketKey string, value []byte, rev uint64) (incidentState, uint64) {
	var st incidentState
	if err := json.Unmarshal(value, &st); err != nil {
		// Unreadable state is treated as lost: the TOPdesk lookup by
		// externalNumber rebuilds it, and the write below replaces it.
		s.known.forget(bucketKey)
		return incidentState{Uncertain: true}, rev
	}
	s.known.put(bucketKey, &st, rev)
	return st, rev
}

// put writes st if the key is still at rev (0 = absent) and returns the new
// revision. A lost race is errStateConflict.
func (s *stateStore) put(ctx context.Context, op stateOp, bucketKey string, st *incidentState, rev uint64) (uint64, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return 0, fmt.Errorf("encode state: %w", err)
	}
	defer s.observe(op, time.Now())
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
		s.known.forget(bucketKey)
		return 0, errStateConflict
	case err != nil:
		// The write may have landed or not.
		s.known.forget(bucketKey)
		return 0, fmt.Errorf("write state: %w", err)
	}
	s.known.put(bucketKey, st, n)
	return n, nil
}

// knownStates is, per key, the state at the revision this worker last read
// or wrote. It spares the read before a write when no other worker wrote
// the key since; when one did, the compare-and-swap fails and the key is
// read again. States under a claim are not kept: they are about to change.
type knownStates struct {
	mu sync.Mutex
	m  bounded[string, knownState]
}

type knownState struct {
	st  incidentState
	rev uint64
}

func (k *knownStates) get(key string) (incidentState, uint64, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.m.get(key)
	return e.st, e.rev, ok
}

func (k *knownStates) put(key string, st *incidentState, rev uint64) {
	if st.Claim != nil || rev == 0 {
		k.forget(key)
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m.put(key, knownState{st: *st, rev: rev})
}

func (k *knownStates) forget(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m.delete(key)
}

func (k *knownStates) clear() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m.clear()
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
// state. That keeps duplicate storms off the KV bucket.
type seenCache struct {
	mu sync.Mutex
	m  bounded[string, seen]
}

func (c *seenCache) get(key string) (seen, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m.get(key)
}

// remember records st's newest applied event for key.
func (c *seenCache) remember(key string, st *incidentState) {
	if st.LastEvent.IsZero() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m.get(key); ok && old.at.After(st.LastEvent) {
		return
	}
	c.m.put(key, seen{at: st.LastEvent, status: st.LastStatus, fingerprint: st.Fingerprint})
}
