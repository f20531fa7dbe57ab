package worker

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/timer"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// TestTimerHandledThroughFate: a due timer reaches the handler of its kind
// with its body; a retryable failure brings it back (never dead-lettered),
// success removes it.
func TestTimerHandledThroughFate(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	opts := fastOptions()
	opts.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	w, err := New(e.res, e.api, e.resolver, e.mapping, opts)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	got := make(chan string, 4)
	w.timerHandlers["test"] = func(_ context.Context, f timer.Fired) (string, error) {
		if calls.Add(1) == 1 {
			return "", errors.New("TOPdesk is slow today") // retryable
		}
		got <- f.Key + " " + string(f.Body)
		return "", nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	if err := w.setTimer(t.Context(), "test", "alertdesk-abc", time.Now().Add(500*time.Millisecond), []byte("body")); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "alertdesk-abc body" {
			t.Fatalf("handler got %q", s)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("timer not handled after a retry (calls: %d)", calls.Load())
	}
	wait.For(t, 10*time.Second, "the handled timer to be removed", func() bool {
		n, err := e.res.Timers.Pending(t.Context())
		return err == nil && n == 0
	})
}
