package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alertdesk/alertdesk/dlq"
	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
	"github.com/alertdesk/alertdesk/worker/workertest"
)

// amWebhook is an Alertmanager webhook with one firing alert per
// fingerprint.
func amWebhook(fingerprints ...string) map[string]any {
	var alerts []map[string]any
	for _, fp := range fingerprints {
		alerts = append(alerts, map[string]any{
			"status": "firing", "labels": map[string]string{"alertname": "Down", "instance": fp, "severity": "critical"},
			"annotations": map[string]string{"summary": fp + " down"},
			"startsAt":    time.Now().UTC().Format(time.RFC3339), "fingerprint": fp,
		})
	}
	return map[string]any{"version": "4", "status": "firing", "receiver": "alertdesk", "groupKey": "g", "alerts": alerts}
}

// One alert of a multi-alert message that fails for good is dead-lettered
// alone, as a one-alert message of the same shape with the original
// headers; the others are applied, and a replay applies just it.
func TestMultiAlertDeadLettersOneAlone(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.sim.Inject(topdesktest.Fault{Method: http.MethodPost, Status: http.StatusBadRequest, Count: 1})
	rw := e.startWorker(fastOptions())
	e.waitReconciled(rw)
	b, err := json.Marshal(amWebhook("aaaa000000000001", "aaaa000000000002", "aaaa000000000003"))
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: "alerts.test", Data: b, Header: nats.Header{"X-Origin": []string{"am-1"}}}
	if _, err := e.js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	e.waitSettled(10 * time.Second)
	dl := e.dlqEntries()
	if len(dl) != 1 {
		t.Fatalf("got %d dead letters, want 1", len(dl))
	}
	d := dl[0]
	if d.Class != dlq.ClassRejected || d.Header.Get("X-Origin") != "am-1" {
		t.Fatalf("dead letter: class %s, X-Origin %q; want rejected, am-1", d.Class, d.Header.Get("X-Origin"))
	}
	alerts, err := mapping.Decode(d.Data, mapping.DecodeOptions{})
	if err != nil {
		t.Fatalf("dead-lettered payload does not decode: %v", err)
	}
	var shape map[string]any
	if err := json.Unmarshal(d.Data, &shape); err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 1 || alerts[0].Fingerprint != "aaaa000000000001" || shape["receiver"] != "alertdesk" {
		t.Fatalf("dead-lettered payload is not the failed alert alone in a webhook: %s", d.Data)
	}
	if d.AlertKey != alerts[0].Fingerprint {
		t.Errorf("dead letter alert key %q, want %q", d.AlertKey, alerts[0].Fingerprint)
	}
	for _, fp := range []string{"aaaa000000000002", "aaaa000000000003"} {
		if n := len(e.incidentsFor(fp)); n != 1 {
			t.Fatalf("%s: got %d incidents, want 1", fp, n)
		}
	}
	if n := len(e.incidentsFor("aaaa000000000001")); n != 0 {
		t.Fatalf("the rejected alert has %d incidents", n)
	}
	// A replay applies just the dead-lettered alert.
	if _, err := dlq.New(e.js, e.topo.DLQStream).Replay(t.Context(), dlq.Filter{All: true}, false); err != nil {
		t.Fatal(err)
	}
	e.waitSettled(10 * time.Second)
	for _, fp := range []string{"aaaa000000000001", "aaaa000000000002", "aaaa000000000003"} {
		if n := len(e.incidentsFor(fp)); n != 1 {
			t.Fatalf("after replay %s: got %d incidents, want 1", fp, n)
		}
	}
	if creates, _ := e.writes(); creates != 4 {
		t.Fatalf("got %d creates, want 4 (3 alerts, one rejected once)", creates)
	}
}

