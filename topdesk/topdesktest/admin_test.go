package topdesktest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAdminEndpoints(t *testing.T) {
	s := Start(t, Options{Now: fixedNow})
	c := newClient(t, s)
	admin := c.as("", "") // the admin endpoints need no credentials

	c.createIncident(map[string]any{"briefDescription": "seen by admin", "action": "hello"})

	t.Run("incidents", func(t *testing.T) {
		status, _, b := admin.call(http.MethodGet, "/_sim/incidents", nil)
		var got []Incident
		if err := json.Unmarshal(b, &got); status != http.StatusOK || err != nil {
			t.Fatalf("status %d, decode: %v; body %s", status, err, b)
		}
		if diff := cmp.Diff(s.Incidents(), got); diff != "" {
			t.Errorf("GET /_sim/incidents differs from Incidents() (-want +got):\n%s", diff)
		}
	})

	t.Run("requests", func(t *testing.T) {
		status, _, b := admin.call(http.MethodGet, "/_sim/requests", nil)
		var got []Request
		if err := json.Unmarshal(b, &got); status != http.StatusOK || err != nil {
			t.Fatalf("status %d, decode: %v; body %s", status, err, b)
		}
		if len(got) != 1 || string(got[0].Body) != `{"action":"hello","briefDescription":"seen by admin"}` || got[0].Status != http.StatusCreated {
			t.Errorf("requests = %+v", got)
		}
		if !strings.Contains(string(b), `"body":"{\"action\"`) {
			t.Errorf("request body is not written as a string: %s", b)
		}
	})

	t.Run("faults", func(t *testing.T) {
		c := c.on(t)
		if status, _, b := admin.call(http.MethodPost, "/_sim/faults", `{"method":"GET","path":"/tas/api/version","status":503,"retryAfter":"7","delay":"1ms","count":1}`); status != http.StatusNoContent {
			t.Fatalf("POST /_sim/faults: %d %s", status, b)
		}
		status, _, b := admin.call(http.MethodGet, "/_sim/faults", nil)
		if status != http.StatusOK || !strings.Contains(string(b), `"delay":"1ms"`) {
			t.Errorf("GET /_sim/faults: %d %s", status, b)
		}
		if status, h, _ := c.call(http.MethodGet, "/tas/api/version", nil); status != http.StatusServiceUnavailable || h.Get("Retry-After") != "7" {
			t.Errorf("API under the fault: %d, Retry-After %q", status, h.Get("Retry-After"))
		}
		admin.call(http.MethodPost, "/_sim/faults", `{"status":500}`)
		if status, _, _ := admin.call(http.MethodDelete, "/_sim/faults", nil); status != http.StatusNoContent {
			t.Errorf("DELETE /_sim/faults: %d", status)
		}
		if status, _, _ := c.call(http.MethodGet, "/tas/api/version", nil); status != http.StatusOK {
			t.Errorf("API after DELETE /_sim/faults: %d", status)
		}
		for _, bad := range []string{`{"delay":"soon"}`, `{"status":500,"unknown":1}`, `not json`} {
			if status, _, _ := admin.call(http.MethodPost, "/_sim/faults", bad); status != http.StatusBadRequest {
				t.Errorf("POST /_sim/faults %s: %d, want 400", bad, status)
			}
		}
	})

	t.Run("credentials", func(t *testing.T) {
		c := c.on(t)
		if status, _, _ := admin.call(http.MethodPost, "/_sim/credentials", map[string]string{"username": "rotated", "password": "p2"}); status != http.StatusNoContent {
			t.Fatalf("POST /_sim/credentials: %d", status)
		}
		if status, _, _ := c.call(http.MethodGet, "/tas/api/version", nil); status != http.StatusUnauthorized {
			t.Errorf("old credentials: %d, want 401", status)
		}
		if status, _, _ := c.as("rotated", "p2").call(http.MethodGet, "/tas/api/version", nil); status != http.StatusOK {
			t.Errorf("new credentials: %d, want 200", status)
		}
		if status, _, _ := admin.call(http.MethodPost, "/_sim/credentials", map[string]string{"username": "x"}); status != http.StatusBadRequest {
			t.Errorf("credentials without password: %d, want 400", status)
		}
		s.SetCredentials(DefaultUsername, DefaultPassword)
	})

	t.Run("reset", func(t *testing.T) {
		c := c.on(t)
		if status, _, _ := admin.call(http.MethodPost, "/_sim/reset", nil); status != http.StatusNoContent {
			t.Fatalf("POST /_sim/reset: %d", status)
		}
		if n, r := len(s.Incidents()), len(s.Requests()); n != 0 || r != 0 {
			t.Errorf("after reset: %d incidents, %d requests", n, r)
		}
		if inc := c.createIncident(map[string]any{"briefDescription": "after reset"}); inc["number"] != "I 2611 001" {
			t.Errorf("first number after reset = %v", inc["number"])
		}
	})

	t.Run("unknown endpoint", func(t *testing.T) {
		if status, _, _ := admin.call(http.MethodGet, "/_sim/nothing", nil); status != http.StatusNotFound {
			t.Errorf("status %d, want 404", status)
		}
	})
}

