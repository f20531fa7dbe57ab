package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/alertdesk/alertdesk/topdesk"
)

// gate pauses pulling new work while TOPdesk is down (the breaker is open)
// or rejects the credentials.
type gate struct {
	mu      sync.Mutex
	breaker bool
	auth    bool
	resume  chan struct{} // closed when the gate opens again; nil while open
}

func (g *gate) set(breaker, auth *bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if breaker != nil {
		g.breaker = *breaker
	}
	if auth != nil {
		g.auth = *auth
	}
	switch closed := g.breaker || g.auth; {
	case closed && g.resume == nil:
		g.resume = make(chan struct{})
	case !closed && g.resume != nil:
		close(g.resume)
		g.resume = nil
	}
}

func (g *gate) paused() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.resume != nil
}

// wait returns once the gate is open, or ctx's error.
func (g *gate) wait(ctx context.Context) error {
	for {
		g.mu.Lock()
		ch := g.resume
		g.mu.Unlock()
		if ch == nil {
			return ctx.Err()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// breaker counts consecutive failed TOPdesk requests.
type breaker struct {
	mu        sync.Mutex
	threshold int
	failures  int
}

// record returns whether the breaker should now be open (true) or closed
// (false) and whether that changed.
func (b *breaker) record(ok bool) (open, changed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	was := b.failures >= b.threshold
	if ok {
		b.failures = 0
	} else {
		b.failures++
	}
	open = b.failures >= b.threshold
	return open, open != was
}

func boolp(b bool) *bool { return &b }

// request makes one TOPdesk call, fn, and records its result (observe).
// The time its requests waited in the client before they were sent is not
// TOPdesk's latency: it is recorded apart.
func (w *Worker) request(ctx context.Context, op string, fn func(context.Context) error) error {
	start, waited := time.Now(), new(topdesk.Waited)
	err := fn(topdesk.WithWaited(ctx, waited))
	w.observe(op, time.Since(start)-waited.Duration(), waited.Duration(), err)
	return err
}

// observe records a TOPdesk call's result in the metrics, the breaker and
// the credentials state.
func (w *Worker) observe(op string, latency, wait time.Duration, err error) {
	w.m.topdeskWait.WithLabelValues(op).Observe(wait.Seconds())
	w.m.topdeskLatency.WithLabelValues(op).Observe(latency.Seconds())
	status := "ok"
	if err != nil {
		status = "error"
		var ae *topdesk.APIError
		if errors.As(err, &ae) {
			status = strconv.Itoa(ae.StatusCode)
		}
	}
	w.m.topdeskRequests.WithLabelValues(op, status).Inc()

	switch {
	case err == nil:
		w.authOK()
		w.recordBreaker(true)
	case topdesk.IsAuth(err) && (op == opProbe || !isForbidden(err)):
		// A 401, or a refused probe: the credentials do not work. A 403 on
		// an operation is judged by a probe (retry).
		w.authFailed(err)
	case topdesk.IsRetryable(err):
		w.recordBreaker(false)
	default:
		// TOPdesk answered (a 4xx): it is up.
		w.recordBreaker(true)
	}
}

func (w *Worker) recordBreaker(ok bool) {
	open, changed := w.breaker.record(ok)
	if !changed {
		return
	}
	w.gate.set(boolp(open), nil)
	if open {
		w.m.breakerOpen.Set(1)
		w.log.Error().Int("failures", w.opts.BreakerThreshold).Msg("TOPdesk unavailable: circuit breaker open, pulling paused")
	} else {
		w.m.breakerOpen.Set(0)
		w.log.Info().Msg("TOPdesk available again: circuit breaker closed, pulling resumed")
	}
}

func (w *Worker) authFailed(err error) {
	msg := err.Error()
	if old := w.authErr.Swap(&msg); old == nil {
		w.m.authOK.Set(0)
		w.gate.set(nil, boolp(true))
		w.log.Error().Err(err).Msg("TOPdesk rejected the credentials: pulling paused, /readyz failing; check ALERTDESK_TOPDESK_USERNAME and the application password")
	}
}

func (w *Worker) authOK() {
	if old := w.authErr.Swap(nil); old != nil {
		w.m.authOK.Set(1)
		w.gate.set(nil, boolp(false))
		w.log.Info().Msg("TOPdesk accepts the credentials again: pulling resumed")
	}
}

// probe checks TOPdesk while the gate is closed, and reads consumer lag.
func (w *Worker) probe(ctx context.Context) {
	tick := time.NewTicker(min(w.opts.BreakerCooldown, w.opts.LagInterval))
	defer tick.Stop()
	var lastAuthProbe, lastLag time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		if now.Sub(lastLag) >= w.opts.LagInterval {
			lastLag = now
			if info, err := w.res.Consumer.Info(ctx); err == nil {
				w.m.pending.Set(float64(info.NumPending))
				w.m.ackPending.Set(float64(info.NumAckPending))
			}
			if w.res.Timers != nil {
				if n, err := w.res.Timers.Pending(ctx); err == nil {
					w.m.timersPending.Set(float64(n))
				}
			}
		}
		if !w.gate.paused() {
			continue
		}
		if w.authErr.Load() != nil && now.Sub(lastAuthProbe) < w.opts.AuthRetry {
			continue
		}
		lastAuthProbe = now
		pctx, cancel := context.WithTimeout(ctx, w.opts.BreakerCooldown)
		err := w.probeVersion(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			w.log.Debug().Err(err).Msg("TOPdesk probe failed")
		}
	}
}

// opProbe names the request that checks the credentials: GET
// /tas/api/version, which needs them.
const opProbe = "version"

// probeVersion checks the credentials with one GET /tas/api/version.
func (w *Worker) probeVersion(ctx context.Context) error {
	return w.request(ctx, opProbe, func(ctx context.Context) error {
		_, err := w.api.Version(ctx)
		return err
	})
}

func isForbidden(err error) bool {
	var ae *topdesk.APIError
	return errors.As(err, &ae) && ae.StatusCode == http.StatusForbidden
}

// judgeForbidden decides what a 403 on an operation means by a probe: the
// credentials work, so the operator lacks a permission for this operation
// (the event is rejected), or they do not (the worker pauses, as for a 401).
// A probe that fails otherwise leaves the 403 an auth error, retried.
func (w *Worker) judgeForbidden(ctx context.Context, forbidden error) error {
	if err := w.probeVersion(ctx); err != nil {
		return forbidden
	}
	return fmt.Errorf("%w: %w", errPermission, forbidden)
}

// call runs one TOPdesk request of w and returns its answer: fn, with
// in-process retries (retry).
func call[T any](ctx context.Context, w *Worker, op string, fn func(context.Context) (T, error)) (T, error) {
	var v T
	err := w.retry(ctx, op, func(ctx context.Context) error {
		var err error
		v, err = fn(ctx)
		return err
	})
	return v, err
}

// retry runs fn, one TOPdesk request, with in-process retries: exponential
// backoff with jitter, Retry-After honoured, bounded by RetryMaxElapsed and
// ctx. A write whose outcome is unknown is not retried: it may still land,
// so the key waits for it (OutcomeWait) and a lookup decides. When the wait
// would outlast ctx, the error asks for a later redelivery instead.
func (w *Worker) retry(ctx context.Context, op string, fn func(context.Context) error) error {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(w.opts.RetryInitial),
		backoff.WithMaxInterval(w.opts.RetryMax),
		backoff.WithMaxElapsedTime(w.opts.RetryMaxElapsed),
		backoff.WithRandomizationFactor(0.5),
	)
	for {
		err := w.request(ctx, op, fn)
		if err == nil {
			return nil
		}
		if isForbidden(err) {
			return w.judgeForbidden(ctx, err)
		}
		if !topdesk.IsRetryable(err) || topdesk.IsOutcomeUnknown(err) || ctx.Err() != nil {
			return err
		}
		if w.gate.paused() {
			// The breaker opened: stop hammering, redeliver later.
			return err
		}
		wait := b.NextBackOff()
		if wait == backoff.Stop {
			return err
		}
		if ra, ok := topdesk.RetryAfter(err); ok && ra > wait {
			wait = ra
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait+time.Second {
			return &retryLaterError{after: wait, err: err}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}
