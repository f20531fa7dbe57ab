package topdesk

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// The adaptive limit's tuning. TOPdesk tenants have limits nobody
// documents; these values follow TCP's congestion control at the scale of a
// few dozen requests.
const (
	// cutFactor is the multiplicative decrease on overload or slowness.
	cutFactor = 0.9
	// latencyRise and minLatencyRise define "slower": the recent latency is
	// above latencyRise times the baseline and at least minLatencyRise more.
	latencyRise    = 2.0
	minLatencyRise = 25 * time.Millisecond
	// recentWeight and baselineWeight are the EWMA weights of the recent
	// latency and of the slowly moving baseline.
	recentWeight   = 1.0 / 8
	baselineWeight = 1.0 / 256
	// probeHold is how long the limit stays below the level at which TOPdesk
	// answered 429 or 503 before it probes that level again; it doubles with
	// each failed probe, up to maxProbeHold.
	probeHold    = 30 * time.Second
	maxProbeHold = 10 * time.Minute
)

// flow gates a client's requests: nothing is sent while TOPdesk's
// Retry-After pause lasts, and at most limit requests are in flight. The
// limit adapts (AIMD): it starts at max; an overload answer (429, 503), a
// timeout or a latency rise well above the recent baseline cuts it by
// cutFactor, at most once per round of requests (those sent before a cut do
// not cut again); after an overload, once the requests that were in flight
// have completed, it is lowered further to how many of them succeeded, the
// concurrency TOPdesk actually took. Each window of successes (as many as
// the limit) raises it by one up to max, except that the level at which
// TOPdesk last refused is probed again only after a hold (probeHold,
// doubling while probes fail).
//
// With max 0 requests are not bounded, but the pause still applies.
//
// It is hand-written because golang.org/x/sync/semaphore and rate have no
// limit that changes. The measured reason is the limit row of BENCHMARKS.md
// (`alertdesk-bench -scenarios limit`): a worker configured far above what
// TOPdesk takes finishes about as fast as one configured at exactly that,
// with few requests answered 429. Cuts by cutFactor alone would need many
// overloads, each with a pause, to get down to TOPdesk's limit: hence the
// settling on the successes.
type flow struct {
	max int
	now func() time.Time

	mu       sync.Mutex
	waiters  list.List // of chan struct{}: requests waiting for a slot, oldest first
	limit    int
	inFlight int
	paused   time.Time // no request is sent before this
	epoch    uint64    // incremented by every cut
	wins     int       // successes since the last change of the limit
	recent   time.Duration
	baseline time.Duration
	// After an overload cut that started round measured: the requests that
	// were in flight then (pending) and how many of those succeeded.
	measuring       bool
	measured        uint64
	pending, pendOK int
	ceiling         int // the level TOPdesk refused; 0 = none
	holdUntil       time.Time
	hold            time.Duration
}

func newFlow(max int, now func() time.Time) *flow {
	return &flow{max: max, limit: max, now: now, hold: probeHold}
}

// pauseError is returned when a request is not sent because TOPdesk's
// Retry-After pause lasts beyond the caller's deadline.
type pauseError struct{ wait time.Duration }

func (e *pauseError) Error() string {
	return fmt.Sprintf("TOPdesk asked for a pause (Retry-After) that lasts %s more, beyond the deadline", e.wait.Round(time.Millisecond))
}

func (e *pauseError) Unwrap() error { return context.DeadlineExceeded }

// ticket is one admitted request.
type ticket struct {
	epoch uint64
	start time.Time
}

// acquire waits until a request may be sent: the pause is over and fewer
// than limit requests are in flight. It fails at once with a *pauseError
// when ctx's deadline comes before the pause ends, and with ctx's error when
// ctx ends while waiting.
func (f *flow) acquire(ctx context.Context) (ticket, error) {
	for {
		f.mu.Lock()
		now := f.now()
		wait := f.paused.Sub(now)
		if wait <= 0 && (f.max == 0 || f.inFlight < f.limit) {
			f.inFlight++
			t := ticket{epoch: f.epoch, start: now}
			f.mu.Unlock()
			return t, nil
		}
		if dl, ok := ctx.Deadline(); ok && wait > 0 && dl.Before(now.Add(wait)) {
			f.mu.Unlock()
			return ticket{}, &pauseError{wait: wait}
		}
		woken := make(chan struct{}, 1)
		e := f.waiters.PushBack(woken)
		f.mu.Unlock()
		err := waitFor(ctx, woken, wait)
		f.mu.Lock()
		select {
		case <-woken:
			if err != nil {
				f.wake(1) // the slot it was woken for goes to the next
			}
		default:
			f.waiters.Remove(e)
		}
		f.mu.Unlock()
		if err != nil {
			return ticket{}, err
		}
	}
}

