// Command alertdesk-bench is the load harness behind `make bench`. In one
// run on one machine it starts an embedded JetStream server and, as a
// process of its own, the TOPdesk simulator at a real tenant's latency
// (`alertdesk topdesk-sim -latency 50ms -jitter 20%`); it publishes a
// scenario, runs alertdesk workers (as separate processes, or in this
// process) and a baseline without product logic (consume, one POST to the
// same simulator, ack) with the same TOPdesk slots, for new keys also the
// baseline with alertdesk's state operations (baseline+state), and prints
// a table: alerts/s, TOPdesk requests/s, 429 answers, publish-to-TOPdesk
// latency, CPU seconds per 1,000 alerts, peak RSS, and the ratios to the
// baseline and to a reference (the Little's-law ceiling, one worker, or a
// worker configured with the simulator's limit). Figures are relative to
// this machine; quote medians of several runs (-runs), which alternate
// between a scenario's rows.
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
	"github.com/alertdesk/alertdesk/worker"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout)) }

// scenario is one load shape.
type scenario struct {
	name        string
	desc        string
	latency     time.Duration // simulator latency per request, ± jitter
	maxInFlight int           // the simulator answers 429 Retry-After: 1 beyond this; 0 = no limit
	concurrency int           // ALERTDESK_CONCURRENCY per worker
	refConc     int           // also measure alertdesk at this concurrency, as the reference (0 = none)
	workers     []int         // worker process counts to measure
	noBaseline  bool          // the baseline cannot do this load (it does not deduplicate)
	withState   bool          // also measure the baseline with alertdesk's state operations (stateBaseline)
	paced       float64       // events/s while the workers run; 0 = publish everything first
	events      func(scale float64) []event
	wantCreates func(scale float64) int
}

// baselineConc is the concurrency of the scenario's baseline: the
// reference's when there is one.
func (sc scenario) baselineConc() int { return cmp.Or(sc.refConc, sc.concurrency) }

type event struct {
	key, status, severity string
	at                    time.Time
}

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func scaled(n int, scale float64) int { return max(1, int(float64(n)*scale)) }

func uniqueKeys(n int) []event {
	ev := make([]event, n)
	for i := range ev {
		ev[i] = event{key: fmt.Sprintf("host-%06d/unique", i), status: "firing", severity: "critical", at: t0.Add(time.Duration(i) * time.Millisecond)}
	}
	return ev
}

// tenantLatency is the simulator's default latency: a TOPdesk tenant's.
const tenantLatency = 50 * time.Millisecond

// simJitter is the spread of the simulator's latency either way.
const simJitter = 0.2

var scenarios = []scenario{
	{
		name: "new", desc: "5,000 new keys, concurrency 64", latency: tenantLatency, concurrency: 64, workers: []int{1}, withState: true,
		events:      func(s float64) []event { return uniqueKeys(scaled(5000, s)) },
		wantCreates: func(s float64) int { return scaled(5000, s) },
	},
	{
		name: "scale", desc: "4,800 new keys, 1 vs 3 worker processes of concurrency 16", latency: tenantLatency, concurrency: 16, workers: []int{1, 3},
		events:      func(s float64) []event { return uniqueKeys(scaled(4800, s)) },
		wantCreates: func(s float64) int { return scaled(4800, s) },
	},
	{
		name: "limit", desc: "8,000 new keys, TOPdesk answers 429 Retry-After: 1 above 20 in flight; concurrency 64 vs 20",
		latency: tenantLatency, maxInFlight: 20, concurrency: 64, refConc: 20, workers: []int{1},
		events:      func(s float64) []event { return uniqueKeys(scaled(8000, s)) },
		wantCreates: func(s float64) int { return scaled(8000, s) },
	},
	{
		name: "storm", desc: "duplicate storm: 100,000 firing over 1,000 keys, concurrency 64", latency: tenantLatency, concurrency: 64, workers: []int{1},
		noBaseline: true,
		events: func(s float64) []event {
			n, keys := scaled(100000, s), 1000
			ev := make([]event, n)
			for i := range ev {
				// Re-notifications as Alertmanager sends them: the same
				// startsAt every time.
				ev[i] = event{key: fmt.Sprintf("host-%04d/dup", i%keys), status: "firing", severity: "warning", at: t0}
			}
			return ev
		},
		wantCreates: func(float64) int { return 1000 },
	},
	{
		name: "paced", desc: "200 alerts/s for 10 s, concurrency 64; latency from publish to the request reaching TOPdesk", latency: tenantLatency, concurrency: 64, workers: []int{1}, paced: 200,
		events:      func(s float64) []event { return uniqueKeys(scaled(2000, s)) },
		wantCreates: func(s float64) int { return scaled(2000, s) },
	},
	{
		name: "backlog", desc: "CPU cost and memory: 100,000 new keys published before the workers start, concurrency 16",
		concurrency: 16, workers: []int{1},
		events:      func(s float64) []event { return uniqueKeys(scaled(100000, s)) },
		wantCreates: func(s float64) int { return scaled(100000, s) },
	},
}

