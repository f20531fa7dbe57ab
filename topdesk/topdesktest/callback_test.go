package topdesktest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/alertdesk/alertdesk/internal/wait"
)

// received is one request the automated action's receiver got.
type received struct {
	auth, contentType string
	number            string
}

// startReceiver serves an automated action's receiver that answers 202 and
// hands each request to the returned channel.
func startReceiver(t *testing.T) (string, <-chan received) {
	t.Helper()
	ch := make(chan received, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body struct {
			Number string `json:"number"`
		}
		if err := json.Unmarshal(b, &body); err != nil || r.Method != http.MethodPost {
			t.Errorf("receiver: %s with body %s", r.Method, b)
		}
		ch <- received{auth: r.Header.Get("Authorization"), contentType: r.Header.Get("Content-Type"), number: body.Number}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, ch
}

// next waits for the receiver's next request.
func next(t *testing.T, ch <-chan received) received {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the automated action was not called within 10s")
		return received{}
	}
}

// TestCallback checks the automated action: operators' changes call it with
// the incident's number and the bearer token, alertdesk's own API changes
// do not unless configured, and the admin endpoint configures it.
func TestCallback(t *testing.T) {
	url, calls := startReceiver(t)
	s := Start(t, Options{Now: fixedNow, Callback: Callback{URL: url, Token: "s3cret"}})
	c := newClient(t, s)
	a := c.createIncident(map[string]any{"briefDescription": "a", "externalNumber": "alertdesk-a"})
	b := c.createIncident(map[string]any{"briefDescription": "b", "externalNumber": "alertdesk-b"})
	c.mustCall(http.MethodPatch, "/tas/api/incidents/id/"+a["id"].(string), map[string]any{"action": "by alertdesk"}, http.StatusOK)

	// Calls come in the order of the changes, so the first is the
	// operator's: the creates and the PATCH above called nothing.
	if _, err := s.Close("ejansen", b["number"].(string), "Solved"); err != nil {
		t.Fatal(err)
	}
	got := next(t, calls)
	if got.number != b["number"] || got.auth != "Bearer s3cret" || got.contentType != "application/json" {
		t.Errorf("call %+v, want number %v with Bearer s3cret", got, b["number"])
	}
	if _, err := s.Archive("ejansen", a["id"].(string), ""); err != nil {
		t.Fatal(err)
	}
	if got := next(t, calls); got.number != a["number"] {
		t.Errorf("after archive: number %q, want %v", got.number, a["number"])
	}
	wait.For(t, 10*time.Second, "two calls recorded", func() bool { return len(s.Callbacks()) == 2 })
	for _, cc := range s.Callbacks() {
		if cc.Status != http.StatusAccepted || cc.Error != "" {
			t.Errorf("recorded call %+v, want status 202", cc)
		}
	}

	admin := c.as("", "")
	admin.mustCall(http.MethodPut, "/_sim/callback", map[string]any{"url": url, "apiChanges": true}, http.StatusNoContent)
	c.mustCall(http.MethodPatch, "/tas/api/incidents/id/"+b["id"].(string), map[string]any{"action": "by alertdesk"}, http.StatusOK)
	if got := next(t, calls); got.number != b["number"] || got.auth != "" {
		t.Errorf("with apiChanges: call %+v, want number %v without a token", got, b["number"])
	}
	cfg := admin.mustCall(http.MethodGet, "/_sim/callback", nil, http.StatusOK)
	if cb := cfg["callback"].(map[string]any); cb["url"] != url || cb["apiChanges"] != true {
		t.Errorf("GET /_sim/callback: %v", cfg)
	}
	admin.mustCall(http.MethodPut, "/_sim/callback", map[string]any{"url": "ftp://x"}, http.StatusBadRequest)

	// A token is never shown.
	s.SetCallback(Callback{URL: url, Token: "s3cret"})
	if cfg := admin.mustCall(http.MethodGet, "/_sim/callback", nil, http.StatusOK); cfg["callback"].(map[string]any)["token"] != "<secret>" {
		t.Errorf("GET /_sim/callback shows the token: %v", cfg)
	}

	// Turned off, an operator's change calls nothing; a receiver that is
	// gone is recorded as an error.
	admin.mustCall(http.MethodDelete, "/_sim/callback", nil, http.StatusNoContent)
	if _, err := s.AddAction("ejansen", b["id"].(string), "quiet"); err != nil {
		t.Fatal(err)
	}
	s.SetCallback(Callback{URL: "http://127.0.0.1:1/"})
	if _, err := s.AddAction("ejansen", b["id"].(string), "to nobody"); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the failed call recorded", func() bool { return len(s.Callbacks()) == 4 })
	if cc := s.Callbacks()[3]; cc.Error == "" || cc.Number != b["number"] {
		t.Errorf("call to a closed port: %+v, want an error", cc)
	}
	select {
	case got := <-calls:
		t.Errorf("the receiver was called while the action was off: %+v", got)
	default:
	}
}
