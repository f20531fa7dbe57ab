package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
	"github.com/alertdesk/alertdesk/worker"
	"github.com/alertdesk/alertdesk/worker/workertest"
)

// runState runs `alertdesk state ARGS…` through run and returns its exit
// code and output.
func runState(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"state"}, args...), &cli{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut})
	return code, out.String(), errOut.String()
}

// stateJSONLines decodes the --json output of state get or list.
func stateJSONLines(t *testing.T, out string) []worker.KeyState {
	t.Helper()
	var states []worker.KeyState
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var ks worker.KeyState
		if err := dec.Decode(&ks); err != nil {
			t.Fatalf("decode %q: %v", out, err)
		}
		states = append(states, ks)
	}
	return states
}

// stateField is the value of the line "name: value" of state get's output.
func stateField(out, name string) string {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// stateEnv points a worker's settings at an embedded JetStream server and
// the simulator, with the variables of env, and returns the simulator and
// the settings.
func stateEnv(t *testing.T, env map[string]string) (*topdesktest.Sim, *config) {
	t.Helper()
	isolateEnv(t)
	ns := workertest.StartJetStream(t)
	sim := topdesktest.Start(t, topdesktest.Options{})
	t.Setenv("ALERTDESK_NATS_URL", ns.ClientURL())
	t.Setenv("ALERTDESK_TOPDESK_URL", sim.URL())
	t.Setenv("ALERTDESK_TOPDESK_USERNAME", topdesktest.DefaultUsername)
	t.Setenv("ALERTDESK_TOPDESK_PASSWORD", topdesktest.DefaultPassword)
	t.Setenv("ALERTDESK_HTTP_ADDR", "127.0.0.1:0")
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, err := loadConfig((*config).validateWorker)
	if err != nil {
		t.Fatal(err)
	}
	return sim, cfg
}

// TestStateCommands: with a worker and the simulator, state get shows a
// created incident open with its number, and closed after a resolve;
// state list --open lists only open keys; a key whose write hangs in
// TOPdesk shows in list --claimed with its live claim; an unknown key
// says so with exit code 1.
func TestStateCommands(t *testing.T) {
	sim, cfg := stateEnv(t, nil)
	startWorker(t, cfg, zerolog.Nop())

	const key = "db-7/disk"
	base := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	publish := func(status, summary string, at time.Time) {
		t.Helper()
		if code, _, errOut := runCommand(t, cmdPublish, "", "--key", key, "--status", status, "--summary", summary,
			"--timestamp", at.Format(time.RFC3339)); code != 0 {
			t.Fatalf("publish = %d: %s", code, errOut)
		}
	}
	// get returns the key's state once cond holds.
	get := func(what string, cond func(*worker.KeyState) bool) worker.KeyState {
		t.Helper()
		var ks worker.KeyState
		wait.For(t, 20*time.Second, what, func() bool {
			code, out, _ := runState(t, "get", key, "--json")
			if code != 0 {
				return false
			}
			ks = stateJSONLines(t, out)[0]
			return cond(&ks)
		})
		return ks
	}
	listKeys := func(args ...string) []string {
		t.Helper()
		code, out, errOut := runState(t, append([]string{"list", "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("state list %v = %d: %s", args, code, errOut)
		}
		var keys []string
		for _, ks := range stateJSONLines(t, out) {
			keys = append(keys, ks.Key)
		}
		return keys
	}

	// Created: open, with the simulator's number.
	publish("firing", "Disk full", base)
	ks := get("the incident to be open", func(ks *worker.KeyState) bool { return ks.Open && ks.Number != "" })
	incs := sim.Incidents()
	if len(incs) != 1 || incs[0].Number != ks.Number || incs[0].ID != ks.IncidentID {
		t.Errorf("state names incident %s (%s); the simulator holds %+v", ks.Number, ks.IncidentID, incs)
	}
	if ks.ExternalNumber != incs[0].ExternalNumber || ks.LastStatus != "firing" || !ks.LastEvent.Equal(base) || ks.LastPublished.IsZero() {
		t.Errorf("state = %+v, want externalNumber %s, last event firing at %s, a publish time", ks, incs[0].ExternalNumber, base)
	}
	code, out, errOut := runState(t, "get", key)
	if code != 0 || stateField(out, "status") != "open" || !strings.HasPrefix(stateField(out, "incident"), ks.Number+" ") ||
		stateField(out, "claim") != "none" {
		t.Errorf("state get = %d %q %q, want the incident open with its number and no claim", code, out, errOut)
	}
	if got := listKeys("--open"); len(got) != 1 || got[0] != key {
		t.Errorf("list --open = %q, want [%s]", got, key)
	}

	// Resolved: closed, when.
	publish("resolved", "Disk full", base.Add(10*time.Second))
	ks = get("the incident to be closed", func(ks *worker.KeyState) bool { return !ks.Open && ks.IncidentID != "" })
	if !ks.ClosedAt.Equal(base.Add(10*time.Second)) || ks.LastStatus != "resolved" {
		t.Errorf("closed state = %+v, want closed at %s by a resolve", ks, base.Add(10*time.Second))
	}
	if code, out, _ := runState(t, "get", key); code != 0 || stateField(out, "status") != "closed at "+ks.ClosedAt.Format(time.RFC3339) {
		t.Errorf("state get = %d %q, want closed at %s", code, out, ks.ClosedAt.Format(time.RFC3339))
	}
	if got := listKeys("--open"); len(got) != 0 {
		t.Errorf("list --open = %q after the resolve, want none", got)
	}
	if got := listKeys("--since", "1h"); len(got) != 1 {
		t.Errorf("list --since 1h = %q, want [%s]", got, key)
	}
	if got := listKeys("--since", time.Now().Add(time.Hour).Format(time.RFC3339)); len(got) != 0 {
		t.Errorf("list --since an hour ahead = %q, want none", got)
	}

	// Claimed: the reopen hangs in TOPdesk, so the worker's claim stays.
	if got := listKeys("--claimed"); len(got) != 0 {
		t.Errorf("list --claimed = %q before any hanging write, want none", got)
	}
	sim.Inject(topdesktest.Fault{Path: "/tas/api/incidents/id/", Delay: time.Minute, Count: 1})
	publish("firing", "Disk full again", base.Add(20*time.Second))
	wait.For(t, 20*time.Second, "the key to show in list --claimed", func() bool { return len(listKeys("--claimed")) == 1 })
	ks = get("a claim", func(ks *worker.KeyState) bool { return ks.Claim != nil })
	if !ks.Claim.Live || ks.Claim.Holder == "" || ks.Claim.Op != "reopen" || ks.Claim.Age < 0 || !ks.Waiting() {
		t.Errorf("claim = %+v, want a live reopen claim with its holder", ks.Claim)
	}
	code, out, _ = runState(t, "list", "--claimed")
	if code != 0 || !strings.Contains(out, key) || !strings.Contains(out, ks.Claim.Holder) || !strings.Contains(out, "(claim)") {
		t.Errorf("state list --claimed = %d %q, want the key with its holder and its wait", code, out)
	}
	if code, out, _ := runState(t, "get", key); code != 0 || !strings.HasPrefix(stateField(out, "claim"), "held by "+ks.Claim.Holder+" for reopen") {
		t.Errorf("state get = %d %q, want the claim's holder", code, out)
	}

	// An unknown outcome: the create lands but its answer is lost, so the
	// key waits 3 × TOPDESK_TIMEOUT before TOPdesk is asked.
	const lost = "web-1/http"
	sim.Inject(topdesktest.Fault{Method: "POST", Path: "/tas/api/incidents", LoseResponse: true, Count: 1})
	if code, _, errOut := runCommand(t, cmdPublish, "", "--key", lost, "--summary", "HTTP down"); code != 0 {
		t.Fatalf("publish = %d: %s", code, errOut)
	}
	var waiting worker.KeyState
	wait.For(t, 20*time.Second, "the key to wait for an unknown outcome", func() bool {
		code, out, _ := runState(t, "get", lost, "--json")
		if code != 0 {
			return false
		}
		waiting = stateJSONLines(t, out)[0]
		return waiting.Wait != nil
	})
	if got := waiting.Wait.Until.Sub(waiting.Wait.SentAt); got != 3*cfg.TopdeskTimeout || !waiting.Waiting() || waiting.Claim != nil {
		t.Errorf("state = %+v, wait %+v, want a wait of %s and no claim", waiting, waiting.Wait, 3*cfg.TopdeskTimeout)
	}
	if code, out, _ := runState(t, "get", lost); code != 0 ||
		!strings.Contains(stateField(out, "unknown outcome"), "events of the key wait until "+waiting.Wait.Until.UTC().Format(time.RFC3339)) {
		t.Errorf("state get = %d %q, want the unknown-outcome wait and its end", code, out)
	}
	if code, out, _ := runState(t, "list"); code != 0 || !strings.Contains(out, waiting.Wait.Until.UTC().Format(time.RFC3339)+" (outcome)") {
		t.Errorf("state list = %d %q, want the wait of %s", code, out, lost)
	}

	// Unknown key.
	code, out, errOut = runState(t, "get", "no-such-key")
	if code != 1 || out != "" || !strings.Contains(errOut, `no state for key "no-such-key"`) {
		t.Errorf("state get no-such-key = %d %q %q, want 1 and a message naming the key", code, out, errOut)
	}
}

// TestStateUsage: bad arguments are usage errors (exit 2) before any
// connection; a bad flag and -h behave as for every command (TestFlagErrors).
func TestStateUsage(t *testing.T) {
	isolateEnv(t)
	for _, args := range [][]string{{"get"}, {"get", "a", "b"}, {"list", "x"}, {"list", "--since", "yesterday"}, {"nope"}} {
		if code, _, errOut := runState(t, args...); code != 2 || errOut == "" {
			t.Errorf("state %q = %d %q, want 2 and a message", args, code, errOut)
		}
	}
	for _, sub := range []string{"get", "list"} {
		code, out, errOut := runState(t, sub, "--no-such-flag")
		want := "alertdesk state " + sub + ": flag provided but not defined: -no-such-flag\n" +
			"Run 'alertdesk state " + sub + " -h' for its usage.\n"
		if code != 2 || out != "" || errOut != want {
			t.Errorf("state %s --no-such-flag = %d %q %q, want 2 and %q", sub, code, out, errOut, want)
		}
		if code, _, errOut := runState(t, sub, "-h"); code != 0 || !strings.HasPrefix(errOut, "usage: alertdesk state "+sub) {
			t.Errorf("state %s -h = %d %q, want 0 and the usage", sub, code, errOut)
		}
	}
}

// TestStateShowsOperatorClose: a worker with ALERTDESK_TOPDESK_EVENTS_TOKEN
// serves POST /v1/topdesk/events; the simulator's automated action calls
// it when an operator closes the incident, and state get then shows who
// closed it, when and with which closure code.
func TestStateShowsOperatorClose(t *testing.T) {
	sim, cfg := stateEnv(t, map[string]string{"ALERTDESK_TOPDESK_EVENTS_TOKEN": "events-secret"})
	addr := startWorker(t, cfg, zerolog.Nop())
	sim.SetCallback(topdesktest.Callback{URL: "http://" + addr + "/v1/topdesk/events", Token: "events-secret"})

	const key = "db-7/disk"
	if code, _, errOut := runCommand(t, cmdPublish, "", "--key", key, "--summary", "Disk full"); code != 0 {
		t.Fatalf("publish = %d: %s", code, errOut)
	}
	var number string
	wait.For(t, 20*time.Second, "an incident", func() bool {
		incs := sim.Incidents()
		if len(incs) == 1 {
			number = incs[0].Number
		}
		return number != ""
	})
	closed, err := sim.Close("ejansen", number, "Solved")
	if err != nil {
		t.Fatal(err)
	}
	var ks worker.KeyState
	wait.For(t, 20*time.Second, "the operator's close in the state", func() bool {
		code, out, _ := runState(t, "get", key, "--json")
		if code != 0 {
			return false
		}
		ks = stateJSONLines(t, out)[0]
		return ks.ClosedBy != ""
	})
	if ks.Open || ks.ClosedBy != "Jansen, Eva" || ks.ClosureCode != "Solved" || !ks.ClosedAt.Equal(closed.ClosedDate) {
		t.Errorf("state = %+v, want closed by Jansen, Eva at %s with Solved", ks, closed.ClosedDate)
	}
	code, out, _ := runState(t, "get", key)
	if code != 0 || stateField(out, "closed by") != "Jansen, Eva in TOPdesk, closure code Solved" ||
		stateField(out, "status") != "closed at "+closed.ClosedDate.UTC().Format(time.RFC3339) {
		t.Errorf("state get = %d %q, want who closed it, when and how", code, out)
	}
}

func TestMemberLine(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	got := memberLine(map[string]worker.KeyMember{
		"h-2": {Status: "resolved", At: at}, "h-3": {Status: "firing", At: at}, "h-1": {Status: "firing", At: at},
	})
	if want := "3, 2 firing: h-1 (firing), h-3 (firing), h-2 (resolved)"; got != want {
		t.Errorf("memberLine = %q, want %q", got, want)
	}
}

// TestStateListGivesScriptsWholeKeys: piped, state list gives each key
// whole, however long, so that a script can pass the first column to state
// get; only a terminal's table cuts it.
func TestStateListGivesScriptsWholeKeys(t *testing.T) {
	_, cfg := stateEnv(t, nil)
	startWorker(t, cfg, zerolog.Nop())
	key := "web-1.example.internal/http/" + strings.Repeat("check-", 10)
	if code, _, errOut := runCommand(t, cmdPublish, "", "--key", key, "--summary", "HTTP down"); code != 0 {
		t.Fatalf("publish = %d: %s", code, errOut)
	}
	wait.For(t, 20*time.Second, "the key's state", func() bool {
		code, _, _ := runState(t, "get", key)
		return code == 0
	})
	code, out, _ := runState(t, "list")
	if first, _, _ := strings.Cut(out, "\t"); code != 0 || first != key {
		t.Errorf("state list = %d %q, want the whole key %q first", code, out, key)
	}
}