// result is one measured run.
type result struct {
	scenario, impl string
	mode           runMode
	workers        int
	concurrency    int
	alerts         int
	elapsed        time.Duration // first settled message (or readiness) to last
	startup        time.Duration // worker launch to the start of elapsed
	requests       int
	refused        int // requests answered 429
	paced          bool
	p50, p99       time.Duration
	cpu            time.Duration // worker processes' user+system CPU (0 in process)
	harnessCPU     time.Duration // this process (NATS server, in-process workers) during the run
	peakRSS        int64         // largest worker VmHWM, bytes (0 in process)
	creates        int
	phases         map[string]phase // alertdesk: the workers' step latencies
}

func (r result) rate() float64 { return float64(r.alerts) / r.elapsed.Seconds() }

// run runs the harness with args and prints the table to stdout.
func run(args []string, stdout io.Writer) int {
	if len(args) > 0 && args[0] == "baseline-worker" {
		return baselineWorker(args[1:])
	}
	var names []string
	for _, sc := range scenarios {
		names = append(names, sc.name)
	}
	fs := flag.NewFlagSet("alertdesk-bench", flag.ContinueOnError)
	only := fs.String("scenarios", strings.Join(names, ","), "comma-separated scenarios to run")
	runs := fs.Int("runs", 3, "runs per measurement; the table shows medians")
	scale := fs.Float64("scale", 1, "multiply every scenario's event count")
	bin := fs.String("bin", "bin/alertdesk", "alertdesk binary for the simulator and the worker processes")
	noBaseline := fs.Bool("no-baseline", false, "skip the baseline runs")
	modesFlag := fs.String("modes", string(processMode), "how workers run: as separate processes, in this process, or both (process,in-process)")
	latency := fs.Duration("latency", tenantLatency, "TOPdesk latency of the scenarios that have one (jitter ±20%)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (NATS server, in-process workers) to this file")
	natsLow := fs.Bool("nats-low-priority", false, "run this process, and with it the NATS server, at nice 19 and the simulator and the workers at nice 0,\n"+
		"as if NATS had cores of its own (process mode only; needs root or CAP_SYS_NICE)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *runs < 1 {
		fmt.Fprintf(os.Stderr, "alertdesk-bench: -runs %d: want at least 1\n", *runs)
		return 2
	}
	var modes []runMode
	for m := range strings.SplitSeq(*modesFlag, ",") {
		switch runMode(m) {
		case processMode, inProcessMode:
			modes = append(modes, runMode(m))
		default:
			fmt.Fprintf(os.Stderr, "alertdesk-bench: -modes: unknown mode %q (want process, in-process)\n", m)
			return 2
		}
	}
	if _, err := os.Stat(*bin); err != nil {
		fmt.Fprintf(os.Stderr, "alertdesk-bench: -bin %s: %v (run `make build` first)\n", *bin, err)
		return 2
	}
	kids := children{bin: *bin}
	if *natsLow {
		if slices.Contains(modes, inProcessMode) {
			fmt.Fprintf(os.Stderr, "alertdesk-bench: -nats-low-priority: in-process workers would run at the NATS server's priority; use -modes process\n")
			return 2
		}
		if err := lowNATS(&kids); err != nil {
			fmt.Fprintf(os.Stderr, "alertdesk-bench: -nats-low-priority: %v\n", err)
			return 2
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "alertdesk-bench: -cpuprofile: %v\n", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "alertdesk-bench: -cpuprofile: %v\n", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// One table, aligned at the end; progress goes to stderr.
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\timpl\tmode\tworkers\tconc\talerts\talerts/s\treq/s\t429s\tp50\tp99\tworker CPU s/1k\tNATS CPU s/1k\tRSS MiB\tcreates\tvs baseline\tvs ref\t\n")
	failed := false
	var withPhases []result
	for _, sc := range scenarios {
		if !slices.Contains(strings.Split(*only, ","), sc.name) {
			continue
		}
		if sc.latency > 0 {
			sc.latency = *latency
		}
		fmt.Fprintf(os.Stderr, "scenario %s: %s, TOPdesk latency %s\n", sc.name, sc.desc, sc.latency)
		for _, mode := range modes {
			rs, ok := measureScenario(ctx, tw, sc, mode, *runs, kids, *scale, *noBaseline)
			if !ok {
				failed = true
			}
			withPhases = append(withPhases, rs...)
		}
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\nvs ref: %s\n", refLegend)
	printPhases(stdout, withPhases)
	if failed {
		return 1
	}
	return 0
}

// refLegend says what the "vs ref" column compares with.
const refLegend = "alerts/s over one worker's (rows with several workers), over the same implementation at the " +
	"simulator's limit of requests in flight (limit), else over the Little's-law ceiling workers×concurrency/latency (new keys only)"

// runMode is how the workers of a measurement run.
type runMode string

const (
	processMode   runMode = "process"    // each worker a process of its own
	inProcessMode runMode = "in-process" // every worker a goroutine of the harness
)

// measureScenario measures the baseline (where one exists) and alertdesk
// with each worker count (and at the reference concurrency) in one mode,
// prints the rows, and reports whether every measurement succeeded.
func measureScenario(ctx context.Context, tw io.Writer, sc scenario, mode runMode, runs int, kids children, scale float64, noBaseline bool) (withPhases []result, ok bool) {
	rows := sc.rows(noBaseline)
	medians, errs := measureRows(ctx, rows, runs, func(r row) (result, error) {
		return measure(ctx, sc, r.impl, mode, r.workers, r.conc, kids, scale)
	})
	ok = true
	var base, ref *result
	for i, r := range rows {
		if errs[i] != nil {
			fmt.Fprintf(os.Stderr, "scenario %s %s x%d concurrency %d (%s): %v\n", sc.name, r.impl, r.workers, r.conc, mode, errs[i])
			ok = false
			continue
		}
		m := medians[i]
		switch {
		case r.impl == "baseline":
			base = m
			printRow(tw, sc, *m, nil, nil)
		case r.impl == stateBaseline:
			printRow(tw, sc, *m, base, nil)
		case ref == nil && r.workers == 1:
			// The reference concurrency, or else the one worker of the
			// scenario's concurrency, is what the other rows compare with.
			ref = m
			printRow(tw, sc, *m, base, nil)
		default:
			printRow(tw, sc, *m, base, ref)
		}
		if r.impl == "alertdesk" && m.phases != nil {
			withPhases = append(withPhases, *m)
		}
	}
	return withPhases, ok
}

// row is one line of a scenario's table: an implementation, a worker count
// and a concurrency per worker.
type row struct {
	impl          string // "alertdesk", "baseline" or stateBaseline
	workers, conc int
}

// rows are the lines of sc's table, in the order they are printed.
func (sc scenario) rows(noBaseline bool) []row {
	var rs []row
	if !noBaseline && !sc.noBaseline {
		rs = append(rs, row{"baseline", 1, sc.baselineConc()})
		if sc.withState {
			rs = append(rs, row{stateBaseline, 1, sc.baselineConc()})
		}
	}
	if sc.refConc > 0 {
		rs = append(rs, row{"alertdesk", 1, sc.refConc})
	}
	for _, n := range sc.workers {
		rs = append(rs, row{"alertdesk", n, sc.concurrency})
	}
	return rs
}

// measureRows measures every row runs times and returns each row's median
// run, or the error that stopped its runs. The runs alternate between the
// rows (baseline, alertdesk, baseline, alertdesk, …), so that a machine
// that grows busier or quieter during a sitting weighs on every row alike
// and the ratios between rows compare like with like.
func measureRows(ctx context.Context, rows []row, runs int, measure func(row) (result, error)) ([]*result, []error) {
	all := make([][]result, len(rows))
	errs := make([]error, len(rows))
	for range runs {
		for i, r := range rows {
			if errs[i] != nil {
				continue
			}
			if err := ctx.Err(); err != nil {
				errs[i] = err
				continue
			}
			res, err := measure(r)
			if err != nil {
				errs[i] = err
				continue
			}
			all[i] = append(all[i], res)
		}
	}
	medians := make([]*result, len(rows))
	for i, rs := range all {
		if errs[i] == nil && len(rs) > 0 {
			m := median(rs)
			medians[i] = &m
		}
	}
	return medians, errs
}

// printRow prints a result with its ratio to the baseline and to ref; a
// nil ref means the Little's-law ceiling where the simulator has a latency.
func printRow(tw io.Writer, sc scenario, r result, base, ref *result) {
	ratio, vsRef := "-", "-"
	if base != nil && r.impl != base.impl {
		ratio = fmt.Sprintf("%.3fx", r.rate()/base.rate())
	}
	switch {
	case ref != nil:
		vsRef = fmt.Sprintf("%.3fx", r.rate()/ref.rate())
	case sc.latency > 0 && !r.paced && r.creates == r.alerts:
		ceiling := float64(r.workers*r.concurrency) / sc.latency.Seconds()
		vsRef = fmt.Sprintf("%.3fx", r.rate()/ceiling)
	}
	lat := func(d time.Duration) string {
		if d == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
	}
	// In process the workers' CPU and memory are the harness's: the
	// NATS column then holds everything, and RSS is not the workers'.
	workerCPU, rss := "-", "-"
	if r.mode == processMode {
		workerCPU = fmt.Sprintf("%.3f", r.cpu.Seconds()/float64(r.alerts)*1000)
		rss = fmt.Sprintf("%.1f", float64(r.peakRSS)/(1<<20))
	}
	refused := "0"
	if r.refused > 0 {
		refused = fmt.Sprintf("%d(%.1f%%)", r.refused, 100*float64(r.refused)/float64(r.requests))
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%.3f\t%s\t%d\t%s\t%s\t\n",
		r.scenario, r.impl, r.mode, r.workers, r.concurrency, r.alerts, r.rate(), float64(r.requests)/r.elapsed.Seconds(),
		refused, lat(r.p50), lat(r.p99), workerCPU, r.harnessCPU.Seconds()/float64(r.alerts)*1000,
		rss, r.creates, ratio, vsRef)
}

// printPhases prints where the alertdesk runs spent an event's time: per
// step, the mean latency and how many of them an event took, from the
// workers' own latency histograms.
func printPhases(w io.Writer, rs []result) {
	if len(rs) == 0 {
		return
	}
	steps := []string{"read", "claim", "topdesk-wait", "topdesk", "commit", "write"}
	fmt.Fprintf(w, "\nalertdesk, mean latency per step (steps per event), from the workers' histograms:\n")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\tmode\tworkers\tstate read\tclaim\twait to send\tTOPdesk request\tcommit\tother state write\t\n")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t", r.scenario, r.mode, r.workers)
		for _, st := range steps {
			p := r.phases[st]
			if p.count == 0 {
				fmt.Fprintf(tw, "-\t")
				continue
			}
			fmt.Fprintf(tw, "%.2fms (%.2f)\t", float64(p.mean().Microseconds())/1000, float64(p.count)/float64(r.alerts))
		}
		fmt.Fprintf(tw, "\n")
	}
	tw.Flush()
}

// median returns the run with the median throughput, or for a paced
// scenario (whose throughput is the pace) the median p99.
func median(rs []result) result {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b result) int {
		if a.paced {
			return cmp.Compare(a.p99, b.p99)
		}
		return cmp.Compare(a.elapsed, b.elapsed)
	})
	return rs[len(rs)/2]
}

