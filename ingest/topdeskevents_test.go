package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/ingest"
	"github.com/alertdesk/alertdesk/timer"
	"github.com/alertdesk/alertdesk/worker"
	"github.com/alertdesk/alertdesk/worker/workertest"
)

const eventsToken = "topdesk-events-token"

// newEventsEnv serves POST /v1/topdesk/events over a provisioned JetStream;
// queue may replace worker.QueueTopdeskEvent.
func newEventsEnv(t *testing.T, queue func(ctx context.Context, js jetstream.JetStream, number string) error) (*ingestEnv, jetstream.Stream) {
	t.Helper()
	ns := workertest.StartJetStream(t)
	_, js := workertest.Connect(t, ns)
	if _, err := worker.Provision(t.Context(), js, worker.Topology{
		Stream: "ALERTS", Subjects: []string{"alerts.>"}, Consumer: "alertdesk",
		DLQStream: "ALERTS_DLQ", StateBucket: "alertdesk_incidents",
	}); err != nil {
		t.Fatalf("provision: %v", err)
	}
	timers, err := js.Stream(t.Context(), "ALERTDESK_TIMERS")
	if err != nil {
		t.Fatal(err)
	}
	h := ingest.NewTopdeskEvents(ingest.TopdeskEventsOptions{
		Token:  eventsToken,
		Queue:  func(ctx context.Context, number string) error { return queue(ctx, js, number) },
		Logger: zerolog.Nop(),
	})
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &ingestEnv{ns: ns, js: js, url: srv.URL, client: srv.Client()}, timers
}

func TestTopdeskEvents(t *testing.T) {
	e, timers := newEventsEnv(t, worker.QueueTopdeskEvent)
	for _, tc := range []struct {
		name, token, body string
		want              int
	}{
		{"no token", "", `{"number": "I 2612 001"}`, http.StatusUnauthorized},
		{"wrong token", "nope", `{"number": "I 2612 001"}`, http.StatusUnauthorized},
		{"not JSON", eventsToken, `number=I 2612 001`, http.StatusBadRequest},
		{"no number", eventsToken, `{"incident": "I 2612 001"}`, http.StatusBadRequest},
		{"number not a string", eventsToken, `{"number": 12}`, http.StatusBadRequest},
		{"empty number", eventsToken, `{"number": " "}`, http.StatusBadRequest},
		{"control characters", eventsToken, `{"number": "I 1\n2"}`, http.StatusBadRequest},
		{"too long", eventsToken, `{"number": "` + strings.Repeat("1", 65) + `"}`, http.StatusBadRequest},
		{"too large", eventsToken, `{"number": "I 1", "x": "` + strings.Repeat("x", 70<<10) + `"}`, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := e.post(t, ingest.TopdeskEventsPath, tc.token, tc.body); got.status != tc.want {
				t.Errorf("status %d (%v), want %d", got.status, got.body, tc.want)
			}
		})
	}
	if info, err := timers.Info(t.Context()); err != nil || info.State.Msgs != 0 {
		t.Fatalf("refused events stored %v messages (%v), want none", info.State.Msgs, err)
	}

	// Accepted: stored in JetStream before the 202, as a timer due at once;
	// two events for one incident that wait are one.
	for range 2 {
		if got := e.post(t, ingest.TopdeskEventsPath, eventsToken, `{"number": "I 2612 001", "briefDescription": "Disk full"}`); got.status != http.StatusAccepted {
			t.Fatalf("status %d (%v), want 202", got.status, got.body)
		}
	}
	if got := e.post(t, ingest.TopdeskEventsPath, eventsToken, `{"number": "I 2612 002"}`); got.status != http.StatusAccepted {
		t.Fatalf("status %d (%v), want 202", got.status, got.body)
	}
	info, err := timers.Info(t.Context(), jetstream.WithSubjectFilter(timer.SubjectPrefix+"due.>"))
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("timer stream holds %d messages, want 2 (one per incident)", info.State.Msgs)
	}
	var numbers []string
	for subject := range info.State.Subjects {
		m, err := timers.GetLastMsgForSubject(t.Context(), subject)
		if err != nil {
			t.Fatal(err)
		}
		var ev struct{ Number string }
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		numbers = append(numbers, ev.Number)
	}
	slices.Sort(numbers)
	if !slices.Equal(numbers, []string{"I 2612 001", "I 2612 002"}) {
		t.Errorf("queued %v, want I 2612 001 and I 2612 002", numbers)
	}
}

func TestTopdeskEventsUnavailable(t *testing.T) {
	e, _ := newEventsEnv(t, func(context.Context, jetstream.JetStream, string) error {
		return errors.New("nats: no responders available for request")
	})
	got := e.post(t, ingest.TopdeskEventsPath, eventsToken, `{"number": "I 2612 001"}`)
	if got.status != http.StatusServiceUnavailable || got.header.Get("Retry-After") == "" {
		t.Errorf("status %d, Retry-After %q; want 503 with Retry-After", got.status, got.header.Get("Retry-After"))
	}
}

func TestTopdeskEventsOff(t *testing.T) {
	queue := func(context.Context, string) error { return nil }
	if h := ingest.NewTopdeskEvents(ingest.TopdeskEventsOptions{Queue: queue}); h != nil {
		t.Error("NewTopdeskEvents without a token = an endpoint, want nil (off)")
	}
}
