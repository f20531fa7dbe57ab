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

	"github.com/alertdesk/alertdesk/mapping"
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
	// Brief is the incident's brief description as alertdesk last wrote
	// it (or found it): a resolve keeps it, prefixed.
	Brief string `json:"brief,omitempty"`
	// LastPublished is the publish time of the newest applied event's
	// message: an Alertmanager re-fire is told from a late HA copy by it.
	LastPublished time.Time `json:"last_published,omitzero"`
	// Uncertain says that TOPdesk must be asked by externalNumber before
	// the next write (the state was unreadable, or TOPdesk holds several
	// open incidents for the key).
	Uncertain bool `json:"uncertain,omitempty"`
	// SentAt is the NATS server time after a write whose outcome is
	// unknown: no write for the key before SentAt + OutcomeWait; then a
	// lookup by externalNumber decides.
	SentAt time.Time `json:"sent_at,omitzero"`
	Claim  *claim    `json:"claim,omitempty"`
	// Suppressed: a maintenance window holds a firing event back
	// (suppress.go); in a group, SuppressedMembers holds one per member
	// (alert key -> its event). A group's state written before that may
	// hold one member's in Suppressed.
	Suppressed        *suppression            `json:"suppressed,omitempty"`
	SuppressedMembers map[string]*suppression `json:"suppressed_members,omitempty"`
	// Noise control (noise.go): ResolveAt is the event time of a resolve
	// that waits for lifecycle.resolveDelay (zero: none); Changes are the
	// times of the latest firing<->resolved changes within flapping.window
	// (at most flapping.changes); FlappingSince, the time of the change
	// that started flapping, holds the incident open (zero: not flapping).
	ResolveAt     time.Time   `json:"resolve_at,omitzero"`
	Changes       []time.Time `json:"changes,omitempty"`
	FlappingSince time.Time   `json:"flapping_since,omitzero"`

	// Operators (worker/observe.go): ClosedBy names who closed the
	// incident when it was not alertdesk (ClosedAt is then TOPdesk's
	// closedDate), ClosureCode the closure code it was closed with, and
	// WontFix says that code is in lifecycle.wontFix.
	ClosedBy    string `json:"closed_by,omitempty"`
	ClosureCode string `json:"closure_code,omitempty"`
	WontFix     bool   `json:"wont_fix,omitempty"`

	// What alertdesk last wrote of the updatable fields, and the publish
	// time of the event that added the key's last action (fields.go).
	Fields   *writtenFields `json:"fields,omitempty"`
	RepeatAt time.Time      `json:"repeat_at,omitzero"`

	// grouping: the members of a group's incident (alert key -> its
	// newest applied event), and the major call a new incident of a storm
	// was linked to.
	Members map[string]member `json:"members,omitempty"`
	Storm   *stormLink        `json:"storm,omitempty"`
}

// claim marks a TOPdesk write in progress for a key. While it is valid no
// other worker writes to TOPdesk for that key. Its age is judged by the NATS
// server's clock: the timestamp of the bucket entry that carries it against
// the server's time now (NATS.md §8), never by a worker's wall clock.
type claim struct {
	Owner string `json:"owner"`
	Op    string `json:"op"`
}

// stateStore reads and writes incident state with compare-and-swap on the
// KV revision. Revision 0 means "no state".
type stateStore struct {
	mu sync.RWMutex
	kv jetstream.KeyValue
	// recreate makes the bucket again after it was deleted; nil = don't.
	recreate func(context.Context) (jetstream.KeyValue, error)
	known    knownStates
	// reconciledUntil is when a positive answer of reconciled expires
	// (guarded by mu).
	reconciledUntil time.Time
	// js publishes a state with a TTL, which the KV API offers on create
	// only; closedTTL is how long the state of a closed incident is kept
	// (zero = for ever, when the bucket has no per-key TTL).
	js        jetstream.JetStream
	closedTTL stateTTL
	// opTime observes how long a state operation that went to NATS took;
	// nil = not observed.
	opTime func(op stateOp, d time.Duration)
}

