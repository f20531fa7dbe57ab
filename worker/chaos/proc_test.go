package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// proc is one child process whose stdout and stderr go to a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result; read after done is closed
}

// startProc starts bin with args and env, appending its output to logPath.
func startProc(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log file of %s: %w", name, err)
	}
	fmt.Fprintf(f, "=== %s started %s\n", name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the process to end.
func (p *proc) kill() error {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGKILL %s: %w", p.name, err)
	}
	<-p.done
	return nil
}

// terminate sends SIGTERM and waits up to grace for the process to end; it
// is then killed. It returns the exit error of a graceful stop (nil for exit
// status 0) or an error saying the process had to be killed.
func (p *proc) terminate(grace time.Duration) error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGTERM %s: %w", p.name, err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return p.err
	case <-t.C:
		return errors.Join(fmt.Errorf("%s did not stop within %s of SIGTERM and was killed", p.name, grace), p.kill())
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// natsServer is a nats-server child process with a file store, alone or
// as one node of a cluster.
type natsServer struct {
	name, bin, storeDir, logPath string
	port                         int
	cluster                      []string // cluster flags (name, listen, routes); nil = standalone
	ready                        bool     // it has been ready once: its port is fixed
	p                            *proc
}

// URL is the client URL of the server.
func (s *natsServer) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

// start starts the server and waits until JetStream answers. The first
// start of a standalone server picks a free port, and another one if that
// was taken before the server could bind it; a restart keeps the port (and
// the store), retrying while the port is briefly unavailable.
func (s *natsServer) start(ctx context.Context) error {
	var err error
	for range 5 {
		if s.port == 0 {
			if s.port, err = freePort(); err != nil {
				return err
			}
		}
		logStart := fileSize(s.logPath)
		args := append([]string{"-js", "-sd", s.storeDir, "-a", "127.0.0.1", "-p", strconv.Itoa(s.port),
			"--server_name", s.name}, s.cluster...)
		var p *proc
		if p, err = startProc(s.name, s.logPath, os.Environ(), s.bin, args...); err != nil {
			return err
		}
		s.p = p
		if err = waitJetStream(ctx, s.URL(), p); err == nil {
			s.ready = true
			return nil
		}
		if kerr := p.kill(); kerr != nil {
			return errors.Join(err, kerr)
		}
		if !logContainsAfter(s.logPath, logStart, "Error listening on port") {
			return err
		}
		if !s.ready && s.cluster == nil {
			s.port = 0
		}
	}
	return err
}

// waitJetStream polls until JetStream at url answers, p exits or ctx ends.
func waitJetStream(ctx context.Context, url string, p *proc) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		nc, err := nats.Connect(url, nats.Timeout(time.Second), nats.NoReconnect())
		if err == nil {
			js, jerr := jetstream.New(nc)
			if jerr == nil {
				actx, acancel := context.WithTimeout(ctx, time.Second)
				_, jerr = js.AccountInfo(actx)
				acancel()
			}
			nc.Close()
			if jerr == nil {
				return nil
			}
			err = jerr
		}
		select {
		case <-p.done:
			return fmt.Errorf("nats-server exited before it was ready: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("nats-server at %s not ready: %w (last error: %v)", url, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// fileSize returns the size of the file at path, 0 if it does not exist.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logContainsAfter reports whether the log at path contains s after offset.
func logContainsAfter(path string, offset int64, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && int64(len(b)) >= offset && bytes.Contains(b[offset:], []byte(s))
}

// workerSet is N `alertdesk run` processes sharing one consumer.
type workerSet struct {
	bin     string
	env     []string
	logDir  string
	mu      sync.Mutex
	procs   []*proc
	starts  []int
	kills   int
	signals int
	// longestStop is the longest time from a SIGTERM to the exit.
	longestStop time.Duration
}

func (w *workerSet) logPath(i int) string {
	return filepath.Join(w.logDir, fmt.Sprintf("worker-%d.log", i))
}

// start starts worker i (again).
func (w *workerSet) start(i int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.procs) <= i {
		w.procs = append(w.procs, nil)
		w.starts = append(w.starts, 0)
	}
	w.starts[i]++
	p, err := startProc(fmt.Sprintf("worker-%d#%d", i, w.starts[i]), w.logPath(i), w.env, w.bin, "run")
	if err != nil {
		return err
	}
	w.procs[i] = p
	return nil
}

func (w *workerSet) proc(i int) *proc {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.procs[i]
}

// kill SIGKILLs worker i.
func (w *workerSet) kill(i int) error {
	if err := w.proc(i).kill(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.kills++
	return nil
}

// setting returns the value of the workers' environment variable name (the
// last one set), "" if unset.
func (w *workerSet) setting(name string) string {
	v := ""
	for _, kv := range w.env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			v = val
		}
	}
	return v
}