// A panic in one alert of a multi-alert message redelivers the whole
// message, even after an earlier alert failed for good: the alerts after
// the panic were not applied, and must not be lost with it.
func TestMultiAlertPanicRedeliversWhole(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.sim.Inject(topdesktest.Fault{Method: http.MethodPost, Status: http.StatusBadRequest, Count: 1})
	e.api = &panicOnce{incidentAPI: e.td, ext: mapping.ExternalNumber("bbbb000000000002")}
	opts := fastOptions()
	opts.HandleTimeout = 2 * time.Second // the panic leaves its key claimed until then
	rw := e.startWorker(opts)
	e.waitReconciled(rw)
	b, err := json.Marshal(amWebhook("bbbb000000000001", "bbbb000000000002", "bbbb000000000003"))
	if err != nil {
		t.Fatal(err)
	}
	e.publishRaw("alerts.test", b)
	e.waitSettled(15 * time.Second)
	// The rejection was once: on the redelivery the first alert is created too.
	for _, fp := range []string{"bbbb000000000001", "bbbb000000000002", "bbbb000000000003"} {
		if n := len(e.incidentsFor(fp)); n != 1 {
			t.Errorf("%s: got %d incidents, want 1", fp, n)
		}
	}
	if dl := e.dlqEntries(); len(dl) != 0 {
		t.Errorf("got %d dead letters, want none", len(dl))
	}
}

// setAckWait makes the consumer again with ack wait d.
func (e *testEnv) setAckWait(d time.Duration) {
	e.t.Helper()
	if err := e.js.DeleteConsumer(e.t.Context(), e.topo.Stream, e.topo.Consumer); err != nil {
		e.t.Fatal(err)
	}
	e.topo.AckWait = d
	var err error
	if e.res, err = Provision(e.t.Context(), e.js, e.topo); err != nil {
		e.t.Fatal(err)
	}
}

// An event whose deliveries were spent waiting in a paused worker's pull
// buffer (the credentials were refused for longer than the ack wait) is not
// dead-lettered on its first real failed attempt: only MaxDeliver attempts
// the worker actually made exhaust it.
func TestOutageDeliveriesAreNotAttempts(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.setAckWait(2 * time.Second)
	opts := fastOptions()
	opts.MaxDeliver = 2
	opts.RetryMaxElapsed = time.Millisecond // one request per delivery
	first := e.startWorker(opts)
	e.waitReconciled(first)
	e.sim.SetCredentials("alertdesk", "rotated-password")
	e.publish(firing("waited", "critical", "x", time.Now()))
	wait.For(t, 20*time.Second, "the event was delivered more than MaxDeliver times", func() bool {
		info, err := e.res.Consumer.Info(t.Context())
		return err == nil && info.Delivered.Consumer > uint64(opts.MaxDeliver)+1
	})
	first.stop()
	e.sim.SetCredentials("alertdesk", "alertdesk-app-password")
	e.sim.Inject(topdesktest.Fault{Method: http.MethodPost, Status: http.StatusInternalServerError, Count: 1})
	e.startWorker(opts)
	e.waitSettled(15 * time.Second)
	if dl := e.dlqEntries(); len(dl) != 0 {
		t.Fatalf("dead-lettered after one real attempt: %s (%d deliveries)", dl[0].Error, dl[0].Deliveries)
	}
	if n := len(e.incidentsFor("waited")); n != 1 {
		t.Fatalf("got %d incidents, want 1", n)
	}
}

