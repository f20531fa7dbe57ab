package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
)

// event is one alert of a message, with what orders it among the events of
// its key.
type keyEvent struct {
	alert       *mapping.Alert
	key, ext    string    // alert key; its externalNumber, which also names its state
	at          time.Time // event time: orders the key's events
	published   time.Time // publish time of its message (of the original, for a replay)
	fingerprint string    // content fingerprint of a firing event
	// windowEnd is set when a window-end timer replays a held-back event:
	// maintenance coverage is judged then instead of at the event time.
	windowEnd time.Time
	// Noise control (noise.go): the due timer this event stands for ("" =
	// an alert event), and a note added to the action of its write.
	timer, note string
	member      string // grouping: the alert's own key when key is its group's
}

// newEvent prepares an alert published at published. An event whose
// fingerprint fails to render is returned with its key, for the error.
func (w *Worker) newEvent(a *mapping.Alert, published time.Time) (keyEvent, error) {
	key, fingerprint, err := w.identify(a)
	if err != nil && key == "" {
		return keyEvent{}, err // no key
	}
	return w.keyEvent(a, published, key, fingerprint), err
}

// identify returns a's key and, for a firing alert, its fingerprint. When
// only the fingerprint fails, the key is returned with the error.
func (w *Worker) identify(a *mapping.Alert) (key, fingerprint string, err error) {
	if key, err = w.mapping.Key(a); err != nil {
		return "", "", err
	}
	if a.Status == mapping.StatusFiring {
		fingerprint, err = w.mapping.Fingerprint(a, key)
	}
	return key, fingerprint, err
}

// keyEvent is the event of an alert published at published, given its key
// and fingerprint. An event time further than lifecycle.maxClockAhead
// after the publish time is clamped to the publish time and counted.
func (w *Worker) keyEvent(a *mapping.Alert, published time.Time, key, fingerprint string) keyEvent {
	ev := keyEvent{alert: a, key: key, ext: mapping.ExternalNumber(key), at: a.EventTime(published), published: published,
		fingerprint: fingerprint}
	w.grouped(&ev)
	if ev.at.Sub(published) > w.mapping.Lifecycle().MaxClockAhead {
		ev.at = published
		w.m.clamped.Inc()
	}
	return ev
}

// decision is what an event does to its key's incident.
type decision int

const (
	doNothing   decision = iota // nothing to write (a resolve without an open incident)
	doDuplicate                 // the same event as the one applied last, or the same content
	doStale                     // older than the event applied last
	doCreate
	doUpdate
	doResolve
	doReopen
	doNote   // an action only, on an incident an operator closed (observe.go)
	doRepeat // a duplicate that adds a still-firing action (fields.go)
)

var decisionOp = map[decision]mapping.Op{
	doCreate:  mapping.OpCreate,
	doUpdate:  mapping.OpUpdate,
	doResolve: mapping.OpResolve,
	doReopen:  mapping.OpReopen,
	doNote:    mapping.OpUpdate,
	doRepeat:  mapping.OpUpdate,
}

var decisionOutcome = map[decision]string{
	doNothing:   outcomeDuplicate,
	doDuplicate: outcomeDuplicate,
	doStale:     outcomeStale,
	doCreate:    outcomeCreated,
	doUpdate:    outcomeUpdated,
	doResolve:   outcomeClosed,
	doReopen:    outcomeReopened,
	doNote:      outcomeUpdated,
	doRepeat:    outcomeUpdated,
}

// order compares two events of a key: by event time, and at equal time a
// resolve comes after a firing.
func order(at time.Time, status string, at2 time.Time, status2 string) int {
	rank := func(s string) int {
		if s == string(mapping.StatusResolved) {
			return 1
		}
		return 0
	}
	return cmp.Or(at.Compare(at2), cmp.Compare(rank(status), rank(status2)))
}

// decide is the lifecycle table and the order of events of PRODUCT.md for
// an event, given its key's state.
func decide(st *incidentState, ev *keyEvent, lc mapping.Lifecycle) decision {
	if ev.member != "" {
		return decideMember(st, ev, lc)
	}
	status := string(ev.alert.Status)
	if !st.LastEvent.IsZero() {
		switch c := order(ev.at, status, st.LastEvent, st.LastStatus); {
		case c < 0:
			return doStale
		case c == 0 && (ev.alert.Status == mapping.StatusResolved || ev.fingerprint == st.Fingerprint):
			return doDuplicate
		}
	}
	if ev.alert.Status == mapping.StatusResolved {
		if st.IncidentID != "" && st.Open {
			return doResolve
		}
		return doNothing
	}
	// An incident adopted from TOPdesk has no fingerprint: its content is
	// unknown, so the first firing event writes its own.
	return firingDecision(st, ev, ev.fingerprint == st.Fingerprint, lc)
}

