package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestMain lets the harness start this test binary as its baseline worker
// process, as it starts itself outside tests.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "baseline-worker" {
		os.Exit(baselineWorker(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// TestHarness runs two small scenarios in both modes, with the simulator
// as a process of its own, and checks that the table has a row for every
// implementation and mode, each with the expected incidents and a
// throughput.
func TestHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("builds alertdesk and runs the harness")
	}
	bin := filepath.Join(t.TempDir(), "alertdesk")
	build := exec.Command("go", "build", "-o", bin, "../alertdesk")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var out bytes.Buffer
	code := run([]string{"-scenarios", "new,storm", "-scale", "0.02", "-runs", "1", "-latency", "5ms", "-bin", bin, "-modes", "process,in-process"}, &out)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	type row struct{ scenario, impl, mode string }
	want := map[row]int{ // creates
		{"new", "baseline", "process"}: 100, {"new", "alertdesk", "process"}: 100,
		{"new", "baseline", "in-process"}: 100, {"new", "alertdesk", "in-process"}: 100,
		{"storm", "alertdesk", "process"}: 1000, {"storm", "alertdesk", "in-process"}: 1000,
	}
	got := map[row]bool{}
	for line := range strings.Lines(out.String()) {
		f := strings.Fields(line)
		if len(f) != 17 || f[0] == "scenario" {
			continue
		}
		r := row{f[0], f[1], f[2]}
		creates, ok := want[r]
		if !ok {
			t.Errorf("unexpected row: %s", line)
			continue
		}
		got[r] = true
		if f[14] != strconv.Itoa(creates) {
			t.Errorf("%v: %s creates, want %d", r, f[14], creates)
		}
		if rate, err := strconv.ParseFloat(f[6], 64); err != nil || rate <= 0 {
			t.Errorf("%v: alerts/s %q", r, f[6])
		}
		if (f[2] == "process") != (f[11] != "-" && f[13] != "-") {
			t.Errorf("%v: worker CPU %q and RSS %q are for worker processes only", r, f[11], f[13])
		}
		if f[8] != "0" {
			t.Errorf("%v: %s requests answered 429 by a simulator without a limit", r, f[8])
		}
	}
	for r := range want {
		if !got[r] {
			t.Errorf("no row for %v in\n%s", r, out.String())
		}
	}

	// The step table, for both modes: in new, every event of a new key is
	// read, claimed and committed once (the TOPdesk columns also count
	// start-up requests and lookups made before reconciliation).
	_, steps, ok := strings.Cut(out.String(), "mean latency per step")
	if !ok {
		t.Fatalf("no step table in\n%s", out.String())
	}
	sawA := map[string]bool{}
	for line := range strings.Lines(steps) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "new" {
			continue
		}
		// new, mode, workers, then value and (per event) for read, claim,
		// the wait to send, TOPdesk and commit, and "-" for other writes.
		if len(f) != 14 || f[4] != "(1.00)" || f[6] != "(1.00)" || f[12] != "(1.00)" || f[13] != "-" {
			t.Errorf("step row for new: %q, want one read, claim and commit per event", line)
			continue
		}
		sawA[f[1]] = true
	}
	if !sawA["process"] || !sawA["in-process"] {
		t.Errorf("step rows for new in modes %v, want process and in-process, in\n%s", sawA, steps)
	}
}
