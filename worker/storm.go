package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/timer"
	"github.com/alertdesk/alertdesk/topdesk"
)

// Storms (PRODUCT.md "Grouping", majorIncident): the new incidents of a
// route with a storm rule are counted in the state bucket, under
// "storm-<route id>", shared by every worker and changed only by
// compare-and-swap. When more than the rule's threshold were created within
// its window, one major call is created — one across workers: the worker
// that records its claim in the storm entry creates it — and every further
// new incident of the route is linked to it until no new incident came for
// a window. The major call's own entry, "major-<its externalNumber>",
// lists the linked incidents; when one of them closes, a timer of kind
// timerMajor checks them and closes the major call once all are closed.

// timerMajor is the timer kind that checks a major call's linked incidents.
const timerMajor = "major"

// maxLinked bounds the linked incidents a major call's entry tracks
// (about 50 bytes each): incidents linked beyond it are linked in TOPdesk
// but not waited for before the major call is closed.
const maxLinked = 5000

// maxCASTries bounds the compare-and-swap rounds of a storm entry within
// one event; a busier entry asks for a redelivery.
const maxCASTries = 20

// stormLink is the major call a new incident was linked to.
type stormLink struct {
	MajorID     string `json:"major_id"`
	MajorNumber string `json:"major_number,omitempty"`
	MajorExt    string `json:"major_ext"`
}

// storm is a route's storm entry.
type storm struct {
	Route string `json:"route"` // routes[i], for operators
	// Recent are the newest new incidents of the route (their
	// externalNumbers and when they were counted, by the server's clock),
	// at most threshold+1, none older than the window.
	Recent []stormNew  `json:"recent,omitempty"`
	Major  *stormMajor `json:"major,omitempty"`
	// Window is the rule's window, by which the entry expires
	// (retention.go).
	Window time.Duration `json:"window,omitempty"`
}

type stormNew struct {
	Ext string    `json:"ext"`
	At  time.Time `json:"at"`
}

// stormMajor is the major call of a storm under way: claimed by Claim
// while it is being created, then known by ID. Last is its creation or
// the newest link: the storm ends a window after it.
type stormMajor struct {
	ID     string    `json:"id,omitempty"`
	Number string    `json:"number,omitempty"`
	Ext    string    `json:"ext"`
	Claim  string    `json:"claim,omitempty"`
	Last   time.Time `json:"last"`
}

// majorState is a major call's entry: the incidents linked to it that
// may still be open, and whether alertdesk closed it.
type majorState struct {
	ID     string   `json:"id"`
	Number string   `json:"number,omitempty"`
	Linked []string `json:"linked,omitempty"` // externalNumbers
	Closed bool     `json:"closed,omitempty"`
	Claim  string   `json:"claim,omitempty"` // a worker closing it
	Storm  string   `json:"storm,omitempty"` // the storm entry's key
}

// groupRequest adapts the request rendered for decision d: to the group's
// incident for a member (memberRequest), and to a route's storm for a new
// incident or a linked one that closes.
func (w *Worker) groupRequest(ctx context.Context, ev *keyEvent, st *incidentState, d decision, req *topdesk.IncidentRequest) error {
	if ev.member != "" {
		w.memberRequest(ev, st, d, req)
	}
	switch {
	case d == doCreate:
		return w.stormCreate(ctx, ev, st, req)
	case d == doResolve && st.Storm != nil:
		// The check waits for this key's claim, so it sees the outcome.
		return w.setTimer(ctx, timerMajor, st.Storm.MajorExt, w.opts.Now(), nil)
	}
	return nil
}

