package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/timer"
	"github.com/alertdesk/alertdesk/topdesk"
)

// Two-way sync: the read-back and the TOPdesk webhook (docs/operators.md).
//
// Read-back: every SyncInterval one worker, the holder of a lease in the
// state bucket, lists alertdesk's incidents that TOPdesk changed since the
// last read-back and observes each (observe.go). The lease is a key whose
// age is judged by the NATS server's clock: its holder renews it every
// interval and deletes it when it stops; another worker takes it over when
// it lapses (two intervals without renewal, e.g. after its holder was
// killed). Where the read-back stopped, TOPdesk's modificationDate of the
// last incident observed, is kept in the bucket too, so that a new holder,
// or one restarted after a crash, resumes from there.
//
// Webhook: POST /v1/topdesk/events (package ingest) queues the incident
// number with QueueTopdeskEvent as a timer due at once, which makes it
// durable, retried and handled by one worker (handleTopdeskEvent): that
// worker reads the incident and observes it.

// incidentReader is the slice of *topdesk.Client the sync reads with. A
// TOPdesk API without it (a test's wrapper) syncs nothing.
type incidentReader interface {
	GetIncident(ctx context.Context, id string) (*topdesk.Incident, error)
	GetIncidentByNumber(ctx context.Context, number string) (*topdesk.Incident, error)
	ListModifiedSince(ctx context.Context, prefix string, since time.Time) ([]topdesk.Incident, error)
}

// idResolver resolves one TOPdesk name to its id (*topdesk.Resolver; a
// cache hit once the mapping's names were resolved at start-up).
type idResolver interface {
	Resolve(ctx context.Context, ref topdesk.NameRef) (string, error)
}

const (
	syncLeaseKey = "_alertdesk.sync.lease"
	syncMarkKey  = "_alertdesk.sync.mark"
	// kindTopdeskEvent is the timer kind of a queued webhook event.
	kindTopdeskEvent = "topdesk"
	// Ways in, the values of the via label.
	viaReadBack = "readback"
	viaWebhook  = "webhook"
)

// syncState is the worker's part of the two-way sync.
type syncState struct {
	m syncMetrics
	// wontFixIDs are the ids of lifecycle.wontFix's closure codes, once
	// resolved; until then codes are matched by name.
	wontFixIDs atomic.Pointer[map[string]bool]
}

type syncMetrics struct {
	runs     prometheus.Counter
	observed *prometheus.CounterVec // by via
	changes  *prometheus.CounterVec // by change
}

// initSync sets up the sync's metrics and the webhook's timer handler.
func (w *Worker) initSync(reg prometheus.Registerer) {
	w.sync.m = syncMetrics{
		runs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "alertdesk_sync_runs_total",
			Help: "Read-backs of alertdesk's incidents changed in TOPdesk, done by this worker as the holder of the sync lease.",
		}),
		observed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "alertdesk_sync_incidents_observed_total",
			Help: "Incidents read from TOPdesk to learn what operators did, by way in (readback, webhook).",
		}, []string{"via"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "alertdesk_operator_changes_total",
			Help: "Changes by operators seen in TOPdesk, by change (closed, reopened, archived, closure-code).",
		}, []string{"change"}),
	}
	for _, via := range []string{viaReadBack, viaWebhook} {
		w.sync.m.observed.WithLabelValues(via)
	}
	for _, c := range []string{changeClosed, changeReopened, changeArchived, changeClosureCode} {
		w.sync.m.changes.WithLabelValues(c)
	}
	if reg != nil {
		reg.MustRegister(w.sync.m.runs, w.sync.m.observed, w.sync.m.changes)
	}
	w.timerHandlers[kindTopdeskEvent] = w.handleTopdeskEvent
}

