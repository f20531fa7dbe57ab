package topdesk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// fakeClock is a settable clock for the flow's decisions.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func answer(status int, header ...string) *http.Response {
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return &http.Response{StatusCode: status, Header: h}
}

// acquireN admits n requests or fails the test.
func acquireN(t *testing.T, f *flow, n int) []ticket {
	t.Helper()
	ts := make([]ticket, n)
	for i := range ts {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		tk, err := f.acquire(ctx)
		cancel()
		if err != nil {
			t.Fatalf("acquire %d of %d: %v", i+1, n, err)
		}
		ts[i] = tk
	}
	return ts
}

// TestFlowLearnsTheRefusedConcurrency: 64 requests at once against a
// TOPdesk that takes 20: the first 429 cuts the limit, and once the burst
// is over the limit is what TOPdesk took; it stays below the refused level
// until the hold is over, then probes it.
func TestFlowLearnsTheRefusedConcurrency(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	f := newFlow(64, clk.now)
	ts := acquireN(t, f, 64)
	if f.limit != 64 {
		t.Fatalf("limit %d, want 64", f.limit)
	}
	f.release(ts[63], answer(429), nil)
	if f.limit != 57 {
		t.Fatalf("limit after the first 429: %d, want 57 (cut by %g)", f.limit, cutFactor)
	}
	for i, tk := range ts[:63] {
		status := http.StatusTooManyRequests
		if i%3 == 0 && i < 60 {
			status = http.StatusCreated // 20 succeed
		}
		f.release(tk, answer(status), nil)
	}
	if f.limit != 20 {
		t.Fatalf("limit after the burst: %d, want 20 (the requests TOPdesk took)", f.limit)
	}
	// Many windows of successes: up to 20, not 21, during the hold.
	for range 10 {
		f.release(acquireN(t, f, 1)[0], answer(200), nil)
	}
	for range 100 {
		for _, tk := range acquireN(t, f, f.limit) {
			f.release(tk, answer(200), nil)
		}
	}
	if f.limit != 20 {
		t.Fatalf("limit during the hold: %d, want 20", f.limit)
	}
	clk.advance(probeHold)
	for _, tk := range acquireN(t, f, f.limit) {
		f.release(tk, answer(200), nil)
	}
	if f.limit != 21 {
		t.Fatalf("limit after the hold: %d, want 21 (a probe)", f.limit)
	}
	// The probe fails: the hold doubles.
	ts = acquireN(t, f, 21)
	f.release(ts[0], answer(429), nil)
	for _, tk := range ts[1:] {
		f.release(tk, answer(200), nil)
	}
	if f.limit != 18 || f.hold != 2*probeHold {
		t.Fatalf("after a failed probe: limit %d, hold %s; want 18, %s", f.limit, f.hold, 2*probeHold)
	}
}

// TestFlowMeasuresOnlyTheRequestsOfTheOverload: after an overload, the
// limit settles on the successes among the requests in flight at that
// moment, even when a later cut (a slow answer) starts another round
// before they are all back.
func TestFlowMeasuresOnlyTheRequestsOfTheOverload(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	f := newFlow(10, clk.now)
	old := acquireN(t, f, 4)
	f.release(old[0], answer(503), nil)
	later := acquireN(t, f, 2)
	f.mu.Lock()
	f.cut(clk.now(), false)
	f.mu.Unlock()
	for _, tk := range later {
		f.release(tk, answer(200), nil)
	}
	f.release(old[1], answer(200), nil)
	f.release(old[2], answer(503), nil)
	if f.limit == 1 {
		t.Fatal("limit settled before the requests of the overload were back")
	}
	f.release(old[3], answer(503), nil)
	if f.limit != 1 {
		t.Fatalf("limit %d, want 1: one of the three requests in flight at the overload succeeded", f.limit)
	}
}

// TestFlowCutsOnLatencyRise: a latency well above the baseline cuts the
// limit once per round, not once per slow answer.
func TestFlowCutsOnLatencyRise(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	f := newFlow(16, clk.now)
	for range 50 {
		tk := acquireN(t, f, 1)[0]
		clk.advance(50 * time.Millisecond)
		f.release(tk, answer(200), nil)
	}
	if f.limit != 16 {
		t.Fatalf("limit at a steady 50 ms: %d, want 16", f.limit)
	}
	ts := acquireN(t, f, 16)
	clk.advance(400 * time.Millisecond)
	for _, tk := range ts {
		f.release(tk, answer(200), nil)
	}
	if f.limit != 14 {
		t.Fatalf("limit after a round at 400 ms: %d, want 14 (one cut)", f.limit)
	}
}