// stormCreate counts a new incident of ev's route, when the route has a
// storm rule, and links it to the storm's major call (creating that when
// this incident crosses the threshold).
func (w *Worker) stormCreate(ctx context.Context, ev *keyEvent, st *incidentState, req *topdesk.IncidentRequest) error {
	st.Storm = nil
	rule, ok := w.mapping.MajorIncidentFor(ev.alert)
	if !ok {
		return nil
	}
	key := "storm-" + rule.ID
	// The claim names this attempt, not only the worker: the worker's
	// other events wait for it like another worker's.
	token := fmt.Sprintf("%s/%d", w.opts.ID, w.claims.Add(1))
	for range maxCASTries {
		var s storm
		rev, written, err := w.loadEntry(ctx, key, &s)
		if err != nil {
			return err
		}
		now, err := w.state.serverNow(ctx)
		if err != nil {
			return err
		}
		s.Route, s.Window = rule.Route, rule.Window
		s.count(ev.ext, now, rule)
		if m := s.Major; m != nil && m.ID != "" && now.Sub(m.Last) > rule.Window {
			s.Major = nil // that storm is over
		}
		switch m := s.Major; {
		case m != nil && m.ID != "":
			m.Last = now
			if _, err := w.putEntry(ctx, key, &s, rev); errors.Is(err, errStateConflict) {
				continue
			} else if err != nil {
				return err
			}
			return w.link(ctx, ev, st, req, m, key)
		case m != nil && m.Claim != token && now.Before(written.Add(w.opts.ClaimTTL)):
			// Another event is creating the major call.
			wait := written.Add(w.opts.ClaimTTL).Sub(now)
			return &retryLaterError{after: min(w.opts.RedeliverMin, wait), within: wait, err: errKeyBusy}
		case m != nil || len(s.Recent) > rule.Threshold:
			// Cross the threshold, or take over a lapsed claim.
			if m == nil {
				m = &stormMajor{Ext: mapping.ExternalNumber(fmt.Sprintf("storm:%s:%d", rule.ID, now.UnixNano()))}
				s.Major = m
			}
			m.Claim, m.Last = token, now
			crev, err := w.putEntry(ctx, key, &s, rev)
			if errors.Is(err, errStateConflict) {
				continue
			} else if err != nil {
				return err
			}
			if err := w.createMajor(ctx, ev, rule, req, m); err != nil {
				if !topdesk.IsOutcomeUnknown(err) && !isCtxErr(err) {
					// Not created: the next event may try at once. (One
					// that may have been created keeps the claim until it
					// lapses; then a lookup by its externalNumber decides.)
					s.Major = nil
					_, _ = w.putEntry(context.WithoutCancel(ctx), key, &s, crev) // else the claim lapses
				}
				return err
			}
			w.m.majorCalls.Inc()
			m.Claim = ""
			if _, err := w.putEntry(ctx, key, &s, crev); err != nil {
				return fmt.Errorf("record major call %s: %w", m.Number, err)
			}
			return w.link(ctx, ev, st, req, m, key)
		default:
			if _, err := w.putEntry(ctx, key, &s, rev); errors.Is(err, errStateConflict) {
				continue
			} else if err != nil {
				return err
			}
			return nil
		}
	}
	return &retryLaterError{after: w.opts.RedeliverMin, err: fmt.Errorf("%w: storm entry %s", errKeyBusy, key)}
}

// count records a new incident ext at now: at most threshold+1 of the
// newest within the window are kept; one counted before (an event
// retried) is not counted again.
func (s *storm) count(ext string, now time.Time, rule mapping.MajorIncident) {
	s.Recent = slices.DeleteFunc(s.Recent, func(n stormNew) bool { return now.Sub(n.At) > rule.Window })
	if !slices.ContainsFunc(s.Recent, func(n stormNew) bool { return n.Ext == ext }) {
		s.Recent = append(s.Recent, stormNew{Ext: ext, At: now})
	}
	if n := len(s.Recent) - (rule.Threshold + 1); n > 0 {
		s.Recent = slices.Delete(s.Recent, 0, n)
	}
}

// createMajor creates the major call m (or adopts the one a lapsed claim
// created) from the request rendered for the incident that crossed the
// threshold, and arms its check.
func (w *Worker) createMajor(ctx context.Context, ev *keyEvent, rule mapping.MajorIncident, from *topdesk.IncidentRequest, m *stormMajor) error {
	found, err := w.find(ctx, m.Ext)
	if err != nil {
		return err
	}
	if open := openIncidents(found); len(open) > 0 {
		m.ID, m.Number = open[0].ID, open[0].Number
	} else {
		req := *from
		req.ExternalNumber = m.Ext
		req.MajorCall, req.MajorCallObject = new(true), nil
		req.BriefDescription = fmt.Sprintf("Storm: over %d new incidents within %s (%s)", rule.Threshold, rule.Window, rule.Route)
		req.Request = fmt.Sprintf("alertdesk opened this major call: more than %d new incidents of the mapping's %s "+
			"were created within %s. Further new incidents of it are linked here until none came for %s; "+
			"alertdesk closes this call when every linked incident is closed.<br><br>First linked alert: %s",
			rule.Threshold, rule.Route, rule.Window, rule.Window, escapeKey(ev))
		req.Action, req.ActionInvisibleForCaller = "", nil
		if err := w.names.Apply(ctx, &req); err != nil {
			return err
		}
		inc, err := w.create(ctx, &req)
		if err != nil {
			return err
		}
		m.ID, m.Number = inc.ID, inc.Number
	}
	// The check that closes it is set when a linked incident closes; this
	// one only covers a lost one.
	if err := w.setTimer(ctx, timerMajor, m.Ext, w.opts.Now().Add(rule.Window), nil); err != nil {
		w.log.Warn().Err(err).Str("external_number", m.Ext).Msg("major call created; its first check was not set")
	}
	return nil
}

