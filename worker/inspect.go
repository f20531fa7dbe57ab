package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alertdesk/alertdesk/mapping"
)

// KeyState is what the state bucket holds for one alert key, read for
// people (`alertdesk state`). It is judged as the worker judges it: a
// claim's age by the NATS server's clock against ClaimTTL, an unknown
// write outcome against OutcomeWait. Reading it changes nothing.
type KeyState struct {
	Key            string `json:"key"`
	ExternalNumber string `json:"external_number"` // the bucket key, and the incident's externalNumber in TOPdesk
	IncidentID     string `json:"incident_id,omitempty"`
	Number         string `json:"number,omitempty"`
	Open           bool   `json:"open"`
	// ClosedAt is the event time of the resolve that closed the incident,
	// or TOPdesk's closing time when an operator closed it (ClosedBy).
	ClosedAt   time.Time `json:"closed_at,omitzero"`
	LastEvent  time.Time `json:"last_event,omitzero"` // event time of the newest applied event
	LastStatus string    `json:"last_status,omitempty"`
	// LastPublished is the publish time of the newest applied event.
	LastPublished time.Time `json:"last_published,omitzero"`
	// Uncertain: TOPdesk is asked by externalNumber before the next write.
	Uncertain bool `json:"uncertain,omitempty"`
	// Unreadable: the entry does not decode; the next event looks the key
	// up in TOPdesk and replaces it.
	Unreadable bool       `json:"unreadable,omitempty"`
	Claim      *KeyClaim  `json:"claim,omitempty"`
	Wait       *KeyWait   `json:"wait,omitempty"`
	Written    time.Time  `json:"written"` // NATS server time the entry was written
	Revision   uint64     `json:"revision"`
	ServerNow  time.Time  `json:"server_now"` // NATS server time of the reading
	Reconciled bool       `json:"reconciled"` // the bucket is reconciled with TOPdesk
	Other      OtherState `json:"other,omitempty"`

	// Operators: who closed the incident when it was not alertdesk
	// (ClosedAt is then when), with which closure code, and whether that
	// code is in lifecycle.wontFix.
	ClosedBy    string `json:"closed_by,omitempty"`
	ClosureCode string `json:"closure_code,omitempty"`
	WontFix     bool   `json:"wont_fix,omitempty"`
	// Suppressed: a maintenance window holds a firing event back; in a
	// group, SuppressedMembers holds one per member (alert key -> its).
	Suppressed        *KeySuppression           `json:"suppressed,omitempty"`
	SuppressedMembers map[string]KeySuppression `json:"suppressed_members,omitempty"`

	// Noise control: ResolveAt is the event time of a resolve that waits
	// for lifecycle.resolveDelay; FlappingSince, when the key started
	// flapping (zero: it does not); Changes, its recent firing<->resolved
	// changes.
	ResolveAt     time.Time   `json:"resolve_at,omitzero"`
	FlappingSince time.Time   `json:"flapping_since,omitzero"`
	Changes       []time.Time `json:"changes,omitempty"`
	// Members of a group's incident: alert key -> its newest event.
	Members map[string]KeyMember `json:"members,omitempty"`
}

// KeyMember is a group member's newest applied event.
type KeyMember struct {
	Status string    `json:"status"`
	At     time.Time `json:"at"`
}

// OtherState holds the members of a state entry that this version does not
// know (written by a newer worker), as they are stored.
type OtherState map[string]json.RawMessage

// KeyClaim is a TOPdesk write in progress for a key. While Live, no other
// worker writes for the key; a lapsed claim (its holder died mid-write) is
// taken over by the next event after the unknown-outcome wait.
type KeyClaim struct {
	Holder string        `json:"holder"` // the worker's ID
	Op     string        `json:"op"`
	Since  time.Time     `json:"since"` // NATS server time the claim was written
	Age    time.Duration `json:"age"`   // by the NATS server's clock
	Live   bool          `json:"live"`
	Lapses time.Time     `json:"lapses"` // Since + ClaimTTL
}

// KeyWait is a wait after a write whose outcome is unknown: no write for
// the key before Until; then a lookup in TOPdesk decides.
type KeyWait struct {
	SentAt time.Time `json:"sent_at"`
	Until  time.Time `json:"until"`
}

// Waiting reports whether events of the key wait now: for a live claim, or
// for an unknown outcome.
func (s *KeyState) Waiting() bool {
	return (s.Claim != nil && s.Claim.Live) || (s.Wait != nil && s.ServerNow.Before(s.Wait.Until))
}

// ErrNoState is returned by ReadState for a key the bucket holds nothing of.
var ErrNoState = errors.New("no state for this key")

// StateFilter selects the keys ListStates returns; zero fields select all.
type StateFilter struct {
	Open     bool      // only keys with an open incident
	Claimed  bool      // only keys under a claim, live or lapsed
	Flapping bool      // only keys that flap
	Since    time.Time // only keys whose state was written at or after Since
}

func (f *StateFilter) match(s *KeyState) bool {
	return (!f.Open || s.Open) && (!f.Claimed || s.Claim != nil) && (!f.Flapping || !s.FlappingSince.IsZero()) &&
		!s.Written.Before(f.Since)
}

