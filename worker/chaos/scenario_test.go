package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alertdesk/alertdesk/dlq"
	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/mapping"
)

// scale sizes a scenario's event load.
type scale struct {
	events  int           // alert events before duplicates are added
	keys    int           // distinct alert keys
	poison  int           // undecodable events (half not JSON, half without a key)
	publish time.Duration // how long publishing is spread over
}

// event is one alert event as published.
type event struct {
	Key       string    `json:"key"`
	Status    string    `json:"status"`
	Severity  string    `json:"severity"`
	Summary   string    `json:"summary"`
	Source    string    `json:"source"`
	Timestamp time.Time `json:"timestamp"`
}

// publication is one message the scenario publishes.
type publication struct {
	id   string // Nats-Msg-Id: a retried publish is stored once
	data []byte
}

// plan is a generated scenario load and the final state it calls for.
type plan struct {
	pubs       []publication
	newest     map[string]event // per key, the event with the newest timestamp
	poison     map[string]bool  // payloads of the poison events
	duplicates int              // publications that repeat an earlier event exactly
}

// generate builds the events of sc for keys with a seeded generator:
// per key a timeline of firing events (some repeating the content, some
// changing severity or summary), resolves and re-fires, all within one hour
// so that a re-fire reopens the same incident; then published roughly in
// time order with local shuffles (out-of-order events), exact duplicates
// and poison events at random places.
func generate(seed uint64, sc scale) *plan {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	p := &plan{newest: map[string]event{}, poison: map[string]bool{}}

	var events []event
	perKey := max(1, sc.events/sc.keys)
	for k := range sc.keys {
		key := fmt.Sprintf("chaos/host-%03d/check-%d", k, k%7)
		at := base.Add(time.Duration(rng.IntN(600)) * time.Second)
		sev, version, firing := "warning", 1, true
		n := 1 + rng.IntN(2*perKey)
		for i := range n {
			if i > 0 {
				at = at.Add(time.Duration(1+rng.IntN(20))*time.Second + time.Duration(rng.IntN(1000))*time.Millisecond)
				r := rng.IntN(100)
				switch {
				case firing && r < 35: // the same firing content again
				case firing && r < 55:
					if rng.IntN(2) == 0 {
						sev = map[string]string{"warning": "critical", "critical": "warning"}[sev]
					} else {
						version++
					}
				case firing:
					firing = false
				case r < 30: // resolved again
				default:
					firing = true
					if rng.IntN(3) == 0 {
						version++
					}
				}
			}
			ev := event{Key: key, Status: "firing", Severity: sev, Source: "chaos", Timestamp: at,
				Summary: fmt.Sprintf("%s %s v%d", key, sev, version)}
			if !firing {
				ev.Status = "resolved"
			}
			events = append(events, ev)
			if old, ok := p.newest[key]; !ok || at.After(old.Timestamp) {
				p.newest[key] = ev
			}
		}
	}
	slices.SortStableFunc(events, func(a, b event) int { return a.Timestamp.Compare(b.Timestamp) })
	// Out of order: a third of the events swap places with one up to 40
	// positions later.
	for i := range events {
		if rng.IntN(3) == 0 {
			j := min(len(events)-1, i+rng.IntN(40))
			events[i], events[j] = events[j], events[i]
		}
	}
	var payloads [][]byte
	for _, ev := range events {
		b, err := json.Marshal(ev)
		if err != nil {
			panic(fmt.Sprintf("encode event: %v", err)) // plain strings and a time always encode
		}
		payloads = append(payloads, b)
	}
	// Exact duplicates: about one event in ten is published again a little later.
	for i := len(payloads) - 1; i >= 0; i-- {
		if rng.IntN(10) == 0 {
			at := min(len(payloads), i+1+rng.IntN(30))
			payloads = slices.Insert(payloads, at, payloads[i])
			p.duplicates++
		}
	}
	for i := range sc.poison {
		var b []byte
		if i%2 == 0 {
			b = fmt.Appendf(nil, "poison %d: this is not JSON {", i)
		} else {
			b = fmt.Appendf(nil, `{"status":"firing","summary":"poison %d without a key"}`, i)
		}
		p.poison[string(b)] = true
		payloads = slices.Insert(payloads, rng.IntN(len(payloads)+1), b)
	}
	for i, b := range payloads {
		p.pubs = append(p.pubs, publication{id: fmt.Sprintf("chaos-%d-%d", seed, i), data: b})
	}
	return p
}

