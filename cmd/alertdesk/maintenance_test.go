package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/maintenance"
)

var addedRE = regexp.MustCompile(`^added maintenance window ([0-9a-f]{8}): host=db-7,team=dba from (\S+) to (\S+)\n$`)

func TestMaintenanceCommands(t *testing.T) {
	e := newCLITestEnv(t, false)
	// A worker's view of the windows, on its own connection.
	store, err := maintenance.Open(t.Context(), e.js, maintenance.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	set, err := store.Watch(t.Context(), nil)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	t.Cleanup(set.Stop)

	code, out, errOut := runCommand(t, cmdMaintenance, "", "add", "--match", "host=db-7", "--match", "team=dba",
		"--for", "2h", "--reason", "disk swap", "--by", "alice")
	if code != 0 {
		t.Fatalf("maintenance add = %d, stderr %q", code, errOut)
	}
	m := addedRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("add printed %q, want it to match %s", out, addedRE)
	}
	id := m[1]
	from, _ := time.Parse(time.RFC3339, m[2])
	to, _ := time.Parse(time.RFC3339, m[3])
	if to.Sub(from) != 2*time.Hour || time.Since(from) > time.Minute {
		t.Errorf("window from %s to %s, want 2h from now", from, to)
	}

	labels := map[string]string{"host": "db-7", "team": "dba", "alertname": "DiskFull"}
	wait.For(t, 10*time.Second, "the worker's set holds the window", func() bool {
		cov, ok := set.Cover(labels, time.Now())
		return ok && cov.Window.ID == id
	})

	code, out, errOut = runCommand(t, cmdMaintenance, "", "add", "--match", "env=staging", "--for", "30m",
		"--from", "2099-01-02T03:04:05Z", "--reason", "later")
	if code != 0 {
		t.Fatalf("maintenance add --from = %d, stderr %q", code, errOut)
	}
	if !strings.Contains(out, "from 2099-01-02T03:04:05Z to 2099-01-02T03:34:05Z") {
		t.Errorf("add --from printed %q", out)
	}

	code, out, errOut = runCommand(t, cmdMaintenance, "", "list")
	if code != 0 {
		t.Fatalf("maintenance list = %d, stderr %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("list printed %d lines, want a header and 2 rows:\n%s", len(lines), out)
	}
	wantRows := [][]string{
		{"ID", "STATE", "FROM", "TO", "MATCH", "BY", "REASON"},
		{id, "active", m[2], m[3], "host=db-7,team=dba", "alice", "disk", "swap"},
	}
	for i, want := range wantRows {
		if diff := cmp.Diff(want, strings.Fields(lines[i])); diff != "" {
			t.Errorf("list line %d (-want +got):\n%s", i, diff)
		}
	}
	if f := strings.Fields(lines[2]); len(f) < 5 || f[1] != "upcoming" || f[4] != "env=staging" {
		t.Errorf("list line 2 = %q, want the upcoming staging window", lines[2])
	}

	code, out, errOut = runCommand(t, cmdMaintenance, "", "list", "--json")
	if code != 0 {
		t.Fatalf("maintenance list --json = %d, stderr %q", code, errOut)
	}
	var got maintenance.Entry
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&got); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if got.ID != id || got.Reason != "disk swap" || got.CreatedBy != "alice" || !got.To.Truncate(time.Second).Equal(to) ||
		!cmp.Equal(got.Match, map[string]string{"host": "db-7", "team": "dba"}) {
		t.Errorf("list --json first entry = %+v", got)
	}
	if n := strings.Count(out, "\n"); n != 2 {
		t.Errorf("list --json printed %d lines, want 2", n)
	}

	code, out, errOut = runCommand(t, cmdMaintenance, "", "remove", id, "deadbeef")
	if code != 1 {
		t.Errorf("remove of one known and one unknown ID = %d, want 1", code)
	}
	if out != "removed maintenance window "+id+"\n" || !strings.Contains(errOut, "no window deadbeef") {
		t.Errorf("remove printed %q, stderr %q", out, errOut)
	}
	wait.For(t, 10*time.Second, "the worker's set drops the window", func() bool {
		_, ok := set.Cover(labels, time.Now())
		return !ok
	})
	code, out, _ = runCommand(t, cmdMaintenance, "", "list")
	if code != 0 || strings.Contains(out, id) {
		t.Errorf("list after remove = %d, %q; want the window gone", code, out)
	}
}

