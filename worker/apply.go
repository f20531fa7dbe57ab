package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
)

// decision is what an event does to its key's incident.
type decision int

const (
	doNothing decision = iota
	doCreate
	doUpdate
	doResolve
	doReopen
)

var decisionOp = map[decision]mapping.Op{
	doCreate:  mapping.OpCreate,
	doUpdate:  mapping.OpUpdate,
	doResolve: mapping.OpResolve,
	doReopen:  mapping.OpReopen,
}

var decisionOutcome = map[decision]string{
	doNothing: outcomeDuplicate,
	doCreate:  outcomeCreated,
	doUpdate:  outcomeUpdated,
	doResolve: outcomeClosed,
	doReopen:  outcomeReopened,
}

// decide is the README's lifecycle table for an event at time at,
// given the key's state. The content fingerprint is rendered only when the
// table needs it (a firing event for an open incident).
func (w *Worker) decide(st *incidentState, a *mapping.Alert, at time.Time, fp *lazyFingerprint) (decision, error) {
	if a.Status == mapping.StatusResolved {
		if st.IncidentID != "" && st.Open {
			return doResolve, nil
		}
		return doNothing, nil
	}
	switch {
	case st.IncidentID == "":
		return doCreate, nil
	case st.Open:
		// An adopted incident has no fingerprint: its content is unknown, so
		// the first firing event writes its own.
		v, err := fp.get()
		if err != nil {
			return doNothing, err
		}
		if v == st.Fingerprint {
			return doNothing, nil
		}
		return doUpdate, nil
	case at.Sub(st.ClosedAt) <= w.mapping.Lifecycle().ReopenWindow:
		return doReopen, nil
	default:
		return doCreate, nil
	}
}

// lazyFingerprint renders an alert's content fingerprint once, on demand.
type lazyFingerprint struct {
	m    *mapping.Mapping
	a    *mapping.Alert
	key  string
	v    string
	err  error
	done bool
}

// set records a fingerprint rendered anyway (it is the same for every op).
func (f *lazyFingerprint) set(v string) {
	if !f.done {
		f.v, f.done = v, true
	}
}

// known returns the fingerprint if it was rendered.
func (f *lazyFingerprint) known() (string, bool) { return f.v, f.done && f.err == nil }

func (f *lazyFingerprint) get() (string, error) {
	if !f.done {
		f.done = true
		f.v, f.err = f.m.Fingerprint(f.a, f.key)
	}
	return f.v, f.err
}

// apply brings the key's incident in line with one event and returns the
// outcome and the incident number; ext is the key's externalNumber, which
// also names its state in the bucket.
func (w *Worker) apply(ctx context.Context, a *mapping.Alert, key, ext string, at time.Time, fp *lazyFingerprint) (string, string, error) {
	if out, ok, err := w.settledFromSeen(ext, at, a.Status, fp.get); ok || err != nil {
		return out, "", err
	}
	unlock, err := w.locks.lock(ctx, ext)
	if err != nil {
		return "", "", err
	}
	defer unlock()

	busy := busyWait{next: 2 * time.Millisecond, budget: 2 * time.Second}
	for attempt := 0; ; attempt++ {
		if attempt == 8 {
			return "", "", fmt.Errorf("state of %s keeps changing under us: %w", ext, errKeyBusy)
		}
		var st incidentState
		var rev uint64
		m := markUnread
		if attempt == 0 {
			st, rev, m, err = w.state.look(ctx, ext)
		} else {
			st, rev, err = w.state.get(ctx, ext)
		}
		if err != nil {
			return "", "", err
		}
		now := w.opts.Now()
		if c := st.Claim; c != nil {
			if lapse := c.Until.Add(w.opts.ClockSkew); c.Owner != w.opts.ID && now.Before(lapse) {
				// Another worker is writing this key; claims are normally held
				// for one TOPdesk request, so wait a little, then hand back.
				if busy.wait(ctx) {
					attempt--
					continue
				}
				return "", st.Number, &retryLaterError{after: min(lapse.Sub(now), w.opts.RedeliverMin), within: lapse.Sub(now), err: errKeyBusy}
			}
			// The claim lapsed (its owner died mid-write) or is a leftover of
			// ours: whether its write reached TOPdesk is unknown.
			st.Claim = nil
			st.Uncertain = true
		}
		w.seen.remember(ext, &st)
		if !st.LastEvent.IsZero() && at.Before(st.LastEvent) {
			return outcomeStale, st.Number, nil
		}
		st.Key = key
		// A missing state is either a new key or a lost one. Once the
		// bucket was reconciled with TOPdesk it is a new key.
		needLookup := st.Uncertain || (rev == 0 && (m == markAbsent || (m == markUnread && !w.reconciled(ctx))))
		d, err := w.decide(&st, a, at, fp)
		if err != nil {
			return "", "", err
		}

		if d == doNothing && !needLookup {
			if !at.After(st.LastEvent) {
				return outcomeDuplicate, st.Number, nil
			}
			st.LastEvent, st.LastStatus = at, string(a.Status)
			if _, err := w.state.put(ctx, opWrite, ext, &st, rev); errors.Is(err, errStateConflict) {
				continue
			} else if err != nil {
				return "", "", err
			}
			w.seen.remember(ext, &st)
			return outcomeDuplicate, st.Number, nil
		}

		// Claim the key for the TOPdesk write.
		claimed := st
		claimed.Claim = &claim{Owner: w.opts.ID, Op: decisionOp[d].String(), Until: now.Add(w.opts.ClaimTTL)}
		crev, err := w.state.put(ctx, opClaim, ext, &claimed, rev)
		if errors.Is(err, errStateConflict) {
			continue
		}
		if err != nil {
			return "", "", err
		}

		out, err := w.write(ctx, a, key, ext, at, fp, &st, d, needLookup)
		if err != nil {
			// Release the claim, remembering an unknown outcome.
			st.Uncertain = st.Uncertain || topdesk.IsOutcomeUnknown(err) || isCtxErr(err)
			if cerr := w.commit(ext, &st, crev); cerr != nil {
				// The claim lapses by itself at its expiry.
				w.log.Debug().Err(cerr).Str("alert_key", key).Msg("releasing the claim failed")
			}
			return "", st.Number, err
		}
		st.LastEvent, st.LastStatus = maxTime(st.LastEvent, at), string(a.Status)
		st.Uncertain = false
		if err := w.commit(ext, &st, crev); err != nil {
			return "", st.Number, fmt.Errorf("incident %s written but its state was not: %w", st.Number, err)
		}
		w.seen.remember(ext, &st)
		return out, st.Number, nil
	}
}