// publish sends every publication of p to JetStream, spread evenly over
// spread, waiting for each ack and retrying (under the same Nats-Msg-Id)
// while NATS is unavailable. It returns how many publish attempts failed.
func publish(ctx context.Context, js jetstream.JetStream, p *plan, spread time.Duration) (int, error) {
	start := time.Now()
	retries := 0
	for i, pub := range p.pubs {
		due := start.Add(spread * time.Duration(i) / time.Duration(len(p.pubs)))
		if err := waitUntil(ctx, due); err != nil {
			return retries, err
		}
		for {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := js.PublishMsg(pctx, &nats.Msg{Subject: subject, Data: pub.data}, jetstream.WithMsgID(pub.id))
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return retries, fmt.Errorf("publish %d of %d: %w", i+1, len(p.pubs), err)
			}
			retries++
			if err := waitUntil(ctx, time.Now().Add(100*time.Millisecond)); err != nil {
				return retries, err
			}
		}
	}
	return retries, nil
}

// waitUntil waits until t or ctx's end.
func waitUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// progress is the consumer's position against the stream.
type progress struct {
	lastSeq, ackFloor  uint64
	pending            uint64
	ackPending         int
	streamMessageCount uint64
}

func (p progress) done() bool {
	return p.pending == 0 && p.ackPending == 0 && p.ackFloor == p.lastSeq
}

func (p progress) String() string {
	return fmt.Sprintf("stream last seq %d (%d msgs), consumer ack floor %d, pending %d, ack pending %d",
		p.lastSeq, p.streamMessageCount, p.ackFloor, p.pending, p.ackPending)
}

func readProgress(ctx context.Context, js jetstream.JetStream) (progress, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streamName)
	if err != nil {
		return progress{}, fmt.Errorf("stream info: %w", err)
	}
	c, err := s.Consumer(ctx, consumerName)
	if err != nil {
		return progress{}, fmt.Errorf("consumer: %w", err)
	}
	ci, err := c.Info(ctx)
	if err != nil {
		return progress{}, fmt.Errorf("consumer info: %w", err)
	}
	si := s.CachedInfo()
	return progress{
		lastSeq:            si.State.LastSeq,
		streamMessageCount: si.State.Msgs,
		ackFloor:           ci.AckFloor.Stream,
		pending:            ci.NumPending,
		ackPending:         ci.NumAckPending,
	}, nil
}

// waitDone polls the consumer until every message is settled, or fails
// after timeout. checkAlive reports workers that died on their own.
func (e *env) waitDone(timeout time.Duration) progress {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last progress
	var lastErr error
	for {
		p, err := readProgress(ctx, e.js)
		if err == nil {
			last, lastErr = p, nil
			if p.done() {
				return p
			}
		} else {
			lastErr = err
		}
		if werr := e.workers.checkAlive(); werr != nil {
			e.t.Fatal(werr)
		}
		select {
		case <-ctx.Done():
			e.t.Fatalf("events not all settled within %s: %s (last error: %v)", timeout, last, lastErr)
		case <-tick.C:
		}
	}
}

// verdict compares TOPdesk's final state with the plan.
type verdict struct {
	keys, incidents int
	duplicates      int // incidents beyond one per key
	twoOpen         int // keys with more than one open incident
	lost            int // keys whose newest event fires but which have no incident
	wrong           int // keys open when they should be closed or the other way round, or with stale content
	noIncident      int // keys whose events were all overtaken by a newer resolve (no incident is right)
	strays          int // incidents that belong to no key of the plan
	dlq             int
	dlqWrong        int // dead letters that are not poison, plus poison that was not dead-lettered
	problems        []string
}