// count returns how many worker slots there are.
func (w *workerSet) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.procs)
}

// terminate SIGTERMs worker i and waits for its graceful stop.
func (w *workerSet) terminate(i int, grace time.Duration) error {
	start := time.Now()
	err := w.proc(i).terminate(grace)
	took := time.Since(start)
	w.mu.Lock()
	w.signals++
	w.longestStop = max(w.longestStop, took)
	w.mu.Unlock()
	return err
}

// checkAlive returns an error naming every worker that exited on its own.
func (w *workerSet) checkAlive() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for i, p := range w.procs {
		if p.exited() {
			errs = append(errs, fmt.Errorf("worker %d exited on its own: %v (see %s)", i, p.err, w.logPath(i)))
		}
	}
	return errors.Join(errs...)
}

// stopAll stops every worker gracefully (killing stragglers).
func (w *workerSet) stopAll() {
	w.mu.Lock()
	procs := append([]*proc(nil), w.procs...)
	w.mu.Unlock()
	for _, p := range procs {
		if p != nil && !p.exited() {
			_ = p.terminate(10 * time.Second) // the error only says it needed a SIGKILL; it is gone either way
		}
	}
}

// env is one scenario's running system: nats-server, the simulator and the
// workers, plus the test's own NATS connection.
type env struct {
	t       *testing.T
	nats    []*natsServer // one, or the nodes of a cluster
	sim     *topdesktest.Sim
	topdesk *simServer // serves sim
	workers *workerSet
	js      jetstream.JetStream
}

// The JetStream names the workers use (their defaults).
const (
	streamName   = "ALERTS"
	consumerName = "alertdesk"
	dlqStream    = "ALERTS_DLQ"
	subject      = "alerts.chaos"
)

