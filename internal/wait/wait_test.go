package wait

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestForReturnsOnceTheConditionHolds(t *testing.T) {
	var calls atomic.Int32
	For(t, 5*time.Second, "the third poll", func() bool { return calls.Add(1) >= 3 })
	if got := calls.Load(); got != 3 {
		t.Errorf("cond called %d times, want 3", got)
	}
}

// fatalRecorder stands in for a test whose failure For reports. Its Fatalf
// records the message and unwinds the caller, as testing.T's does.
type fatalRecorder struct {
	testing.TB
	format string
}

type fatal struct{}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.format = format
	panic(fatal{})
}

// failure runs For against a recorder and returns the failure it reported.
func failure(t *testing.T, timeout time.Duration, cond func() bool) (format string) {
	r := &fatalRecorder{TB: t}
	defer func() {
		if p := recover(); p != nil && p != (fatal{}) {
			panic(p)
		}
		format = r.format
	}()
	For(r, timeout, "something", cond)
	return ""
}

func TestForFailsAtTheDeadline(t *testing.T) {
	start := time.Now()
	got := failure(t, 30*time.Millisecond, func() bool { return false })
	if want := "timed out after %s waiting for %s"; got != want {
		t.Errorf("failure = %q, want %q", got, want)
	}
	if took := time.Since(start); took < 30*time.Millisecond {
		t.Errorf("For gave up after %s, before its 30ms timeout", took)
	}
}