// firingDecision is what a firing event does to the key's incident, given
// whether it says what was applied last (same).
func firingDecision(st *incidentState, ev *keyEvent, same bool, lc mapping.Lifecycle) decision {
	switch {
	case st.IncidentID == "":
		return doCreate
	case st.Open && same:
		return doDuplicate
	case st.Open:
		return doUpdate
	case ev.at.Sub(st.ClosedAt) <= lc.ReopenWindow:
		return doReopen
	default:
		return doCreate
	}
}

// refire reports whether ev is an Alertmanager alert re-sent with its
// original startsAt after the resolve that was applied: published longer
// than window after that resolve. (One inside the window is an HA peer's
// late copy.)
func refire(st *incidentState, ev *keyEvent, window time.Duration) bool {
	return refired(ev, st.LastEvent, st.LastStatus, st.LastPublished, window)
}

// refired is refire against the last applied event (its time, status and
// publish time): of the key, or of a group's member.
func refired(ev *keyEvent, at time.Time, status string, published time.Time, window time.Duration) bool {
	return ev.alert.Fingerprint != "" && ev.alert.Status == mapping.StatusFiring &&
		status == string(mapping.StatusResolved) && !published.IsZero() &&
		order(ev.at, string(ev.alert.Status), at, status) < 0 &&
		ev.published.Sub(published) > window
}

// apply brings the key's incident in line with one event and returns the
// outcome and the incident number. Its path is load, decide once, claim,
// perform, commit. A state this worker remembered that another worker has
// changed since is read again once.
func (w *Worker) apply(ctx context.Context, ev keyEvent) (string, string, error) {
	unlock, err := w.locks.lock(ctx, ev.ext)
	if err != nil {
		return "", "", err
	}
	defer unlock()
	out, number, err := w.applyOnce(ctx, ev, ev.timer != "") // a due timer reads the state afresh
	if errors.Is(err, errStateConflict) {
		out, number, err = w.applyOnce(ctx, ev, true)
	}
	if errors.Is(err, errStateConflict) {
		err = fmt.Errorf("%w: %w", errKeyBusy, err)
	}
	return out, number, err
}

