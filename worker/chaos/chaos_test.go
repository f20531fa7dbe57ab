package chaos

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

var seedFlag = flag.Uint64("chaos.seed", 0, "seed of the event generator and the fault schedule; 0 = from the clock")

// chaosFunc injects faults into a running scenario until stop ends, then
// undoes them (every worker running, NATS up, TOPdesk healthy) and
// describes what it did.
type chaosFunc func(stop context.Context, e *env, rng *rand.Rand) (string, error)

// The loads: small for `go test` (and -short), full for -chaos.full.
var (
	smallScale = scale{events: 400, keys: 50, poison: 4, publish: 4 * time.Second}
	fullScale  = scale{events: 5000, keys: 500, poison: 10, publish: 20 * time.Second}
)

// scenario is one row of the suite.
type scenario struct {
	name    string
	workers int
	cluster bool // a three-node NATS cluster with R3 streams, consumer and KV
	small   bool // also part of the default (and -short) run
	chaos   chaosFunc
	// env holds ALERTDESK_* settings that replace newEnv's for this
	// scenario, e.g. shorter durations.
	env []string
	// fullLoad replaces fullScale for this scenario (only the small
	// scenarios run at small scale).
	fullLoad *scale
	// maxSettle, if set, bounds the time from the end of the load and the
	// chaos until every event is settled.
	maxSettle time.Duration
	// audit checks from the server's acks and terminations that the
	// workers settled every stored event (none expired or was lost).
	audit bool
}

func TestChaos(t *testing.T) {
	tests := []scenario{
		{name: "1-kill-workers", workers: 3, small: true, chaos: killWorkers},
		{name: "2-restart-nats", workers: 3, small: true, chaos: restartNATS},
		{name: "3-cluster-node-loss", workers: 3, cluster: true, chaos: killClusterNodes},
		{name: "4-topdesk-outage", workers: 3, small: true, chaos: topdeskOutage},
		{name: "5-topdesk-faults", workers: 3, chaos: topdeskFaults},
		{name: "6-credentials-revoked", workers: 3, chaos: revokeCredentials},
		// A message a stopping worker does not hand back returns only after
		// the ack wait; with 60s, more than the settling takes, such a
		// message makes maxSettle fail.
		{name: "7-rolling-sigterm", workers: 3, chaos: rollingRestart,
			env: []string{"ALERTDESK_ACK_WAIT=60s"}, maxSettle: 15 * time.Second},
		{name: "8-cluster-kv-leader", workers: 3, cluster: true, chaos: killKVLeader},
		{name: "9-week-outage", workers: 3, chaos: weekOutage, env: weekOutageEnv,
			fullLoad: &weekOutageLoad, audit: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc, timeout := smallScale, 90*time.Second
			if *fullFlag {
				sc, timeout = fullScale, 5*time.Minute
				if tc.fullLoad != nil {
					sc = *tc.fullLoad
				}
			} else if !tc.small {
				t.Skip("runs with -chaos.full (make chaos)")
			}
			runScenario(t, tc, sc, timeout)
		})
	}
}

// runScenario starts the system, publishes a generated load while chaos
// runs, waits until every event is settled and checks TOPdesk and the DLQ.
func runScenario(t *testing.T, tc scenario, sc scale, timeout time.Duration) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -chaos.seed=%d)", seed, seed)
	p := generate(seed, sc)
	e := newEnv(t, tc.workers, tc.cluster, tc.env)
	var audit *settlements
	if tc.audit {
		var err error
		if audit, err = e.watchSettlements(); err != nil {
			t.Fatal(err)
		}
	}

	start := time.Now()
	stop, stopChaos := context.WithCancel(t.Context())
	defer stopChaos()
	type chaosResult struct {
		desc string
		err  error
	}
	chaosDone := make(chan chaosResult, 1)
	go func() {
		desc, err := tc.chaos(stop, e, rand.New(rand.NewPCG(seed, 1)))
		chaosDone <- chaosResult{desc, err}
	}()
	retries, pubErr := publish(t.Context(), e.js, p, sc.publish)
	stopChaos()
	cr := <-chaosDone
	if pubErr != nil {
		t.Fatalf("publish: %v", pubErr)
	}
	if cr.err != nil {
		t.Fatalf("chaos: %v", cr.err)
	}
	loadEnd := time.Now()
	prog := e.waitDone(timeout)
	wall := time.Since(start)
	settle := time.Since(loadEnd)
	// The input stream is a work queue: it stored every event once (its
	// last sequence) and removes each once it is settled.
	if prog.lastSeq != uint64(len(p.pubs)) {
		t.Errorf("stream stored %d messages, want the %d published", prog.lastSeq, len(p.pubs))
	}
	var settleDesc, auditDesc string
	if tc.maxSettle > 0 {
		settleDesc = fmt.Sprintf("all settled %s after the load", settle.Round(100*time.Millisecond))
		if settle > tc.maxSettle {
			t.Errorf("events settled %s after the load and the chaos ended, want at most %s: some waited for the ack wait", settle, tc.maxSettle)
		}
	}
	if audit != nil {
		var err error
		if auditDesc, err = e.checkSettlements(audit, prog.lastSeq, len(p.poison)); err != nil {
			t.Error(err)
		}
	}
	v := e.check(p)
	e.report(summary{
		scenario: tc.name,
		alerts:   len(p.pubs),
		v:        v,
		wall:     wall,
		chaos: joinNonEmpty(cr.desc, settleDesc, auditDesc,
			nonZero("publish retries", retries), nonZero("no incident (resolve overtook)", v.noIncident),
			e.topdeskStats()),
	})
	if !v.ok() {
		t.Errorf("TOPdesk or the DLQ do not match the events (%d duplicates, %d keys with two open incidents, %d lost, %d wrong, %d strays, %d DLQ mismatches):\n%s",
			v.duplicates, v.twoOpen, v.lost, v.wrong, v.strays, v.dlqWrong, strings.Join(v.problems, "\n"))
	}
}

