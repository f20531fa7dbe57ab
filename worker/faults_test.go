package worker

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alertdesk/alertdesk/dlq"
	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// Fifty events of one key, handled by three workers at once, make one
// incident; at most one TOPdesk write for the key is in progress at a time.
func TestOneKeyManyWorkers(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	// A little latency makes overlapping writes likely if the claim fails.
	e.sim.Inject(topdesktest.Fault{Path: "/tas/api/incidents", Delay: 5 * time.Millisecond})
	overlap := &overlapCheck{incidentAPI: e.td}
	e.api = overlap
	for range 3 {
		e.startWorker(fastOptions())
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			sev := []string{"warning", "critical"}[i%2]
			e.publish(firing("shared-key", sev, "flapping", t0.Add(time.Duration(i)*time.Millisecond)))
		})
	}
	wg.Wait()
	e.waitSettled(30 * time.Second)
	if incs := e.incidentsFor("shared-key"); len(incs) != 1 {
		t.Fatalf("got %d incidents for one key, want 1", len(incs))
	}
	if dl := e.dlqEntries(); len(dl) != 0 {
		t.Fatalf("got %d dead letters, want none: %+v", len(dl), dl[0])
	}
	if got := overlap.max.Load(); got != 1 {
		t.Fatalf("at most %d TOPdesk writes for one key were in progress at once, want 1", got)
	}
}

// overlapCheck counts TOPdesk writes in progress at once.
type overlapCheck struct {
	incidentAPI
	now, max atomic.Int32
}

func (o *overlapCheck) track() func() {
	n := o.now.Add(1)
	for {
		m := o.max.Load()
		if n <= m || o.max.CompareAndSwap(m, n) {
			break
		}
	}
	return func() { o.now.Add(-1) }
}

func (o *overlapCheck) CreateIncident(ctx context.Context, in *topdesk.IncidentRequest) (*topdesk.Incident, error) {
	defer o.track()()
	return o.incidentAPI.CreateIncident(ctx, in)
}

func (o *overlapCheck) UpdateIncident(ctx context.Context, id string, in *topdesk.IncidentRequest) (*topdesk.Incident, error) {
	defer o.track()()
	return o.incidentAPI.UpdateIncident(ctx, id, in)
}

// A create whose response is lost is looked up before it is retried: still
// exactly one incident.
func TestCreateLostResponse(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.sim.Inject(topdesktest.Fault{Method: http.MethodPost, Path: "/tas/api/incidents", LoseResponse: true, Count: 1})
	e.startWorker(fastOptions())
	e.publish(firing("lost-response", "critical", "created but lost", time.Now()))
	e.waitSettled(10 * time.Second)
	e.wantOneCreate("lost-response")
}

// wantOneCreate checks that TOPdesk got one create and holds one incident
// for key.
func (e *testEnv) wantOneCreate(key string) {
	e.t.Helper()
	if incs := e.incidentsFor(key); len(incs) != 1 {
		e.t.Fatalf("got %d incidents, want exactly 1", len(incs))
	}
	if creates, _ := e.writes(); creates != 1 {
		e.t.Fatalf("TOPdesk got %d creates, want 1", creates)
	}
}

// Losing the whole KV bucket loses nothing: state is rebuilt from TOPdesk by
// externalNumber and no key gets a second incident.
func TestStateBucketLost(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.startWorker(fastOptions())
	t0 := time.Now()
	for i := range 5 {
		e.publish(firing(fmt.Sprintf("key-%d", i), "warning", "before the loss", t0))
	}
	e.waitSettled(10 * time.Second)
	if err := e.js.DeleteKeyValue(e.t.Context(), e.topo.StateBucket); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		e.publish(firing(fmt.Sprintf("key-%d", i), "warning", "before the loss", t0.Add(time.Second)))
	}
	e.publish(resolved("key-0", t0.Add(2*time.Second)))
	e.waitSettled(20 * time.Second)
	for i := range 5 {
		key := fmt.Sprintf("key-%d", i)
		incs := e.incidentsFor(key)
		if len(incs) != 1 {
			t.Fatalf("%s: got %d incidents after the state loss, want 1", key, len(incs))
		}
		if wantClosed := i == 0; incs[0].Closed != wantClosed {
			t.Fatalf("%s: closed = %v, want %v", key, incs[0].Closed, wantClosed)
		}
	}
	if dl := e.dlqEntries(); len(dl) != 0 {
		t.Fatalf("got %d dead letters, want none", len(dl))
	}
}