func (w *Worker) applyOnce(ctx context.Context, ev keyEvent, fresh bool) (string, string, error) {
	// Load.
	st, rev, written, err := w.state.load(ctx, ev.ext, fresh)
	if err != nil {
		return "", "", err
	}
	if st.Claim != nil || !st.SentAt.IsZero() {
		now, err := w.state.serverNow(ctx)
		if err != nil {
			return "", st.Number, err
		}
		if st.Claim != nil {
			if lapse := written.Add(w.opts.ClaimTTL); st.Claim.Owner != w.opts.ID && now.Before(lapse) {
				wait := lapse.Sub(now)
				return "", st.Number, &retryLaterError{after: min(wait, w.opts.RedeliverMin), within: wait, err: errKeyBusy}
			}
			// The claim lapsed (its owner died mid-write) or is a leftover of
			// this worker (a panic, a lost commit): its write may have been
			// sent until the handle timeout of its holder.
			st.Claim, st.SentAt = nil, maxTime(st.SentAt, written.Add(w.opts.HandleTimeout))
		}
		if wait := st.SentAt.Add(w.opts.OutcomeWait).Sub(now); wait > 0 {
			return "", st.Number, &retryLaterError{after: wait, within: wait, err: errOutcomePending}
		}
	}
	lc := w.mapping.Lifecycle()
	if refire(&st, &ev, lc.ReorderWindow) {
		ev.at = ev.published
	}

	// A missing state is a new key once the bucket was reconciled with
	// TOPdesk; otherwise, and after an unknown outcome, TOPdesk is asked.
	var found []topdesk.Incident
	lookup := st.Uncertain || !st.SentAt.IsZero() || (rev == 0 && !w.reconciled(ctx))
	if lookup {
		if found, err = w.find(ctx, ev.ext); err != nil {
			return "", st.Number, err
		}
		w.rebuild(&st, found) // who closed it: rebuild.go
	}
	st.Key = ev.key

	// Decide: the lifecycle table, then in turn what an operator decided
	// (observe.go), a still-firing reminder (fields.go), maintenance windows
	// (suppress.go) and noise control (noise.go) may change the decision
	// or take the event over.
	d := operatorPolicy(&st, &ev, &lc, decide(&st, &ev, lc))
	d = w.stillFiring(&st, &ev, d, fresh) // updates.repeat (fields.go)
	if out, done, err := w.suppress(ctx, &st, &ev, d, rev); done {
		return out, st.Number, err
	}
	if p, ok := w.noise(st, &ev, d); ok { // noise control: noise.go
		return w.applyNoise(ctx, &ev, &st, rev, p, found)
	}
	op, writes := decisionOp[d]
	repair := len(openIncidents(found)) > 1
	if !writes && !repair {
		if d == doStale || (!lookup && order(ev.at, string(ev.alert.Status), st.LastEvent, st.LastStatus) <= 0) {
			return decisionOutcome[d], st.Number, nil
		}
		// Record the newer event (and what a lookup found).
		w.applied(&st, &ev)
		if _, err := w.state.put(ctx, opWrite, ev.ext, &st, rev); err != nil {
			return "", st.Number, err
		}
		return decisionOutcome[d], st.Number, nil
	}

	// Claim.
	claimed := st
	claimed.Claim = &claim{Owner: w.opts.ID, Op: "repair"}
	if writes {
		claimed.Claim.Op = op.String()
	}
	crev, err := w.claim(ctx, ev.ext, &st, &claimed, rev)
	if err != nil {
		return "", st.Number, err
	}

	// Perform.
	out, err := w.perform(ctx, &ev, &st, d, found)
	if err != nil {
		return "", st.Number, w.release(ctx, ev.ext, &st, crev, err)
	}

	// Commit.
	if d != doStale {
		w.applied(&st, &ev)
	}
	if err := w.commit(ev.ext, &st, crev); err != nil {
		return "", st.Number, fmt.Errorf("incident %s written but its state was not: %w", st.Number, err)
	}
	return out, st.Number, nil
}

// applied records ev as the newest applied event of st. A held-back event
// replayed at its window's end is no longer held back (suppress.go).
func (w *Worker) applied(st *incidentState, ev *keyEvent) {
	st.LastEvent, st.LastStatus, st.LastPublished = ev.at, string(ev.alert.Status), ev.published
	st.Uncertain, st.SentAt = false, time.Time{}
	memberApplied(st, ev)
	if !ev.windowEnd.IsZero() {
		w.setHeld(st, ev, nil)
	}
}

// claim writes claimed (st with this worker's claim) if the key is still
// at rev and returns the claim's revision. A claim write that failed
// without a conflict (a timeout, a stop) may have landed all the same;
// nothing was sent to TOPdesk under it, so it is taken back at once: st is
// written over it if the key holds exactly that claim. Otherwise the key
// would wait for the claim to lapse (ClaimTTL), or for this worker's next
// attempt to judge it a leftover.
func (w *Worker) claim(ctx context.Context, ext string, st, claimed *incidentState, rev uint64) (uint64, error) {
	crev, err := w.state.put(ctx, opClaim, ext, claimed, rev)
	if err == nil || errors.Is(err, errStateConflict) {
		return crev, err
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateTimeout(w.opts.HandleTimeout))
	defer cancel()
	held, hrev, _, lerr := w.state.load(uctx, ext, true)
	if lerr == nil && hrev != rev && held.Claim != nil && *held.Claim == *claimed.Claim {
		if _, perr := w.state.put(uctx, opWrite, ext, st, hrev); perr != nil {
			w.log.Debug().Err(perr).Str("alert_key", st.Key).Msg("could not take back a claim whose write failed; it lapses")
		}
	}
	return 0, err
}

