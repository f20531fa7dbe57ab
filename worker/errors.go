package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alertdesk/alertdesk/dlq"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
)

// kind is what settle does with a failed message.
type kind int

const (
	kindRetry     kind = iota // transient: retry in process, then redeliver with a delay
	kindPermanent             // dead-letter at once
	kindAuth                  // TOPdesk refused the credentials: pause, never dead-letter
)

// errKeyBusy says that another worker holds the claim for the key.
var errKeyBusy = errors.New("another worker is writing this alert key")

// errOutcomePending says that a write for the key whose outcome is unknown
// may still land in TOPdesk: no write for the key until it could not.
var errOutcomePending = errors.New("an earlier write for this alert key has an unknown outcome")

// errPermission says that TOPdesk refused an operation (403) while a probe
// showed that the credentials work: the operator lacks a permission for it.
var errPermission = errors.New("the TOPdesk operator lacks a permission for this operation")

// errPanic is the result of a message whose handling panicked; it is
// redelivered.
var errPanic = errors.New("panic while handling the event")

// errShutdown is the result of a message that was not handled because the
// worker is stopping; it is redelivered at once to another worker.
var errShutdown = errors.New("worker shutting down")

// retryLaterError asks for a redelivery no sooner than after and, when
// within is set, no later than within (waiting longer gains nothing, e.g.
// a claim of another worker lapses by then).
type retryLaterError struct {
	after  time.Duration
	within time.Duration
	err    error
}

func (e *retryLaterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.err, e.after)
}
func (e *retryLaterError) Unwrap() error { return e.err }

// classify decides how an error is settled, and for a permanent error its
// dead-letter class. It looks at types and sentinels only, never at text.
func classify(err error) (kind, dlq.Class) {
	switch {
	case errors.Is(err, mapping.ErrInvalid):
		return kindPermanent, dlq.ClassInvalid
	case errors.Is(err, mapping.ErrTemplate):
		return kindPermanent, dlq.ClassTemplate
	case errors.Is(err, errPermission):
		return kindPermanent, dlq.ClassRejected
	case topdesk.IsAuth(err):
		return kindAuth, ""
	case topdesk.IsRetryable(err):
		return kindRetry, ""
	case topdesk.IsRejected(err):
		return kindPermanent, dlq.ClassRejected
	}
	var ne *topdesk.NameError
	if errors.As(err, &ne) {
		return kindPermanent, dlq.ClassRejected
	}
	// NATS errors, claims held by others, deadlines, shutdown and anything
	// unforeseen: retry, bounded by MaxDeliver.
	return kindRetry, ""
}

// retryAfter is the earliest redelivery the error asks for.
func retryAfter(err error) (time.Duration, bool) {
	var rl *retryLaterError
	if errors.As(err, &rl) {
		return rl.after, true
	}
	return topdesk.RetryAfter(err)
}

// isCtxErr reports whether err comes from a cancelled or expired context.
func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