// runSync resolves the wontFix closure codes and then reads back every
// SyncInterval while it holds the lease, until ctx is done; then it gives
// the lease up.
func (w *Worker) runSync(ctx context.Context) {
	w.resolveWontFix(ctx)
	if _, ok := w.api.(incidentReader); !ok || w.opts.SyncInterval <= 0 {
		return
	}
	var held uint64 // the lease's revision while this worker holds it
	defer func() {
		if held != 0 {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateTimeout(w.opts.HandleTimeout))
			defer cancel()
			if err := w.state.bucket().Delete(ctx, syncLeaseKey, jetstream.LastRevision(held)); err != nil {
				w.log.Debug().Err(err).Msg("sync: giving the lease up failed; it lapses")
			}
		}
	}()
	t := time.NewTimer(0)
	defer t.Stop()
	var failing string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(w.opts.SyncInterval)
		var err error
		if held, err = w.takeLease(ctx, syncLeaseKey, "sync", w.syncLease()); err == nil && held != 0 && !w.gate.paused() {
			err = w.readBack(ctx)
		}
		switch {
		case ctx.Err() != nil:
		case err != nil && err.Error() != failing:
			failing = err.Error()
			w.log.Warn().Err(err).Dur("retry_in", w.opts.SyncInterval).Msg("sync: read-back failed; operators' changes are learnt from the webhook and alertdesk's writes meanwhile")
		case err == nil && failing != "":
			failing = ""
			w.log.Info().Msg("sync: read-back works again")
		}
	}
}

// resolveWontFix looks up the ids of lifecycle.wontFix's closure codes.
// A code that does not resolve (the names were checked at start-up) is
// matched by name.
func (w *Worker) resolveWontFix(ctx context.Context) {
	r, ok := w.names.(idResolver)
	codes := w.mapping.Lifecycle().WontFix
	if !ok || len(codes) == 0 {
		return
	}
	ids := make(map[string]bool, len(codes))
	for _, code := range codes {
		id, err := r.Resolve(ctx, topdesk.NameRef{Field: topdesk.FieldClosureCode, Name: code})
		if err != nil {
			w.log.Warn().Err(err).Str("closure_code", code).Msg("sync: wontFix closure code not resolved; matched by name")
			return
		}
		ids[id] = true
	}
	w.sync.wontFixIDs.Store(&ids)
}

// syncLease is how long the read-back lease holds without renewal, by the
// NATS server's clock: two intervals.
func (w *Worker) syncLease() time.Duration { return 2 * w.opts.SyncInterval }

// takeLease takes the lease key of the state bucket for op, or renews
// this worker's, and returns its revision: 0 when another worker holds it.
// A lease another worker wrote less than ttl ago by the NATS server's clock
// is theirs; an older one lapsed (its holder died) and is taken over.
func (w *Worker) takeLease(ctx context.Context, key, op string, ttl time.Duration) (uint64, error) {
	kv := w.state.bucket()
	b, err := json.Marshal(claim{Owner: w.opts.ID, Op: op})
	if err != nil {
		return 0, err
	}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		rev, err := kv.Create(ctx, key, b)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return 0, nil // another worker was faster
		}
		return rev, err
	}
	if err != nil {
		return 0, fmt.Errorf("%s: read the lease: %w", op, err)
	}
	var holder claim
	if json.Unmarshal(e.Value(), &holder) == nil && holder.Owner != w.opts.ID {
		now, err := w.state.serverNow(ctx)
		if err != nil {
			return 0, err
		}
		if now.Sub(e.Created()) < ttl {
			return 0, nil
		}
		w.log.Info().Str("holder", holder.Owner).Str("lease", op).Msg("the lease lapsed; taking it over")
	}
	rev, err := kv.Update(ctx, key, b, e.Revision())
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, nil // another worker took it first
	}
	return rev, err
}

// syncMark is where the read-back resumes.
type syncMark struct {
	// Since is TOPdesk's modificationDate of the last incident observed:
	// the next read-back lists the incidents changed at or after it.
	Since     time.Time `json:"since"`
	At        time.Time `json:"at"`
	By        string    `json:"by"`
	Incidents int       `json:"incidents"` // read by the last read-back
}

