package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// lateProxy stands in front of the simulator. A write it picks reaches the
// simulator `after` it arrived, while the client is answered 504 at once
// (or, with hold, nothing until it gives up): the write's outcome is
// unknown to the client, and it lands late.
type lateProxy struct {
	target string
	after  time.Duration
	hold   bool
	pick   func(n int) bool // whether the n-th write (from 0) is late

	mu     sync.Mutex
	writes int
	wg     sync.WaitGroup
	client http.Client
}

func (p *lateProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	late := false
	if r.Method == http.MethodPost || r.Method == http.MethodPatch || r.Method == http.MethodPut {
		p.mu.Lock()
		late = p.pick(p.writes)
		p.writes++
		p.mu.Unlock()
	}
	if !late {
		resp, err := p.forward(r, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		if _, err := io.Copy(w, resp.Body); err != nil {
			return // the client went away
		}
		return
	}
	p.wg.Go(func() {
		t := time.NewTimer(p.after)
		<-t.C
		if resp, err := p.forward(r, body); err == nil {
			resp.Body.Close()
		}
	})
	if p.hold {
		<-r.Context().Done()
		return
	}
	w.WriteHeader(http.StatusGatewayTimeout)
}

func (p *lateProxy) forward(r *http.Request, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(context.Background(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = r.Header.Clone()
	return p.client.Do(req)
}

// throughProxy points the workers' TOPdesk client at a late proxy in front
// of the simulator, with the given request timeout.
func (e *testEnv) throughProxy(p *lateProxy, timeout time.Duration) {
	e.t.Helper()
	p.target = e.sim.URL()
	srv := httptest.NewServer(p)
	e.t.Cleanup(func() { srv.Close(); p.wg.Wait() })
	td, err := topdesk.NewClient(srv.URL, topdesk.Options{Username: "alertdesk", Password: "alertdesk-app-password", Timeout: timeout})
	if err != nil {
		e.t.Fatal(err)
	}
	e.td, e.api, e.resolver = td, td, topdesk.NewResolver(td)
}

// A create that TOPdesk answers 504 and performs 300 ms later is not
// followed by a second create: one incident.
func TestUnknownCreateOutcome(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	const timeout = 400 * time.Millisecond
	p := &lateProxy{after: 300 * time.Millisecond, pick: func(n int) bool { return n == 0 }}
	e.throughProxy(p, timeout)
	opts := fastOptions()
	opts.OutcomeWait = 3 * timeout
	e.startWorker(opts)
	e.publish(firing("unknown", "critical", "x", time.Now()))
	e.waitSettled(15 * time.Second)
	p.wg.Wait() // the late create has landed
	e.wantOneCreate("unknown")
}

// A TOPdesk that completes every other write 2.5 × the client timeout
// late, two workers, keys with several changes: one incident per key, and
// it shows the newest event.
func TestLateWrites(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	const timeout = 300 * time.Millisecond
	p := &lateProxy{after: 5 * timeout / 2, hold: true, pick: func(n int) bool { return n%2 == 0 }}
	e.throughProxy(p, timeout)
	opts := fastOptions()
	opts.OutcomeWait = 3 * timeout
	opts.MaxDeliver = 20
	for range 2 {
		e.startWorker(opts)
	}
	t0 := time.Now()
	const keys, changes = 3, 4
	for i := range changes {
		for k := range keys {
			summary := fmt.Sprintf("change %d", i)
			if i == changes-1 {
				summary = "final"
			}
			e.publish(firing(fmt.Sprintf("late-%d", k), []string{"warning", "critical"}[i%2], summary, t0.Add(time.Duration(i)*time.Second)))
		}
	}
	e.waitSettled(60 * time.Second)
	p.wg.Wait() // late writes still on their way land before the check
	for k := range keys {
		key := fmt.Sprintf("late-%d", k)
		incs := e.incidentsFor(key)
		if len(incs) != 1 {
			t.Fatalf("%s: got %d incidents, want 1", key, len(incs))
		}
		if incs[0].Closed || incs[0].BriefDescription != "final" {
			t.Fatalf("%s: closed=%v brief description %q, want open with the newest event's %q", key, incs[0].Closed, incs[0].BriefDescription, "final")
		}
	}
	if dl := e.dlqEntries(); len(dl) != 0 {
		t.Fatalf("got %d dead letters, want none", len(dl))
	}
}

// A worker whose clock is 15 s ahead does not take over a live claim of
// another worker: claims are judged by the NATS server's clock.
func TestClaimJudgedByServerClock(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	opts := fastOptions()
	ext := mapping.ExternalNumber("claimed")
	// Another worker claimed the key just now, by the server's clock.
	held, err := json.Marshal(map[string]any{"key": "claimed", "open": false,
		"claim": map[string]any{"owner": "other-worker", "op": "create", "until": time.Now().Add(opts.ClaimTTL)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.res.State.Create(t.Context(), ext, held); err != nil {
		t.Fatal(err)
	}
	opts.Now = func() time.Time { return time.Now().Add(15 * time.Second) }
	e.startWorker(opts)
	e.publish(firing("claimed", "critical", "x", time.Now()))
	wait.For(t, 10*time.Second, "the event was handed back or written", func() bool {
		info, err := e.res.Consumer.Info(t.Context())
		creates, _ := e.writes()
		return creates > 0 || (err == nil && info.NumRedelivered > 0)
	})
	if creates, _ := e.writes(); creates != 0 {
		t.Fatalf("a worker 15 s ahead took over a live claim: %d creates", creates)
	}
	// The other worker releases the key: the event is applied.
	if err := e.res.State.Delete(t.Context(), ext); err != nil {
		t.Fatal(err)
	}
	e.waitSettled(15 * time.Second)
	if incs := e.incidentsFor("claimed"); len(incs) != 1 {
		t.Fatalf("got %d incidents, want 1", len(incs))
	}
}

// A lookup that finds two open incidents for a key keeps the oldest and
// closes the other with an action naming it.
func TestDuplicatesRepaired(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	ext := mapping.ExternalNumber("dup")
	var numbers []string
	for range 2 {
		inc, err := e.td.CreateIncident(t.Context(), &topdesk.IncidentRequest{
			Caller: &topdesk.Caller{DynamicName: "alertdesk"}, BriefDescription: "dup", ExternalNumber: ext,
		})
		if err != nil {
			t.Fatal(err)
		}
		numbers = append(numbers, inc.Number)
	}
	rw := e.startWorker(fastOptions())
	e.waitReconciled(rw)
	e.publish(firing("dup", "critical", "x", time.Now()))
	e.waitSettled(10 * time.Second)
	var open []topdesktest.Incident
	for _, inc := range e.incidentsFor("dup") {
		if !inc.Closed {
			open = append(open, inc)
			continue
		}
		named := false
		for _, a := range inc.Actions {
			named = named || strings.Contains(a.Text, numbers[0])
		}
		if !named {
			t.Errorf("closed duplicate %s has no action naming the kept incident %s: %+v", inc.Number, numbers[0], inc.Actions)
		}
	}
	if len(open) != 1 || open[0].Number != numbers[0] {
		t.Fatalf("open incidents %+v, want only the oldest, %s", open, numbers[0])
	}
	if n := counter(t, rw.reg, "alertdesk_duplicates_repaired_total"); n != 1 {
		t.Fatalf("alertdesk_duplicates_repaired_total = %v, want 1", n)
	}
}

// listHook runs after once TOPdesk listed the alertdesk incidents.
type listHook struct {
	incidentAPI
	after func()
	once  sync.Once
}

func (l *listHook) ListIncidentsByPrefix(ctx context.Context, prefix string) ([]topdesk.Incident, error) {
	found, err := l.incidentAPI.ListIncidentsByPrefix(ctx, prefix)
	l.once.Do(l.after)
	return found, err
}

// A bucket deleted between the reconciliation's listing and its mark is
// not marked as holding every key: no duplicate.
func TestReconcileBucketLost(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	if _, err := e.td.CreateIncident(t.Context(), &topdesk.IncidentRequest{
		Caller: &topdesk.Caller{DynamicName: "alertdesk"}, BriefDescription: "kept", ExternalNumber: mapping.ExternalNumber("kept"),
	}); err != nil {
		t.Fatal(err)
	}
	e.api = &listHook{incidentAPI: e.td, after: func() {
		if err := e.js.DeleteKeyValue(context.Background(), e.topo.StateBucket); err != nil {
			t.Error(err)
		}
	}}
	rw := e.startWorker(fastOptions())
	e.waitReconciled(rw)
	e.publish(firing("kept", "critical", "x", time.Now()))
	e.waitSettled(10 * time.Second)
	if incs := e.incidentsFor("kept"); len(incs) != 1 {
		t.Fatalf("got %d incidents, want 1", len(incs))
	}
}

// panicOnce panics in its first create, of any incident or of the one
// with externalNumber ext.
type panicOnce struct {
	incidentAPI
	ext  string
	done atomic.Bool
}

func (p *panicOnce) CreateIncident(ctx context.Context, in *topdesk.IncidentRequest) (*topdesk.Incident, error) {
	if (p.ext == "" || p.ext == in.ExternalNumber) && p.done.CompareAndSwap(false, true) {
		panic("boom")
	}
	return p.incidentAPI.CreateIncident(ctx, in)
}

// A panic while handling an event is recovered and the event redelivered;
// the worker lives on.
func TestPanicRedelivers(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.api = &panicOnce{incidentAPI: e.td}
	opts := fastOptions()
	// The panic leaves the key claimed: its create may have been sent
	// until the handle timeout, and may land OutcomeWait after that.
	opts.HandleTimeout = 2 * time.Second
	e.startWorker(opts)
	e.publish(firing("panics", "critical", "x", time.Now()))
	e.publish(firing("after", "critical", "x", time.Now()))
	e.waitSettled(10 * time.Second)
	for _, key := range []string{"panics", "after"} {
		if incs := e.incidentsFor(key); len(incs) != 1 {
			t.Fatalf("%s: got %d incidents, want 1", key, len(incs))
		}
	}
}