// check reads the simulator's incidents and the DLQ and compares them with
// what p's events call for.
func (e *env) check(p *plan) verdict {
	e.t.Helper()
	v := verdict{keys: len(p.newest)}
	byExt := map[string][]int{}
	incs := e.sim.Incidents()
	v.incidents = len(incs)
	for i, inc := range incs {
		byExt[inc.ExternalNumber] = append(byExt[inc.ExternalNumber], i)
	}
	problem := func(format string, args ...any) {
		if len(v.problems) < 20 {
			v.problems = append(v.problems, fmt.Sprintf(format, args...))
		}
	}
	keys := make([]string, 0, len(p.newest))
	for k := range p.newest {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		want := p.newest[key]
		ext := mapping.ExternalNumber(key)
		idx := byExt[ext]
		delete(byExt, ext)
		open := 0
		for _, i := range idx {
			if !incs[i].Closed && !incs[i].Archived {
				open++
			}
		}
		if len(idx) > 1 {
			v.duplicates += len(idx) - 1
			problem("key %s: %d incidents, want 1", key, len(idx))
		}
		if open > 1 {
			v.twoOpen++
			problem("key %s: %d open incidents", key, open)
		}
		switch {
		case want.Status == "firing" && len(idx) == 0:
			v.lost++
			problem("key %s: newest event fires (%s) but there is no incident", key, want.Timestamp.Format(time.RFC3339Nano))
		case want.Status == "firing" && open == 0:
			v.wrong++
			problem("key %s: newest event fires (%s) but its incident is closed", key, want.Timestamp.Format(time.RFC3339Nano))
		case want.Status == "firing":
			for _, i := range idx {
				if !incs[i].Closed && incs[i].BriefDescription != want.Summary {
					v.wrong++
					problem("key %s: open incident %s says %q, newest event says %q", key, incs[i].Number, incs[i].BriefDescription, want.Summary)
				}
			}
		case len(idx) == 0:
			v.noIncident++
		case open > 0:
			v.wrong++
			problem("key %s: newest event resolves (%s) but an incident is open", key, want.Timestamp.Format(time.RFC3339Nano))
		}
	}
	for ext, idx := range byExt {
		v.strays += len(idx)
		problem("%d incidents with externalNumber %q belong to no key", len(idx), ext)
	}

	// A cluster that lost its stream leader may still be electing the
	// dead-letter stream's: a read that finds no responder is tried again.
	var dl []dlq.DeadLetter
	var err error
	wait.For(e.t, 30*time.Second, "the dead letters to be listed", func() bool {
		ctx, cancel := context.WithTimeout(e.t.Context(), 10*time.Second)
		defer cancel()
		if dl, err = dlq.New(e.js, dlqStream).List(ctx, dlq.Filter{All: true}); err != nil {
			e.t.Logf("list dead letters: %v", err)
		}
		return err == nil
	})
	v.dlq = len(dl)
	seen := map[string]bool{}
	for _, d := range dl {
		switch {
		case !p.poison[string(d.Data)]:
			v.dlqWrong++
			problem("dead letter %d (class %s, key %q) is not a poison event: %s", d.Seq, d.Class, d.AlertKey, d.Error)
		case seen[string(d.Data)]:
			v.dlqWrong++
			problem("poison event dead-lettered twice: %q", d.Data)
		case d.Class != dlq.ClassInvalid:
			v.dlqWrong++
			problem("poison event dead-lettered with class %s, want %s", d.Class, dlq.ClassInvalid)
		}
		seen[string(d.Data)] = true
	}
	for b := range p.poison {
		if !seen[b] {
			v.dlqWrong++
			problem("poison event not dead-lettered: %q", b)
		}
	}
	return v
}

// ok reports whether the verdict shows no fault.
func (v verdict) ok() bool {
	return v.duplicates == 0 && v.twoOpen == 0 && v.lost == 0 && v.wrong == 0 && v.strays == 0 && v.dlqWrong == 0
}

// summary is one scenario's line in the summary table.
type summary struct {
	scenario string
	alerts   int
	v        verdict
	chaos    string
	wall     time.Duration
}

func summaryHeader() string {
	return fmt.Sprintf("%-26s %7s %5s %9s %10s %4s %5s %4s %7s  %s",
		"scenario", "alerts", "keys", "incidents", "duplicates", "lost", "wrong", "DLQ", "wall", "chaos")
}

func (s summary) String() string {
	return fmt.Sprintf("%-26s %7d %5d %9d %10d %4d %5d %4d %7s  %s",
		s.scenario, s.alerts, s.v.keys, s.v.incidents, s.v.duplicates+s.v.twoOpen, s.v.lost, s.v.wrong,
		s.v.dlq, s.wall.Round(100*time.Millisecond), s.chaos)
}

// report prints the summary line to the test log and stdout, and appends
// it to the -chaos.summary file.
func (e *env) report(s summary) {
	e.t.Logf("summary: %s", s)
	fmt.Printf("chaos: %s\n", s)
	if *summaryFlag == "" {
		return
	}
	f, err := os.OpenFile(*summaryFlag, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err == nil {
		_, err = fmt.Fprintln(f, s)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		e.t.Errorf("write summary: %v", err)
	}
}

// joinNonEmpty joins the non-empty parts with ", ".
func joinNonEmpty(parts ...string) string {
	return strings.Join(slices.DeleteFunc(parts, func(s string) bool { return s == "" }), ", ")
}

// topdeskStats counts the API requests the simulator received and how many
// of them failed (an error status, or no answer at all).
func (e *env) topdeskStats() string {
	reqs := e.sim.Requests()
	failed := 0
	for _, r := range reqs {
		if r.Status == 0 || r.Status >= 400 {
			failed++
		}
	}
	return fmt.Sprintf("TOPdesk requests %d (%d failed)", len(reqs), failed)
}