// A worker stopped with a backlog hands every message it holds back before
// Run returns (buffered, queued and in flight), and its settlements have
// reached the server by then: the process may exit at once. Here the
// worker's connection is a slow network path that loses what it has not
// delivered when Run has returned, as a process exit does. Another worker
// then settles the rest long before the ack wait: within half of it. The
// bound is not how fast the machine settles 300 events (a loaded one takes
// many seconds), and it leaves room for a key whose claim was being
// written when the first worker cancelled its in-flight events: that claim
// may land after all, and the key then waits for it to lapse (ClaimTTL).
func TestStopHandsEverythingBack(t *testing.T) {
	e := newEnv(t, topdesktest.Options{Latency: 5 * time.Millisecond})
	const ackWait = time.Minute
	e.setAckWait(ackWait)
	var slow *slowConn
	nc, err := nats.Connect(e.ns.ClientURL(), nats.SetCustomDialer(dialFunc(func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err != nil {
			return nil, err
		}
		slow = newSlowConn(c, 50*time.Millisecond)
		return slow, nil
	})), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	first := &testEnv{t: t, ns: e.ns, nc: nc, js: js, topo: e.topo, sim: e.sim, td: e.td, api: e.api, resolver: e.resolver, mapping: e.mapping}
	if first.res, err = Provision(t.Context(), js, e.topo); err != nil {
		t.Fatal(err)
	}
	opts := fastOptions()
	opts.ShutdownTimeout = 100 * time.Millisecond
	rw := first.startWorker(opts)
	e.waitReconciled(rw)
	const n = 300
	for i := range n {
		e.publish(firing(fmt.Sprintf("backlog-%d", i), "critical", "x", time.Now()))
	}
	wait.For(t, 30*time.Second, "the first worker is handling the backlog", func() bool {
		return len(e.sim.Incidents()) >= 20
	})
	rw.stop()
	slow.drop() // the process exits
	start := time.Now()
	second := fastOptions()
	if second.ClaimTTL >= ackWait/2 {
		t.Fatalf("claim TTL %s: a lapsing claim would not fit in the bound", second.ClaimTTL)
	}
	e.startWorker(second)
	e.waitSettled(ackWait + 15*time.Second)
	if took := time.Since(start); took > ackWait/2 {
		t.Fatalf("settling the rest took %s: a message was held until its ack wait", took)
	}
	for i := range n {
		if incs := e.incidentsFor(fmt.Sprintf("backlog-%d", i)); len(incs) != 1 {
			t.Fatalf("backlog-%d: got %d incidents, want 1", i, len(incs))
		}
	}
}

type dialFunc func(network, addr string) (net.Conn, error)

func (f dialFunc) Dial(network, addr string) (net.Conn, error) { return f(network, addr) }

// slowConn delivers each write after a delay, like a long network path;
// drop loses what it has not delivered yet and closes the connection.
type slowConn struct {
	net.Conn
	delay time.Duration
	q     chan slowWrite
	done  chan struct{}
	once  sync.Once
}

type slowWrite struct {
	at time.Time
	b  []byte
}

func newSlowConn(c net.Conn, delay time.Duration) *slowConn {
	s := &slowConn{Conn: c, delay: delay, q: make(chan slowWrite, 1<<16), done: make(chan struct{})}
	go func() {
		for {
			var w slowWrite
			select {
			case <-s.done:
				return
			case w = <-s.q:
			}
			t := time.NewTimer(time.Until(w.at))
			select {
			case <-s.done:
				t.Stop()
				return
			case <-t.C:
			}
			if _, err := c.Write(w.b); err != nil {
				return
			}
		}
	}()
	return s
}

func (s *slowConn) Write(b []byte) (int, error) {
	select {
	case <-s.done:
		return 0, net.ErrClosed
	case s.q <- slowWrite{at: time.Now().Add(s.delay), b: bytes.Clone(b)}:
		return len(b), nil
	}
}

func (s *slowConn) Close() error {
	s.drop()
	return nil
}

func (s *slowConn) drop() {
	s.once.Do(func() {
		close(s.done)
		s.Conn.Close()
	})
}

