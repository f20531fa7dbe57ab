package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// A week-long TOPdesk outage, in short durations. Every duration that
// bounds how long an event may wait, or how often it is tried, is scaled
// down, and the outage lasts many multiples of each (docs/operations.md
// has the table):
//
//	ALERTDESK_ACK_WAIT          30s  -> 2s     (/15); the outage is 30 ack waits
//	ALERTDESK_TOPDESK_TIMEOUT   15s  -> 500ms  (/30); handle timeout 4x: 60s -> 2s
//	ALERTDESK_CLAIM_TTL         75s  -> 3s     (/25); 20 claim TTLs
//	ALERTDESK_BREAKER_COOLDOWN   5s  -> 100ms  (/50); 600 cooldowns
//	ALERTDESK_MAX_DELIVER       10   -> 3; three real attempts (2s each, redelivered after 1s
//	                                  and 2s) end within 9s: the outage is 6-7 times that
//
// The redelivery delays (1s doubling to at most 5m) have no setting and
// keep their values.
var weekOutageEnv = []string{
	"ALERTDESK_ACK_WAIT=2s",
	"ALERTDESK_TOPDESK_TIMEOUT=500ms",
	"ALERTDESK_CLAIM_TTL=3s",
	"ALERTDESK_BREAKER_COOLDOWN=100ms",
	"ALERTDESK_MAX_DELIVER=3",
}

// The outage's length; the load is published over the outage and a few
// seconds before and after it.
const weekOutageLength = 60 * time.Second

var weekOutageLoad = scale{events: 5000, keys: 500, poison: 10, publish: weekOutageLength + 8*time.Second}

// weekOutage takes TOPdesk down while the events keep arriving: the first
// half of the outage it answers 503 to every request, the second half it
// refuses connections. In the middle of each half a worker is restarted
// (SIGKILL, then SIGTERM): it hands its buffered events back, or leaves
// them to the ack wait, and waits in start-up for TOPdesk. Then TOPdesk
// comes back.
func weekOutage(stop context.Context, e *env, rng *rand.Rand) (string, error) {
	outage := weekOutageLength
	if !pause(stop, rng, time.Second, 2*time.Second) {
		return "no outage (publishing ended first)", nil
	}
	half := outage / 2
	e.sim.Inject(topdesktest.Fault{Status: 503})
	err := e.restartMidway(half, 0, func(i int) error { return e.workers.kill(i) })
	e.topdesk.refuse()
	e.sim.ClearFaults()
	if err == nil {
		err = e.restartMidway(outage-half, 1, func(i int) error { return e.workers.terminate(i, 10*time.Second) })
	}
	if lerr := e.topdesk.listen(); lerr != nil {
		return "", lerr
	}
	return fmt.Sprintf("TOPdesk answered 503 for %s (worker 0 SIGKILLed and restarted midway), then refused connections for %s (worker 1 SIGTERMed and restarted midway)",
		half, outage-half), err
}

// restartMidway waits d, stopping worker i with stopFn and starting it
// again after d/2.
func (e *env) restartMidway(d time.Duration, i int, stopFn func(int) error) error {
	end := time.Now().Add(d)
	if err := waitUntil(e.t.Context(), time.Now().Add(d/2)); err != nil {
		return err
	}
	if err := stopFn(i); err != nil {
		return fmt.Errorf("stop worker %d: %w", i, err)
	}
	if err := e.workers.start(i); err != nil {
		return err
	}
	return waitUntil(e.t.Context(), end)
}