// stateOp names a state operation for the duration histogram.
type stateOp string

const (
	opRead   stateOp = "read"   // a key's state read from the bucket
	opClaim  stateOp = "claim"  // the claim written before a TOPdesk write
	opCommit stateOp = "commit" // the state written after a TOPdesk write, releasing the claim
	opWrite  stateOp = "write"  // any other state write of an event (a newer duplicate, a lookup's result)
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
	s.reconciledUntil = time.Time{}
	return true
}

var errStateConflict = errors.New("state changed concurrently")

// load returns a key's state, its revision and, from a read of the
// bucket, the server time the entry was written. The state this worker last
// read or wrote is taken from memory unless fresh is set; it may be stale,
// which is harmless: every write is a compare-and-swap on the revision, and
// a lost one reads again. States under a claim are never taken from memory.
func (s *stateStore) load(ctx context.Context, bucketKey string, fresh bool) (incidentState, uint64, time.Time, error) {
	if !fresh {
		if st, rev, ok := s.known.get(bucketKey); ok {
			return st, rev, time.Time{}, nil
		}
	}
	defer s.observe(opRead, time.Now())
	e, err := s.bucket().Get(ctx, bucketKey)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) && s.recovered(ctx, err) {
		e, err = s.bucket().Get(ctx, bucketKey)
	}
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		s.known.forget(bucketKey)
		return incidentState{}, 0, time.Time{}, nil
	}
	if err != nil {
		return incidentState{}, 0, time.Time{}, fmt.Errorf("read state: %w", err)
	}
	var st incidentState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		// Unreadable state is treated as lost: the TOPdesk lookup by
		// externalNumber rebuilds it, and the write below replaces it.
		s.known.forget(bucketKey)
		return incidentState{Uncertain: true}, e.Revision(), e.Created(), nil
	}
	s.known.put(bucketKey, &st, e.Revision())
	return st, e.Revision(), e.Created(), nil
}