func TestPage(t *testing.T) {
	s := Start(t, Options{Now: fixedNow})
	c := newClient(t, s)
	inc := c.createIncident(map[string]any{
		"briefDescription": "Disk <full> & on fire",
		"externalNumber":   "alertdesk-page",
		"action":           "<script>alert('x')</script> first action",
		"request":          "Free space <b>below</b> 3%.<br>Graph: <a href=\"https://grafana.example/d/1?a=1&amp;b=2\">disk</a>",
	})
	c.mustCall(http.MethodPatch, "/tas/api/incidents/id/"+inc["id"].(string),
		map[string]any{"action": "second action", "actionInvisibleForCaller": true, "closed": true}, http.StatusOK)
	s.ResetRequests()

	status, h, b := c.as("", "").call(http.MethodGet, "/", nil)
	page := string(b)
	if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", status, h.Get("Content-Type"))
	}
	for _, want := range []string{
		"I 2611 001",
		"Disk &lt;full&gt; &amp; on fire",
		"alertdesk-page",
		"&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; first action",
		"second action",
		// Request HTML as TOPdesk shows it: its tags as markup.
		`Free space <b>below</b> 3%.<br>Graph: <a href="https://grafana.example/d/1?a=1&amp;b=2">disk</a>`,
		// Closed and the processing status in one place.
		`<td class="status">closed 2026-11-05 10:30:00 · Logged</td>`,
		"internal",
		`http-equiv="refresh"`,
		s.URL(),
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Error("page contains an unescaped <script>")
	}
	if strings.Index(page, "first action") > strings.Index(page, "second action") {
		t.Error("actions are not in order")
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("the page was recorded as %d API requests", n)
	}
	if status, _, _ := c.call(http.MethodGet, "/favicon.ico", nil); status != http.StatusNotFound {
		t.Errorf("GET /favicon.ico: %d, want 404", status)
	}
}