// newEnv starts nats-server (a three-node cluster with cluster set), the
// simulator and n workers, and waits until the workers have provisioned the
// stream and consumer. extra are ALERTDESK_* settings (NAME=value) that
// replace the workers' defaults below.
func newEnv(t *testing.T, n int, cluster bool, extra []string) *env {
	t.Helper()
	bins := needBinaries(t)
	dir := t.TempDir()
	e := &env{t: t}
	var err error
	if e.topdesk, err = serveSim(t); err != nil {
		t.Fatal(err)
	}
	e.sim = e.topdesk.sim

	t.Cleanup(func() {
		for _, ns := range e.nats {
			if ns.p != nil && !ns.p.exited() {
				if err := ns.p.terminate(10 * time.Second); err != nil {
					t.Logf("stop %s: %v", ns.name, err)
				}
			}
		}
	})
	if err := e.startNATS(dir, cluster); err != nil {
		t.Fatal(err)
	}
	replicas := "1"
	if cluster {
		replicas = "3"
	}

	e.workers = &workerSet{bin: bins.alertdesk, logDir: dir, env: append(os.Environ(),
		"ALERTDESK_NATS_URL="+e.natsURLs(),
		"ALERTDESK_REPLICAS="+replicas,
		"ALERTDESK_TOPDESK_URL="+e.sim.URL(),
		"ALERTDESK_TOPDESK_USERNAME="+topdesktest.DefaultUsername,
		"ALERTDESK_TOPDESK_PASSWORD="+topdesktest.DefaultPassword,
		"ALERTDESK_HTTP_ADDR=127.0.0.1:0",
		"ALERTDESK_LOG_LEVEL=warn",
		"ALERTDESK_TOPDESK_TIMEOUT=1s",
		"ALERTDESK_ACK_WAIT=2s",
		"ALERTDESK_CLAIM_TTL=6s",
		"ALERTDESK_SHUTDOWN_TIMEOUT=2s",
		"ALERTDESK_BREAKER_COOLDOWN=200ms",
		"ALERTDESK_AUTH_RETRY=300ms",
		"ALERTDESK_MAX_DELIVER=20",
	)}
	// exec uses the last value of a variable that is set twice.
	e.workers.env = append(e.workers.env, extra...)
	t.Cleanup(func() {
		e.workers.stopAll()
		if t.Failed() {
			e.dumpLogs()
		}
	})
	for i := range n {
		if err := e.workers.start(i); err != nil {
			t.Fatal(err)
		}
	}

	nc, err := nats.Connect(e.natsURLs(),
		nats.Name("alertdesk chaos test"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond),
		nats.ReconnectBufSize(-1), // fail publishes at once while NATS is down; the publisher retries
	)
	if err != nil {
		t.Fatalf("connect to NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	if e.js, err = jetstream.New(nc); err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	e.waitProvisioned()
	return e
}

// startNATS starts one standalone server, or the three nodes of a cluster
// at once (a node's JetStream answers only once the cluster has a quorum).
func (e *env) startNATS(dir string, cluster bool) error {
	bins := needBinaries(e.t)
	if !cluster {
		e.nats = []*natsServer{{name: "nats-server", bin: bins.natsServer,
			storeDir: filepath.Join(dir, "jetstream"), logPath: filepath.Join(dir, "nats-server.log")}}
		return e.nats[0].start(e.t.Context())
	}
	var routes []string
	clusterPorts := make([]int, 3)
	for i := range clusterPorts {
		var err error
		if clusterPorts[i], err = freePort(); err != nil {
			return err
		}
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", clusterPorts[i]))
	}
	for i := range 3 {
		port, err := freePort()
		if err != nil {
			return err
		}
		name := fmt.Sprintf("nats-%d", i+1)
		e.nats = append(e.nats, &natsServer{name: name, bin: bins.natsServer, port: port,
			storeDir: filepath.Join(dir, name), logPath: filepath.Join(dir, name+".log"),
			cluster: []string{"--cluster_name", "chaos", "--cluster", routes[i], "--routes", strings.Join(routes, ",")}})
	}
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, ns := range e.nats {
		wg.Go(func() { errs[i] = ns.start(e.t.Context()) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// natsURLs is every server's client URL, comma-separated.
func (e *env) natsURLs() string {
	var urls []string
	for _, ns := range e.nats {
		urls = append(urls, ns.URL())
	}
	return strings.Join(urls, ",")
}

// node returns the cluster node with this server name, or nil.
func (e *env) node(name string) *natsServer {
	for _, ns := range e.nats {
		if ns.name == name {
			return ns
		}
	}
	return nil
}

// waitProvisioned polls until the workers have created the consumer (the
// last resource they provision).
func (e *env) waitProvisioned() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 60*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := e.js.Consumer(ctx, streamName, consumerName)
		if err == nil {
			return
		}
		if werr := e.workers.checkAlive(); werr != nil {
			e.t.Fatal(werr)
		}
		select {
		case <-ctx.Done():
			e.t.Fatalf("workers did not provision consumer %s: %v", consumerName, err)
		case <-tick.C:
		}
	}
}

// simServer serves the simulator on a fixed loopback port; it can stop
// listening, so that connections are refused, and listen again.
type simServer struct {
	t    *testing.T
	sim  *topdesktest.Sim
	addr string
	mu   sync.Mutex
	srv  *http.Server // nil while refusing
}

// serveSim starts a simulator on a free port. The test's cleanup stops it.
func serveSim(t *testing.T) (*simServer, error) {
	s := &simServer{t: t, sim: topdesktest.New(topdesktest.Options{}), addr: "127.0.0.1:0"}
	if err := s.listen(); err != nil {
		return nil, err
	}
	s.sim.SetURL("http://" + s.addr)
	t.Cleanup(s.refuse)
	return s, nil
}

// listen serves on s.addr (a free port the first time), retrying for a
// few seconds while the port is not yet free again.
func (s *simServer) listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp", s.addr)
		if err == nil {
			s.addr = ln.Addr().String()
			// Requests waiting on a Delay fault end with the test.
			ctx := s.t.Context()
			s.srv = &http.Server{Handler: s.sim, BaseContext: func(net.Listener) context.Context { return ctx }}
			go s.srv.Serve(ln) //nolint:errcheck // ends with ErrServerClosed when refuse closes it
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("simulator: listen on %s: %w", s.addr, err)
		}
		if werr := waitUntil(s.t.Context(), time.Now().Add(100*time.Millisecond)); werr != nil {
			return werr
		}
	}
}

// refuse closes the listener and every connection: TOPdesk refuses
// connections until listen.
func (s *simServer) refuse() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		_ = s.srv.Close() // the error is the listener's; the server is closed either way
		s.srv = nil
	}
}

// dumpLogs prints the tail of every process log.
func (e *env) dumpLogs() {
	paths, _ := filepath.Glob(filepath.Join(e.workers.logDir, "*.log")) // the pattern is valid
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			e.t.Logf("read %s: %v", p, err)
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		e.t.Logf("--- tail of %s:\n%s", filepath.Base(p), strings.Join(lines, "\n"))
	}
}
