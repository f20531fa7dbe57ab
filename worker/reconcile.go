package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alertdesk/alertdesk/topdesk"
)

// Reconciliation. A key without state is either new or its state was lost
// (the bucket was deleted, NATS lost its store). Looking every such key up
// in TOPdesk before creating would double the requests of the create path,
// so instead the bucket is reconciled once: one worker lists every
// alertdesk incident in TOPdesk (externalNumber prefix "alertdesk-"),
// writes the state of each key that has none, and then marks the bucket.
// In a marked bucket a missing key is a new key. The mark names the bucket
// it certifies by the bucket's creation time, taken before the listing: a
// bucket deleted and made again during a reconciliation, or since, is not
// certified by it, and until the next reconciliation every missing key is
// looked up again.
const (
	reconciledKey  = "_alertdesk.reconciled"
	reconcilingKey = "_alertdesk.reconciling"
	// reconcileLease is how long, by the NATS server's clock, a worker
	// holds the reconciliation to itself.
	reconcileLease = 5 * time.Minute
	// externalPrefix starts the externalNumber of every incident alertdesk
	// creates (mapping.ExternalNumber).
	externalPrefix = "alertdesk-"
)

type reconcileMark struct {
	Bucket    time.Time `json:"bucket"` // creation time of the bucket it certifies
	At        time.Time `json:"at"`
	By        string    `json:"by"`
	Incidents int       `json:"incidents"`
}

// reconciled reports whether the bucket is marked as holding every key
// that has an incident in TOPdesk.
func (w *Worker) reconciled(ctx context.Context) bool {
	return w.state.reconciled(ctx)
}

// Reconciled reports whether the state bucket kv carries the mark of a
// completed reconciliation with TOPdesk: new keys are then created without
// a lookup first.
func Reconciled(ctx context.Context, kv jetstream.KeyValue) bool {
	return (&stateStore{kv: kv}).reconciled(ctx)
}

// reconciledFor is how long a positive answer of reconciled is reused. It
// spares each new key two requests to NATS (the mark and the bucket's
// info); what that saves is measured in docs/perf-notes.md. A bucket lost
// and made again is noticed that much later at most.
const reconciledFor = time.Second

// reconciled reports whether the bucket carries a reconciliation mark made
// for this very bucket.
func (s *stateStore) reconciled(ctx context.Context) bool {
	s.mu.RLock()
	fresh := time.Now().Before(s.reconciledUntil)
	s.mu.RUnlock()
	if fresh {
		return true
	}
	if !s.checkReconciled(ctx) {
		return false
	}
	s.mu.Lock()
	s.reconciledUntil = time.Now().Add(reconciledFor)
	s.mu.Unlock()
	return true
}

func (s *stateStore) checkReconciled(ctx context.Context) bool {
	e, err := s.bucket().Get(ctx, reconciledKey)
	if err != nil {
		return false
	}
	var mark reconcileMark
	if json.Unmarshal(e.Value(), &mark) != nil {
		return false
	}
	info, err := s.info(ctx)
	return err == nil && info.Created.Equal(mark.Bucket)
}

// reconcile brings the bucket in line with TOPdesk unless it is marked
// already or another worker is at it. A TOPdesk that cannot list incidents
// by externalNumber prefix leaves the bucket unmarked: every missing key is
// then looked up, which is correct, only slower.
func (w *Worker) reconcile(ctx context.Context) error {
	if w.reconciled(ctx) {
		return nil
	}
	info, err := w.state.info(ctx)
	if err != nil && w.state.recovered(ctx, err) {
		info, err = w.state.info(ctx) // the bucket was lost: reconcile the new one
	}
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	kv := w.state.bucket()
	if held, err := w.takeLease(ctx, reconcilingKey, "reconcile", reconcileLease); err != nil || held == 0 {
		return err // nil: another worker is reconciling
	}
	defer func() {
		if err := kv.Delete(context.WithoutCancel(ctx), reconcilingKey); err != nil {
			w.log.Debug().Err(err).Msg("reconcile: releasing the lease failed; it lapses")
		}
	}()

	start := time.Now()
	found, err := call(ctx, w, "list", func(ctx context.Context) ([]topdesk.Incident, error) {
		return w.api.ListIncidentsByPrefix(ctx, externalPrefix)
	})
	if err != nil {
		return fmt.Errorf("reconcile: list alertdesk incidents in TOPdesk: %w", err)
	}
	byExt := make(map[string][]topdesk.Incident)
	for _, inc := range found {
		byExt[inc.ExternalNumber] = append(byExt[inc.ExternalNumber], inc)
	}
	window := w.mapping.Lifecycle().ReopenWindow
	now := w.opts.Now()
	written := 0
	for ext, incs := range byExt {
		if !isExternalNumber(ext) {
			continue // it only starts like alertdesk's: an operator typed it
		}
		var st incidentState
		w.rebuild(&st, incs)
		if st.IncidentID == "" || (!st.Open && now.Sub(st.ClosedAt) > window) {
			continue // nothing a new event could reopen: a create is right
		}
		// Several open incidents: the key's next event repairs them.
		st.Uncertain = len(openIncidents(incs)) > 1
		// Written to this bucket directly, not timed as a step of an event:
		// if the bucket is lost meanwhile, the write fails and no mark
		// follows.
		v, err := json.Marshal(&st)
		if err != nil {
			return err
		}
		if _, err := kv.Create(ctx, ext, v); errors.Is(err, jetstream.ErrKeyExists) {
			continue // a worker wrote this key meanwhile; its state is newer
		} else if err != nil {
			return fmt.Errorf("reconcile: write state: %w", err)
		}
		written++
	}
	mark, err := json.Marshal(reconcileMark{Bucket: info.Created, At: now, By: w.opts.ID, Incidents: len(found)})
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, reconciledKey, mark); err != nil {
		return fmt.Errorf("reconcile: mark the bucket: %w", err)
	}
	w.log.Info().Int("incidents", len(found)).Int("states_written", written).Dur("took", time.Since(start)).
		Msg("state bucket reconciled with TOPdesk; new keys are created without a lookup")
	return nil
}

// keepReconciled reconciles the bucket at start and whenever it lost its
// mark (the bucket was made again), until ctx is done.
func (w *Worker) keepReconciled(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := w.reconcile(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn().Err(err).Dur("retry_in", w.opts.ReconcileRetry).
				Msg("state bucket not reconciled with TOPdesk; every new key is looked up before it is created")
		}
		t.Reset(w.opts.ReconcileRetry)
	}
}
