package worker

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/alertdesk/alertdesk/dlq"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
)

func TestDecideFate(t *testing.T) {
	p := fatePolicy{maxDeliver: 5, redeliverMin: time.Second, redeliverMax: 8 * time.Second,
		breakerCooldown: 5 * time.Second, authRetry: 30 * time.Second, jitter: func(d time.Duration) time.Duration { return d }}
	status := func(code int) error {
		return &topdesk.APIError{StatusCode: code, Method: http.MethodPatch, Path: "/tas/api/incidents/id/x"}
	}
	tests := []struct {
		name     string
		err      error
		attempts uint64
		paused   bool
		want     fate
	}{
		{"done", nil, 1, false, fate{kind: fateAck}},
		{"done on the last attempt", nil, 9, true, fate{kind: fateAck}},
		{"shutdown", errors.Join(errShutdown, status(502)), 1, false, fate{kind: fateNak}},
		{"invalid", fmt.Errorf("decode: %w", mapping.ErrInvalid), 1, false, fate{kind: fateDeadLetter, class: dlq.ClassInvalid}},
		{"template", fmt.Errorf("render: %w", mapping.ErrTemplate), 1, false, fate{kind: fateDeadLetter, class: dlq.ClassTemplate}},
		{"rejected", status(400), 1, false, fate{kind: fateDeadLetter, class: dlq.ClassRejected}},
		{"forbidden, credentials work", fmt.Errorf("%w: %w", errPermission, status(403)), 1, false, fate{kind: fateDeadLetter, class: dlq.ClassRejected}},
		{"forbidden, probe failed", status(403), 9, false, fate{kind: fateNak, delay: 30 * time.Second}},
		{"credentials", status(401), 9, false, fate{kind: fateNak, delay: 30 * time.Second}},
		{"5xx, first attempt", status(502), 1, false, fate{kind: fateNak, delay: time.Second, attempt: true}},
		{"5xx, third attempt", status(502), 3, false, fate{kind: fateNak, delay: 4 * time.Second, attempt: true}},
		{"5xx, delay capped", status(502), 4, false, fate{kind: fateNak, delay: 8 * time.Second, attempt: true}},
		{"5xx, last attempt", status(502), 5, false, fate{kind: fateNak, delay: 8 * time.Second, attempt: true}},
		{"5xx, one more attempt (outcome unknown)", status(502), 6, false, fate{kind: fateDeadLetter, class: dlq.ClassExhausted}},
		{"5xx on a read, last attempt", &topdesk.APIError{StatusCode: 502, Method: http.MethodGet}, 5, false,
			fate{kind: fateDeadLetter, class: dlq.ClassExhausted}},
		{"5xx, last delivery, TOPdesk down", status(502), 5, true, fate{kind: fateNak, delay: 8 * time.Second}},
		{"breaker open", status(503), 1, true, fate{kind: fateNak, delay: 5 * time.Second}},
		{"Retry-After", &retryLaterError{after: 3 * time.Second, err: status(429)}, 1, false, fate{kind: fateNak, delay: 3 * time.Second, attempt: true}},
		{"key busy", &retryLaterError{after: 100 * time.Millisecond, within: 2 * time.Second, err: errKeyBusy}, 4, false,
			fate{kind: fateNak, delay: 2 * time.Second}},
		{"key busy, last attempt", &retryLaterError{within: time.Second, err: errKeyBusy}, 7, false, fate{kind: fateNak, delay: time.Second}},
		{"outcome pending, last attempt", &retryLaterError{after: 40 * time.Second, within: 40 * time.Second, err: errOutcomePending}, 7, false,
			fate{kind: fateNak, delay: 40 * time.Second}},
		{"panic", fmt.Errorf("%w: boom", errPanic), 1, false, fate{kind: fateNak, delay: time.Second, attempt: true}},
		{"panic, last attempt", fmt.Errorf("%w: boom", errPanic), 5, false, fate{kind: fateDeadLetter, class: dlq.ClassExhausted}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := decideFate(tc.err, tc.attempts, tc.paused, p); got != tc.want {
				t.Errorf("decideFate = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestMessageFate(t *testing.T) {
	p := fatePolicy{maxDeliver: 5, redeliverMin: time.Second, redeliverMax: 8 * time.Second,
		breakerCooldown: 5 * time.Second, authRetry: 30 * time.Second, jitter: func(d time.Duration) time.Duration { return d }}
	rejected := &topdesk.APIError{StatusCode: http.StatusBadRequest, Method: http.MethodPost, Path: "/tas/api/incidents"}
	unavailable := &topdesk.APIError{StatusCode: http.StatusBadGateway, Method: http.MethodPost, Path: "/tas/api/incidents"}
	busy := &retryLaterError{after: time.Second, within: 3 * time.Second, err: errKeyBusy}
	a := alertFailure{index: 0, key: "a", err: rejected}
	b := alertFailure{index: 1, key: "b", err: unavailable}
	c := alertFailure{index: 2, key: "c", err: busy}
	tests := []struct {
		name      string
		err       error
		failed    []alertFailure
		want      fate
		wantCause string   // key of the alert whose fate the message takes; "" = none
		wantDead  []string // keys dead-lettered alone
	}{
		{"one alert: decideFate", rejected, nil, fate{kind: fateDeadLetter, class: dlq.ClassRejected}, "", nil},
		{"every failed alert dead-lettered alone", nil, []alertFailure{a}, fate{kind: fateDeadLetter}, "", []string{"a"}},
		{"a retry takes the whole message back", nil, []alertFailure{a, b}, fate{kind: fateNak, delay: time.Second, attempt: true}, "b", []string{"a"}},
		{"a wait for a claim does not undo an attempt", nil, []alertFailure{b, c},
			fate{kind: fateNak, delay: time.Second, attempt: true}, "b", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, cause, dead := messageFate(tc.err, tc.failed, 1, false, p)
			if got != tc.want {
				t.Errorf("fate = %+v, want %+v", got, tc.want)
			}
			if gotCause := ""; cause != nil {
				gotCause = cause.key
				if gotCause != tc.wantCause {
					t.Errorf("cause = %q, want %q", gotCause, tc.wantCause)
				}
			} else if tc.wantCause != "" {
				t.Errorf("no cause, want %q", tc.wantCause)
			}
			var gotDead []string
			for _, d := range dead {
				gotDead = append(gotDead, d.key)
			}
			if diff := cmp.Diff(tc.wantDead, gotDead); diff != "" {
				t.Errorf("dead-lettered alone (-want +got):\n%s", diff)
			}
		})
	}
}