func nonZero(label string, n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%s %d", label, n)
}

// pause waits a random time in [lo, hi) or until stop ends, and reports
// whether stop is still running.
func pause(stop context.Context, rng *rand.Rand, lo, hi time.Duration) bool {
	d := lo
	if hi > lo {
		d += time.Duration(rng.Int64N(int64(hi - lo)))
	}
	return waitUntil(stop, time.Now().Add(d)) == nil
}

// slowIncidents gives every incident request some latency, so that faults
// land while TOPdesk writes are in progress; the returned func removes it.
func slowIncidents(e *env) func() {
	e.sim.Inject(topdesktest.Fault{Path: "/tas/api/incidents", Delay: 30 * time.Millisecond})
	return e.sim.ClearFaults
}

// killWorkers SIGKILLs a random worker every 200-500 ms and restarts it.
// TOPdesk is slowed down so that kills hit workers between the TOPdesk
// call and the state update.
func killWorkers(stop context.Context, e *env, rng *rand.Rand) (string, error) {
	defer slowIncidents(e)()
	n := e.workers.count()
	for pause(stop, rng, 200*time.Millisecond, 500*time.Millisecond) {
		i := rng.IntN(n)
		if err := e.workers.kill(i); err != nil {
			return "", err
		}
		if err := e.workers.start(i); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("SIGKILLed and restarted %d workers", e.workers.kills), nil
}

// restartNATS SIGKILLs nats-server a quarter into the run (and, at full
// scale, again later) and restarts it after a second on the same port and
// store.
func restartNATS(stop context.Context, e *env, rng *rand.Rand) (string, error) {
	defer slowIncidents(e)()
	restarts := 0
	for pause(stop, rng, 800*time.Millisecond, 1500*time.Millisecond) {
		if err := e.nats[0].p.kill(); err != nil {
			return "", err
		}
		down := time.Now()
		// The restart happens even when stop has ended meanwhile.
		if err := waitUntil(e.t.Context(), down.Add(time.Second)); err != nil {
			return "", err
		}
		if err := e.nats[0].start(e.t.Context()); err != nil {
			return "", fmt.Errorf("restart nats-server: %w", err)
		}
		restarts++
		if !*fullFlag {
			break
		}
		if !pause(stop, rng, 3*time.Second, 5*time.Second) {
			break
		}
	}
	return fmt.Sprintf("nats-server SIGKILLed and restarted %d times", restarts), nil
}

// killClusterNodes SIGKILLs a random node of the cluster and restarts it
// two seconds later; then it does the same to the leader of the input
// stream.
func killClusterNodes(stop context.Context, e *env, rng *rand.Rand) (string, error) {
	defer slowIncidents(e)()
	var killed []string
	if pause(stop, rng, time.Second, 2*time.Second) {
		ns := e.nats[rng.IntN(len(e.nats))]
		if err := e.bounce(ns); err != nil {
			return "", err
		}
		killed = append(killed, ns.name)
	}
	if pause(stop, rng, time.Second, 2*time.Second) {
		leader, err := e.leader(30*time.Second, streamName, "")
		if err != nil {
			return "", err
		}
		if err := e.bounce(leader); err != nil {
			return "", err
		}
		killed = append(killed, leader.name)
	}
	return fmt.Sprintf("SIGKILLed and restarted %s (the last one the stream leader)", strings.Join(killed, ", ")), nil
}

// bounce SIGKILLs a cluster node and restarts it on the same store two
// seconds later.
func (e *env) bounce(ns *natsServer) error {
	if err := ns.p.kill(); err != nil {
		return err
	}
	if err := waitUntil(e.t.Context(), time.Now().Add(2*time.Second)); err != nil {
		return err
	}
	if err := ns.start(e.t.Context()); err != nil {
		return fmt.Errorf("restart %s: %w", ns.name, err)
	}
	return nil
}

// kvStream is the stream behind the workers' state bucket (its default
// name, alertdesk_incidents).
const kvStream = "KV_alertdesk_incidents"

// killKVLeader SIGKILLs the node that leads the state bucket, and only
// that: when the bucket's leader is also the leader of the input stream or
// of the consumer, the bucket's leadership is first moved (a stepdown with
// a preferred node) to a node that leads neither. The node is restarted on
// its store two seconds later; then all that once more.
func killKVLeader(stop context.Context, e *env, rng *rand.Rand) (string, error) {
	defer slowIncidents(e)()
	var killed []string
	moved := 0
	for range 2 {
		if !pause(stop, rng, time.Second, 2*time.Second) {
			break
		}
		ns, didMove, err := e.isolateKVLeader(30 * time.Second)
		if err != nil {
			return "", err
		}
		if didMove {
			moved++
		}
		if err := e.bounce(ns); err != nil {
			return "", err
		}
		killed = append(killed, ns.name)
	}
	if len(killed) == 0 {
		return "no kill (publishing ended first)", nil
	}
	return fmt.Sprintf("SIGKILLed and restarted the %s leader %s (leading neither %s nor its consumer; stepped down to it first in %d of %d kills)",
		kvStream, strings.Join(killed, ", then "), streamName, moved, len(killed)), nil
}

// isolateKVLeader returns the node leading the state bucket's stream after
// making sure it leads neither the input stream nor the consumer; moved
// says whether the bucket's leadership had to be moved for that.
func (e *env) isolateKVLeader(timeout time.Duration) (ns *natsServer, moved bool, err error) {
	deadline := time.Now().Add(timeout)
	for {
		sl, err := e.leader(time.Until(deadline), streamName, "")
		if err != nil {
			return nil, moved, err
		}
		cl, err := e.leader(time.Until(deadline), streamName, consumerName)
		if err != nil {
			return nil, moved, err
		}
		kl, err := e.leader(time.Until(deadline), kvStream, "")
		if err != nil {
			return nil, moved, err
		}
		if kl != sl && kl != cl {
			return kl, moved, nil
		}
		if time.Now().After(deadline) {
			return nil, moved, fmt.Errorf("could not move the leader of %s away from the leaders of %s (%s) and its consumer (%s)", kvStream, streamName, sl.name, cl.name)
		}
		// The node that leads neither; with both on one node, either other.
		var target *natsServer
		for _, n := range e.nats {
			if n != sl && n != cl && n != kl {
				target = n
				break
			}
		}
		if err := e.stepDown(kvStream, target.name); err != nil {
			e.t.Logf("stepdown of %s to %s: %v", kvStream, target.name, err)
		}
		moved = true
		if err := waitUntil(e.t.Context(), time.Now().Add(500*time.Millisecond)); err != nil {
			return nil, moved, err
		}
	}
}

// stepDown asks the leader of stream to step down in favour of the node
// named preferred.
func (e *env) stepDown(stream, preferred string) error {
	req, err := json.Marshal(map[string]any{"placement": map[string]string{"preferred": preferred}})
	if err != nil {
		return err
	}
	msg, err := e.js.Conn().Request("$JS.API.STREAM.LEADER.STEPDOWN."+stream, req, 5*time.Second)
	if err != nil {
		return fmt.Errorf("stepdown %s: %w", stream, err)
	}
	var resp struct {
		Success bool `json:"success"`
		Error   *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("stepdown %s: %w", stream, err)
	}
	if !resp.Success {
		if resp.Error != nil {
			return fmt.Errorf("stepdown %s: %s", stream, resp.Error.Description)
		}
		return fmt.Errorf("stepdown %s: not done", stream)
	}
	return nil
}

// leader polls until the stream (or its consumer, if consumer is set)
// reports a known leader, and returns that node.
func (e *env) leader(timeout time.Duration, stream, consumer string) (*natsServer, error) {
	what := "stream " + stream
	if consumer != "" {
		what = "consumer " + consumer + " of " + what
	}
	ctx, cancel := context.WithTimeout(e.t.Context(), max(timeout, time.Second))
	defer cancel()
	var lastErr error
	for {
		ictx, icancel := context.WithTimeout(ctx, 2*time.Second)
		ci, err := clusterInfo(ictx, e.js, stream, consumer)
		icancel()
		if err == nil {
			if ci != nil && e.node(ci.Leader) != nil {
				return e.node(ci.Leader), nil
			}
			err = fmt.Errorf("%s reports no known leader", what)
		}
		lastErr = err
		if werr := waitUntil(ctx, time.Now().Add(200*time.Millisecond)); werr != nil {
			return nil, fmt.Errorf("find the leader of %s: %w", what, lastErr)
		}
	}
}

// clusterInfo returns the cluster part of a stream's or consumer's info.
func clusterInfo(ctx context.Context, js jetstream.JetStream, stream, consumer string) (*jetstream.ClusterInfo, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	if consumer == "" {
		return s.CachedInfo().Cluster, nil
	}
	c, err := s.Consumer(ctx, consumer)
	if err != nil {
		return nil, err
	}
	return c.CachedInfo().Cluster, nil
}

// topdeskOutage answers 503 to every TOPdesk request for a stretch.
func topdeskOutage(stop context.Context, e *env, rng *rand.Rand) (string, error) {
	outage := 3 * time.Second
	if *fullFlag {
		outage = 10 * time.Second
	}
	if !pause(stop, rng, 500*time.Millisecond, time.Second) {
		return "no outage (publishing ended first)", nil
	}
	e.sim.Inject(topdesktest.Fault{Status: 503})
	err := waitUntil(e.t.Context(), time.Now().Add(outage))
	e.sim.ClearFaults()
	return fmt.Sprintf("TOPdesk answered 503 for %s", outage), err
}

// topdeskFaults cycles through 429 storms with Retry-After, responses
// slower than the request timeout, dropped connections and creates whose
// response is lost.
func topdeskFaults(stop context.Context, e *env, rng *rand.Rand) (string, error) {
	phases := []struct {
		name  string
		fault topdesktest.Fault
	}{
		{"429 storm", topdesktest.Fault{Status: 429, RetryAfter: "1"}},
		{"slow", topdesktest.Fault{Path: "/tas/api/incidents", Delay: 1500 * time.Millisecond}},
		{"dropped", topdesktest.Fault{Drop: true, Count: 40}},
		{"lost create", topdesktest.Fault{Method: "POST", Path: "/tas/api/incidents", LoseResponse: true, Count: 25}},
	}
	counts := map[string]int{}
	for i := 0; pause(stop, rng, 500*time.Millisecond, time.Second); i++ {
		ph := phases[i%len(phases)]
		e.sim.Inject(ph.fault)
		counts[ph.name]++
		if err := waitUntil(e.t.Context(), time.Now().Add(time.Second)); err != nil {
			return "", err
		}
		e.sim.ClearFaults()
	}
	var parts []string
	for _, ph := range phases {
		parts = append(parts, fmt.Sprintf("%s x%d", ph.name, counts[ph.name]))
	}
	return strings.Join(parts, ", "), nil
}

// revokeCredentials changes TOPdesk's application password for a stretch
// (every request gets 401), then restores it.
func revokeCredentials(stop context.Context, e *env, rng *rand.Rand) (string, error) {
	revoked := 4 * time.Second
	if !pause(stop, rng, time.Second, 2*time.Second) {
		return "no revocation (publishing ended first)", nil
	}
	e.sim.SetCredentials(topdesktest.DefaultUsername, "revoked-"+topdesktest.DefaultPassword)
	err := waitUntil(e.t.Context(), time.Now().Add(revoked))
	e.sim.SetCredentials(topdesktest.DefaultUsername, topdesktest.DefaultPassword)
	return fmt.Sprintf("credentials revoked for %s", revoked), err
}

// rollingRestart SIGTERMs the workers one by one, each restarted before the
// next one stops, for as long as the load runs (at least one round). Each
// must stop gracefully with exit status 0.
func rollingRestart(stop context.Context, e *env, rng *rand.Rand) (string, error) {
	defer slowIncidents(e)()
	n := e.workers.count()
	for i := 0; ; i++ {
		if i >= n && stop.Err() != nil {
			break
		}
		pause(stop, rng, 300*time.Millisecond, 700*time.Millisecond)
		if err := e.workers.terminate(i%n, 10*time.Second); err != nil {
			return "", fmt.Errorf("worker %d on SIGTERM: %w", i%n, err)
		}
		if err := e.workers.start(i % n); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("SIGTERMed and restarted %d workers (each exited 0, the slowest %s after its SIGTERM)",
		e.workers.signals, e.workers.longestStop.Round(10*time.Millisecond)), nil
}