// measure runs one scenario once with fresh NATS, simulator and state.
func measure(ctx context.Context, sc scenario, impl string, mode runMode, workers, conc int, kids children, scale float64) (_ result, err error) {
	dir, err := os.MkdirTemp("", "alertdesk-bench-")
	if err != nil {
		return result{}, err
	}
	defer func() {
		// A failed run keeps its store and worker logs for a look.
		if err == nil {
			os.RemoveAll(dir)
		}
	}()

	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		return result{}, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return result{}, errors.New("NATS not ready")
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()

	sim, err := startSim(ctx, kids, dir, sc)
	if err != nil {
		return result{}, err
	}
	defer sim.stop()
	simURL := sim.url

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return result{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return result{}, err
	}
	topo := worker.Topology{Stream: "ALERTS", Subjects: []string{"alerts.>"}, Consumer: "alertdesk",
		DLQStream: "ALERTS_DLQ", StateBucket: "alertdesk_incidents"}
	res, err := worker.Provision(ctx, js, topo)
	if err != nil {
		return result{}, err
	}

	events := sc.events(scale)
	published := make([]time.Time, len(events))
	pub := func(i int) error {
		e := events[i]
		b, err := json.Marshal(map[string]any{"key": e.key, "status": e.status, "severity": e.severity,
			"summary": "Disk full on " + e.key, "source": "bench", "timestamp": e.at.Format(time.RFC3339Nano)})
		if err != nil {
			return err
		}
		published[i] = time.Now()
		// A busy machine may take a while to store a 100,000-event backlog:
		// wait for room instead of failing the run.
		_, err = js.PublishAsync("alerts.bench", b, jetstream.WithStallWait(30*time.Second))
		return err
	}
	if sc.paced == 0 {
		for i := range events {
			if err := pub(i); err != nil {
				return result{}, err
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(2 * time.Minute):
			return result{}, errors.New("publish acks timed out")
		}
	}

	start := time.Now()
	selfStart := procCPU(os.Getpid())
	var procs []*exec.Cmd
	var inproc *inProcess
	if mode == inProcessMode {
		logf, err := os.Create(filepath.Join(dir, "workers.log"))
		if err != nil {
			return result{}, err
		}
		defer logf.Close()
		if inproc, err = startInProcess(ctx, impl, workers, ns.ClientURL(), simURL, topo, conc, logf); err != nil {
			return result{}, err
		}
		defer inproc.stop()
	}
	for w := range workers {
		if inproc != nil {
			break
		}
		var cmd *exec.Cmd
		switch impl {
		case "baseline", stateBaseline:
			args := []string{"-nats", ns.ClientURL(), "-topdesk", simURL, "-concurrency", strconv.Itoa(conc)}
			if cmd, err = kids.baseline(ctx, args...); err != nil {
				return result{}, err
			}
			if impl == stateBaseline {
				cmd.Args = append(cmd.Args, "-state", topo.StateBucket)
			}
		default:
			cmd = kids.alertdesk(ctx, "run")
			cmd.Env = append(os.Environ(),
				"ALERTDESK_NATS_URL="+ns.ClientURL(),
				"ALERTDESK_TOPDESK_URL="+simURL,
				"ALERTDESK_TOPDESK_USERNAME="+topdesktest.DefaultUsername,
				"ALERTDESK_TOPDESK_PASSWORD="+topdesktest.DefaultPassword,
				"ALERTDESK_CONCURRENCY="+strconv.Itoa(conc),
				"ALERTDESK_HTTP_ADDR=127.0.0.1:0",
				"ALERTDESK_LOG_LEVEL=warn",
			)
		}
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("worker-%d.log", w)))
		if err != nil {
			return result{}, err
		}
		defer logf.Close()
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		if err := cmd.Start(); err != nil {
			return result{}, err
		}
		procs = append(procs, cmd)
	}
	var rssMu sync.Mutex
	var peak int64
	var cpu time.Duration
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, p := range procs {
				if hwm := procHWM(p.Process.Pid); hwm > 0 {
					rssMu.Lock()
					peak = max(peak, hwm)
					rssMu.Unlock()
				}
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()
	// Throughput and latency are steady-state figures for every
	// implementation alike: the clock starts when the first message is
	// settled (a backlog) or when every worker is ready (paced), and the
	// time until then is reported as start-up.
	var startup time.Duration
	if sc.paced > 0 {
		if err := waitReady(ctx, res, len(procs), impl == "alertdesk"); err != nil {
			return result{}, err
		}
		startup = time.Since(start)
		start = time.Now()
		interval := time.Duration(float64(time.Second) / sc.paced)
		next := time.Now()
		for i := range events {
			if d := time.Until(next); d > 0 {
				t := time.NewTimer(d)
				<-t.C
			}
			next = next.Add(interval)
			if err := pub(i); err != nil {
				return result{}, err
			}
		}
	}

	if sc.paced == 0 {
		if err := waitFirstSettled(ctx, res); err != nil {
			return result{}, err
		}
		startup = time.Since(start)
		start = time.Now()
	}

	want := sc.wantCreates(scale)
	// Every event is stored now; only the consumer's progress is polled
	// while the workers run, so that measuring costs the machine little.
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		return result{}, errors.New("publish acks timed out")
	}
	si, err := res.Stream.Info(ctx)
	if err != nil {
		return result{}, err
	}
	// The input stream is a work queue: settled events are removed already.
	if int(si.State.LastSeq) != len(events) {
		return result{}, fmt.Errorf("stream stored %d events, %d were published", si.State.LastSeq, len(events))
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		info, err := res.Consumer.Info(ctx)
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= si.State.LastSeq {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return result{}, fmt.Errorf("not done in time: %+v", info)
		}
		wait := time.Millisecond
		if err == nil {
			remaining := int(info.NumPending) + info.NumAckPending
			wait = pollWait(remaining, len(events)-remaining, time.Since(start))
		}
		t := time.NewTimer(wait)
		<-t.C
	}
	elapsed := time.Since(start)
	harnessCPU := procCPU(os.Getpid()) - selfStart
	for _, p := range procs {
		cpu += procCPU(p.Process.Pid)
	}
	close(stopSampling)
	<-sampled
	var phases map[string]phase
	if impl == "alertdesk" && len(procs) > 0 {
		pids := make([]int, len(procs))
		for i, p := range procs {
			pids[i] = p.Process.Pid
		}
		if phases, err = scrapePhases(ctx, pids); err != nil {
			return result{}, err
		}
	}
	for _, p := range procs {
		if err := p.Process.Signal(syscall.SIGTERM); err != nil {
			return result{}, err
		}
	}
	for _, p := range procs {
		if err := p.Wait(); err != nil {
			return result{}, fmt.Errorf("worker exited: %w (log in %s)", err, dir)
		}
	}
	if inproc != nil {
		if err := inproc.stop(); err != nil {
			return result{}, fmt.Errorf("in-process worker: %w", err)
		}
		if phases, err = inproc.phases(); err != nil {
			return result{}, err
		}
	}

	r := result{scenario: sc.name, impl: impl, mode: mode, paced: sc.paced > 0, phases: phases, workers: workers, concurrency: conc,
		alerts: len(events), elapsed: elapsed, startup: startup, cpu: cpu, harnessCPU: harnessCPU, peakRSS: peak}
	reqs, err := sim.requests(ctx)
	if err != nil {
		return result{}, err
	}
	var lat []time.Duration
	firstPost := map[string]time.Time{}
	for _, req := range reqs {
		// Incident traffic only: not the searchlist lookups at start-up.
		if req.Path != "/tas/api/incidents" && !strings.HasPrefix(req.Path, "/tas/api/incidents/id/") &&
			!strings.HasPrefix(req.Path, "/tas/api/incidents/number/") {
			continue
		}
		r.requests++
		if req.Status == http.StatusTooManyRequests {
			r.refused++
		}
		if req.Method == http.MethodPost && req.Status == http.StatusCreated {
			var body struct {
				ExternalNumber string `json:"externalNumber"`
			}
			if json.Unmarshal([]byte(req.Body), &body) == nil {
				if _, seen := firstPost[body.ExternalNumber]; !seen {
					firstPost[body.ExternalNumber] = req.At
				}
			}
		}
	}
	r.creates = len(firstPost)
	if sc.paced > 0 {
		for i, e := range events {
			if at, ok := firstPost[mapping.ExternalNumber(e.key)]; ok {
				lat = append(lat, at.Sub(published[i]))
			}
		}
		slices.Sort(lat)
		if len(lat) > 0 {
			r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
		}
	}
	if r.creates != want {
		return r, fmt.Errorf("%d incidents created, want %d (store and logs kept in %s)", r.creates, want, dir)
	}
	return r, nil
}