// commit writes the state over our claim. It uses its own short deadline so
// that a TOPdesk write done just before the handle timeout is still recorded.
// If the key vanished under the claim (the bucket was lost and made again),
// the state is created afresh: what was just written to TOPdesk must not be
// forgotten.
func (w *Worker) commit(ext string, st *incidentState, claimRev uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st.Claim = nil
	_, err := w.state.put(ctx, opCommit, ext, st, claimRev)
	if !errors.Is(err, errStateConflict) {
		return err
	}
	if _, rev, gerr := w.state.get(ctx, ext); gerr != nil || rev != 0 {
		// Another worker took the key over after our claim lapsed.
		return err
	}
	_, err = w.state.put(ctx, opCommit, ext, st, 0)
	return err
}

// write does the TOPdesk side of decision d under the key's claim and
// updates st to match. With lookup it first finds what TOPdesk already has
// under the externalNumber (state lost, or an earlier outcome unknown) and
// decides again from that.
func (w *Worker) write(ctx context.Context, a *mapping.Alert, key, ext string, at time.Time, fp *lazyFingerprint,
	st *incidentState, d decision, lookup bool) (string, error) {
	if lookup {
		if err := w.rebuild(ctx, ext, st); err != nil {
			return "", err
		}
		var err error
		if d, err = w.decide(st, a, at, fp); err != nil {
			return "", err
		}
		if d == doNothing && a.Status == mapping.StatusFiring && st.Open {
			// What the open incident shows is unknown: it was adopted from
			// TOPdesk, or a write to it (by a worker killed mid-call, or
			// whose response was lost) may or may not have landed. Write
			// this event's content so that the newest event wins.
			d = doUpdate
		}
	}
	if d == doNothing {
		return outcomeDuplicate, nil
	}

	r, err := w.mapping.Render(a, key, decisionOp[d])
	if err != nil {
		return "", err
	}
	fp.set(r.Fingerprint)
	req := &r.Request
	if err := w.names.Apply(ctx, req); err != nil {
		return "", err
	}

	var inc *topdesk.Incident
	if d == doCreate {
		inc, err = w.create(ctx, ext, req)
	} else {
		err = w.call(ctx, "update", true, func(ctx context.Context) error {
			var err error
			inc, err = w.api.UpdateIncident(ctx, st.IncidentID, req)
			return err
		})
		if topdesk.IsNotFound(err) && d != doResolve {
			// Someone deleted or archived it in TOPdesk: start a new one.
			d = doCreate
			if r, err = w.mapping.Render(a, key, mapping.OpCreate); err != nil {
				return "", err
			}
			if err = w.names.Apply(ctx, &r.Request); err != nil {
				return "", err
			}
			inc, err = w.create(ctx, ext, &r.Request)
		} else if topdesk.IsNotFound(err) {
			st.Open, st.ClosedAt = false, at
			return outcomeDuplicate, nil
		}
	}
	if err != nil {
		return "", err
	}

	switch d {
	case doCreate, doReopen:
		st.Open, st.ClosedAt = true, time.Time{}
		st.Fingerprint = r.Fingerprint // the same for every op of the alert
	case doUpdate:
		st.Fingerprint = r.Fingerprint
	case doResolve:
		st.Open, st.ClosedAt = false, at
	}
	if inc != nil && inc.ID != "" {
		// The state outlives the answer, whose strings share one block.
		st.IncidentID, st.Number = strings.Clone(inc.ID), strings.Clone(inc.Number)
	}
	return decisionOutcome[d], nil
}

