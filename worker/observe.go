package worker

import (
	"context"
	"errors"
	"fmt"
	"html"
	"strings"
	"time"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
)

// Operators. People work alertdesk's incidents in TOPdesk: they close them
// (with a closure code), reopen them, archive or delete them. alertdesk
// learns of it three ways, and each hands the incident as TOPdesk shows it
// to the same function, observed: TOPdesk's answers to alertdesk's own
// writes (afterWrite, goneOnWrite), the read-back of the incidents changed
// since the last one, and the TOPdesk webhook (both in sync.go).

// What observed found an operator did, the values of the change label.
const (
	changeClosed      = "closed"
	changeReopened    = "reopened"
	changeArchived    = "archived"
	changeClosureCode = "closure-code"
)

// operatorUnknown is who closed an incident when TOPdesk names no modifier.
const operatorUnknown = "an operator"

// observed brings st in line with inc, the incident as TOPdesk shows it,
// and returns what changed ("" = nothing). Only the incident the key is
// linked to counts; others with its externalNumber are the duplicate
// repair's. Closed (or completed) while the key holds it open: an operator
// closed it (who, when, with which closure code, and whether that code is
// in lifecycle.wontFix). Open while the key holds it closed: an operator
// reopened it (not with resolve: comment, which leaves incidents open).
// Archived: the key forgets it, so that its next firing creates a new one.
// now stands in for a closing time TOPdesk does not give.
func observed(st *incidentState, inc *topdesk.Incident, lc *mapping.Lifecycle, wontFix func(*topdesk.Ref) bool, now time.Time) string {
	if st.IncidentID == "" || inc.ID != st.IncidentID {
		return ""
	}
	if isArchived(inc) {
		*st = incidentState{Key: st.Key, LastEvent: st.LastEvent, LastStatus: st.LastStatus, LastPublished: st.LastPublished}
		return changeArchived
	}
	closed := inc.Closed || inc.Completed
	code := ""
	if inc.ClosureCode != nil {
		code = inc.ClosureCode.Name
	}
	switch {
	case closed && st.Open:
		st.Open, st.ClosedAt = false, closedAt(inc, now)
		st.ClosedBy = operatorUnknown
		if inc.Modifier != nil && inc.Modifier.Name != "" {
			st.ClosedBy = inc.Modifier.Name
		}
		st.ClosureCode, st.WontFix = code, wontFix(inc.ClosureCode)
		return changeClosed
	case closed && st.ClosedBy != "" && code != st.ClosureCode:
		st.ClosureCode, st.WontFix = code, wontFix(inc.ClosureCode)
		return changeClosureCode
	case !closed && !st.Open && lc.Resolve != mapping.ResolveComment:
		st.Open, st.ClosedAt = true, time.Time{}
		st.ClosedBy, st.ClosureCode, st.WontFix = "", "", false
		return changeReopened
	}
	return ""
}

// closedAt is when TOPdesk says inc was closed, else completed, else last
// changed, else now.
func closedAt(inc *topdesk.Incident, now time.Time) time.Time {
	for _, t := range []*topdesk.Time{inc.ClosedDate, inc.CompletedDate, inc.ModificationDate} {
		if t != nil && !t.IsZero() {
			return t.Time
		}
	}
	return now
}

// operatorPolicy applies lifecycle.operatorClose and lifecycle.wontFix to
// d, decide's decision for ev, when an operator closed the key's incident.
// respect: while the alert fires on (no resolve applied since the close),
// the incident stays closed: changed content goes in as an action (doNote),
// the same content is a duplicate. The first firing after a resolve, and
// every firing with reopen, is decided as for any closed incident, except
// that an incident closed with a wontFix code is never reopened: a new one
// is created.
func operatorPolicy(st *incidentState, ev *keyEvent, lc *mapping.Lifecycle, d decision) decision {
	if st.ClosedBy == "" || st.Open || st.IncidentID == "" || (d != doReopen && d != doCreate) {
		return d
	}
	switch {
	case lc.RespectsOperatorClose() && st.LastStatus != string(mapping.StatusResolved) && ev.fingerprint == st.Fingerprint:
		return doDuplicate
	case lc.RespectsOperatorClose() && st.LastStatus != string(mapping.StatusResolved):
		return doNote
	case d == doReopen && st.WontFix:
		return doCreate
	}
	return d
}

// noteOnly is the request of a doNote: the update's action alone, saying
// why the incident stays closed. Its fields are left as the operator left
// them.
func noteOnly(st *incidentState, update *topdesk.IncidentRequest) topdesk.IncidentRequest {
	note := "The alert still fires; the incident stays closed as " + html.EscapeString(st.ClosedBy) + " closed it."
	if update.Action != "" {
		note += "<br>" + update.Action
	}
	return topdesk.IncidentRequest{Action: note, ActionInvisibleForCaller: update.ActionInvisibleForCaller}
}