// procHWM is a process's peak resident set size in bytes (0 if unknown).
func procHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// procCPU is a process's user+system CPU time so far.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may contain spaces) in parens.
	rest := string(b[bytes.LastIndexByte(b, ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clkTck
}

// baselineWorker is the baseline as a process of its own.
func baselineWorker(args []string) int {
	fs := flag.NewFlagSet("baseline-worker", flag.ContinueOnError)
	natsURL := fs.String("nats", "", "NATS URL")
	tdURL := fs.String("topdesk", "", "simulator URL")
	concurrency := fs.Int("concurrency", 16, "messages in flight")
	stateBucket := fs.String("state", "", "read, claim and commit a state per message in this KV bucket, as alertdesk does")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := zerolog.New(os.Stderr)
	if err := runBaseline(ctx, *natsURL, *tdURL, *concurrency, *stateBucket, log); err != nil {
		log.Error().Err(err).Msg("baseline worker")
		return 1
	}
	return 0
}

// stateBaseline is the baseline that also does, for every message, the
// three state operations alertdesk does for a new key: it reads the key
// (absent), claims it (creates it, 89 bytes) before the POST and commits
// it (updates it at the claim's revision, 420 bytes) after, in the state
// bucket the harness provisions for alertdesk. Still without product
// logic, it tells what durable state costs from what alertdesk's logic
// costs.
const stateBaseline = "baseline+state"

// runBaseline is the comparison without product logic: consume, one POST
// of an incident to the simulator, ack, at the same concurrency, until ctx
// is done. With a stateBucket it is stateBaseline.
func runBaseline(ctx context.Context, natsURL, tdURL string, concurrency int, stateBucket string, log zerolog.Logger) error {
	nc, err := nats.Connect(natsURL, nats.Name("alertdesk bench baseline"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := js.Consumer(ctx, "ALERTS", "alertdesk")
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	var kv jetstream.KeyValue
	if stateBucket != "" {
		if kv, err = js.KeyValue(ctx, stateBucket); err != nil {
			return fmt.Errorf("state bucket: %w", err)
		}
	}
	claim, commit := bytes.Repeat([]byte{'c'}, 89), bytes.Repeat([]byte{'s'}, 420)
	td, err := topdesk.NewClient(tdURL, topdesk.Options{Username: topdesktest.DefaultUsername,
		Password: topdesktest.DefaultPassword, Concurrency: concurrency})
	if err != nil {
		return err
	}
	// The same prefetch and heartbeat handling as the worker, so that the
	// comparison is about the product logic only.
	it, err := cons.Messages(jetstream.PullMaxMessages(min(max(12*concurrency, 192), 1024)),
		jetstream.WithMessagesErrOnMissingHeartbeat(false))
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); it.Stop() }()
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for {
		sem <- struct{}{}
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			break
		}
		if err != nil {
			<-sem
			log.Warn().Err(err).Msg("next")
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			var ev struct {
				Key     string `json:"key"`
				Summary string `json:"summary"`
			}
			if err := json.Unmarshal(msg.Data(), &ev); err != nil {
				log.Error().Err(err).Msg("decode")
				return
			}
			ext := mapping.ExternalNumber(ev.Key)
			var rev uint64
			if kv != nil {
				if _, err := kv.Get(ctx, ext); !errors.Is(err, jetstream.ErrKeyNotFound) {
					log.Error().Err(err).Msg("read state: want a new key")
					return
				}
				if rev, err = kv.Create(ctx, ext, claim); err != nil {
					log.Error().Err(err).Msg("claim")
					return
				}
			}
			_, err := td.CreateIncident(ctx, &topdesk.IncidentRequest{
				Caller:           &topdesk.Caller{DynamicName: "alertdesk"},
				BriefDescription: ev.Summary,
				Request:          "Alert " + ev.Key,
				ExternalNumber:   ext,
			})
			if err == nil && kv != nil {
				_, err = kv.Update(ctx, ext, commit, rev)
			}
			if err != nil {
				log.Error().Err(err).Msg("create or commit")
				if err := msg.Nak(); err != nil {
					log.Error().Err(err).Msg("nak")
				}
				return
			}
			if err := msg.Ack(); err != nil {
				log.Error().Err(err).Msg("ack")
			}
		})
	}
	wg.Wait()
	return nil
}