// create posts a new incident. A create whose outcome is unknown (the
// response was lost) is never simply repeated: the incident is looked up by
// externalNumber first and adopted if it is there.
func (w *Worker) create(ctx context.Context, ext string, req *topdesk.IncidentRequest) (*topdesk.Incident, error) {
	var inc *topdesk.Incident
	for attempt := 0; ; attempt++ {
		err := w.call(ctx, "create", false, func(ctx context.Context) error {
			var err error
			inc, err = w.api.CreateIncident(ctx, req)
			return err
		})
		if err == nil || !topdesk.IsOutcomeUnknown(err) || attempt == 2 || ctx.Err() != nil {
			return inc, err
		}
		found, ferr := w.find(ctx, ext)
		if ferr != nil {
			return nil, errors.Join(err, ferr)
		}
		if open := newestOpen(found); open != nil {
			return open, nil
		}
	}
}

func (w *Worker) find(ctx context.Context, ext string) ([]topdesk.Incident, error) {
	var found []topdesk.Incident
	err := w.call(ctx, "find", true, func(ctx context.Context) error {
		var err error
		found, err = w.api.FindIncidents(ctx, ext)
		return err
	})
	return found, err
}

// rebuild sets st from the incidents TOPdesk holds under ext.
func (w *Worker) rebuild(ctx context.Context, ext string, st *incidentState) error {
	found, err := w.find(ctx, ext)
	if err != nil {
		return err
	}
	fromTOPdesk(st, found)
	return nil
}

// fromTOPdesk sets st from the incidents found under its externalNumber:
// the newest open one, else the newest closed one (for the reopen window),
// else none. What TOPdesk does not know (the plain key, the last event) is
// kept.
func fromTOPdesk(st *incidentState, found []topdesk.Incident) {
	st.Uncertain = false
	if inc := newestOpen(found); inc != nil {
		if inc.ID != st.IncidentID {
			st.Fingerprint = ""
		}
		st.IncidentID, st.Number, st.Open, st.ClosedAt = strings.Clone(inc.ID), strings.Clone(inc.Number), true, time.Time{}
		return
	}
	var newest *topdesk.Incident
	for i := range found {
		inc := &found[i]
		if isArchived(inc) {
			continue
		}
		if newest == nil || created(inc).After(created(newest)) {
			newest = inc
		}
	}
	if newest == nil {
		*st = incidentState{Key: st.Key, LastEvent: st.LastEvent, LastStatus: st.LastStatus}
		return
	}
	st.IncidentID, st.Number, st.Open = strings.Clone(newest.ID), strings.Clone(newest.Number), false
	switch {
	case newest.ClosedDate != nil:
		st.ClosedAt = newest.ClosedDate.Time
	case newest.CompletedDate != nil:
		st.ClosedAt = newest.CompletedDate.Time
	case newest.ModificationDate != nil:
		st.ClosedAt = newest.ModificationDate.Time
	}
}

// newestOpen returns the most recently created incident that is neither
// closed nor archived.
func newestOpen(found []topdesk.Incident) *topdesk.Incident {
	var best *topdesk.Incident
	for i := range found {
		inc := &found[i]
		if inc.Closed || isArchived(inc) {
			continue
		}
		if best == nil || created(inc).After(created(best)) {
			best = inc
		}
	}
	return best
}

func isArchived(inc *topdesk.Incident) bool {
	return strings.HasSuffix(inc.Status, "Archived")
}

func created(inc *topdesk.Incident) time.Time {
	if inc.CreationDate == nil {
		return time.Time{}
	}
	return inc.CreationDate.Time
}

func maxTime(a, b time.Time) time.Time {
	return slices.MaxFunc([]time.Time{a, b}, time.Time.Compare)
}

// busyWait paces re-reads of a key that another worker holds: short,
// growing pauses within a total budget.
type busyWait struct {
	next, budget time.Duration
}

// wait pauses once and reports whether the budget allowed it.
func (b *busyWait) wait(ctx context.Context) bool {
	if b.budget <= 0 {
		return false
	}
	d := min(b.next, b.budget)
	b.budget -= d
	b.next = min(2*b.next, 100*time.Millisecond)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
