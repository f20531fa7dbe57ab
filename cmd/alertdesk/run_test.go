package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
	"github.com/alertdesk/alertdesk/worker/workertest"
)

// TestRunRejectsBadSettings checks that `alertdesk run` stops before doing
// anything on a bad setting: exit status 2 and one line naming the variable,
// without the application password.
func TestRunRejectsBadSettings(t *testing.T) {
	const password = "app-password-never-printed"
	for _, tc := range []struct {
		name     string
		env      map[string]string
		wantLine string // part of the one line
	}{
		{"concurrency not a number", map[string]string{"ALERTDESK_CONCURRENCY": "abc"},
			`ALERTDESK_CONCURRENCY: cannot parse "abc"`},
		{"missing TOPdesk URL", map[string]string{"ALERTDESK_TOPDESK_URL": ""},
			"ALERTDESK_TOPDESK_URL: required"},
		{"max deliver zero", map[string]string{"ALERTDESK_MAX_DELIVER": "0"},
			"ALERTDESK_MAX_DELIVER: 0 must be at least 1"},
		{"timeout not a duration", map[string]string{"ALERTDESK_TOPDESK_TIMEOUT": "15"},
			"ALERTDESK_TOPDESK_TIMEOUT: cannot parse"},
		{"password in the TOPdesk URL", map[string]string{"ALERTDESK_TOPDESK_URL": "https://ops:" + password + "@example.topdesk.net"},
			"ALERTDESK_TOPDESK_URL: must not contain credentials"},
		{"password in a non-http URL", map[string]string{"ALERTDESK_TOPDESK_URL": "ftp://ops:" + password + "@example.topdesk.net"},
			`ALERTDESK_TOPDESK_URL: "ftp://redacted@example.topdesk.net" is not an http(s) URL`},
		{"ingest on, its subjects not in the input stream", map[string]string{"ALERTDESK_INGEST_TOKEN": "t", "ALERTDESK_SUBJECTS": "alerts.prometheus.>,alerts.http"},
			"ALERTDESK_SUBJECTS: alerts.prometheus.>,alerts.http does not cover alerts.alertmanager, alerts.grafana"},
		{"password file missing", map[string]string{"ALERTDESK_TOPDESK_PASSWORD": "", "ALERTDESK_TOPDESK_PASSWORD_FILE": "/nonexistent/alertdesk-password"},
			"ALERTDESK_TOPDESK_PASSWORD_FILE: cannot read /nonexistent/alertdesk-password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("ALERTDESK_TOPDESK_URL", "https://example.topdesk.net")
			t.Setenv("ALERTDESK_TOPDESK_USERNAME", "alertdesk")
			t.Setenv("ALERTDESK_TOPDESK_PASSWORD", password)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := run([]string{"run"}, &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr})
			if code != 2 {
				t.Errorf("exit = %d, want 2", code)
			}
			lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.wantLine) {
				t.Errorf("stderr = %q, want one line containing %q", stderr.String(), tc.wantLine)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
			if strings.Contains(stdout.String()+stderr.String(), password) {
				t.Errorf("output contains the application password: %q", stderr.String())
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// wrongPasswordEnv points the worker at an embedded JetStream server and a
// simulator that rejects its password, and returns the simulator.
func wrongPasswordEnv(t *testing.T) *topdesktest.Sim {
	t.Helper()
	isolateEnv(t)
	ns := workertest.StartJetStream(t)
	sim := topdesktest.Start(t, topdesktest.Options{})
	t.Setenv("ALERTDESK_NATS_URL", ns.ClientURL())
	t.Setenv("ALERTDESK_TOPDESK_URL", sim.URL())
	t.Setenv("ALERTDESK_TOPDESK_USERNAME", topdesktest.DefaultUsername)
	t.Setenv("ALERTDESK_TOPDESK_PASSWORD", "wrong-password")
	t.Setenv("ALERTDESK_HTTP_ADDR", "127.0.0.1:0")
	t.Setenv("ALERTDESK_LOG_LEVEL", "info")
	// A mapping with TOPdesk names, which start-up resolves.
	t.Setenv("ALERTDESK_MAPPING_FILE", repoPath("deploy/mappings/example.yaml"))
	return sim
}

// TestStartupWaitsOnWrongPassword: while TOPdesk rejects the password at
// start-up, /metrics has the credentials gauge at 0, /readyz names the
// cause, and the log says it once (not once per retry); when the password
// is accepted, the log says so once and the worker becomes ready.
func TestStartupWaitsOnWrongPassword(t *testing.T) {
	sim := wrongPasswordEnv(t)
	cfg, err := loadConfig((*config).validateWorker)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	base := "http://" + startWorker(t, cfg, zerolog.New(&logs).Level(zerolog.InfoLevel))
	get := func(p string) (int, string) { return httpGet(t, base+p) }
	rejected := func() int {
		n := 0
		for _, r := range sim.Requests() {
			if r.Status == http.StatusUnauthorized {
				n++
			}
		}
		return n
	}
	// Three rejected requests: start-up has retried twice.
	wait.For(t, 20*time.Second, "three rejected requests", func() bool { return rejected() >= 3 })

	code, body := get("/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "TOPdesk rejects the credentials") || !strings.Contains(body, "401") {
		t.Errorf("/readyz = %d %q, want 503 naming the rejected credentials", code, body)
	}
	if _, metrics := get("/metrics"); !strings.Contains(metrics, "\nalertdesk_topdesk_credentials_ok 0\n") {
		t.Errorf("/metrics lacks alertdesk_topdesk_credentials_ok 0:\n%s", metrics)
	}
	if n := strings.Count(logs.String(), "TOPdesk rejects the credentials"); n != 1 {
		t.Errorf("the cause is logged %d times, want once:\n%s", n, logs.String())
	}
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if len(l) > 1024 {
			t.Errorf("log line of %d bytes: %.300s…", len(l), l)
		}
	}

	sim.SetCredentials(topdesktest.DefaultUsername, "wrong-password")
	wait.For(t, 60*time.Second, "the worker to be ready", func() bool {
		code, _ := get("/readyz")
		return code == http.StatusOK
	})
	if n := strings.Count(logs.String(), "start-up continues; it waited because TOPdesk rejects the credentials"); n != 1 {
		t.Errorf("the end of the wait is logged %d times, want once:\n%s", n, logs.String())
	}
	if _, metrics := get("/metrics"); !strings.Contains(metrics, "\nalertdesk_topdesk_credentials_ok 1\n") || !strings.Contains(metrics, "alertdesk_events_total") {
		t.Errorf("/metrics after start-up lacks the worker's series:\n%s", metrics)
	}
}

// httpGet GETs url and returns the status code and the body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestRunWaitsForNATSAtStartup: a worker whose NATS is not reachable at
// start-up serves HTTP all the same: /healthz answers, /readyz answers 503
// naming NATS at its redacted URL, and the log says so once; once NATS
// answers, start-up continues and the worker becomes ready (a pod that
// leaves the Service until then, not one in CrashLoopBackOff).
func TestRunWaitsForNATSAtStartup(t *testing.T) {
	isolateEnv(t)
	gate := startNATSGate(t)
	sim := topdesktest.Start(t, topdesktest.Options{})
	t.Setenv("ALERTDESK_NATS_URL", "nats://alice:nats-secret@"+gate.addr())
	t.Setenv("ALERTDESK_TOPDESK_URL", sim.URL())
	t.Setenv("ALERTDESK_TOPDESK_USERNAME", topdesktest.DefaultUsername)
	t.Setenv("ALERTDESK_TOPDESK_PASSWORD", topdesktest.DefaultPassword)
	t.Setenv("ALERTDESK_HTTP_ADDR", "127.0.0.1:0")
	cfg, err := loadConfig((*config).validateWorker)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	base := "http://" + startWorker(t, cfg, zerolog.New(&logs).Level(zerolog.InfoLevel))

	const cause = "NATS is not reachable at nats://redacted@"
	wait.For(t, 20*time.Second, "/readyz to name NATS", func() bool {
		_, body := httpGet(t, base+"/readyz")
		return strings.Contains(body, "NATS")
	})
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, cause+gate.addr()) {
		t.Errorf("/readyz = %d %q, want 503 naming %q", code, body, cause+gate.addr())
	}
	if code, _ := httpGet(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d while start-up waits for NATS, want 200", code)
	}

	gate.open(workertest.StartJetStream(t).Addr().String())
	wait.For(t, 60*time.Second, "the worker to be ready", func() bool {
		code, _ := httpGet(t, base+"/readyz")
		return code == http.StatusOK
	})
	out := logs.String()
	if n := strings.Count(out, "start-up waits (retrying until it ends): "+cause); n != 1 {
		t.Errorf("the wait for NATS is logged %d times, want once:\n%s", n, out)
	}
	if n := strings.Count(out, "start-up continues; it waited because "+cause); n != 1 {
		t.Errorf("the end of the wait for NATS is logged %d times, want once:\n%s", n, out)
	}
	if strings.Contains(out, "nats-secret") {
		t.Errorf("the log shows the NATS password:\n%s", out)
	}
}

// natsGate is a loopback address a test holds from its start to its end:
// connections to it are cut at once, as by a NATS server that is not up
// yet, until open; from then on they are relayed to a NATS server. A NATS
// server cannot take over a listener, and a port closed now to be bound by
// a server later may be taken meanwhile, by another listener or as the
// local port of an outgoing connection; holding the port rules that out.
type natsGate struct {
	ln     net.Listener
	to     atomic.Pointer[string]
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

// startNATSGate listens on a free loopback port until the test ends; then
// it cuts every relayed connection and waits for its goroutines.
func startNATSGate(t *testing.T) *natsGate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &natsGate{ln: ln}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // the listener is closed: the test ended
			}
			to := g.to.Load()
			if to == nil {
				c.Close()
				continue
			}
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				g.relay(c, *to)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		g.mu.Lock()
		g.closed = true
		for _, c := range g.conns {
			c.Close()
		}
		g.mu.Unlock()
		g.wg.Wait()
	})
	return g
}