// info is the state bucket's stream info: its creation time tells one
// bucket from another of the same name, and its timestamp is the NATS
// server's time now.
func (s *stateStore) info(ctx context.Context) (*jetstream.StreamInfo, error) {
	st, err := s.bucket().Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("read state bucket info: %w", err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok || bs.StreamInfo() == nil || bs.StreamInfo().TimeStamp.IsZero() {
		return nil, errors.New("read state bucket info: the NATS server gives no timestamp (needs 2.10 or later)")
	}
	return bs.StreamInfo(), nil
}

// serverNow is the NATS server's time now, the one clock by which claims
// and unknown write outcomes are judged.
func (s *stateStore) serverNow(ctx context.Context) (time.Time, error) {
	info, err := s.info(ctx)
	if err != nil {
		return time.Time{}, err
	}
	return info.TimeStamp, nil
}

// put writes st if the key is still at rev (0 = absent) and returns the new
// revision. A lost race is errStateConflict.
func (s *stateStore) put(ctx context.Context, op stateOp, bucketKey string, st *incidentState, rev uint64) (uint64, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return 0, fmt.Errorf("encode state: %w", err)
	}
	defer s.observe(op, time.Now())
	n, err := s.write(ctx, bucketKey, b, rev, s.ttl(st))
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

// ttl is how long the bucket keeps st: the state of a closed incident
// expires closedTTL after it was written, that of a key without an
// incident (it only resolved) after the margin of closedTTL; a later write
// replaces it, and with it the TTL. Every other state is kept.
func (s *stateStore) ttl(st *incidentState) time.Duration {
	switch {
	case st.Suppressed != nil || st.SuppressedMembers != nil: // kept until the window ends
		return 0
	case s.closedTTL.total == 0 || st.Open || st.Claim != nil || !st.SentAt.IsZero() || st.Uncertain:
		return 0
	case st.IncidentID == "":
		return s.closedTTL.margin
	}
	return s.closedTTL.total
}

// write writes b as the entry bucketKey if it is still at rev (0 =
// absent), with a per-key TTL unless ttl is 0.
func (s *stateStore) write(ctx context.Context, bucketKey string, b []byte, rev uint64, ttl time.Duration) (uint64, error) {
	switch {
	case rev == 0 && ttl > 0:
		return s.bucket().Create(ctx, bucketKey, b, jetstream.KeyTTL(ttl))
	case rev == 0:
		return s.bucket().Create(ctx, bucketKey, b)
	case ttl > 0:
		return s.updateTTL(ctx, bucketKey, b, rev, ttl)
	}
	return s.bucket().Update(ctx, bucketKey, b, rev)
}

// updateTTL is KeyValue.Update with a per-key TTL: the same publish to the
// key's subject, expecting its revision, with a Nats-TTL.
func (s *stateStore) updateTTL(ctx context.Context, bucketKey string, b []byte, rev uint64, ttl time.Duration) (uint64, error) {
	msg := &nats.Msg{Subject: "$KV." + s.bucket().Bucket() + "." + bucketKey, Data: b}
	ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(ttl))
	var ae *jetstream.APIError
	if errors.As(err, &ae) && (ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return 0, fmt.Errorf("%w: %w", err, jetstream.ErrKeyRevisionMismatch)
	}
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// stateTTL is how long the state of a closed incident is kept (total):
// the reopen window plus a margin for late events (the reorder window, at
// least a quarter of the reopen window, at least 1s). A key that only
// resolved is kept for the margin alone. Zero: kept for ever.
type stateTTL struct{ total, margin time.Duration }

func closedStateTTL(lc mapping.Lifecycle) stateTTL {
	margin := max(lc.ReorderWindow, lc.ReopenWindow/4, time.Second)
	return stateTTL{total: lc.ReopenWindow + margin, margin: margin}
}

// knownStates is, per key, the state at the revision this worker last read
// or wrote: the worker's one cache of state, bounded by Options.SeenKeys.
// It spares the read of a key that no other worker wrote since; when one
// did, the compare-and-swap fails and the key is read again. States under a claim are not kept: they are about to change.
type knownStates struct {
	m bounded[string, knownState]
}

type knownState struct {
	st  incidentState
	rev uint64
}

func (k *knownStates) get(key string) (incidentState, uint64, bool) {
	e, ok := k.m.get(key)
	return e.st, e.rev, ok
}

func (k *knownStates) put(key string, st *incidentState, rev uint64) {
	if st.Claim != nil || rev == 0 {
		k.forget(key)
		return
	}
	k.m.put(key, knownState{st: *st, rev: rev})
}

func (k *knownStates) forget(key string) { k.m.delete(key) }

func (k *knownStates) clear() { k.m.clear() }

// keyLocks serialises the handling of one alert key inside this process, so
// that events of a key queue up locally instead of racing on the KV
// revision. Across processes the KV claim does the same job. The keys are
// spread over shards, each with its own mutex.
type keyLocks struct {
	s [shards]struct {
		mu    sync.Mutex
		locks map[string]*keyLock
	}
}

type keyLock struct {
	ch   chan struct{} // holds one token while locked
	refs int
}

// lock waits for the key's lock or ctx; the returned func unlocks.
func (l *keyLocks) lock(ctx context.Context, key string) (func(), error) {
	s := &l.s[shardOf(key)]
	s.mu.Lock()
	if s.locks == nil {
		s.locks = make(map[string]*keyLock)
	}
	k := s.locks[key]
	if k == nil {
		k = &keyLock{ch: make(chan struct{}, 1)}
		s.locks[key] = k
	}
	k.refs++
	s.mu.Unlock()

	release := func() {
		s.mu.Lock()
		k.refs--
		if k.refs == 0 {
			delete(s.locks, key)
		}
		s.mu.Unlock()
	}
	select {
	case k.ch <- struct{}{}:
		return func() { <-k.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
