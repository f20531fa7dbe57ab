package worker

import (
	"errors"
	"sync"
	"time"
)

// waitingKeys remembers which alert keys have events waiting (redelivered
// later), so that the worker says once at warn why a key's events wait and
// once when they no longer do, not once per redelivery (docs/operations.md,
// "Observability").
type waitingKeys struct {
	mu sync.Mutex // makes start's look-then-put one step
	m  bounded[string, waiting]
}

// waiting is why and since when a key's events wait.
type waiting struct {
	reason string
	since  time.Time
}

// waitReason names why an event that is redelivered later waits.
func waitReason(err error) string {
	switch {
	case errors.Is(err, errKeyBusy):
		return "claim" // another worker is writing the key
	case errors.Is(err, errOutcomePending):
		return "unknown_outcome" // an earlier write may still land
	default:
		return "retry" // TOPdesk or NATS failed; retried with backoff
	}
}

// start records that key waits for reason at now; it reports whether that
// is news (the key did not wait, or waited for another reason).
func (k *waitingKeys) start(key, reason string, now time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if w, ok := k.m.get(key); ok && w.reason == reason {
		return false
	}
	k.m.put(key, waiting{reason: reason, since: now})
	return true
}

// end forgets that key waits; it returns since when it waited, if it did.
func (k *waitingKeys) end(key string) (time.Time, bool) {
	w, ok := k.m.take(key)
	return w.since, ok
}
