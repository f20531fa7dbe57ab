package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/worker"
)

const stateUsage = `usage: alertdesk state <subcommand> [flags]

What alertdesk knows of alert keys, read from the KV bucket
ALERTDESK_STATE_BUCKET. Read-only. Claims and waits are judged by the NATS
server's clock with the worker's timing (ALERTDESK_TOPDESK_TIMEOUT,
ALERTDESK_CLAIM_TTL): set them as for the workers.

subcommands:
  get   KEY [--json]                                 one key: incident, events, claim, waits
  list  [--open] [--claimed] [--since T] [--json]    one line per key

Run 'alertdesk state <subcommand> -h' for its flags.`

// Column width of the key in `state list`, in characters.
const stateListKeyWidth = 40

// cmdState is `alertdesk state get|list`.
func cmdState(ctx context.Context, c *cli, args []string) int {
	return runSubcommand(ctx, c, "state", stateUsage, args, map[string]subcommand{
		"get":  stateGet,
		"list": stateList,
	})
}

// openState connects and opens the state bucket. It returns the bucket,
// the worker's timing, a close function to call when done, and a non-zero
// code on failure.
func openState(ctx context.Context, c *cli, cmd string) (jetstream.KeyValue, worker.Options, func(), int) {
	js, cfg, closeFn, code := openClientJetStream(c, "alertdesk state")
	if code != 0 {
		return nil, worker.Options{}, nil, code
	}
	kv, err := js.KeyValue(ctx, cfg.StateBucket)
	if err != nil {
		closeFn()
		fmt.Fprintf(c.stderr, "alertdesk state %s: open the state bucket %s: %v\n", cmd, cfg.StateBucket, err)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			fmt.Fprintf(c.stderr, "hint: a worker (alertdesk run) creates it, and ALERTDESK_STATE_BUCKET names it\n")
		}
		return nil, worker.Options{}, nil, 1
	}
	return kv, cfg.workerOptions(zerolog.Nop(), nil), closeFn, 0
}

func stateGet(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "state get", "usage: alertdesk state get KEY [--json]\n\nflags:")
	asJSON := fs.Bool("json", false, "print the state as one JSON object (for scripts)")
	pos, err := parseFlagsAnywhere(fs, args)
	if err != nil {
		return cmdFlagExit(err)
	}
	if len(pos) != 1 {
		return usageError(fs, "want exactly one alert key, got %d", len(pos))
	}
	kv, opts, closeFn, code := openState(ctx, c, "get")
	if code != 0 {
		return code
	}
	defer closeFn()
	ks, err := worker.ReadState(ctx, kv, pos[0], opts)
	if errors.Is(err, worker.ErrNoState) {
		fmt.Fprintf(c.stderr, "alertdesk state get: no state for key %q in %s: no event for it was applied, "+
			"it only ever resolved, or its incident closed longer ago than the reopen window\n", pos[0], kv.Bucket())
		return 1
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "alertdesk state get: %v\n", err)
		return 1
	}
	if *asJSON {
		return stateJSON(c, "get", []worker.KeyState{ks})
	}
	printKeyState(c.stdout, &ks)
	return 0
}

func stateList(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "state list", "usage: alertdesk state list [--open] [--claimed] [--since T] [--json]\n\nflags:")
	var f worker.StateFilter
	fs.BoolVar(&f.Open, "open", false, "only keys with an open incident")
	fs.BoolVar(&f.Claimed, "claimed", false, "only keys under a claim (a TOPdesk write in progress, or its holder died)")
	fs.BoolVar(&f.Flapping, "flapping", false, "only keys that flap (flapping in the mapping)")
	since := fs.String("since", "", "only keys whose state changed at or after `T`: a duration back from now (90m, 24h, 7d) or an RFC 3339 time")
	asJSON := fs.Bool("json", false, "print one JSON object per line (for scripts)")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *since != "" {
		t, err := parseDLQSince(*since, time.Now())
		if err != nil {
			return usageError(fs, "--since: %v", err)
		}
		f.Since = t
	}
	kv, opts, closeFn, code := openState(ctx, c, "list")
	if code != 0 {
		return code
	}
	defer closeFn()
	states, err := worker.ListStates(ctx, kv, f, opts)
	if err != nil {
		fmt.Fprintf(c.stderr, "alertdesk state list: %v\n", err)
		return 1
	}
	slices.SortFunc(states, func(a, b worker.KeyState) int { return strings.Compare(a.Key, b.Key) })
	if *asJSON {
		return stateJSON(c, "list", states)
	}
	if len(states) == 0 {
		fmt.Fprintf(c.stdout, "no keys in %s match\n", kv.Bucket())
		return 0
	}
	// A table for people; plain tab-separated lines for pipes.
	w := io.Writer(c.stdout)
	var tw *tabwriter.Writer
	if isTerminal(c.stdout) {
		tw = tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		w = tw
		fmt.Fprintln(tw, "KEY\tINCIDENT\tSTATE\tLAST EVENT\tSTATUS\tCLAIM\tWAITS UNTIL")
	}
	for i := range states {
		ks := &states[i]
		// A script gets the whole key, to pass to state get; only a tab
		// or a line break in it would break the line, and becomes a space.
		key := strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, ks.Key)
		if tw != nil {
			key = dlqCell(ks.Key, stateListKeyWidth)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", key, dlqOrDash(ks.Number), openClosed(ks),
			stateTime(ks.LastEvent), dlqOrDash(ks.LastStatus), claimCell(ks), waitCell(ks))
	}
	if tw != nil {
		if err := tw.Flush(); err != nil {
			fmt.Fprintf(c.stderr, "alertdesk state list: %v\n", err)
			return 1
		}
	}
	return 0
}

