package ingest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/ingest"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/worker"
	"github.com/alertdesk/alertdesk/worker/workertest"
)

const ingestToken = "ingest-token-123"

// ingestNow is the receive time of every request, unless a test sets
// Options.Now.
var ingestNow = time.Date(2026, 11, 22, 10, 0, 30, 0, time.UTC)

// ingestEnv is an embedded JetStream server with the alertdesk topology and
// the ingest endpoints on an httptest server.
type ingestEnv struct {
	ns     *server.Server
	js     jetstream.JetStream
	stream jetstream.Stream
	url    string
	client *http.Client
}

func newIngestEnv(t *testing.T, opts ingest.Options) *ingestEnv {
	t.Helper()
	return newIngestEnvWindow(t, opts, 0)
}

// newIngestEnvWindow is newIngestEnv with the input stream's duplicate
// window; 0 is the default.
func newIngestEnvWindow(t *testing.T, opts ingest.Options, window time.Duration) *ingestEnv {
	t.Helper()
	ns := workertest.StartJetStream(t)
	nc, js := workertest.Connect(t, ns)
	res, err := worker.Provision(t.Context(), js, worker.Topology{
		Stream: "ALERTS", Subjects: []string{"alerts.>"}, Consumer: "alertdesk",
		DLQStream: "ALERTS_DLQ", StateBucket: "alertdesk_incidents", Duplicates: window,
	})
	if err != nil {
		t.Fatalf("provision: %v", err)
	}
	opts.Logger = zerolog.Nop()
	opts.Stream = "ALERTS"
	if opts.Now == nil {
		opts.Now = func() time.Time { return ingestNow }
	}
	in := ingest.New(nc, opts)
	if in == nil {
		t.Fatal("New returned nil")
	}
	mux := http.NewServeMux()
	in.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &ingestEnv{ns: ns, js: js, stream: res.Stream, url: srv.URL, client: srv.Client()}
}

// ingestAnswer is a decoded reply of the ingest endpoints.
type ingestAnswer struct {
	status int
	header http.Header
	body   map[string]any
}

// post sends body to path with the token (none when empty).
func (e *ingestEnv) post(t *testing.T, path, token, body string) ingestAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	a := ingestAnswer{status: resp.StatusCode, header: resp.Header}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json (body %s)", got, raw)
	}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("answer %d is not JSON: %v: %s", resp.StatusCode, err, raw)
	}
	return a
}

// stored is one message of the input stream.
type stored struct {
	Subject, Key string
	Status       mapping.Status
	At           time.Time // event time; zero when the event has none
}

// messages returns what the input stream holds, oldest first. It checks
// the Nats-Msg-Id of each event with a time; those of events without one
// depend on the request (TestIngestTimelessMsgID).
func (e *ingestEnv) messages(t *testing.T) []stored {
	t.Helper()
	info, err := e.stream.Info(t.Context())
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	var out []stored
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := e.stream.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatalf("get msg %d: %v", seq, err)
		}
		alerts, err := mapping.Decode(m.Data, mapping.DecodeOptions{})
		if err != nil || len(alerts) != 1 {
			t.Fatalf("stored message %d (%d bytes) does not decode to one alert: %v", seq, len(m.Data), err)
		}
		at := alerts[0].EventTime(time.Time{})
		if got, want := m.Header.Get(jetstream.MsgIDHeader), ingest.MsgID(m.Data, time.Time{}, 0); !at.IsZero() && got != want {
			t.Errorf("stored message %d: Nats-Msg-Id %q, want %q", seq, got, want)
		}
		key, err := mapping.Default().Key(&alerts[0])
		if err != nil {
			t.Fatalf("stored message %d: %v", seq, err)
		}
		out = append(out, stored{Subject: m.Subject, Key: key, Status: alerts[0].Status, At: at})
	}
	return out
}