// ReadState returns the state of the alert key (or of the bucket key, an
// externalNumber) in the state bucket kv; o gives the worker's timing
// (ClaimTTL, HandleTimeout, OutcomeWait; zero values get the defaults). A
// key without state is ErrNoState.
func ReadState(ctx context.Context, kv jetstream.KeyValue, key string, o Options) (KeyState, error) {
	o.setDefaults()
	s := &stateStore{kv: kv}
	now, err := s.serverNow(ctx)
	if err != nil {
		return KeyState{}, err
	}
	e, err := kv.Get(ctx, mapping.ExternalNumber(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) && isExternalNumber(key) {
		e, err = kv.Get(ctx, key)
	}
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return KeyState{}, ErrNoState
	}
	if err != nil {
		return KeyState{}, fmt.Errorf("read state: %w", err)
	}
	ks := newKeyState(e, now, &o)
	ks.Reconciled = s.reconciled(ctx)
	if ks.Key == "" && !isExternalNumber(key) {
		ks.Key = key
	}
	return ks, nil
}

// ListStates returns the states in the bucket kv that f selects, in the
// order of the bucket; o is as for ReadState.
func ListStates(ctx context.Context, kv jetstream.KeyValue, f StateFilter, o Options) ([]KeyState, error) {
	o.setDefaults()
	s := &stateStore{kv: kv}
	now, err := s.serverNow(ctx)
	if err != nil {
		return nil, err
	}
	reconciled := s.reconciled(ctx)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watch, err := kv.WatchAll(wctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list state: %w", err)
	}
	defer watch.Stop() //nolint:errcheck // nothing to do about a failed unsubscribe
	var out []KeyState
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("list state: %w", ctx.Err())
		case e, ok := <-watch.Updates():
			if !ok {
				return nil, errors.New("list state: the watch ended early")
			}
			if e == nil { // every current entry was delivered
				return out, nil
			}
			if !isExternalNumber(e.Key()) {
				continue // the reconciliation marks
			}
			ks := newKeyState(e, now, &o)
			ks.Reconciled = reconciled
			if f.match(&ks) {
				out = append(out, ks)
			}
		}
	}
}

// newKeyState decodes a bucket entry and judges its claim and wait at the
// server time now, the way applyOnce does.
func newKeyState(e jetstream.KeyValueEntry, now time.Time, o *Options) KeyState {
	ks := KeyState{ExternalNumber: e.Key(), Written: e.Created(), Revision: e.Revision(), ServerNow: now}
	var st incidentState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		ks.Unreadable = true
		return ks
	}
	ks.Key, ks.IncidentID, ks.Number, ks.Open, ks.ClosedAt = st.Key, st.IncidentID, st.Number, st.Open, st.ClosedAt
	ks.LastEvent, ks.LastStatus, ks.LastPublished, ks.Uncertain = st.LastEvent, st.LastStatus, st.LastPublished, st.Uncertain
	ks.Other = otherMembers(e.Value())
	ks.ClosedBy, ks.ClosureCode, ks.WontFix = st.ClosedBy, st.ClosureCode, st.WontFix
	ks.Suppressed = st.Suppressed.forPeople()
	for k, s := range st.SuppressedMembers {
		if ks.SuppressedMembers == nil {
			ks.SuppressedMembers = make(map[string]KeySuppression, len(st.SuppressedMembers))
		}
		ks.SuppressedMembers[k] = *s.forPeople()
	}
	ks.ResolveAt, ks.FlappingSince, ks.Changes = st.ResolveAt, st.FlappingSince, st.Changes
	for k, m := range st.Members {
		if ks.Members == nil {
			ks.Members = make(map[string]KeyMember, len(st.Members))
		}
		ks.Members[k] = KeyMember{Status: m.Status, At: m.At}
	}
	sentAt := st.SentAt
	if st.Claim != nil {
		lapses := e.Created().Add(o.ClaimTTL)
		ks.Claim = &KeyClaim{Holder: st.Claim.Owner, Op: st.Claim.Op, Since: e.Created(), Age: now.Sub(e.Created()),
			Live: now.Before(lapses), Lapses: lapses}
		if !ks.Claim.Live {
			// Its write may have been sent until its holder's handle timeout.
			sentAt = maxTime(sentAt, e.Created().Add(o.HandleTimeout))
		}
	}
	if !sentAt.IsZero() {
		ks.Wait = &KeyWait{SentAt: sentAt, Until: sentAt.Add(o.OutcomeWait)}
	}
	return ks
}

// otherMembers returns the members of the entry b that incidentState does
// not declare.
func otherMembers(b []byte) OtherState {
	var all map[string]json.RawMessage
	if json.Unmarshal(b, &all) != nil {
		return nil
	}
	t := reflect.TypeFor[incidentState]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		delete(all, name)
	}
	if len(all) == 0 {
		return nil
	}
	return all
}

// isExternalNumber reports whether s has the form of mapping.ExternalNumber.
func isExternalNumber(s string) bool {
	hex, ok := strings.CutPrefix(s, "alertdesk-")
	return ok && len(hex) == 32 && strings.Trim(hex, "0123456789abcdef") == ""
}