// readBack lists alertdesk's incidents changed in TOPdesk since the mark,
// observes each, and moves the mark to the modificationDate of the last
// one observed before the first that could not be (a key busy with a
// write): the next read-back reads that one again. Without a mark (the
// first read-back, or the bucket was lost) it starts one interval and a
// minute ago.
func (w *Worker) readBack(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(w.opts.HandleTimeout, w.opts.SyncInterval))
	defer cancel()
	api := w.api.(incidentReader)
	kv := w.state.bucket()
	var mark syncMark
	if e, err := kv.Get(ctx, syncMarkKey); err == nil {
		if err := json.Unmarshal(e.Value(), &mark); err != nil {
			mark = syncMark{}
		}
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("sync: read the mark: %w", err)
	}
	since := mark.Since
	if since.IsZero() {
		since = w.opts.Now().Add(-w.opts.SyncInterval - time.Minute)
	}
	found, err := call(ctx, w, "sync", func(ctx context.Context) ([]topdesk.Incident, error) {
		return api.ListModifiedSince(ctx, externalPrefix, since)
	})
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	next, stuck := since, false
	for i := range found {
		inc := &found[i]
		w.sync.m.observed.WithLabelValues(viaReadBack).Inc()
		if _, err := w.observeIncident(ctx, inc, viaReadBack); err != nil {
			if !stuck {
				w.log.Debug().Err(err).Str("incident_number", inc.Number).Msg("sync: incident not observed; the next read-back reads it again")
			}
			stuck = true
			continue
		}
		if !stuck && inc.ModificationDate != nil && inc.ModificationDate.After(next) {
			next = inc.ModificationDate.Time
		}
	}
	b, err := json.Marshal(syncMark{Since: next, At: w.opts.Now(), By: w.opts.ID, Incidents: len(found)})
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, syncMarkKey, b); err != nil {
		return fmt.Errorf("sync: write the mark: %w", err)
	}
	w.sync.m.runs.Inc()
	w.log.Debug().Int("incidents", len(found)).Time("since", since).Time("next", next).Msg("sync: read back")
	return nil
}

// topdeskEvent is the body of a queued webhook event.
type topdeskEvent struct {
	Number string `json:"number"`
}

// QueueTopdeskEvent stores, durably in JetStream, that TOPdesk reported a
// change of incident number (POST /v1/topdesk/events): a worker then reads
// that incident and learns what an operator did. It returns once JetStream
// acked the event. Events for one incident that wait unhandled are folded
// into one (the worker reads the incident as it is then). The timer stream
// a worker provisions must exist; until then it fails.
func QueueTopdeskEvent(ctx context.Context, js jetstream.JetStream, number string) error {
	body, err := json.Marshal(topdeskEvent{Number: number})
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(number))
	if err := timer.FireNow(ctx, js, kindTopdeskEvent, hex.EncodeToString(sum[:16]), body); err != nil {
		return fmt.Errorf("queue TOPdesk event for incident %s: %w", number, err)
	}
	return nil
}

// handleTopdeskEvent reads the incident a queued webhook event names and
// observes it. An incident TOPdesk does not know (deleted) is left to the
// key's next write, which finds it gone.
func (w *Worker) handleTopdeskEvent(ctx context.Context, f timer.Fired) (string, error) {
	var ev topdeskEvent
	if err := json.Unmarshal(f.Body, &ev); err != nil || ev.Number == "" {
		return "", fmt.Errorf("%w: TOPdesk event %q has no incident number", mapping.ErrInvalid, f.Body)
	}
	api, ok := w.api.(incidentReader)
	if !ok {
		return "", nil
	}
	inc, err := call(ctx, w, "get", func(ctx context.Context) (*topdesk.Incident, error) { return api.GetIncidentByNumber(ctx, ev.Number) })
	if topdesk.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("TOPdesk event for incident %s: %w", ev.Number, err)
	}
	w.sync.m.observed.WithLabelValues(viaWebhook).Inc()
	_, err = w.observeIncident(ctx, inc, viaWebhook)
	return "", err
}