const (
	ingestEventA = `{"key": "db-7/disk-full", "status": "firing", "severity": "critical",
		"summary": "Disk / at 97% on db-7", "timestamp": "2026-11-22T10:00:05Z"}`
	ingestEventB  = `{"key": "web-1/down", "status": "resolved", "summary": "web-1 down"}`
	ingestWebhook = `{"version": "4", "status": "firing", "receiver": "alertdesk", "alerts": [
		{"status": "firing", "labels": {"alertname": "SwitchPortDown", "severity": "warning"},
		 "annotations": {"summary": "Port down on sw-1"}, "startsAt": "2026-11-22T09:55:00Z", "fingerprint": "5f1a2b3c4d5e6f70"},
		{"status": "resolved", "labels": {"alertname": "HostDown"},
		 "startsAt": "2026-11-22T09:00:00Z", "endsAt": "2026-11-22T09:30:00Z", "fingerprint": "0a1b2c3d4e5f6071"}]}`
)

var (
	storedA = stored{Subject: ingest.SubjectAlerts, Key: "db-7/disk-full", Status: mapping.StatusFiring,
		At: time.Date(2026, 11, 22, 10, 0, 5, 0, time.UTC)}
	// B has no time, and is stored without one: the worker orders it by
	// its publish time.
	storedB   = stored{Subject: ingest.SubjectAlerts, Key: "web-1/down", Status: mapping.StatusResolved}
	storedAM1 = stored{Subject: ingest.SubjectAlertmanager, Key: "5f1a2b3c4d5e6f70", Status: mapping.StatusFiring,
		At: time.Date(2026, 11, 22, 9, 55, 0, 0, time.UTC)}
	storedAM2 = stored{Subject: ingest.SubjectAlertmanager, Key: "0a1b2c3d4e5f6071", Status: mapping.StatusResolved,
		At: time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)}
)