// afterWrite observes TOPdesk's answer to a write of decision d: an
// operator may have closed the incident just before. A create, reopen or
// resolve leaves no close by an operator behind (one remembered from an
// incident a lookup replaced would otherwise outlive it).
func (w *Worker) afterWrite(st *incidentState, d decision, inc *topdesk.Incident) {
	if d == doCreate || d == doReopen || d == doResolve {
		st.ClosedBy, st.ClosureCode, st.WontFix = "", "", false
	}
	if inc == nil {
		return
	}
	lc := w.mapping.Lifecycle()
	if change := observed(st, inc, &lc, w.wontFix, w.opts.Now()); change != "" {
		w.operatorChange(st, change, "answer")
	}
}

// goneOnWrite turns the rejection of a write to the incident id into an
// error matching topdesk.ErrNotFound when the incident is archived or
// deleted (TOPdesk answers a write to an archived incident with a 400):
// the caller then forgets it instead of dead-lettering the event, and the
// next firing creates a new incident. Any other error is returned as it is.
func (w *Worker) goneOnWrite(ctx context.Context, id string, err error) error {
	var ae *topdesk.APIError
	if err == nil || topdesk.IsNotFound(err) || !topdesk.IsRejected(err) || !errors.As(err, &ae) {
		return err
	}
	inc, gerr := w.getIncident(ctx, id)
	switch {
	case topdesk.IsNotFound(gerr):
		return fmt.Errorf("%w (incident %s was deleted: %w)", err, id, gerr)
	case gerr == nil && isArchived(inc):
		w.sync.m.changes.WithLabelValues(changeArchived).Inc()
		return fmt.Errorf("%w (incident %s is archived: %w)", err, inc.Number, topdesk.ErrNotFound)
	}
	return err
}

// wontFix reports whether a closure code is one of lifecycle.wontFix: by
// its id once the names are resolved, else by its name.
func (w *Worker) wontFix(code *topdesk.Ref) bool {
	if code == nil {
		return false
	}
	if ids := w.sync.wontFixIDs.Load(); ids != nil && code.ID != "" {
		return (*ids)[code.ID]
	}
	for _, name := range w.mapping.Lifecycle().WontFix {
		if strings.EqualFold(name, code.Name) {
			return true
		}
	}
	return false
}

// observeIncident brings the state of inc's key in line with inc (see
// observed), under the key's lock and claim rules: the write is a
// compare-and-swap on the state's revision, read again once when another
// worker wrote it meanwhile. A key with no state, or an incident that is
// not alertdesk's, is left alone. While a write for the key is in progress
// (a claim) or its outcome is unknown, it returns an error asking for a
// later try: that write's answer may change the state. via names the way in
// for the log.
func (w *Worker) observeIncident(ctx context.Context, inc *topdesk.Incident, via string) (string, error) {
	ext := inc.ExternalNumber
	if !isExternalNumber(ext) {
		return "", nil
	}
	unlock, err := w.locks.lock(ctx, ext)
	if err != nil {
		return "", err
	}
	defer unlock()
	lc := w.mapping.Lifecycle()
	for _, fresh := range []bool{false, true} {
		st, rev, _, err := w.state.load(ctx, ext, fresh)
		switch {
		case err != nil:
			return "", err
		case rev == 0:
			return "", nil
		case st.Claim != nil:
			return "", &retryLaterError{after: w.opts.RedeliverMin, err: errKeyBusy}
		case !st.SentAt.IsZero():
			return "", &retryLaterError{after: w.opts.RedeliverMin, err: errOutcomePending}
		}
		if probe := st; observed(&probe, inc, &lc, w.wontFix, w.opts.Now()) == "" {
			return "", nil
		}
		// inc was read before this state (a read-back's page, a webhook's
		// event): alertdesk may have written the incident since. Read it
		// again after the state: no write of alertdesk can land between
		// this read and the compare-and-swap below without changing the
		// state's revision, as a write holds the key's claim from before
		// it is sent until its commit.
		cur, err := w.getIncident(ctx, st.IncidentID)
		if topdesk.IsNotFound(err) {
			return "", nil // deleted: the key's next write finds it gone
		}
		if err != nil {
			return "", err
		}
		change := observed(&st, cur, &lc, w.wontFix, w.opts.Now())
		if change == "" {
			return "", nil
		}
		if _, err := w.state.put(ctx, opWrite, ext, &st, rev); errors.Is(err, errStateConflict) {
			continue
		} else if err != nil {
			return "", err
		}
		w.operatorChange(&st, change, via)
		return change, nil
	}
	return "", fmt.Errorf("%w: %w", errKeyBusy, errStateConflict)
}

// operatorChange counts and logs a change an operator made.
func (w *Worker) operatorChange(st *incidentState, change, via string) {
	w.sync.m.changes.WithLabelValues(change).Inc()
	ev := w.log.Info().Str("alert_key", st.Key).Str("incident_number", st.Number).Str("change", change).Str("via", via)
	if change == changeClosed {
		ev = ev.Str("closed_by", st.ClosedBy).Str("closure_code", st.ClosureCode).Bool("wont_fix", st.WontFix)
	}
	ev.Msg("an operator changed the incident in TOPdesk")
}