func TestTransientFailures(t *testing.T) {
	t.Run("5xx then success", func(t *testing.T) {
		e := newEnv(t, topdesktest.Options{})
		e.sim.Inject(topdesktest.Fault{Method: http.MethodPost, Status: http.StatusBadGateway, Count: 2})
		e.startWorker(fastOptions())
		e.publish(firing("k", "critical", "x", time.Now()))
		e.waitSettled(10 * time.Second)
		if incs := e.incidentsFor("k"); len(incs) != 1 {
			t.Fatalf("got %d incidents, want 1", len(incs))
		}
	})
	t.Run("429 Retry-After is respected", func(t *testing.T) {
		e := newEnv(t, topdesktest.Options{})
		e.sim.Inject(topdesktest.Fault{Method: http.MethodPost, Status: http.StatusTooManyRequests, RetryAfter: "1", Count: 1})
		e.startWorker(fastOptions())
		e.publish(firing("k", "critical", "x", time.Now()))
		e.waitSettled(15 * time.Second)
		var posts []topdesktest.Request
		for _, r := range e.sim.Requests() {
			if r.Method == http.MethodPost {
				posts = append(posts, r)
			}
		}
		if len(posts) < 2 {
			t.Fatalf("got %d POSTs, want the 429 and a retry", len(posts))
		}
		if posts[0].Status != http.StatusTooManyRequests {
			t.Fatalf("first POST answered %d, want 429", posts[0].Status)
		}
		if gap := posts[1].At.Sub(posts[0].At); gap < time.Second {
			t.Fatalf("retried %s after a 429 with Retry-After: 1", gap)
		}
	})
}

// A TOPdesk outage longer than all in-process retries dead-letters nothing,
// even with a delivery limit of one; everything is applied after recovery.
func TestOutageDeadLettersNothing(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	opts := fastOptions()
	opts.MaxDeliver = 1 // any failed delivery would otherwise be the last
	opts.BreakerThreshold = 3
	rw := e.startWorker(opts)
	e.waitReconciled(rw)
	e.sim.Inject(topdesktest.Fault{Status: http.StatusServiceUnavailable})
	for i := range 10 {
		e.publish(firing(fmt.Sprintf("outage-%d", i), "critical", "x", time.Now()))
	}
	wait.For(t, 30*time.Second, "the breaker is open", rw.w.gate.paused)
	// Let the outage outlast many probe rounds and redelivery delays.
	e.sim.ResetRequests()
	wait.For(t, 30*time.Second, "TOPdesk was probed through the outage", func() bool {
		n := 0
		for _, r := range e.sim.Requests() {
			if r.Status == http.StatusServiceUnavailable {
				n++
			}
		}
		return n >= 10
	})
	if dl := e.dlqEntries(); len(dl) != 0 {
		t.Fatalf("outage dead-lettered %d events during the outage: %+v", len(dl), dl[0])
	}
	e.sim.ClearFaults()
	e.waitSettled(30 * time.Second)
	if dl := e.dlqEntries(); len(dl) != 0 {
		t.Fatalf("outage dead-lettered %d events: %+v", len(dl), dl[0])
	}
	for i := range 10 {
		if incs := e.incidentsFor(fmt.Sprintf("outage-%d", i)); len(incs) != 1 {
			t.Fatalf("outage-%d: got %d incidents, want 1", i, len(incs))
		}
	}
}

// Rejected credentials pause the worker and fail readiness; nothing is
// dead-lettered; fixed credentials resume it.
func TestCredentialsRejected(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	opts := fastOptions()
	opts.MaxDeliver = 1
	rw := e.startWorker(opts)
	e.sim.SetCredentials("alertdesk", "rotated-password")
	e.publish(firing("auth", "critical", "x", time.Now()))
	wait.For(t, 10*time.Second, "readiness fails", func() bool { return rw.w.Ready() != nil })
	e.sim.SetCredentials("alertdesk", "alertdesk-app-password")
	e.waitSettled(15 * time.Second)
	if err := rw.w.Ready(); err != nil {
		t.Fatalf("still not ready after the credentials were fixed: %v", err)
	}
	if incs := e.incidentsFor("auth"); len(incs) != 1 {
		t.Fatalf("got %d incidents, want 1", len(incs))
	}
	if dl := e.dlqEntries(); len(dl) != 0 {
		t.Fatalf("rejected credentials dead-lettered %d events", len(dl))
	}
}