func TestMaintenanceUsageErrors(t *testing.T) {
	// Nothing listens here: a usage error must be reported before connecting.
	t.Setenv("ALERTDESK_NATS_URL", "nats://127.0.0.1:1")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  []string
	}{
		{"no subcommand", nil, 2, []string{"usage: alertdesk maintenance"}},
		{"help", []string{"--help"}, 0, []string{"subcommands:", "add     --match k=v..."}},
		{"add help", []string{"add", "-h"}, 0, []string{"usage: alertdesk maintenance add --match k=v...", "-reason"}},
		{"unknown subcommand", []string{"extend"}, 2, []string{`unknown subcommand "extend"`}},
		{"add without anything", []string{"add"}, 2, []string{"--match is required", "--for is required", "--reason is required"}},
		{"add with a bad match", []string{"add", "--match", "db-7", "--for", "1h", "--reason", "x"}, 2, []string{`"db-7" is not key=value`}},
		{"add with a negative duration", []string{"add", "--match", "host=a", "--for", "-1h", "--reason", "x"}, 2, []string{"--for is required: a positive duration"}},
		{"add with a bad from", []string{"add", "--match", "host=a", "--for", "1h", "--reason", "x", "--from", "tonight"}, 2, []string{`--from "tonight" is not an RFC 3339 time`}},
		{"add with an argument", []string{"add", "db-7", "--match", "host=a", "--for", "1h", "--reason", "x"}, 2, []string{`unexpected argument "db-7"`}},
		{"list with an argument", []string{"list", "x"}, 2, []string{`unexpected argument "x"`}},
		{"remove without ID", []string{"remove"}, 2, []string{"name the windows to remove by ID"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCommand(t, cmdMaintenance, "", tc.args...)
			if code != tc.wantCode {
				t.Errorf("exit code = %d, want %d; stderr %q", code, tc.wantCode, errOut)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr %q does not mention %q", errOut, want)
				}
			}
		})
	}
}

// TestMaintenanceInTheWorker: a window added with `maintenance add` reaches
// a worker that `run` starts; the alert it covers creates no incident, and
// `state get` shows it held back by the window.
func TestMaintenanceInTheWorker(t *testing.T) {
	sim, cfg := stateEnv(t, nil)
	// From a minute ago: publish gives the event time in whole seconds.
	from := time.Now().Add(-time.Minute).Format(time.RFC3339)
	if code, _, errOut := runCommand(t, cmdMaintenance, "", "add", "--match", "host=db-7", "--from", from, "--for", "1h", "--reason", "disk swap"); code != 0 {
		t.Fatalf("maintenance add = %d: %s", code, errOut)
	}
	startWorker(t, cfg, zerolog.Nop())

	const key = "db-7/disk"
	if code, _, errOut := runCommand(t, cmdPublish, "", "--key", key, "--summary", "Disk full", "--label", "host=db-7"); code != 0 {
		t.Fatalf("publish = %d: %s", code, errOut)
	}
	wait.For(t, 20*time.Second, "the event held back", func() bool {
		code, out, _ := runState(t, "get", key, "--json")
		return code == 0 && stateJSONLines(t, out)[0].Suppressed != nil
	})
	code, out, errOut := runState(t, "get", key)
	if s := stateField(out, "suppressed"); code != 0 || !strings.Contains(s, "(disk swap) until ") || stateField(out, "incident") != "none" {
		t.Errorf("state get = %d %q %q, want no incident, held back by the window", code, out, errOut)
	}
	if n := len(sim.Incidents()); n != 0 {
		t.Errorf("%d incidents under the window, want none", n)
	}
}
