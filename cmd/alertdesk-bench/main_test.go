package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
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
		{"new", stateBaseline, "process"}: 100, {"new", stateBaseline, "in-process"}: 100,
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

// TestMeasureRowsAlternates checks that runs alternate between the rows,
// that each row's median run is the one with the median time, and that a
// failed run ends its own row only.
func TestMeasureRowsAlternates(t *testing.T) {
	rows := []row{{"baseline", 1, 64}, {"alertdesk", 1, 20}, {"alertdesk", 3, 16}}
	failing := errors.New("worker exited")
	var order []row
	runs := map[row]int{}
	elapsed := map[row][]time.Duration{
		rows[0]: {3 * time.Second, 1 * time.Second, 2 * time.Second},
		rows[1]: {5 * time.Second, 4 * time.Second, 6 * time.Second},
	}
	medians, errs := measureRows(t.Context(), rows, 3, func(r row) (result, error) {
		order = append(order, r)
		if r.workers == 3 {
			return result{}, failing
		}
		d := elapsed[r][runs[r]]
		runs[r]++
		return result{impl: r.impl, workers: r.workers, concurrency: r.conc, elapsed: d}, nil
	})
	want := []row{rows[0], rows[1], rows[2], rows[0], rows[1], rows[0], rows[1]}
	if !slices.Equal(order, want) {
		t.Errorf("runs in order %v, want %v", order, want)
	}
	if medians[0] == nil || medians[0].elapsed != 2*time.Second {
		t.Errorf("baseline median %+v, want the 2s run", medians[0])
	}
	if medians[1] == nil || medians[1].elapsed != 5*time.Second {
		t.Errorf("reference median %+v, want the 5s run", medians[1])
	}
	if medians[2] != nil || !errors.Is(errs[2], failing) {
		t.Errorf("failed row: median %+v, error %v; want none and %v", medians[2], errs[2], failing)
	}
	if errs[0] != nil || errs[1] != nil {
		t.Errorf("rows that did not fail report %v, %v", errs[0], errs[1])
	}
}

// TestChildrenRunThroughNice checks that with -nats-low-priority a child's
// command line is nice(1)'s, the child's own following it.
func TestChildrenRunThroughNice(t *testing.T) {
	plain := children{bin: "/opt/alertdesk"}
	if got := plain.alertdesk(t.Context(), "run").Args; !slices.Equal(got, []string{"/opt/alertdesk", "run"}) {
		t.Errorf("plain: %q", got)
	}
	niced := children{bin: "/opt/alertdesk", nice: []string{"nice", "-n", "-19"}}
	if got := niced.alertdesk(t.Context(), "topdesk-sim", "-latency", "50ms").Args; !slices.Equal(got,
		[]string{"nice", "-n", "-19", "/opt/alertdesk", "topdesk-sim", "-latency", "50ms"}) {
		t.Errorf("niced: %q", got)
	}
	cmd, err := niced.baseline(t.Context(), "-concurrency", "64")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cmd.Args); n != 7 || cmd.Args[4] != "baseline-worker" || cmd.Args[6] != "64" {
		t.Errorf("niced baseline: %q", cmd.Args)
	}
}

// TestPollWait checks that the harness asks for progress rarely while a run
// has long to go and often near its end.
func TestPollWait(t *testing.T) {
	for _, c := range []struct {
		remaining, settled int
		elapsed, want      time.Duration
	}{
		{4000, 1000, time.Second, 100 * time.Millisecond}, // 4 s to go: the longest wait
		{100, 1000, time.Second, 50 * time.Millisecond},   // 100 ms to go: half of it
		{1, 4999, 4 * time.Second, time.Millisecond},      // under 1 ms to go: the shortest
		{0, 5000, 4 * time.Second, time.Millisecond},      // settled, not yet acked past the floor
		{5000, 0, time.Millisecond, time.Millisecond},     // no rate yet
	} {
		if got := pollWait(c.remaining, c.settled, c.elapsed); got != c.want {
			t.Errorf("pollWait(%d, %d, %s) = %s, want %s", c.remaining, c.settled, c.elapsed, got, c.want)
		}
	}
}