// A claim must outlast the longest hold: the handle timeout plus the state
// writes that release or commit it afterwards.
func TestClaimTTLCoversLongestHold(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	opts := fastOptions()
	for _, tc := range []struct {
		ttl time.Duration
		ok  bool
	}{
		{opts.HandleTimeout, false},
		{opts.HandleTimeout + time.Millisecond, false}, // no time left to commit
		{LongestHold(opts.HandleTimeout), false},
		{LongestHold(opts.HandleTimeout) + time.Millisecond, true},
	} {
		o := opts
		o.ClaimTTL = tc.ttl
		if _, err := New(e.res, e.api, e.resolver, e.mapping, o); (err == nil) != tc.ok {
			t.Errorf("claim TTL %s with handle timeout %s: err = %v, want ok %v", tc.ttl, o.HandleTimeout, err, tc.ok)
		}
	}
	if hold := LongestHold(opts.HandleTimeout); hold <= opts.HandleTimeout {
		t.Fatalf("longest hold %s does not exceed the handle timeout %s", hold, opts.HandleTimeout)
	}
}

// A 403 on a write, when a probe shows that the credentials work, is a
// permission the operator lacks for that operation: the event is
// dead-lettered as rejected and the worker goes on; only a failing probe
// pauses it.
func TestForbiddenWriteIsRejected(t *testing.T) {
	e := newEnv(t, topdesktest.Options{ReadOnlyUsers: map[string]string{"reader": "reader-password"}})
	var err error
	if e.td, err = topdesk.NewClient(e.sim.URL(), topdesk.Options{Username: "reader", Password: "reader-password", Timeout: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	e.resolver, e.api = topdesk.NewResolver(e.td), e.td
	rw := e.startWorker(fastOptions())
	e.publish(firing("forbidden", "critical", "x", time.Now()))
	e.waitSettled(10 * time.Second)
	dl := e.dlqEntries()
	if len(dl) != 1 || dl[0].Class != dlq.ClassRejected || dl[0].AlertKey != "forbidden" {
		t.Fatalf("got dead letters %+v, want one rejected for key forbidden", dl)
	}
	if err := rw.w.Ready(); err != nil || rw.w.gate.paused() {
		t.Fatalf("worker paused or not ready after a 403 with working credentials: %v", err)
	}
}

// The state of a key closed longer than reopenWindow plus a margin is
// removed by the bucket (per-key TTL); a key that only ever resolved keeps
// its state only for the margin, which orders a late firing before it.
func TestClosedStateExpires(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	var err error
	if e.mapping, err = mapping.Load([]byte("lifecycle:\n  reopenWindow: 3s\n  reorderWindow: 500ms\n")); err != nil {
		t.Fatal(err)
	}
	rw := e.startWorker(fastOptions())
	e.waitReconciled(rw)
	at := time.Now()
	e.publish(firing("short", "critical", "x", at))
	e.waitSettled(10 * time.Second)
	e.publish(resolved("short", at.Add(time.Millisecond)))
	e.publish(resolved("only-resolved", at))
	e.waitSettled(10 * time.Second)
	closed := time.Now()
	kv, err := e.js.KeyValue(t.Context(), e.topo.StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	gone := func(key string) bool {
		_, err := kv.Get(t.Context(), mapping.ExternalNumber(key))
		return errors.Is(err, jetstream.ErrKeyNotFound)
	}
	wait.For(t, 10*time.Second, "the resolve-only key's state expired", func() bool { return gone("only-resolved") })
	if gone("short") {
		t.Fatalf("the closed key's state is gone after %s, inside the reopen window", time.Since(closed))
	}
	wait.For(t, 15*time.Second, "the closed key's state expired", func() bool { return gone("short") })
	if took := time.Since(closed); took < 3*time.Second {
		t.Fatalf("the closed key's state expired after %s, inside the reopen window", took)
	}
	// A firing after that creates a new incident.
	e.publish(firing("short", "critical", "x", time.Now()))
	e.waitSettled(10 * time.Second)
	if n := len(e.incidentsFor("short")); n != 2 {
		t.Fatalf("got %d incidents, want 2", n)
	}
}

// Provisioning gives an existing state bucket per-key TTLs.
func TestProvisionEnablesKeyTTL(t *testing.T) {
	ns := workertest.StartJetStream(t)
	_, js := workertest.Connect(t, ns)
	if _, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "alertdesk_incidents", History: 1}); err != nil {
		t.Fatal(err)
	}
	res, err := Provision(t.Context(), js, Topology{Stream: "ALERTS", Subjects: []string{"alerts.>"}, Consumer: "alertdesk",
		DLQStream: "ALERTS_DLQ", StateBucket: "alertdesk_incidents"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(t.Context(), "KV_alertdesk_incidents")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := s.CachedInfo().Config; !res.StateKeyTTL || !cfg.AllowMsgTTL || cfg.SubjectDeleteMarkerTTL <= 0 {
		t.Fatalf("existing bucket not given per-key TTLs: StateKeyTTL %v, AllowMsgTTL %v, marker TTL %s",
			res.StateKeyTTL, cfg.AllowMsgTTL, cfg.SubjectDeleteMarkerTTL)
	}
}

// The input stream never removes an unsettled event: it is created as a
// work queue without max age; an existing stream with a max age or
// discarding limits is reported.
func TestInputRetentionKeepsUnsettled(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	cfg := e.res.Stream.CachedInfo().Config
	if cfg.Retention != jetstream.WorkQueuePolicy || cfg.MaxAge != 0 || cfg.MaxMsgs > 0 || cfg.MaxBytes > 0 {
		t.Fatalf("input stream: retention %s, max age %s, max msgs %d, max bytes %d; want a work queue without limits",
			cfg.Retention, cfg.MaxAge, cfg.MaxMsgs, cfg.MaxBytes)
	}
	if len(e.res.Warnings) != 0 {
		t.Fatalf("warnings for a stream alertdesk created: %q", e.res.Warnings)
	}

	ns := workertest.StartJetStream(t)
	_, js := workertest.Connect(t, ns)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ALERTS", Subjects: []string{"alerts.>"},
		MaxAge: time.Hour, Duplicates: time.Minute}); err != nil {
		t.Fatal(err)
	}
	res, err := Provision(t.Context(), js, Topology{Stream: "ALERTS", Subjects: []string{"alerts.>"}, Consumer: "alertdesk",
		DLQStream: "ALERTS_DLQ", StateBucket: "alertdesk_incidents"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "max age 1h0m0s") {
		t.Fatalf("warnings %q, want one about the max age", res.Warnings)
	}
}

// The input stream drops a notification identical to one stored within
// its duplicate window; alertdesk makes it no longer than the reorder
// window, and an existing stream that keeps a longer one is reported, so
// that an Alertmanager re-fire is not lost without a word.
func TestInputDedupeWindowFollowsReorderWindow(t *testing.T) {
	ns := workertest.StartJetStream(t)
	_, js := workertest.Connect(t, ns)
	topo := Topology{Stream: "ALERTS", Subjects: []string{"alerts.>"}, Consumer: "alertdesk",
		DLQStream: "ALERTS_DLQ", StateBucket: "alertdesk_incidents", Duplicates: 30 * time.Second}
	res, err := Provision(t.Context(), js, topo)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Stream.CachedInfo().Config.Duplicates; got != 30*time.Second || len(res.Warnings) != 0 {
		t.Fatalf("created with duplicate window %s and warnings %q, want 30s and none", got, res.Warnings)
	}

	// A stream made by hand keeps the server's default window, 2 minutes.
	ns = workertest.StartJetStream(t)
	_, js = workertest.Connect(t, ns)
	mustStream(t, js, jetstream.StreamConfig{Name: "ALERTS", Subjects: []string{"alerts.>"}, Retention: jetstream.WorkQueuePolicy})
	if res, err = Provision(t.Context(), js, topo); err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "nats stream edit ALERTS --dupe-window 30s") {
		t.Fatalf("warnings %q, want one that says how to shorten the duplicate window", res.Warnings)
	}
}
