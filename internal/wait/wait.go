// Package wait is the one polling helper of alertdesk's tests: tests wait
// for a condition on a channel where they can, and poll with a deadline
// where they cannot — never with time.Sleep.
package wait

import (
	"testing"
	"time"
)

// interval is how often For polls: short enough not to slow a test down,
// long enough not to load the machine the test measures.
const interval = 10 * time.Millisecond

// For polls cond until it holds and fails the test when timeout passes
// first, or when the test's context ends (the test is being stopped). what
// names the condition in the failure, e.g. "the incident to be closed".
func For(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-t.Context().Done():
			t.Fatalf("stopped waiting for %s: %v", what, t.Context().Err())
		case <-tick.C:
		}
	}
}