// release gives the claim up after a failed write. A write whose outcome
// is unknown is recorded with the server's time, so that no write for the
// key follows before it could have landed; the error then asks for a
// redelivery after that.
func (w *Worker) release(ctx context.Context, ext string, st *incidentState, claimRev uint64, cause error) error {
	if topdesk.IsOutcomeUnknown(cause) || isCtxErr(cause) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateTimeout(w.opts.HandleTimeout))
		defer cancel()
		now, err := w.state.serverNow(ctx)
		if err != nil {
			// The claim lapses by itself and is then judged unknown.
			return errors.Join(cause, err)
		}
		st.SentAt = now
		cause = &retryLaterError{after: w.opts.OutcomeWait, err: cause}
	}
	if err := w.commit(ext, st, claimRev); err != nil {
		// The claim lapses by itself and is then judged unknown.
		w.log.Debug().Err(err).Str("alert_key", st.Key).Msg("releasing the claim failed")
	}
	return cause
}

// commit writes the state over our claim. It uses its own short deadline
// (stateTimeout, counted in LongestHold) so that a TOPdesk write done just
// before the handle timeout is still recorded.
// If the key vanished under the claim (the bucket was lost and made again),
// the state is created afresh: what was just written to TOPdesk must not be
// forgotten.
func (w *Worker) commit(ext string, st *incidentState, claimRev uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout(w.opts.HandleTimeout))
	defer cancel()
	st.Claim = nil
	_, err := w.state.put(ctx, opCommit, ext, st, claimRev)
	if !errors.Is(err, errStateConflict) {
		return err
	}
	if _, rev, _, gerr := w.state.load(ctx, ext, true); gerr != nil || rev != 0 {
		// Another worker took the key over after our claim lapsed.
		return err
	}
	_, err = w.state.put(ctx, opCommit, ext, st, 0)
	return err
}

// perform does the TOPdesk side under the key's claim: it repairs
// duplicates a lookup found, then writes decision d.
func (w *Worker) perform(ctx context.Context, ev *keyEvent, st *incidentState, d decision, found []topdesk.Incident) (string, error) {
	if open := openIncidents(found); len(open) > 1 {
		if err := w.repair(ctx, ev, open); err != nil {
			return "", err
		}
	}
	return w.write(ctx, ev, st, d)
}

// write writes decision d to TOPdesk and updates st to match.
func (w *Worker) write(ctx context.Context, ev *keyEvent, st *incidentState, d decision) (string, error) {
	op, ok := decisionOp[d]
	if !ok {
		return decisionOutcome[d], nil
	}
	r, err := w.mapping.Render(ev.alert, ev.key, op)
	if err != nil {
		return "", err
	}
	if err := w.groupRequest(ctx, ev, st, d, &r.Request); err != nil {
		return "", err
	}
	if op == mapping.OpResolve && st.Brief != "" {
		// A resolve keeps the incident's own brief description, with the
		// resolved prefix, whatever the resolve event's summary says; one
		// an operator changed is left alone (fieldsBefore). A state that
		// knows no brief description (written before it kept one) leaves
		// it as it is.
		r.Request.BriefDescription = w.mapping.ResolvedBrief(st.Brief)
	}
	if d == doNote {
		r.Request = noteOnly(st, &r.Request)
	}
	w.mapping.Note(&r.Request, ev.note) // noise control: noise.go
	if err := w.names.Apply(ctx, &r.Request); err != nil {
		return "", err
	}
	if err := w.fieldsBefore(ctx, ev, st, d, &r.Request); err != nil { // fields.go
		return "", err
	}
	var inc *topdesk.Incident
	if d == doCreate {
		inc, err = w.create(ctx, &r.Request)
	} else {
		inc, err = w.update(ctx, st.IncidentID, &r.Request)
		err = w.goneOnWrite(ctx, st.IncidentID, err)
		if topdesk.IsNotFound(err) && d == doResolve {
			st.Open, st.ClosedAt = false, ev.at
			return outcomeDuplicate, nil
		}
		if topdesk.IsNotFound(err) {
			// Someone deleted or archived it in TOPdesk: start a new one.
			st.IncidentID, st.Number, st.Open, st.Fingerprint = "", "", false, ""
			return w.write(ctx, ev, st, doCreate)
		}
	}
	if err != nil {
		return "", err
	}
	switch d {
	case doCreate, doReopen:
		st.Open, st.ClosedAt = true, time.Time{}
		st.Fingerprint = r.Fingerprint // the same for every op of the alert
	case doUpdate, doNote:
		st.Fingerprint = r.Fingerprint
	case doResolve:
		st.Open, st.ClosedAt = false, ev.at
	}
	if inc != nil && inc.ID != "" {
		st.IncidentID, st.Number = inc.ID, inc.Number
	}
	if r.Request.BriefDescription != "" {
		st.Brief = r.Request.BriefDescription
	}
	w.afterWrite(st, d, inc)
	w.fieldsAfter(st, d, ev, inc, &r.Request) // fields.go
	return decisionOutcome[d], nil
}