// waitFor waits until woken receives or, if d > 0, d has passed; it
// returns ctx's error when ctx ends first.
func waitFor(ctx context.Context, woken <-chan struct{}, d time.Duration) error {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
		return ctxError(ctx)
	case <-woken:
	case <-timeout:
	}
	return nil
}

// release records the outcome of an admitted request: the response (nil on
// a transport error) and the transport error.
func (f *flow) release(t ticket, resp *http.Response, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	f.inFlight--
	var overload, slow bool
	switch {
	case err != nil:
		var ne net.Error
		slow = errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		overload = true
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), now); ok && now.Add(d).After(f.paused) {
			f.paused = now.Add(d)
		}
	default:
		slow = f.observe(now.Sub(t.start))
	}
	ok := err == nil && !overload
	if f.measuring && t.epoch < f.measured {
		f.pending--
		if ok {
			f.pendOK++
		}
		if f.pending == 0 {
			f.measuring = false
			f.setLimit(min(f.limit, max(1, f.pendOK)))
			if f.ceiling > 0 {
				f.ceiling = min(f.ceiling, f.pendOK+1)
			}
		}
	}
	switch {
	case (overload || slow) && t.epoch == f.epoch:
		f.cut(now, overload)
	case ok && t.epoch == f.epoch:
		// Successes of requests sent before a cut do not raise the limit.
		f.wins++
		if f.max > 0 && f.wins >= f.limit && f.limit < f.max {
			f.raise(now)
		}
	}
	free := f.limit - f.inFlight
	if now.Before(f.paused) {
		// Every waiter looks again, to wait for the pause's end by a timer.
		free = f.waiters.Len()
	}
	f.wake(free)
}

// observe adds a successful request's latency to the averages and reports
// whether the recent latency is well above the baseline.
func (f *flow) observe(d time.Duration) bool {
	if f.baseline == 0 {
		f.recent, f.baseline = d, d
		return false
	}
	f.recent += time.Duration(recentWeight * float64(d-f.recent))
	f.baseline += time.Duration(baselineWeight * float64(d-f.baseline))
	return float64(f.recent) > latencyRise*float64(f.baseline) && f.recent-f.baseline >= minLatencyRise
}

// cut lowers the limit multiplicatively and starts a new round. On
// overload it also remembers the refused level and measures how many of the
// requests in flight succeed.
func (f *flow) cut(now time.Time, overload bool) {
	before := f.limit
	f.epoch++
	if f.max > 0 {
		f.setLimit(max(1, int(float64(f.limit)*cutFactor)))
	}
	if !overload || f.max == 0 {
		return
	}
	if f.ceiling > 0 && before >= f.ceiling {
		f.hold = min(2*f.hold, maxProbeHold) // a probe of the refused level failed
	}
	f.ceiling = before
	f.holdUntil = now.Add(f.hold)
	f.measuring, f.measured, f.pending, f.pendOK = f.inFlight > 0, f.epoch, f.inFlight, 0
}

// raise adds one to the limit unless that would reach the refused level
// before the hold is over. A window of successes at or above that level
// forgets it.
func (f *flow) raise(now time.Time) {
	if f.ceiling > 0 {
		if f.limit >= f.ceiling {
			f.ceiling, f.hold = 0, probeHold
		} else if f.limit+1 >= f.ceiling && now.Before(f.holdUntil) {
			f.wins = 0
			return
		}
	}
	f.setLimit(f.limit + 1)
}

func (f *flow) setLimit(n int) {
	if n != f.limit {
		f.limit, f.wins = n, 0
	}
}

// wake tells up to n of the oldest waiters to look again (every waiter
// when requests are not bounded): one per free slot, not all of them for
// each, so that a worker with more events than slots does not wake every
// waiting event whenever a request ends.
func (f *flow) wake(n int) {
	if f.max == 0 {
		n = f.waiters.Len()
	}
	for ; n > 0 && f.waiters.Len() > 0; n-- {
		f.waiters.Remove(f.waiters.Front()).(chan struct{}) <- struct{}{}
	}
}

// ConcurrencyLimit returns how many requests the client currently lets be
// in flight: Options.Concurrency, lowered while TOPdesk refuses (429, 503)
// or slows down; 0 when Options.Concurrency is 0 (no bound). It is meant
// for a gauge.
func (c *Client) ConcurrencyLimit() int {
	c.flow.mu.Lock()
	defer c.flow.mu.Unlock()
	if c.flow.max == 0 {
		return 0
	}
	return c.flow.limit
}

// PausedUntil returns the time before which the client sends nothing
// because TOPdesk answered 429 or 503 with Retry-After; a time in the past
// when there is no pause.
func (c *Client) PausedUntil() time.Time {
	c.flow.mu.Lock()
	defer c.flow.mu.Unlock()
	return c.flow.paused
}