func TestMemoHTML(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain & <simple>", "plain &amp; &lt;simple&gt;"},
		{"a &lt;b&gt; &amp; &#43;", "a &lt;b&gt; &amp; +"},
		{"<B>bold</B> <i>it</i> <em>em</em> <strong>s</strong> <u>u</u> <h5>h</h5> <h6>h</h6>",
			"<b>bold</b> <i>it</i> <em>em</em> <strong>s</strong> <u>u</u> <h5>h</h5> <h6>h</h6>"},
		{"line<br>next<BR/>third<br />", "line<br>next<br>third<br>"},
		{`<b onclick="x()">b</b>`, "<b>b</b>"},
		{`<script>alert("x")</script><p>para</p><img src=x onerror=y>`,
			"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;p&gt;para&lt;/p&gt;&lt;img src=x onerror=y&gt;"},
		{`<a href="https://example.com/?q=1&amp;r=&quot;2&quot;">ok</a>`, `<a href="https://example.com/?q=1&amp;r=&#34;2&#34;">ok</a>`},
		{`<a href='mailto:ops@example.com'>m</a> <a href=http://x/y>bare</a>`, `<a href="mailto:ops@example.com">m</a> <a href="http://x/y">bare</a>`},
		{`<a href="javascript:alert(1)">js</a> <a href=" JaVaScRiPt:x">js</a> <a>none</a>`, "<a>js</a> <a>js</a> <a>none</a>"},
		{"<b>left <i>open", "<b>left <i>open</i></b>"},
		{"<b>a <i>b</b> c</i>", "<b>a <i>b</i></b> c"},
		{"</b>stray", "stray"},
		{"<a <b>x</b>", "<a>x</a>"},
		{"x < y > z <3 <!-- c -->", "x &lt; y &gt; z &lt;3 &lt;!-- c --&gt;"},
	}
	for _, tc := range tests {
		if got := string(memoHTML(tc.in)); got != tc.want {
			t.Errorf("memoHTML(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestServeHTTPWithoutStart(t *testing.T) {
	s := New(Options{Username: "u", Password: "p"})
	s.SetURL("http://sim.example:8081/")
	if got := s.URL(); got != "http://sim.example:8081" {
		t.Errorf("URL() = %q", got)
	}
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/tas/api/incidents", strings.NewReader(`{"briefDescription":"direct"}`))
	req.SetBasicAuth("u", "p")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated || !strings.Contains(rec.Body.String(), `"requests":"http://sim.example:8081/tas/api/incidents/id/`) {
		t.Errorf("direct ServeHTTP: %d %s", rec.Code, rec.Body)
	}
}

func TestConcurrentCreates(t *testing.T) {
	s := Start(t, Options{})
	c := newClient(t, s)
	const workers, each = 16, 25
	shared := c.createIncident(map[string]any{"briefDescription": "updated by everyone"})["id"].(string)
	errs := make(chan error, 4*workers*each)
	var wg sync.WaitGroup
	// send runs on worker goroutines, so it reports errors instead of
	// calling t.Fatal. want 0 accepts 200 and 206.
	send := func(method, path, body string, want int) error {
		req, err := http.NewRequestWithContext(t.Context(), method, c.base+path, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.SetBasicAuth(c.user, c.pass)
		resp, err := c.hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != want && !(want == 0 && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent)) {
			return fmt.Errorf("%s %s: status %d, want %d", method, path, resp.StatusCode, want)
		}
		return nil
	}
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				ext := fmt.Sprintf("ext-%d-%d", w, i)
				errs <- send(http.MethodPost, "/tas/api/incidents", `{"briefDescription":"`+ext+`","externalNumber":"`+ext+`"}`, http.StatusCreated)
				// Concurrent searches, and updates of one shared incident.
				q := url.Values{"query": {"externalNumber=='" + ext + "'"}}.Encode()
				errs <- send(http.MethodGet, "/tas/api/incidents?"+q, "", http.StatusOK)
				errs <- send(http.MethodGet, "/tas/api/incidents?pageSize=5&query=closed==false", "", 0)
				errs <- send(http.MethodPatch, "/tas/api/incidents/id/"+shared, `{"action":"`+ext+`"}`, http.StatusOK)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	all := s.Incidents()
	if len(all) != workers*each+1 {
		t.Fatalf("%d incidents, want %d", len(all), workers*each+1)
	}
	if n := len(all[0].Actions); n != workers*each {
		t.Errorf("the shared incident has %d actions, want %d", n, workers*each)
	}
	numbers := map[string]bool{}
	for i, inc := range all {
		if numbers[inc.Number] {
			t.Errorf("duplicate number %s", inc.Number)
		}
		numbers[inc.Number] = true
		if want := fmt.Sprintf(" %03d", i+1); !strings.HasSuffix(inc.Number, want) {
			t.Errorf("incident %d has number %s, want suffix %q (creation order)", i, inc.Number, want)
		}
	}
}

// BenchmarkCreateAndFind measures a create followed by an externalNumber
// search with many incidents stored, through ServeHTTP.
func BenchmarkCreateAndFind(b *testing.B) {
	s := New(Options{})
	do := func(method, target, body string) int {
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		req.SetBasicAuth(DefaultUsername, DefaultPassword)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec.Code
	}
	i := 0
	for b.Loop() {
		ext := fmt.Sprintf("bench-%d", i)
		i++
		if code := do(http.MethodPost, "/tas/api/incidents", `{"briefDescription":"b","externalNumber":"`+ext+`"}`); code != http.StatusCreated {
			b.Fatalf("create: %d", code)
		}
		if code := do(http.MethodGet, "/tas/api/incidents?"+url.Values{"query": {"externalNumber=='" + ext + "'"}}.Encode(), ""); code != http.StatusOK {
			b.Fatalf("find: %d", code)
		}
	}
}