func TestIngestAccepts(t *testing.T) {
	type post struct {
		path, body string
		want       map[string]any // the 202 answer
	}
	for _, tc := range []struct {
		name  string
		posts []post
		want  []stored
	}{
		{
			name:  "one event",
			posts: []post{{"/v1/alerts", ingestEventA, map[string]any{"accepted": 1.0}}},
			want:  []stored{storedA},
		},
		{
			name:  "array of events",
			posts: []post{{"/v1/alerts", "[" + ingestEventA + "," + ingestEventB + "]", map[string]any{"accepted": 2.0}}},
			want:  []stored{storedA, storedB},
		},
		{
			name:  "Alertmanager webhook",
			posts: []post{{"/v1/alertmanager", ingestWebhook, map[string]any{"accepted": 2.0}}},
			want:  []stored{storedAM1, storedAM2},
		},
		{
			name: "same Alertmanager webhook twice is stored once",
			posts: []post{
				{"/v1/alertmanager", ingestWebhook, map[string]any{"accepted": 2.0}},
				{"/v1/alertmanager", ingestWebhook, map[string]any{"duplicates": 2.0}},
			},
			want: []stored{storedAM1, storedAM2},
		},
		{
			name: "changed content at the same time is stored",
			posts: []post{
				{"/v1/alerts", ingestEventA, map[string]any{"accepted": 1.0}},
				{"/v1/alerts", strings.Replace(ingestEventA, "97%", "99%", 1), map[string]any{"accepted": 1.0}},
			},
			want: []stored{storedA, storedA},
		},
		{
			name: "a repeated event within an array counts as a duplicate",
			posts: []post{
				{"/v1/alerts", ingestEventA, map[string]any{"accepted": 1.0}},
				{"/v1/alerts", "[" + ingestEventA + "," + ingestEventB + "]", map[string]any{"accepted": 1.0, "duplicates": 1.0}},
			},
			want: []stored{storedA, storedB},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newIngestEnv(t, ingest.Options{Token: ingestToken})
			for _, p := range tc.posts {
				a := e.post(t, p.path, ingestToken, p.body)
				if a.status != http.StatusAccepted {
					t.Errorf("POST %s: status %d, want 202 (%v)", p.path, a.status, a.body)
				}
				if diff := cmp.Diff(p.want, a.body); diff != "" {
					t.Errorf("POST %s answer (-want +got):\n%s", p.path, diff)
				}
			}
			if diff := cmp.Diff(tc.want, e.messages(t)); diff != "" {
				t.Errorf("stream (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIngestRejects(t *testing.T) {
	for _, tc := range []struct {
		name, path, token, body string
		maxBytes                int64
		wantStatus              int
		wantError               string // part of the JSON "error"
	}{
		{name: "bad JSON", path: "/v1/alerts", token: ingestToken, body: `{"key": "a", "status": `,
			wantStatus: http.StatusBadRequest, wantError: "invalid alert"},
		{name: "no key", path: "/v1/alerts", token: ingestToken, body: `{"status": "firing", "summary": "x"}`,
			wantStatus: http.StatusBadRequest, wantError: "no key"},
		{name: "array with one invalid event", path: "/v1/alerts", token: ingestToken,
			body:       "[" + ingestEventA + `, {"key": "b", "status": "burning"}]`,
			wantStatus: http.StatusBadRequest, wantError: "burning"},
		{name: "native event on the Alertmanager endpoint", path: "/v1/alertmanager", token: ingestToken, body: ingestEventA,
			wantStatus: http.StatusBadRequest, wantError: "not an Alertmanager webhook payload"},
		{name: "no token", path: "/v1/alerts", body: ingestEventA,
			wantStatus: http.StatusUnauthorized, wantError: "bearer token"},
		{name: "wrong token", path: "/v1/alertmanager", token: "guess", body: ingestWebhook,
			wantStatus: http.StatusUnauthorized, wantError: "bearer token"},
		{name: "over the size limit", path: "/v1/alerts", token: ingestToken, maxBytes: 64,
			body:       `{"key": "a", "status": "firing", "summary": "` + strings.Repeat("x", 100) + `"}`,
			wantStatus: http.StatusRequestEntityTooLarge, wantError: "over the limit of 64 bytes"},
		// The body is within the request limit, but one event in it is larger
		// than the worker takes: nothing of the request is stored.
		{name: "event over the event limit", path: "/v1/alerts", token: ingestToken,
			body:       "[" + ingestEventA + `, {"key": "big", "status": "firing", "summary": "` + strings.Repeat("x", mapping.DefaultMaxBytes) + `"}]`,
			wantStatus: http.StatusRequestEntityTooLarge, wantError: "event 1 is"},
		{name: "Alertmanager alert over the event limit", path: "/v1/alertmanager", token: ingestToken,
			body: `{"version": "4", "alerts": [{"status": "firing", "labels": {"alertname": "A"}, "fingerprint": "f1"},
				{"status": "firing", "labels": {"alertname": "B"}, "annotations": {"description": "` + strings.Repeat("y", mapping.DefaultMaxBytes) + `"}, "fingerprint": "f2"}]}`,
			wantStatus: http.StatusRequestEntityTooLarge, wantError: "event 1 is"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newIngestEnv(t, ingest.Options{Token: ingestToken, MaxBytes: tc.maxBytes})
			a := e.post(t, tc.path, tc.token, tc.body)
			if a.status != tc.wantStatus {
				t.Errorf("status %d, want %d (%v)", a.status, tc.wantStatus, a.body)
			}
			msg, _ := a.body["error"].(string)
			if !strings.Contains(msg, tc.wantError) {
				t.Errorf("error %q does not contain %q", msg, tc.wantError)
			}
			if tc.wantStatus == http.StatusUnauthorized && a.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if got := e.messages(t); len(got) != 0 {
				t.Errorf("stream holds %d messages, want none: %v", len(got), got)
			}
		})
	}
}

// reorderWindow is the default lifecycle.reorderWindow (PRODUCT.md, "Order
// of events").
const reorderWindow = time.Minute

// The input stream's duplicate window must not exceed reorderWindow, or an
// Alertmanager re-fire identical to a notification stored more than
// reorderWindow ago would be dropped as a duplicate.
func TestIngestDefaultDedupeWindow(t *testing.T) {
	e := newIngestEnv(t, ingest.Options{Token: ingestToken})
	info, err := e.stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Config.Duplicates; got <= 0 || got > reorderWindow {
		t.Errorf("input stream duplicate window %s, want more than 0 and at most reorderWindow (%s)", got, reorderWindow)
	}
}

// HA copies, sent within milliseconds, are stored once; the same webhook
// sent again after the duplicate window (an Alertmanager re-fire after its
// resolve_timeout) is stored again. The webhook carries one alert, so each
// post is either stored or a duplicate as a whole.
func TestIngestRefireAfterWindow(t *testing.T) {
	const window = time.Second
	webhook := `{"version": "4", "status": "firing", "receiver": "alertdesk", "alerts": [
		{"status": "firing", "labels": {"alertname": "SwitchPortDown", "severity": "warning"},
		 "annotations": {"summary": "Port down on sw-1"}, "startsAt": "2026-11-22T09:55:00Z", "fingerprint": "5f1a2b3c4d5e6f70"}]}`
	e := newIngestEnvWindow(t, ingest.Options{Token: ingestToken}, window)
	start := time.Now()
	for i, want := range []map[string]any{{"accepted": 1.0}, {"duplicates": 1.0}} {
		if a := e.post(t, "/v1/alertmanager", ingestToken, webhook); a.status != http.StatusAccepted || !cmp.Equal(want, a.body) {
			t.Fatalf("post %d: %d %v, want 202 %v", i+1, a.status, a.body, want)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		a := e.post(t, "/v1/alertmanager", ingestToken, webhook)
		if a.status != http.StatusAccepted {
			t.Fatalf("re-fire: %d %v", a.status, a.body)
		}
		if cmp.Equal(map[string]any{"accepted": 1.0}, a.body) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the re-fire is still a duplicate %s after the first post (window %s)", time.Since(start), window)
		}
		<-tick.C
	}
	if elapsed := time.Since(start); elapsed < window {
		t.Errorf("re-fire stored after %s, inside the window of %s", elapsed, window)
	}
	if diff := cmp.Diff([]stored{storedAM1, storedAM1}, e.messages(t)); diff != "" {
		t.Errorf("stream (-want +got):\n%s", diff)
	}
}

// TestIngestTimelessMsgID: an event without a time is stored without one,
// in the order of its request, so that the worker orders it by its own
// publish time. Its Nats-Msg-Id hashes the second the request came in and
// its position in the request: copies received within one second are
// stored once, a copy in a later second is stored again, and the same
// event twice in one request is stored twice.
func TestIngestTimelessMsgID(t *testing.T) {
	const (
		firing   = `{"key": "k", "status": "firing", "summary": "x"}`
		resolved = `{"key": "k", "status": "resolved"}`
	)
	var (
		storedFiring   = stored{Subject: ingest.SubjectAlerts, Key: "k", Status: mapping.StatusFiring}
		storedResolved = stored{Subject: ingest.SubjectAlerts, Key: "k", Status: mapping.StatusResolved}
	)
	type post struct {
		at   time.Time // receive time
		body string
		want map[string]any // the 202 answer
	}
	second := ingestNow.Add(time.Second)
	for _, tc := range []struct {
		name  string
		posts []post
		want  []stored
	}{
		{
			name:  "array order is publish order",
			posts: []post{{ingestNow, "[" + resolved + "," + firing + "]", map[string]any{"accepted": 2.0}}},
			want:  []stored{storedResolved, storedFiring},
		},
		{
			name: "copies within one second are stored once",
			posts: []post{
				{ingestNow.Add(100 * time.Millisecond), "[" + resolved + "," + firing + "]", map[string]any{"accepted": 2.0}},
				{ingestNow.Add(900 * time.Millisecond), "[" + resolved + "," + firing + "]", map[string]any{"duplicates": 2.0}},
			},
			want: []stored{storedResolved, storedFiring},
		},
		{
			name: "a copy in a later second is stored again",
			posts: []post{
				{ingestNow.Add(900 * time.Millisecond), firing, map[string]any{"accepted": 1.0}},
				{second, firing, map[string]any{"accepted": 1.0}},
			},
			want: []stored{storedFiring, storedFiring},
		},
		{
			name:  "the same event twice in one request is stored twice",
			posts: []post{{ingestNow, "[" + firing + "," + resolved + "," + firing + "]", map[string]any{"accepted": 3.0}}},
			want:  []stored{storedFiring, storedResolved, storedFiring},
		},
		{
			name: "the position in the request counts",
			posts: []post{
				{ingestNow, firing, map[string]any{"accepted": 1.0}},
				{ingestNow, "[" + resolved + "," + firing + "]", map[string]any{"accepted": 2.0}},
			},
			want: []stored{storedFiring, storedResolved, storedFiring},
		},
		{
			// The rule for events with a time is unchanged: their bytes decide.
			name: "an event with a time is a duplicate in a later second",
			posts: []post{
				{ingestNow, ingestEventA, map[string]any{"accepted": 1.0}},
				{second, ingestEventA, map[string]any{"duplicates": 1.0}},
			},
			want: []stored{storedA},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var now atomic.Int64 // the handler reads it on the server's goroutine
			e := newIngestEnv(t, ingest.Options{Token: ingestToken, Now: func() time.Time { return time.Unix(0, now.Load()) }})
			for i, p := range tc.posts {
				now.Store(p.at.UnixNano())
				a := e.post(t, "/v1/alerts", ingestToken, p.body)
				if a.status != http.StatusAccepted {
					t.Errorf("post %d: status %d, want 202 (%v)", i+1, a.status, a.body)
				}
				if diff := cmp.Diff(p.want, a.body); diff != "" {
					t.Errorf("post %d answer (-want +got):\n%s", i+1, diff)
				}
			}
			if diff := cmp.Diff(tc.want, e.messages(t)); diff != "" {
				t.Errorf("stream (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIngestNATSDown(t *testing.T) {
	e := newIngestEnv(t, ingest.Options{Token: ingestToken})
	e.ns.Shutdown()
	e.ns.WaitForShutdown()
	a := e.post(t, "/v1/alerts", ingestToken, ingestEventA)
	if a.status != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503 (%v)", a.status, a.body)
	}
	if a.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if msg, _ := a.body["error"].(string); !strings.Contains(msg, "retry later") {
		t.Errorf("error %q does not tell the sender to retry", msg)
	}
}

// asyncMaxPending is nats.go's default limit on async publishes awaiting
// their acks (jetstream.WithPublishAsyncMaxPending): past it a publish
// stalls, and fails.
const asyncMaxPending = 4000

// TestIngestUnansweredPublishes: publishes that JetStream never answers (a
// stream leader lost in an election; here a plain subscriber that never
// replies) end their request with 503 after PublishTimeout, and are then
// forgotten: once JetStream answers again, the next request is stored, also
// after asyncMaxPending of them.
func TestIngestUnansweredPublishes(t *testing.T) {
	ns := workertest.StartJetStream(t)
	nc, js := workertest.Connect(t, ns)
	sub, err := nc.SubscribeSync(ingest.SubjectAlerts)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	in := ingest.New(nc, ingest.Options{Token: ingestToken, Stream: "ALERTS", Logger: zerolog.Nop(), PublishTimeout: 200 * time.Millisecond})
	mux := http.NewServeMux()
	in.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e := &ingestEnv{ns: ns, js: js, url: srv.URL, client: srv.Client()}

	events := make([]string, asyncMaxPending)
	for i := range events {
		events[i] = fmt.Sprintf(`{"key": "k%d", "status": "firing"}`, i)
	}
	if a := e.post(t, "/v1/alerts", ingestToken, "["+strings.Join(events, ",")+"]"); a.status != http.StatusServiceUnavailable {
		t.Fatalf("unanswered: status %d, want 503 (%v)", a.status, a.body)
	}
	if _, err := sub.NextMsg(time.Second); err != nil {
		t.Fatalf("the publishes did not arrive: %v", err)
	}
	// JetStream answers again.
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	res, err := worker.Provision(t.Context(), js, worker.Topology{
		Stream: "ALERTS", Subjects: []string{"alerts.>"}, Consumer: "alertdesk",
		DLQStream: "ALERTS_DLQ", StateBucket: "alertdesk_incidents",
	})
	if err != nil {
		t.Fatal(err)
	}
	e.stream = res.Stream
	if a := e.post(t, "/v1/alerts", ingestToken, ingestEventA); a.status != http.StatusAccepted {
		t.Errorf("after %d unanswered publishes: status %d, want 202 (%v)", asyncMaxPending, a.status, a.body)
	}
	if diff := cmp.Diff([]stored{storedA}, e.messages(t)); diff != "" {
		t.Errorf("stream (-want +got):\n%s", diff)
	}
}

// TestIngestOnlyIntoInputStream: when another stream (an archive) binds
// the ingest subjects and the input stream does not, ingest must not answer
// 202 for events the workers will never see: it answers 503 and neither
// stream stores them.
func TestIngestOnlyIntoInputStream(t *testing.T) {
	ns := workertest.StartJetStream(t)
	nc, js := workertest.Connect(t, ns)
	res, err := worker.Provision(t.Context(), js, worker.Topology{
		Stream: "ALERTS", Subjects: []string{"alerts.prometheus.>"}, Consumer: "alertdesk",
		DLQStream: "ALERTS_DLQ", StateBucket: "alertdesk_incidents",
	})
	if err != nil {
		t.Fatal(err)
	}
	archive, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ARCHIVE",
		Subjects: []string{ingest.SubjectAlerts, ingest.SubjectAlertmanager, ingest.SubjectGrafana}})
	if err != nil {
		t.Fatal(err)
	}
	in := ingest.New(nc, ingest.Options{Token: ingestToken, Stream: "ALERTS", Logger: zerolog.Nop()})
	mux := http.NewServeMux()
	in.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e := &ingestEnv{ns: ns, js: js, stream: res.Stream, url: srv.URL, client: srv.Client()}

	if a := e.post(t, "/v1/alerts", ingestToken, ingestEventA); a.status != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503 (%v)", a.status, a.body)
	}
	if got := e.messages(t); len(got) != 0 {
		t.Errorf("the input stream holds %v, want nothing", got)
	}
	info, err := archive.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Msgs; n != 0 {
		t.Errorf("ARCHIVE holds %d messages, want none", n)
	}
}

func TestIngestAuthScheme(t *testing.T) {
	e := newIngestEnv(t, ingest.Options{Token: ingestToken})
	for _, header := range []string{"Bearer " + ingestToken, "bearer " + ingestToken, "BEARER  " + ingestToken} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.url+"/v1/alerts", strings.NewReader(ingestEventA))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", header)
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Errorf("Authorization %q: status %d, want 202", strings.Replace(header, ingestToken, "<token>", 1), resp.StatusCode)
		}
	}
}

