package topdesktest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/alertdesk/alertdesk/internal/wait"
)

func TestFaultStatus(t *testing.T) {
	tests := []struct {
		name       string
		fault      Fault
		method     string
		path       string
		wantStatus []int // for three requests in a row
		retryAfter string
	}{
		{"503 once with Retry-After", Fault{Status: 503, RetryAfter: "2", Count: 1}, http.MethodPost, "/tas/api/incidents",
			[]int{503, 201, 201}, "2"},
		{"429 twice with an HTTP date", Fault{Method: "POST", Path: "/tas/api/incidents", Status: 429, RetryAfter: "Wed, 21 Oct 2026 07:28:00 GMT", Count: 2}, http.MethodPost, "/tas/api/incidents",
			[]int{429, 429, 201}, "Wed, 21 Oct 2026 07:28:00 GMT"},
		{"until cleared", Fault{Path: "/tas/api/version", Status: 500}, http.MethodGet, "/tas/api/version",
			[]int{500, 500, 500}, ""},
		{"other method unaffected", Fault{Method: "GET", Status: 502}, http.MethodPost, "/tas/api/incidents",
			[]int{201, 201, 201}, ""},
		{"other path unaffected", Fault{Path: "/tas/api/operators", Status: 502}, http.MethodGet, "/tas/api/version",
			[]int{200, 200, 200}, ""},
		{"any method and path", Fault{Status: 503, Count: 1}, http.MethodGet, "/tas/api/version",
			[]int{503, 200, 200}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, Options{})
			c := newClient(t, s)
			s.Inject(tc.fault)
			for i, want := range tc.wantStatus {
				var body any
				if tc.method == http.MethodPost {
					body = map[string]any{"briefDescription": "x"}
				}
				status, h, b := c.call(tc.method, tc.path, body)
				if status != want {
					t.Fatalf("request %d: status %d, want %d", i+1, status, want)
				}
				if status == tc.fault.Status {
					if got := h.Get("Retry-After"); got != tc.retryAfter {
						t.Errorf("Retry-After = %q, want %q", got, tc.retryAfter)
					}
					if msgs := messages(t, b); len(msgs) != 1 || !strings.Contains(msgs[0], "Simulated fault") {
						t.Errorf("fault body %s", b)
					}
				}
			}
			s.ClearFaults()
			if status, _, _ := c.call(http.MethodGet, "/tas/api/version", nil); status != http.StatusOK {
				t.Errorf("after ClearFaults: status %d", status)
			}
		})
	}
}

func TestFaultsInOrder(t *testing.T) {
	s := Start(t, Options{})
	c := newClient(t, s)
	s.Inject(Fault{Status: 500, Count: 1})
	s.Inject(Fault{Status: 502, Count: 1})
	var got []int
	for range 3 {
		status, _, _ := c.call(http.MethodGet, "/tas/api/version", nil)
		got = append(got, status)
	}
	if diff := cmp.Diff([]int{500, 502, 200}, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
}

func TestFaultDelay(t *testing.T) {
	s := Start(t, Options{})
	c := newClient(t, s)

	t.Run("answers after the delay", func(t *testing.T) {
		c := c.on(t)
		s.Inject(Fault{Delay: 50 * time.Millisecond, Count: 1})
		start := time.Now()
		if status, _, _ := c.call(http.MethodGet, "/tas/api/version", nil); status != http.StatusOK {
			t.Fatalf("status %d", status)
		}
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Errorf("answered after %v, want at least 50ms", d)
		}
	})

	t.Run("client cancellation ends the wait", func(t *testing.T) {
		c := c.on(t)
		s.ResetRequests()
		s.Inject(Fault{Delay: time.Hour, Count: 1})
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		resp, err := c.hc.Do(c.request(ctx, http.MethodPost, "/tas/api/incidents", map[string]any{"briefDescription": "late"}))
		if err == nil {
			resp.Body.Close()
			t.Fatalf("got %d, want a cancelled request", resp.StatusCode)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v, want context.DeadlineExceeded", err)
		}
		// The handler notices the cancellation and records the request
		// without an answer; the incident is not created.
		wait.For(t, 10*time.Second, "the cancelled request to be recorded", func() bool { return len(s.Requests()) == 1 })
		if r := s.Requests()[0]; r.Status != 0 {
			t.Errorf("recorded status %d, want 0 (no answer)", r.Status)
		}
		if n := len(s.Incidents()); n != 0 {
			t.Errorf("%d incidents, want 0", n)
		}
	})
}

func TestFaultDropAndLoseResponse(t *testing.T) {
	tests := []struct {
		name          string
		fault         Fault
		wantIncidents int
		wantRecorded  int
	}{
		{"drop", Fault{Method: "POST", Drop: true, Count: 1}, 0, 0},
		{"lose response", Fault{Method: "POST", LoseResponse: true, Count: 1}, 1, http.StatusCreated},
		{"delayed drop", Fault{Method: "POST", Drop: true, Delay: 10 * time.Millisecond, Count: 1}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, Options{})
			c := newClient(t, s)
			s.Inject(tc.fault)
			resp, err := c.hc.Do(c.request(t.Context(), http.MethodPost, "/tas/api/incidents",
				map[string]any{"briefDescription": "maybe", "externalNumber": "lost-1"}))
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Fatalf("got %d %s, want a transport error", resp.StatusCode, b)
			}
			if n := len(s.Incidents()); n != tc.wantIncidents {
				t.Errorf("%d incidents, want %d", n, tc.wantIncidents)
			}
			if rs := s.Requests(); len(rs) != 1 || rs[0].Status != tc.wantRecorded {
				t.Errorf("recorded %+v, want one request with status %d", rs, tc.wantRecorded)
			}
			// The fault is used up: the client can look the incident up.
			status, items := c.list("/tas/api/incidents?" + encodeQuery("query=externalNumber=='lost-1'"))
			if len(items) != tc.wantIncidents {
				t.Errorf("search after the fault: %d with %d items, want %d", status, len(items), tc.wantIncidents)
			}
		})
	}
}

func TestFaultJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Fault
		wantErr bool
	}{
		{"duration string", `{"method":"post","path":"/tas/api/incidents","status":503,"retryAfter":"1","delay":"250ms","count":2}`,
			Fault{Method: "POST", Path: "/tas/api/incidents", Status: 503, RetryAfter: "1", Delay: 250 * time.Millisecond, Count: 2}, false},
		{"nanoseconds", `{"delay":1000000}`, Fault{Delay: time.Millisecond}, false},
		{"Go field names", `{"Drop":true,"Count":1}`, Fault{Drop: true, Count: 1}, false},
		{"lose response", `{"loseResponse":true}`, Fault{LoseResponse: true}, false},
		{"bad duration", `{"delay":"soon"}`, Fault{}, true},
		{"bad status", `{"status":42}`, Fault{}, true},
		{"does nothing", `{"path":"/tas"}`, Fault{}, true},
		{"negative count", `{"status":500,"count":-1}`, Fault{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got Fault
			err := json.Unmarshal([]byte(tc.in), &got)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("decoded (-want +got):\n%s", diff)
			}
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			var again Fault
			if err := json.Unmarshal(b, &again); err != nil || again != got {
				t.Errorf("round trip %s: %+v, %v", b, again, err)
			}
		})
	}
}