// TestFlowBoundsInFlight: past the limit, acquire waits until a request
// is released.
func TestFlowBoundsInFlight(t *testing.T) {
	f := newFlow(2, time.Now)
	ts := acquireN(t, f, 2)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := f.acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third acquire with two in flight: %v, want a deadline error", err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := f.acquire(t.Context())
		got <- err
	}()
	f.release(ts[0], answer(200), nil)
	if err := <-got; err != nil {
		t.Fatalf("acquire after a release: %v", err)
	}
}

// TestWaitedIsTheTimeBeforeSending: with one slot, a request sent while
// another is at TOPdesk waits in the client until that one is answered; its
// Waited holds that wait, and the request that was at TOPdesk the whole
// time waited for nothing.
func TestWaitedIsTheTimeBeforeSending(t *testing.T) {
	const held = 300 * time.Millisecond
	sim := topdesktest.Start(t, topdesktest.Options{})
	c, err := NewClient(sim.URL(), Options{Username: topdesktest.DefaultUsername,
		Password: topdesktest.DefaultPassword, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	sim.Inject(topdesktest.Fault{Delay: held, Count: 1})

	var first Waited
	firstDone := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := c.Version(WithWaited(t.Context(), &first))
		firstDone <- err
	}()
	inFlight := func() int {
		c.flow.mu.Lock()
		defer c.flow.mu.Unlock()
		return c.flow.inFlight
	}
	for deadline := time.Now().Add(5 * time.Second); inFlight() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the first request was not sent")
		}
		runtime.Gosched()
	}
	var second Waited
	secondStart := time.Now()
	if _, err := c.Version(WithWaited(t.Context(), &second)); err != nil {
		t.Fatal(err)
	}
	secondTook := time.Since(secondStart)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	// The second waited for the rest of the first one's time at TOPdesk:
	// the first took the slot after start and held it for held. (20ms
	// allow for building the second request before it waits.)
	if least := held - secondStart.Sub(start) - 20*time.Millisecond; second.Duration() < least || second.Duration() > secondTook {
		t.Fatalf("second request waited %s in the client, took %s in all; want most of the first one's %s at TOPdesk", second.Duration(), secondTook, held)
	}
	if first.Duration() > held/3 {
		t.Fatalf("first request waited %s in the client with a free slot; its %s at TOPdesk are not waiting", first.Duration(), held)
	}
}

