package topdesktest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// fixedNow is the clock of most tests: incident numbers are "I 2611 nnn".
func fixedNow() time.Time { return time.Date(2026, 11, 5, 10, 30, 0, 0, time.UTC) }

// apiClient sends plain HTTP requests to a Sim.
type apiClient struct {
	t          testing.TB
	base       string
	user, pass string
	hc         *http.Client
}

func newClient(t testing.TB, s *Sim) *apiClient {
	t.Helper()
	return &apiClient{t: t, base: s.URL(), user: DefaultUsername, pass: DefaultPassword,
		hc: &http.Client{Timeout: 30 * time.Second}}
}

// on returns a copy of c that reports failures to t (use it in subtests).
func (c *apiClient) on(t testing.TB) *apiClient {
	cc := *c
	cc.t = t
	return &cc
}

// as returns a copy of c that authenticates as user/pass ("" user = none).
func (c *apiClient) as(user, pass string) *apiClient {
	cc := *c
	cc.user, cc.pass = user, pass
	return &cc
}

// request builds a request; body is sent as is when a string, else as JSON.
func (c *apiClient) request(ctx context.Context, method, path string, body any) *http.Request {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		c.t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	return req
}

// call sends a request and returns the status, headers and body.
func (c *apiClient) call(method, path string, body any) (int, http.Header, []byte) {
	c.t.Helper()
	resp, err := c.hc.Do(c.request(c.t.Context(), method, path, body))
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, b
}

// mustCall is call that expects one status and decodes the JSON answer.
func (c *apiClient) mustCall(method, path string, body any, want int) map[string]any {
	c.t.Helper()
	status, _, b := c.call(method, path, body)
	if status != want {
		c.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, status, want, b)
	}
	var m map[string]any
	if status < 300 && len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return m
}

// list GETs a list and decodes it.
func (c *apiClient) list(path string) (int, []map[string]any) {
	c.t.Helper()
	status, _, b := c.call(http.MethodGet, path, nil)
	var items []map[string]any
	if status == http.StatusOK || status == http.StatusPartialContent {
		if err := json.Unmarshal(b, &items); err != nil {
			c.t.Fatalf("GET %s: decode %s: %v", path, b, err)
		}
	} else if status == http.StatusNoContent && len(b) != 0 {
		c.t.Fatalf("GET %s: 204 with body %q", path, b)
	}
	return status, items
}

// messages decodes TOPdesk's error body.
func messages(t testing.TB, b []byte) []string {
	t.Helper()
	var body []struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("error body %s is not [{\"message\": …}]: %v", b, err)
	}
	out := make([]string, len(body))
	for i, m := range body {
		out[i] = m.Message
	}
	return out
}

// refName returns m[field].name.
func refName(m map[string]any, field string) string {
	r, _ := m[field].(map[string]any)
	s, _ := r["name"].(string)
	return s
}

// createIncident creates an incident and returns its read model.
func (c *apiClient) createIncident(body map[string]any) map[string]any {
	c.t.Helper()
	return c.mustCall(http.MethodPost, "/tas/api/incidents", body, http.StatusCreated)
}
