package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/dlq"
	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
	"github.com/alertdesk/alertdesk/worker/workertest"
)

// testEnv is a real embedded JetStream server, the provisioned topology, the
// TOPdesk simulator and a real client for it.
type testEnv struct {
	t        testing.TB
	ns       *server.Server
	nc       *nats.Conn
	js       jetstream.JetStream
	topo     Topology
	res      *Resources
	sim      *topdesktest.Sim
	td       *topdesk.Client
	api      incidentAPI // what workers call; e.td unless a test wraps it
	resolver *topdesk.Resolver
	mapping  *mapping.Mapping
	logs     io.Writer // where workers log (debug and up) instead of the test log; nil = the test log
}

func newEnv(t testing.TB, simOpts topdesktest.Options) *testEnv {
	t.Helper()
	e := &testEnv{t: t, ns: workertest.StartJetStream(t), mapping: mapping.Default()}
	var err error
	e.nc, e.js = workertest.Connect(t, e.ns)
	e.topo = Topology{
		Stream: "ALERTS", Subjects: []string{"alerts.>"}, Consumer: "alertdesk",
		DLQStream: "ALERTS_DLQ", StateBucket: "alertdesk_incidents", AckWait: 5 * time.Second,
	}
	if e.res, err = Provision(t.Context(), e.js, e.topo); err != nil {
		t.Fatal(err)
	}
	e.sim = topdesktest.Start(t, simOpts)
	if e.td, err = topdesk.NewClient(e.sim.URL(), topdesk.Options{
		Username: simUser(simOpts), Password: simPass(simOpts), Timeout: 2 * time.Second,
	}); err != nil {
		t.Fatal(err)
	}
	e.resolver = topdesk.NewResolver(e.td)
	e.api = e.td
	return e
}

func simUser(o topdesktest.Options) string {
	if o.Username != "" {
		return o.Username
	}
	return "alertdesk"
}

func simPass(o topdesktest.Options) string {
	if o.Password != "" {
		return o.Password
	}
	return "alertdesk-app-password"
}

// fastOptions are worker options with test-sized timings.
func fastOptions() Options {
	return Options{
		Concurrency:      8,
		MaxDeliver:       5,
		HandleTimeout:    10 * time.Second,
		RetryInitial:     10 * time.Millisecond,
		RetryMax:         100 * time.Millisecond,
		RetryMaxElapsed:  500 * time.Millisecond,
		RedeliverMin:     50 * time.Millisecond,
		RedeliverMax:     300 * time.Millisecond,
		ClaimTTL:         13 * time.Second,
		OutcomeWait:      300 * time.Millisecond,
		BreakerThreshold: 1000,
		BreakerCooldown:  100 * time.Millisecond,
		AuthRetry:        100 * time.Millisecond,
		ShutdownTimeout:  5 * time.Second,
		LagInterval:      time.Second,
		ReconcileRetry:   100 * time.Millisecond,
	}
}

// runningWorker is a worker running in a goroutine.
type runningWorker struct {
	w      *Worker
	cancel context.CancelFunc
	done   chan error
	reg    *prometheus.Registry
}

func (e *testEnv) startWorker(opts Options) *runningWorker {
	e.t.Helper()
	if err := e.resolver.ResolveAll(e.t.Context(), e.mapping.Names()); err != nil {
		e.t.Fatal(err)
	}
	rw := &runningWorker{reg: prometheus.NewRegistry(), done: make(chan error, 1)}
	opts.Registerer = rw.reg
	opts.Logger = zerolog.New(zerolog.NewTestWriter(e.t)).Level(zerolog.WarnLevel)
	if e.logs != nil {
		opts.Logger = zerolog.New(e.logs).Level(zerolog.DebugLevel)
	}
	w, err := New(e.res, e.api, e.resolver, e.mapping, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	rw.w = w
	ctx, cancel := context.WithCancel(context.Background())
	rw.cancel = cancel
	go func() { rw.done <- w.Run(ctx) }()
	e.t.Cleanup(rw.stop)
	return rw
}

// stop stops the worker and waits for Run to return.
func (rw *runningWorker) stop() {
	rw.cancel()
	if err := <-rw.done; err != nil {
		panic(fmt.Sprintf("worker Run: %v", err))
	}
	rw.done <- nil // let a second stop return
}

// event is a native alert event.
type event map[string]any

func firing(key, severity, summary string, at time.Time) event {
	return event{"key": key, "status": "firing", "severity": severity, "summary": summary,
		"source": "test", "timestamp": at.UTC().Format(time.RFC3339Nano)}
}

func resolved(key string, at time.Time) event {
	return event{"key": key, "status": "resolved", "summary": "resolved", "source": "test",
		"timestamp": at.UTC().Format(time.RFC3339Nano)}
}

func (e *testEnv) publish(ev any) uint64 {
	e.t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.publishRaw("alerts.test", b)
}

func (e *testEnv) publishRaw(subject string, data []byte) uint64 {
	e.t.Helper()
	ack, err := e.js.Publish(e.t.Context(), subject, data)
	if err != nil {
		e.t.Fatal(err)
	}
	return ack.Sequence
}

// waitSettled waits until every published message is settled by the consumer.
func (e *testEnv) waitSettled(timeout time.Duration) {
	e.t.Helper()
	wait.For(e.t, timeout, "consumer has settled every message", func() bool {
		info, err := e.res.Consumer.Info(e.t.Context())
		if err != nil {
			return false
		}
		si, err := e.res.Stream.Info(e.t.Context())
		if err != nil {
			return false
		}
		return info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= si.State.LastSeq
	})
}

// incidentsFor returns the simulator's incidents for an alert key.
func (e *testEnv) incidentsFor(key string) []topdesktest.Incident {
	ext := mapping.ExternalNumber(key)
	var out []topdesktest.Incident
	for _, inc := range e.sim.Incidents() {
		if inc.ExternalNumber == ext {
			out = append(out, inc)
		}
	}
	return out
}

// writes counts the simulator's create/update requests.
// only returns the one incident of key.
func (e *testEnv) only(key string) topdesktest.Incident {
	e.t.Helper()
	incs := e.incidentsFor(key)
	if len(incs) != 1 {
		e.t.Fatalf("got %d incidents for %s, want 1", len(incs), key)
	}
	return incs[0]
}

func (e *testEnv) writes() (creates, updates int) {
	for _, r := range e.sim.Requests() {
		switch r.Method {
		case "POST":
			creates++
		case "PATCH", "PUT":
			updates++
		}
	}
	return creates, updates
}

// dlqEntries lists the dead letters.
func (e *testEnv) dlqEntries() []dlq.DeadLetter {
	e.t.Helper()
	dl, err := dlq.New(e.js, e.topo.DLQStream).List(e.t.Context(), dlq.Filter{})
	if err != nil {
		e.t.Fatal(err)
	}
	return dl
}