// TestConcurrencyLimitCutOn429AndRecovers: against the simulator, a 429
// lowers the client's limit and successes raise it again to the maximum.
func TestConcurrencyLimitCutOn429AndRecovers(t *testing.T) {
	sim := topdesktest.Start(t, topdesktest.Options{})
	c, err := NewClient(sim.URL(), Options{Username: topdesktest.DefaultUsername,
		Password: topdesktest.DefaultPassword, Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Now()}
	c.now = clk.now
	if got := c.ConcurrencyLimit(); got != 8 {
		t.Fatalf("limit at start: %d, want 8", got)
	}
	sim.Inject(topdesktest.Fault{Status: http.StatusTooManyRequests, Count: 1})
	if _, err := c.Version(t.Context()); !IsRetryable(err) {
		t.Fatalf("Version with a 429: %v, want a retryable error", err)
	}
	if got := c.ConcurrencyLimit(); got != 7 {
		t.Fatalf("limit after a 429: %d, want 7", got)
	}
	clk.advance(probeHold)
	for i := 0; c.ConcurrencyLimit() < 8; i++ {
		if i == 100 {
			t.Fatalf("limit %d after %d successes, want 8", c.ConcurrencyLimit(), i)
		}
		if _, err := c.Version(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRetryAfterPausesTheClient: after a 429 with Retry-After for one
// request, the client sends nothing, for any path, before that time; a
// caller whose deadline comes first gets the remaining wait at once.
func TestRetryAfterPausesTheClient(t *testing.T) {
	sim := topdesktest.Start(t, topdesktest.Options{})
	c, err := NewClient(sim.URL(), Options{Username: topdesktest.DefaultUsername,
		Password: topdesktest.DefaultPassword})
	if err != nil {
		t.Fatal(err)
	}
	sim.Inject(topdesktest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "1", Count: 1})
	if _, err := c.Version(t.Context()); err == nil {
		t.Fatal("Version with a 429: no error")
	}
	refused := sim.Requests()[0].At

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err = c.GetIncident(ctx, "b7a2c1f0-0000-4000-8000-000000000001")
	if d, ok := RetryAfter(err); !ok || d <= 0 || d > time.Second || !IsRetryable(err) || IsOutcomeUnknown(err) {
		t.Fatalf("request during the pause with a short deadline: %v (retry after %s, %t), want a retryable error with the wait", err, d, ok)
	}
	if n := len(sim.Requests()); n != 1 {
		t.Fatalf("%d requests reached TOPdesk during the pause, want only the refused one", n-1)
	}

	if _, err := c.FindIncidents(t.Context(), "host-1/disk"); err != nil {
		t.Fatal(err)
	}
	rs := sim.Requests()
	if len(rs) != 2 {
		t.Fatalf("%d requests, want 2", len(rs))
	}
	if gap := rs[1].At.Sub(refused); gap < time.Second {
		t.Fatalf("the next request arrived %s after the 429 with Retry-After: 1", gap)
	}
}

// TestRetryAfterTwoClients: two clients (two workers) with four callers
// each, retrying at once on any error, while TOPdesk answers 429
// Retry-After: 2 to everything for a while: no request for a path that met
// a 429 arrives before its Retry-After ran out, and a client sends nothing
// else meanwhile either (beyond requests already under way when the 429
// arrived).
func TestRetryAfterTwoClients(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out two pauses of 2 s")
	}
	const retryAfter = 2 * time.Second
	// The second client logs in as a read-only user, so that the
	// simulator's record tells the clients apart.
	sim := topdesktest.Start(t, topdesktest.Options{ReadOnlyUsers: map[string]string{"worker-b": "password-b"}})
	sim.Inject(topdesktest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "2", Count: 8})
	var wg sync.WaitGroup
	for _, login := range [][2]string{{topdesktest.DefaultUsername, topdesktest.DefaultPassword}, {"worker-b", "password-b"}} {
		c, err := NewClient(sim.URL(), Options{Username: login[0], Password: login[1], Concurrency: 16})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.CloseIdleConnections)
		for i := range 4 {
			wg.Go(func() {
				key := fmt.Sprintf("%s/%d", login[0], i)
				for ok := 0; ok < 3; {
					ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
					_, err := c.FindIncidents(ctx, key)
					cancel()
					switch {
					case err == nil:
						ok++
					case !IsRetryable(err):
						t.Errorf("%s: %v", key, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()

	// Requests already sent when a client got its 429 may arrive just after
	// it; one later than this grace was sent during the pause.
	const grace = 500 * time.Millisecond
	log := sim.Requests()
	refused := map[string]int{}
	for _, r := range log {
		if r.Status != http.StatusTooManyRequests {
			continue
		}
		refused[r.User]++
		for _, o := range log {
			if o.User != r.User || !o.At.After(r.At) || !o.At.Before(r.At.Add(retryAfter)) {
				continue
			}
			if o.RawQuery == r.RawQuery {
				t.Errorf("%s: %s arrived %s after its 429 with Retry-After: 2", o.User, search(o), o.At.Sub(r.At))
			} else if o.At.After(r.At.Add(grace)) {
				t.Errorf("%s: %s arrived %s after the client's 429 on %s", o.User, search(o), o.At.Sub(r.At), search(r))
			}
		}
	}
	if len(refused) != 2 || refused[topdesktest.DefaultUsername]+refused["worker-b"] != 8 {
		t.Fatalf("429s by client: %v, want 8 in all, to both", refused)
	}
}

// search is the FIQL query of an incident search.
func search(r topdesktest.Request) string {
	q, _ := url.ParseQuery(r.RawQuery) // the client built it
	return q.Get("query")
}