func TestIngestOff(t *testing.T) {
	nc, _ := workertest.Connect(t, workertest.StartJetStream(t))
	for _, tc := range []struct {
		name    string
		opts    ingest.Options
		wantOff bool
	}{
		{"no token", ingest.Options{}, true},
		{"token", ingest.Options{Token: ingestToken}, false},
		{"open without token", ingest.Options{Open: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ingest.New(nc, tc.opts) == nil; got != tc.wantOff {
				t.Errorf("New(%+v) == nil is %v, want %v", tc.opts, got, tc.wantOff)
			}
		})
	}
}

func TestIngestOpenNeedsNoToken(t *testing.T) {
	e := newIngestEnv(t, ingest.Options{Open: true})
	a := e.post(t, "/v1/alerts", "", ingestEventA)
	if a.status != http.StatusAccepted {
		t.Errorf("status %d, want 202 (%v)", a.status, a.body)
	}
	if diff := cmp.Diff([]stored{storedA}, e.messages(t)); diff != "" {
		t.Errorf("stream (-want +got):\n%s", diff)
	}
}

// TestIngestGrafana posts Grafana's documented webhook (firing and resolved
// alerts) to /v1/grafana: one event per alert on alerts.grafana, keyed by
// fingerprint. A plain event is not a Grafana webhook, also not one that
// says "source": "grafana": neither is stored.
func TestIngestGrafana(t *testing.T) {
	hook, err := os.ReadFile("../mapping/testdata/sources-grafana.alert.json")
	if err != nil {
		t.Fatal(err)
	}
	e := newIngestEnv(t, ingest.Options{Token: ingestToken})
	if a := e.post(t, "/v1/grafana", ingestToken, string(hook)); a.status != http.StatusAccepted || a.body["accepted"] != 3.0 {
		t.Fatalf("POST /v1/grafana: %d %v, want 202 with 3 accepted", a.status, a.body)
	}
	cet := time.FixedZone("", 3600)
	want := []stored{
		{Subject: ingest.SubjectGrafana, Key: "3b2f6a4c9d1e0f57", Status: mapping.StatusFiring, At: time.Date(2026, 11, 22, 10, 0, 0, 0, cet)},
		{Subject: ingest.SubjectGrafana, Key: "8e0c1d2b3a4f5061", Status: mapping.StatusFiring, At: time.Date(2026, 11, 22, 10, 2, 0, 0, cet)},
		{Subject: ingest.SubjectGrafana, Key: "c0ffee0012345678", Status: mapping.StatusResolved, At: time.Date(2026, 11, 22, 9, 40, 0, 0, cet)},
	}
	if diff := cmp.Diff(want, e.messages(t), cmp.Comparer(time.Time.Equal)); diff != "" {
		t.Errorf("stream (-want +got):\n%s", diff)
	}
	for _, plain := range []string{ingestEventA, `{"key": "k", "status": "firing", "source": "grafana"}`} {
		if a := e.post(t, "/v1/grafana", ingestToken, plain); a.status != http.StatusBadRequest {
			t.Errorf("plain event %s on /v1/grafana: %d %v, want 400", plain, a.status, a.body)
		}
	}
	if diff := cmp.Diff(want, e.messages(t), cmp.Comparer(time.Time.Equal)); diff != "" {
		t.Errorf("stream after the plain events (-want +got):\n%s", diff)
	}
}