// waitReady waits until n workers each have a pull request outstanding
// and, for alertdesk, the state bucket is reconciled (until then every new
// key is looked up first: a start-up cost, not the steady state).
func waitReady(ctx context.Context, res *worker.Resources, n int, reconciled bool) error {
	return poll(ctx, time.Minute, "workers ready", func() (bool, error) {
		info, err := res.Consumer.Info(ctx)
		if err != nil {
			return false, err
		}
		if info.NumWaiting < n {
			return false, nil
		}
		return !reconciled || worker.Reconciled(ctx, res.State), nil
	})
}

// waitFirstSettled waits until the consumer has settled a message.
func waitFirstSettled(ctx context.Context, res *worker.Resources) error {
	return poll(ctx, time.Minute, "a first settled message", func() (bool, error) {
		info, err := res.Consumer.Info(ctx)
		if err != nil {
			return false, err
		}
		return info.AckFloor.Stream > 0 || (info.NumAckPending > 0 && info.Delivered.Stream > uint64(info.NumAckPending)), nil
	})
}

// pollWait is how long to wait before asking the consumer for its progress
// again: half the time the remaining events take at the rate seen so far,
// between 1 and 100 ms. A run is asked a few dozen times instead of every
// few milliseconds, since each answer costs the NATS server, which shares
// the cores with the rows measured, and the end is still seen within about
// a millisecond.
func pollWait(remaining, settled int, elapsed time.Duration) time.Duration {
	const least, most = time.Millisecond, 100 * time.Millisecond
	if remaining <= 0 || settled <= 0 {
		return least
	}
	d := elapsed * time.Duration(remaining) / time.Duration(settled) / 2
	return min(max(d, least), most)
}

// poll calls cond every millisecond until it holds, fails, or timeout.
func poll(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("waiting for %s: not within %s", what, timeout)
		}
		t := time.NewTimer(time.Millisecond)
		<-t.C
	}
}