func (w *Worker) create(ctx context.Context, req *topdesk.IncidentRequest) (*topdesk.Incident, error) {
	return call(ctx, w, "create", func(ctx context.Context) (*topdesk.Incident, error) { return w.api.CreateIncident(ctx, req) })
}

func (w *Worker) update(ctx context.Context, id string, req *topdesk.IncidentRequest) (*topdesk.Incident, error) {
	return call(ctx, w, "update", func(ctx context.Context) (*topdesk.Incident, error) { return w.api.UpdateIncident(ctx, id, req) })
}

func (w *Worker) find(ctx context.Context, ext string) ([]topdesk.Incident, error) {
	return call(ctx, w, "find", func(ctx context.Context) ([]topdesk.Incident, error) { return w.api.FindIncidents(ctx, ext) })
}

// repair keeps the oldest of a key's open incidents (oldest first) and
// closes the others, each with an action naming the one kept.
func (w *Worker) repair(ctx context.Context, ev *keyEvent, open []topdesk.Incident) error {
	r, err := w.mapping.Render(ev.alert, ev.key, mapping.OpResolve)
	if err != nil {
		return err
	}
	closed := true
	for _, inc := range open[1:] {
		req := &topdesk.IncidentRequest{
			Closed: &closed, ProcessingStatus: r.Request.ProcessingStatus, ClosureCode: r.Request.ClosureCode,
			ActionInvisibleForCaller: r.Request.ActionInvisibleForCaller,
			Action:                   fmt.Sprintf("Duplicate of incident %s for alert %s; closed by alertdesk.", open[0].Number, ev.key),
		}
		if err := w.names.Apply(ctx, req); err != nil {
			return err
		}
		if _, err := w.update(ctx, inc.ID, req); err != nil && !topdesk.IsNotFound(err) {
			return err
		}
		w.m.duplicatesRepaired.Inc()
	}
	return nil
}

// fromTOPdesk sets st from the incidents found under its externalNumber:
// the oldest open one (its content unknown), else the newest closed one
// (for the reopen window), else none. What TOPdesk does not know (the plain
// key, the last event) is kept.
func fromTOPdesk(st *incidentState, found []topdesk.Incident) {
	st.Uncertain, st.SentAt, st.Fingerprint = false, time.Time{}, ""
	if open := openIncidents(found); len(open) > 0 {
		st.IncidentID, st.Number, st.Open, st.ClosedAt = open[0].ID, open[0].Number, true, time.Time{}
		st.Brief = open[0].BriefDescription
		return
	}
	var newest *topdesk.Incident
	for i := range found {
		inc := &found[i]
		if !isArchived(inc) && (newest == nil || created(inc).After(created(newest))) {
			newest = inc
		}
	}
	if newest == nil {
		*st = incidentState{Key: st.Key, LastEvent: st.LastEvent, LastStatus: st.LastStatus, LastPublished: st.LastPublished}
		return
	}
	st.IncidentID, st.Number, st.Open, st.Brief = newest.ID, newest.Number, false, newest.BriefDescription
	switch {
	case newest.ClosedDate != nil:
		st.ClosedAt = newest.ClosedDate.Time
	case newest.CompletedDate != nil:
		st.ClosedAt = newest.CompletedDate.Time
	case newest.ModificationDate != nil:
		st.ClosedAt = newest.ModificationDate.Time
	}
}

// openIncidents returns the incidents that are neither closed nor
// archived, oldest first.
func openIncidents(found []topdesk.Incident) []topdesk.Incident {
	var open []topdesk.Incident
	for _, inc := range found {
		if !inc.Closed && !isArchived(&inc) {
			open = append(open, inc)
		}
	}
	slices.SortStableFunc(open, func(a, b topdesk.Incident) int { return created(&a).Compare(created(&b)) })
	return open
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
	if a.After(b) {
		return a
	}
	return b
}