func TestDeadLetterClasses(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	var err error
	if e.mapping, err = mapping.Load([]byte("incident:\n  briefDescription: '{{ .Labels.missing }}'\n")); err != nil {
		t.Fatal(err)
	}
	opts := fastOptions()
	opts.MaxDeliver = 2
	e.startWorker(opts)

	notJSON := e.publishRaw("alerts.test", []byte("this is not json"))
	noKey := e.publish(event{"status": "firing", "summary": "no key"})
	tmpl := e.publish(firing("tmpl", "critical", "x", time.Now()))
	e.waitSettled(10 * time.Second)

	// A rejected request (other 4xx) and exhaustion need a mapping that renders.
	e2 := newEnv(t, topdesktest.Options{})
	e2.sim.Inject(topdesktest.Fault{Method: http.MethodPost, Status: http.StatusBadRequest, Count: 1})
	e2.startWorker(opts)
	rejected := e2.publish(firing("rejected", "critical", "x", time.Now()))
	e2.waitSettled(10 * time.Second)
	e2.sim.Inject(topdesktest.Fault{Method: http.MethodPost, Status: http.StatusInternalServerError})
	exhausted := e2.publish(firing("exhausted", "critical", "x", time.Now()))
	e2.waitSettled(20 * time.Second)

	type want struct {
		seq   uint64
		class dlq.Class
		key   string
	}
	check := func(e *testEnv, wants []want) {
		t.Helper()
		got := map[uint64]dlq.DeadLetter{}
		for _, d := range e.dlqEntries() {
			got[d.OriginalSeq] = d
		}
		if len(got) != len(wants) {
			t.Fatalf("got %d dead letters, want %d", len(got), len(wants))
		}
		for _, w := range wants {
			d, ok := got[w.seq]
			if !ok {
				t.Fatalf("stream seq %d was not dead-lettered", w.seq)
			}
			if d.Class != w.class || d.AlertKey != w.key || d.OriginalSubject != "alerts.test" ||
				d.Error == "" || d.Deliveries < 1 || d.FailedAt.IsZero() || d.Subject != "alertdesk.dlq.alerts.test" {
				t.Errorf("seq %d: got %+v, want class %s key %q and every header", w.seq, d, w.class, w.key)
			}
			if d.Header.Get(dlq.HeaderOriginalSeq) != strconv.FormatUint(w.seq, 10) {
				t.Errorf("seq %d: %s header = %q", w.seq, dlq.HeaderOriginalSeq, d.Header.Get(dlq.HeaderOriginalSeq))
			}
		}
	}
	check(e, []want{{notJSON, dlq.ClassInvalid, ""}, {noKey, dlq.ClassInvalid, ""}, {tmpl, dlq.ClassTemplate, "tmpl"}})
	check(e2, []want{{rejected, dlq.ClassRejected, "rejected"}, {exhausted, dlq.ClassExhausted, "exhausted"}})

	// The originals are terminated: nothing is pending for redelivery.
	info, err := e2.res.Consumer.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 {
		t.Fatalf("%d messages still pending after dead-lettering", info.NumAckPending)
	}
}

// Stopping a worker with work in flight loses nothing: the event is handed
// back and another worker finishes it.
func TestShutdownHandsBack(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.sim.Inject(topdesktest.Fault{Method: http.MethodPost, Delay: 3 * time.Second, Count: 1})
	opts := fastOptions()
	opts.ShutdownTimeout = 200 * time.Millisecond
	first := e.startWorker(opts)
	e.publish(firing("handover", "critical", "x", time.Now()))
	wait.For(t, 5*time.Second, "the first worker has claimed the key", func() bool {
		st, _, _, err := (&stateStore{kv: e.res.State}).load(t.Context(), mapping.ExternalNumber("handover"), true)
		return err == nil && st.Claim != nil
	})
	first.stop()
	e.startWorker(fastOptions())
	e.waitSettled(30 * time.Second)
	if incs := e.incidentsFor("handover"); len(incs) != 1 {
		t.Fatalf("got %d incidents, want 1", len(incs))
	}
}