func (g *natsGate) addr() string { return g.ln.Addr().String() }

// open relays the connections from now on to addr.
func (g *natsGate) open(addr string) { g.to.Store(&addr) }

// relay copies between c and a new connection to addr until either side
// closes.
func (g *natsGate) relay(c net.Conn, addr string) {
	defer c.Close()
	s, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer s.Close()
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.conns = append(g.conns, c, s)
	g.mu.Unlock()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		// An error only ends the copy; closing s ends the other one.
		_, _ = io.Copy(s, c)
		s.Close()
	}()
	// As above, with c.
	_, _ = io.Copy(c, s)
	c.Close()
	<-copied
}

// TestRunExitsZeroWhenStoppedDuringStartup: a shutdown (SIGINT, SIGTERM:
// the ctx of run) while start-up waits, for TOPdesk or for NATS, exits 0.
// The wait for NATS names every server of ALERTDESK_NATS_URL without its
// password.
func TestRunExitsZeroWhenStoppedDuringStartup(t *testing.T) {
	for _, tc := range []struct {
		name string
		// env sets up the environment and returns what tells, from the
		// log, that start-up waits.
		env func(t *testing.T) (waiting func(log string) bool)
	}{
		{"waiting for TOPdesk", func(t *testing.T) func(string) bool {
			sim := wrongPasswordEnv(t)
			return func(string) bool {
				for _, r := range sim.Requests() {
					if r.Status == http.StatusUnauthorized {
						return true
					}
				}
				return false
			}
		}},
		{"waiting for NATS", func(t *testing.T) func(string) bool {
			isolateEnv(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close() // nothing listens there now; this test never listens there again
			t.Setenv("ALERTDESK_NATS_URL", "nats://alice:first-secret@"+addr+",nats://alice:second-secret@"+addr)
			t.Setenv("ALERTDESK_TOPDESK_URL", "http://127.0.0.1:1")
			t.Setenv("ALERTDESK_TOPDESK_USERNAME", "alertdesk")
			t.Setenv("ALERTDESK_TOPDESK_PASSWORD", "pw")
			t.Setenv("ALERTDESK_HTTP_ADDR", "127.0.0.1:0")
			t.Setenv("ALERTDESK_LOG_LEVEL", "info")
			want := "NATS is not reachable at nats://redacted@" + addr + ",nats://redacted@" + addr
			return func(log string) bool { return strings.Contains(log, want) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			waiting := tc.env(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var stdout, stderr syncBuffer
			done := make(chan int, 1)
			go func() { done <- cmdRun(ctx, &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}, nil) }()
			wait.For(t, 20*time.Second, "start-up to wait", func() bool {
				select {
				case code := <-done:
					t.Fatalf("run exited %d instead of waiting:\n%s", code, stderr.String())
				default:
				}
				return waiting(stderr.String())
			})
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("exit = %d, want 0\n%s", code, stderr.String())
				}
			case <-time.After(20 * time.Second):
				t.Fatal("run did not return within 20s of the shutdown")
			}
			if strings.Contains(stderr.String(), "secret") {
				t.Errorf("the log shows a password:\n%s", stderr.String())
			}
		})
	}
}