// TestIngestStatusRule posts OpManager's body, with OpManager's values, to
// /v1/alerts under the OpManager mapping: the status rule turns severity
// "Clear" into a resolve before anything is stored.
func TestIngestStatusRule(t *testing.T) {
	m, err := mapping.LoadFile("../deploy/sources/opmanager/mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile("../deploy/sources/opmanager/body.json")
	if err != nil {
		t.Fatal(err)
	}
	opmanager := strings.NewReplacer("$alarmid", "17", "$displayName", "core-sw-1", "$message", "Device not responding",
		"$category", "Switch", "$strModTime", "Nov 22, 2026 10:00:00 AM")
	e := newIngestEnv(t, ingest.Options{Token: ingestToken, Mapping: m})
	for _, severity := range []string{"Critical", "Clear"} {
		b := strings.ReplaceAll(opmanager.Replace(string(body)), "$stringseverity", severity)
		if a := e.post(t, "/v1/alerts", ingestToken, b); a.status != http.StatusAccepted {
			t.Fatalf("POST severity %s: %d %v, want 202", severity, a.status, a.body)
		}
	}
	want := []stored{
		{Subject: ingest.SubjectAlerts, Key: "opmanager/core-sw-1/17", Status: mapping.StatusFiring},
		{Subject: ingest.SubjectAlerts, Key: "opmanager/core-sw-1/17", Status: mapping.StatusResolved},
	}
	if diff := cmp.Diff(want, e.messages(t)); diff != "" {
		t.Errorf("stream (-want +got):\n%s", diff)
	}
}