// link links the new incident of ev to the major call m of the storm
// entry stormKey.
func (w *Worker) link(ctx context.Context, ev *keyEvent, st *incidentState, req *topdesk.IncidentRequest, m *stormMajor, stormKey string) error {
	if _, err := w.updateEntry(ctx, majorKey(m.Ext), func(ms *majorState) bool {
		if ms.ID == m.ID && (slices.Contains(ms.Linked, ev.ext) || len(ms.Linked) >= maxLinked) {
			return false
		}
		ms.ID, ms.Number, ms.Storm = m.ID, m.Number, stormKey
		if !slices.Contains(ms.Linked, ev.ext) && len(ms.Linked) < maxLinked {
			ms.Linked = append(ms.Linked, ev.ext)
		}
		return true
	}); err != nil {
		return err
	}
	req.MajorCallObject = &topdesk.Ref{ID: m.ID}
	st.Storm = &stormLink{MajorID: m.ID, MajorNumber: m.Number, MajorExt: m.Ext}
	w.m.stormLinked.Inc()
	return nil
}

// majorTimer checks the incidents linked to a major call and closes it
// once every one is closed. A linked incident whose state is under a claim
// asks for the timer again soon; one still open re-arms it a while later.
func (w *Worker) majorTimer(ctx context.Context, f timer.Fired) (string, error) {
	key := majorKey(f.Key)
	unlock, err := w.locks.lock(ctx, key)
	if err != nil {
		return "", err
	}
	defer unlock()
	var ms majorState
	rev, written, err := w.loadEntry(ctx, key, &ms)
	if err != nil || rev == 0 {
		return "", err
	}
	if ms.Closed {
		return "", w.endStorm(ctx, &ms) // done, unless that step failed
	}
	now, err := w.state.serverNow(ctx)
	if err != nil {
		return "", err
	}
	if ms.Claim != "" && ms.Claim != w.opts.ID && now.Before(written.Add(w.opts.ClaimTTL)) {
		return "", &retryLaterError{after: w.opts.RedeliverMin, err: errKeyBusy}
	}
	for _, ext := range ms.Linked {
		st, _, at, err := w.state.load(ctx, ext, true)
		switch {
		case err != nil:
			return "", err
		case st.Claim != nil && now.Before(at.Add(w.opts.ClaimTTL)):
			return "", &retryLaterError{after: w.opts.RedeliverMin, err: errKeyBusy}
		case st.Open:
			// Checked again when it closes; and in a while, in case that
			// check is lost.
			return "", w.setTimer(ctx, timerMajor, f.Key, w.opts.Now().Add(time.Hour), nil)
		}
	}
	ms.Claim = w.opts.ID
	crev, err := w.putEntry(ctx, key, &ms, rev)
	if err != nil {
		return "", err
	}
	if err := w.closeMajor(ctx, &ms); err != nil {
		ms.Claim = ""
		if _, perr := w.putEntry(context.WithoutCancel(ctx), key, &ms, crev); perr != nil {
			err = errors.Join(err, perr)
		}
		return "", err
	}
	ms.Claim, ms.Closed = "", true
	if _, err := w.putEntry(context.WithoutCancel(ctx), key, &ms, crev); err != nil {
		return "", fmt.Errorf("major call %s closed but its entry was not written: %w", ms.Number, err)
	}
	return outcomeClosed, w.endStorm(ctx, &ms)
}