// startWorker runs runWorker until the test ends and returns its HTTP
// address once it serves.
func startWorker(t *testing.T, cfg *config, log zerolog.Logger) string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	started := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- runWorker(ctx, cfg, log, runExtras{started: func(httpAddr, _ string) { started <- httpAddr }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("runWorker: %v", err)
		}
	})
	select {
	case addr := <-started:
		return addr
	case err := <-done:
		done <- nil // for the cleanup, which waits for runWorker; the error is reported here
		t.Fatalf("runWorker returned before serving HTTP: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not start serving HTTP within 30s")
	}
	return ""
}

// TestHTTPServerCutsSlowBodies: clients that send their body a byte at a
// time are cut off after the read timeout, and do not keep others from
// being served meanwhile.
func TestHTTPServerCutsSlowBodies(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}), readTimeout)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		// Serve returns only ErrServerClosed, at Close.
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() { srv.Close() })

	const slowClients = 5
	cut := make(chan time.Duration, slowClients)
	for range slowClients {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		go func() {
			start := time.Now()
			fmt.Fprintf(conn, "POST /v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for range tick.C {
				if _, err := conn.Write([]byte("x")); err != nil {
					break // the server closed the connection
				}
				if time.Since(start) > 10*time.Second {
					break
				}
			}
			cut <- time.Since(start)
		}()
	}

	resp, err := http.Post("http://"+ln.Addr().String()+"/v1/alerts", "application/json", strings.NewReader(`{"key":"k"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("a normal client got %s while slow ones were connected, want 202", resp.Status)
	}
	for range slowClients {
		if d := <-cut; d > 5*time.Second {
			t.Errorf("a slow client was connected for %s; the read timeout is %s", d, readTimeout)
		}
	}
}

// A NATS connection that fails names the servers it tried without any of
// their passwords, also when ALERTDESK_NATS_URL lists several.
func TestConnectErrorHidesEveryPassword(t *testing.T) {
	isolateEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	t.Setenv("ALERTDESK_NATS_URL", "nats://alice:first-secret@"+addr+",nats://alice:second-secret@"+addr)
	var stdout, stderr syncBuffer
	if code := run([]string{"dlq", "list"}, &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if out := stderr.String(); strings.Contains(out, "secret") || !strings.Contains(out, "connect to NATS") {
		t.Errorf("stderr shows a password, or not the failed connection:\n%s", out)
	}
}
