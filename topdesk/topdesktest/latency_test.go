package topdesktest_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// TestLatencyAndMaxInFlight: every API request takes the configured latency
// within its jitter, and requests beyond MaxInFlight are answered 429 with
// Retry-After: 1 at once.
func TestLatencyAndMaxInFlight(t *testing.T) {
	const latency = 300 * time.Millisecond
	sim := topdesktest.Start(t, topdesktest.Options{Latency: latency, Jitter: 0.2, MaxInFlight: 2})
	type answer struct {
		status     int
		retryAfter string
		took       time.Duration
	}
	answers := make(chan answer, 6)
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, sim.URL()+"/tas/api/version", nil)
			if err != nil {
				t.Error(err)
				return
			}
			req.SetBasicAuth(topdesktest.DefaultUsername, topdesktest.DefaultPassword)
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			answers <- answer{resp.StatusCode, resp.Header.Get("Retry-After"), time.Since(start)}
		})
	}
	wg.Wait()
	close(answers)
	ok, refused := 0, 0
	for a := range answers {
		switch a.status {
		case http.StatusOK:
			ok++
			if a.took < latency*8/10 {
				t.Errorf("answered in %s, want at least %s", a.took, latency*8/10)
			}
		case http.StatusTooManyRequests:
			refused++
			if a.retryAfter != "1" || a.took >= latency*8/10 {
				t.Errorf("429 with Retry-After %q in %s, want 1, at once", a.retryAfter, a.took)
			}
		default:
			t.Errorf("status %d", a.status)
		}
	}
	if ok < 2 || refused == 0 {
		t.Fatalf("%d answered, %d refused; want at least 2 answered and some refused", ok, refused)
	}
}