// stateJSON prints states one JSON object a line.
func stateJSON(c *cli, cmd string, states []worker.KeyState) int {
	enc := json.NewEncoder(c.stdout)
	for i := range states {
		if err := enc.Encode(&states[i]); err != nil {
			fmt.Fprintf(c.stderr, "alertdesk state %s: %v\n", cmd, err)
			return 1
		}
	}
	return 0
}

// printKeyState writes one key's state for people.
func printKeyState(w io.Writer, ks *worker.KeyState) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "alert key:\t%s\n", dlqOrDash(ks.Key))
	fmt.Fprintf(tw, "externalNumber:\t%s\n", ks.ExternalNumber)
	if ks.Unreadable {
		fmt.Fprintf(tw, "state:\tunreadable; the next event looks the key up in TOPdesk and replaces it\n")
	}
	if ks.IncidentID != "" {
		fmt.Fprintf(tw, "incident:\t%s (id %s)\n", dlqOrDash(ks.Number), ks.IncidentID)
	} else {
		fmt.Fprintf(tw, "incident:\tnone\n")
	}
	status := openClosed(ks)
	if !ks.Open && !ks.ClosedAt.IsZero() {
		status += " at " + stateTime(ks.ClosedAt)
	}
	fmt.Fprintf(tw, "status:\t%s\n", status)
	if by := closedBy(ks); by != "" {
		fmt.Fprintf(tw, "closed by:\t%s\n", by)
	}
	fmt.Fprintf(tw, "last event:\t%s %s\n", stateTime(ks.LastEvent), dlqOrDash(ks.LastStatus))
	fmt.Fprintf(tw, "last published:\t%s\n", stateTime(ks.LastPublished))
	fmt.Fprintf(tw, "claim:\t%s\n", claimLine(ks))
	if s := ks.Suppressed; s != nil {
		fmt.Fprintf(tw, "suppressed:\t%s\n", suppressedLine(*s))
	}
	for _, m := range slices.Sorted(maps.Keys(ks.SuppressedMembers)) {
		fmt.Fprintf(tw, "suppressed:\t%s: %s\n", m, suppressedLine(ks.SuppressedMembers[m]))
	}
	if !ks.ResolveAt.IsZero() {
		fmt.Fprintf(tw, "resolve delay:\tthe resolve of %s closes the incident unless the alert fires first\n", stateTime(ks.ResolveAt))
	}
	if !ks.FlappingSince.IsZero() {
		fmt.Fprintf(tw, "flapping:\tsince %s (%d recent changes); held open until it is quiet\n", stateTime(ks.FlappingSince), len(ks.Changes))
	}
	if len(ks.Members) > 0 {
		fmt.Fprintf(tw, "members:\t%s\n", memberLine(ks.Members))
	}
	if ks.Wait != nil {
		fmt.Fprintf(tw, "unknown outcome:\t%s\n", waitLine(ks))
	}
	if ks.Uncertain {
		fmt.Fprintf(tw, "uncertain:\tyes; TOPdesk is asked by externalNumber before the next write\n")
	}
	if ks.Reconciled {
		fmt.Fprintf(tw, "bucket:\treconciled with TOPdesk\n")
	} else {
		fmt.Fprintf(tw, "bucket:\tnot reconciled with TOPdesk; a new key is looked up before it is created\n")
	}
	fmt.Fprintf(tw, "written:\t%s (revision %d; NATS server time now %s)\n", stateTime(ks.Written), ks.Revision, stateTime(ks.ServerNow))
	names := make([]string, 0, len(ks.Other))
	for name := range ks.Other {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(tw, "%s:\t%s\n", name, ks.Other[name])
	}
	// Flush fails only when w does; like the writes above, that is not
	// reported (as for dlq show).
	_ = tw.Flush()
}

