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
// In a marked bucket a missing key is a new key. The mark lives in the
// bucket itself, so losing the bucket loses the mark too, and until the
// next reconciliation every missing key is looked up again.
const (
	reconciledKey  = "_alertdesk.reconciled"
	reconcilingKey = "_alertdesk.reconciling"
	// externalPrefix starts the externalNumber of every incident alertdesk
	// creates (mapping.ExternalNumber).
	externalPrefix = "alertdesk-"
)

type reconcileMark struct {
	At        time.Time `json:"at"`
	By        string    `json:"by"`
	Incidents int       `json:"incidents"`
}

// reconciled reports whether the bucket is marked as holding every key
// that has an incident in TOPdesk.
func (w *Worker) reconciled(ctx context.Context) bool {
	return Reconciled(ctx, w.state.bucket())
}

// Reconciled reports whether the state bucket kv carries the mark of a
// completed reconciliation with TOPdesk: new keys are then created without
// a lookup first.
func Reconciled(ctx context.Context, kv jetstream.KeyValue) bool {
	_, err := kv.Get(ctx, reconciledKey)
	return err == nil
}

// reconcile brings the bucket in line with TOPdesk unless it is marked
// already or another worker is at it. A TOPdesk that cannot list incidents
// by externalNumber prefix leaves the bucket unmarked: every missing key is
// then looked up, which is correct, only slower.
func (w *Worker) reconcile(ctx context.Context) error {
	if w.reconciled(ctx) {
		return nil
	}
	kv := w.state.bucket()
	lease := claim{Owner: w.opts.ID, Op: "reconcile", Until: w.opts.Now().Add(5 * time.Minute)}
	b, err := json.Marshal(lease)
	if err != nil {
		return err
	}
	if _, err := kv.Create(ctx, reconcilingKey, b); errors.Is(err, jetstream.ErrKeyExists) {
		e, gerr := kv.Get(ctx, reconcilingKey)
		if gerr != nil {
			return nil // it was just released: someone finished
		}
		var held claim
		if json.Unmarshal(e.Value(), &held) == nil && w.opts.Now().Before(held.Until) {
			return nil // another worker is reconciling
		}
		if _, err := kv.Update(ctx, reconcilingKey, b, e.Revision()); err != nil {
			return nil // another worker took the lapsed lease first
		}
	} else if err != nil {
		return fmt.Errorf("reconcile: take the lease: %w", err)
	}
	defer func() {
		if err := kv.Delete(context.WithoutCancel(ctx), reconcilingKey); err != nil {
			w.log.Debug().Err(err).Msg("reconcile: releasing the lease failed; it lapses")
		}
	}()

	start := time.Now()
	var found []topdesk.Incident
	err = w.call(ctx, "list", true, func(ctx context.Context) error {
		var err error
		found, err = w.api.ListIncidentsByPrefix(ctx, externalPrefix)
		return err
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
		var st incidentState
		fromTOPdesk(&st, incs)
		if st.IncidentID == "" || (!st.Open && now.Sub(st.ClosedAt) > window) {
			continue // nothing a new event could reopen: a create is right
		}
		if _, err := w.state.put(ctx, opWrite, ext, &st, 0); errors.Is(err, errStateConflict) {
			continue // a worker wrote this key meanwhile; its state is newer
		} else if err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
		written++
	}
	mark, err := json.Marshal(reconcileMark{At: now, By: w.opts.ID, Incidents: len(found)})
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