// TestRetryAfterWorkerWide is item 10 of the worker-core issue: after a 429
// with Retry-After, no request for a key that met it reaches TOPdesk before
// the Retry-After ran out — neither from the worker that got the 429 (its
// client pauses all its traffic) nor from the other worker the event is
// redelivered to (the nak waits at least as long). Two workers, each with
// its own client; TOPdesk answers 429 Retry-After: 2 to every incident
// request for six seconds.
func TestRetryAfterWorkerWide(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.startWorker(fastOptions())
	td2, err := topdesk.NewClient(e.sim.URL(), topdesk.Options{
		Username: simUser(topdesktest.Options{}), Password: simPass(topdesktest.Options{}), Timeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.api = td2
	e.startWorker(fastOptions())

	const retryAfter = 2 * time.Second
	e.sim.Inject(topdesktest.Fault{Path: "/tas/api/incidents", Status: http.StatusTooManyRequests, RetryAfter: "2"})
	stopFaults := time.AfterFunc(6*time.Second, e.sim.ClearFaults)
	t.Cleanup(func() { stopFaults.Stop() })
	keys := []string{"ra/1", "ra/2", "ra/3", "ra/4", "ra/5", "ra/6"}
	now := time.Now()
	for _, k := range keys {
		e.publish(firing(k, "critical", "x", now))
	}
	e.waitSettled(60 * time.Second)

	ext := regexp.MustCompile(`alertdesk-[0-9a-f]{32}`)
	refused := map[string]time.Time{} // externalNumber -> its latest 429
	for _, r := range e.sim.Requests() {
		x := ext.FindString(r.RawQuery + string(r.Body))
		if x == "" {
			continue
		}
		if at, ok := refused[x]; ok && r.At.Before(at.Add(retryAfter)) {
			t.Errorf("%s %s for %s %s after its 429 with Retry-After: 2", r.Method, r.Path, x, r.At.Sub(at))
		}
		if r.Status == http.StatusTooManyRequests {
			refused[x] = r.At
		}
	}
	if len(refused) == 0 {
		t.Fatal("no request met a 429: the test proves nothing")
	}
	for _, k := range keys {
		if n := len(e.incidentsFor(k)); n != 1 {
			t.Errorf("key %s has %d incidents, want 1", k, n)
		}
	}
	if dl := e.dlqEntries(); len(dl) != 0 {
		t.Errorf("%d events dead-lettered; rate limiting must dead-letter nothing", len(dl))
	}
}

// lockedBuffer is a log sink that tests read while workers write.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines counts the log lines of level with message msg.
func (l *lockedBuffer) lines(level, msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for line := range strings.Lines(l.b.String()) {
		if strings.Contains(line, `"level":"`+level+`"`) && strings.Contains(line, `"message":"`+msg+`"`) {
			n++
		}
	}
	return n
}

// An event that waits through several redeliveries says so once at warn,
// with the reason and the delay, and once when its key no longer waits;
// the redeliveries in between log nothing above debug.
func TestWaitingSaidOnce(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	logs := &lockedBuffer{}
	e.logs = logs
	e.sim.Inject(topdesktest.Fault{Method: http.MethodPost, Status: http.StatusServiceUnavailable, Count: 15})
	opts := fastOptions()
	opts.MaxDeliver = 100
	e.startWorker(opts)
	e.publish(firing("wait/1", "critical", "x", time.Now()))
	e.waitSettled(30 * time.Second)

	posts := 0
	for _, r := range e.sim.Requests() {
		if r.Method == http.MethodPost {
			posts++
		}
	}
	if n := len(e.incidentsFor("wait/1")); n != 1 || posts < 16 {
		t.Fatalf("%d incidents after %d POSTs; want 1 after the 15 refused and one more", n, posts)
	}
	if n := logs.lines("debug", "event waits; it will be retried"); n < 1 {
		t.Errorf("%d debug lines for later redeliveries; the test needs at least two redeliveries", n)
	}
	if n := logs.lines("warn", "event waits; it will be retried"); n != 1 {
		t.Errorf("%d warn lines that the event waits, want 1:\n%s", n, logs.b.String())
	}
	if n := logs.lines("info", "events of this alert key no longer wait"); n != 1 {
		t.Errorf("%d lines that the key no longer waits, want 1", n)
	}
	if !strings.Contains(logs.b.String(), `"reason":"retry"`) {
		t.Errorf("the warn line does not say why the event waits:\n%s", logs.b.String())
	}
}
