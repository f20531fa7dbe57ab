package chaos

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

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

func TestChaos(t *testing.T) {
	tests := []struct {
		name    string
		workers int
		cluster bool // a three-node NATS cluster with R3 streams, consumer and KV
		small   bool // also part of the default (and -short) run
		chaos   chaosFunc
	}{
		{"1-kill-workers", 3, false, true, killWorkers},
		{"2-restart-nats", 3, false, true, restartNATS},
		{"3-cluster-node-loss", 3, true, false, killClusterNodes},
		{"4-topdesk-outage", 3, false, true, topdeskOutage},
		{"5-topdesk-faults", 3, false, false, topdeskFaults},
		{"6-credentials-revoked", 3, false, false, revokeCredentials},
		{"7-rolling-sigterm", 3, false, false, rollingRestart},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc, timeout := smallScale, 90*time.Second
			if *fullFlag {
				sc, timeout = fullScale, 5*time.Minute
			} else if !tc.small {
				t.Skip("runs with -chaos.full (make chaos)")
			}
			runScenario(t, tc.name, tc.workers, tc.cluster, sc, timeout, tc.chaos)
		})
	}
}

// runScenario starts the system, publishes a generated load while chaos
// runs, waits until every event is settled and checks TOPdesk and the DLQ.
func runScenario(t *testing.T, name string, workers int, cluster bool, sc scale, timeout time.Duration, chaos chaosFunc) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -chaos.seed=%d)", seed, seed)
	p := generate(seed, sc)
	e := newEnv(t, workers, cluster)

	start := time.Now()
	stop, stopChaos := context.WithCancel(t.Context())
	defer stopChaos()
	type chaosResult struct {
		desc string
		err  error
	}
	chaosDone := make(chan chaosResult, 1)
	go func() {
		desc, err := chaos(stop, e, rand.New(rand.NewPCG(seed, 1)))
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
	prog := e.waitDone(timeout)
	wall := time.Since(start)
	// The input stream is a work queue: it stored every event once (its
	// last sequence) and removes each once it is settled.
	if prog.lastSeq != uint64(len(p.pubs)) {
		t.Errorf("stream stored %d messages, want the %d published", prog.lastSeq, len(p.pubs))
	}
	v := e.check(p)
	e.report(summary{
		scenario: name,
		alerts:   len(p.pubs),
		v:        v,
		wall:     wall,
		chaos: joinNonEmpty(cr.desc,
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
	bounce := func(ns *natsServer) error {
		if err := ns.p.kill(); err != nil {
			return err
		}
		killed = append(killed, ns.name)
		if err := waitUntil(e.t.Context(), time.Now().Add(2*time.Second)); err != nil {
			return err
		}
		if err := ns.start(e.t.Context()); err != nil {
			return fmt.Errorf("restart %s: %w", ns.name, err)
		}
		return nil
	}
	if pause(stop, rng, time.Second, 2*time.Second) {
		if err := bounce(e.nats[rng.IntN(len(e.nats))]); err != nil {
			return "", err
		}
	}
	if pause(stop, rng, time.Second, 2*time.Second) {
		leader, err := e.streamLeader(30 * time.Second)
		if err != nil {
			return "", err
		}
		if err := bounce(leader); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("SIGKILLed and restarted %s (the last one the stream leader)", strings.Join(killed, ", ")), nil
}

// streamLeader polls until the input stream reports a leader, and returns
// that node.
func (e *env) streamLeader(timeout time.Duration) (*natsServer, error) {
	ctx, cancel := context.WithTimeout(e.t.Context(), timeout)
	defer cancel()
	var lastErr error
	for {
		ictx, icancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := e.js.Stream(ictx, streamName)
		icancel()
		if err == nil {
			if ci := s.CachedInfo().Cluster; ci != nil && e.node(ci.Leader) != nil {
				return e.node(ci.Leader), nil
			}
			err = fmt.Errorf("stream %s reports no known leader", streamName)
		}
		lastErr = err
		if werr := waitUntil(ctx, time.Now().Add(200*time.Millisecond)); werr != nil {
			return nil, fmt.Errorf("find the leader of stream %s: %w", streamName, lastErr)
		}
	}
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
	return fmt.Sprintf("SIGTERMed and restarted %d workers", e.workers.signals), nil
}