// endStorm removes the closed major call ms from its storm entry, so that
// the route's next new incidents are not linked to it.
func (w *Worker) endStorm(ctx context.Context, ms *majorState) error {
	if ms.Storm == "" {
		return nil
	}
	for range maxCASTries {
		var s storm
		rev, _, err := w.loadEntry(ctx, ms.Storm, &s)
		if err != nil || rev == 0 || s.Major == nil || s.Major.ID != ms.ID {
			return err
		}
		s.Major = nil
		if _, err := w.putEntry(ctx, ms.Storm, &s, rev); !errors.Is(err, errStateConflict) {
			return err
		}
	}
	return &retryLaterError{after: w.opts.RedeliverMin, err: fmt.Errorf("%w: %s", errKeyBusy, ms.Storm)}
}

// closeMajor closes the major call as the mapping resolves an incident.
func (w *Worker) closeMajor(ctx context.Context, ms *majorState) error {
	lc := w.mapping.Lifecycle()
	req := &topdesk.IncidentRequest{
		Action:                   fmt.Sprintf("All %d linked incidents are closed; closed by alertdesk.", len(ms.Linked)),
		ActionInvisibleForCaller: new(true),
	}
	switch lc.Resolve {
	case mapping.ResolveClose:
		req.Closed = new(true)
		if lc.ClosureCode != "" {
			req.ClosureCode = &topdesk.Ref{Name: lc.ClosureCode}
		}
	case mapping.ResolveComplete:
		req.Completed = new(true)
	}
	if lc.ResolvedStatus != "" && lc.Resolve != mapping.ResolveComment {
		req.ProcessingStatus = &topdesk.Ref{Name: lc.ResolvedStatus}
	}
	if err := w.names.Apply(ctx, req); err != nil {
		return err
	}
	_, err := w.update(ctx, ms.ID, req)
	if topdesk.IsNotFound(err) {
		return nil // deleted or archived: nothing to close
	}
	return err
}

// majorKey is the state bucket key of a major call's entry.
func majorKey(ext string) string { return "major-" + strings.TrimPrefix(ext, "alertdesk-") }

// loadEntry reads a JSON entry of the state bucket into v: its revision (0
// = none) and when it was written, by the server's clock.
func (w *Worker) loadEntry(ctx context.Context, key string, v any) (uint64, time.Time, error) {
	e, err := w.state.bucket().Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("read %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, time.Time{}, fmt.Errorf("read %s: %w", key, err)
	}
	return e.Revision(), e.Created(), nil
}

// putEntry writes v as the entry key if it is still at rev (0 = absent),
// with its TTL (entryTTL); a lost race is errStateConflict.
func (w *Worker) putEntry(ctx context.Context, key string, v any, rev uint64) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	rev, err = w.state.write(ctx, key, b, rev, w.entryTTL(v))
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, errStateConflict
	}
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", key, err)
	}
	return rev, nil
}

// updateEntry changes the major call entry key with change (which reports
// whether it changed anything), retrying lost races.
func (w *Worker) updateEntry(ctx context.Context, key string, change func(*majorState) bool) (uint64, error) {
	for range maxCASTries {
		var ms majorState
		rev, _, err := w.loadEntry(ctx, key, &ms)
		if err != nil {
			return 0, err
		}
		if !change(&ms) {
			return rev, nil
		}
		n, err := w.putEntry(ctx, key, &ms, rev)
		if !errors.Is(err, errStateConflict) {
			return n, err
		}
	}
	return 0, &retryLaterError{after: w.opts.RedeliverMin, err: fmt.Errorf("%w: %s", errKeyBusy, key)}
}

// escapeKey is ev's own alert key, escaped for a request.
func escapeKey(ev *keyEvent) string {
	return html.EscapeString(cmp.Or(ev.member, ev.key))
}

// groupMetrics are the metrics of grouping and storms.
func (m *metrics) groupMetrics(reg prometheus.Registerer) {
	m.majorCalls = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "alertdesk_major_calls_created_total",
		Help: "Major calls created because a route's new incidents crossed its majorIncident threshold.",
	})
	m.stormLinked = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "alertdesk_storm_linked_incidents_total",
		Help: "New incidents linked to a storm's major call.",
	})
	if reg != nil {
		reg.MustRegister(m.majorCalls, m.stormLinked)
	}
}