func openClosed(ks *worker.KeyState) string {
	switch {
	case ks.Open:
		return "open"
	case ks.IncidentID != "":
		return "closed"
	}
	return "-"
}

// closedBy says who closed a closed incident: alertdesk (a resolve), or an
// operator in TOPdesk, with the closure code and what it means.
func closedBy(ks *worker.KeyState) string {
	switch {
	case ks.Open || ks.IncidentID == "":
		return ""
	case ks.ClosedBy == "":
		return "alertdesk (the alert resolved)"
	}
	by := ks.ClosedBy + " in TOPdesk"
	switch {
	case ks.WontFix:
		by += fmt.Sprintf(", closure code %s (wontFix: a later firing creates a new incident)", ks.ClosureCode)
	case ks.ClosureCode != "":
		by += ", closure code " + ks.ClosureCode
	}
	return by
}

// claimLine describes a key's claim for state get.
func claimLine(ks *worker.KeyState) string {
	cl := ks.Claim
	if cl == nil {
		return "none"
	}
	age := cl.Age.Round(time.Millisecond)
	if cl.Live {
		return fmt.Sprintf("held by %s for %s, age %s by the NATS server's clock; events of the key wait until it is released or lapses at %s",
			cl.Holder, cl.Op, age, stateTime(cl.Lapses))
	}
	return fmt.Sprintf("lapsed at %s (held by %s for %s, age %s): its holder died mid-write; the next event takes it over after the unknown-outcome wait",
		stateTime(cl.Lapses), cl.Holder, cl.Op, age)
}

// waitLine describes a key's unknown-outcome wait for state get.
func waitLine(ks *worker.KeyState) string {
	if !ks.ServerNow.Before(ks.Wait.Until) {
		return fmt.Sprintf("a write sent by %s may have landed; the wait ended at %s, the next event asks TOPdesk", stateTime(ks.Wait.SentAt), stateTime(ks.Wait.Until))
	}
	return fmt.Sprintf("a write sent by %s may have landed; events of the key wait until %s (%s more), then TOPdesk is asked",
		stateTime(ks.Wait.SentAt), stateTime(ks.Wait.Until), ks.Wait.Until.Sub(ks.ServerNow).Round(time.Second))
}

// claimCell is the CLAIM column of state list.
func claimCell(ks *worker.KeyState) string {
	switch cl := ks.Claim; {
	case cl == nil:
		return "-"
	case cl.Live:
		return fmt.Sprintf("%s %s", cl.Holder, cl.Age.Round(time.Second))
	default:
		return fmt.Sprintf("lapsed (%s)", cl.Holder)
	}
}

// waitCell is the WAITS UNTIL column of state list: when events of the key
// may be written again, while they wait.
func waitCell(ks *worker.KeyState) string {
	switch {
	case !ks.Waiting():
		return "-"
	case ks.Claim != nil && ks.Claim.Live:
		return stateTime(ks.Claim.Lapses) + " (claim)"
	}
	return stateTime(ks.Wait.Until) + " (outcome)"
}

func stateTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// suppressedLine says which firing a maintenance window holds back.
func suppressedLine(s worker.KeySuppression) string {
	return fmt.Sprintf("firing of %s held back by maintenance window %s (%s) until %s", stateTime(s.At), s.Window, dlqOrDash(s.Reason), stateTime(s.Until))
}

// memberLine lists a group's members, firing first, each with its status.
func memberLine(members map[string]worker.KeyMember) string {
	keys := slices.SortedFunc(maps.Keys(members), func(a, b string) int {
		fa, fb := members[a].Status == "firing", members[b].Status == "firing"
		if fa != fb {
			if fa {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	firing := 0
	parts := make([]string, len(keys))
	for i, k := range keys {
		if members[k].Status == "firing" {
			firing++
		}
		parts[i] = k + " (" + members[k].Status + ")"
	}
	return fmt.Sprintf("%d, %d firing: %s", len(keys), firing, strings.Join(parts, ", "))
}
