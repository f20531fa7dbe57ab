package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
	"github.com/alertdesk/alertdesk/worker/workertest"
)

// TestResolveDelaySurvivesKillAndNATSRestart runs `alertdesk run` as a
// process with lifecycle.resolveDelay: the worker is SIGKILLed with a
// resolve waiting, the NATS server is restarted on its store, and a new
// worker process closes the incident once, after the delay.
func TestResolveDelaySurvivesKillAndNATSRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := buildAlertdesk(t)
	mappingFile := filepath.Join(dir, "mapping.yaml")
	if err := os.WriteFile(mappingFile, []byte("lifecycle: {resolveDelay: 4s}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	storeDir := filepath.Join(dir, "nats")
	ns := workertest.StartJetStreamIn(t, storeDir)
	sim := topdesktest.Start(t, topdesktest.Options{})
	logPath := filepath.Join(dir, "worker.log")

	start := func(natsURL string) *exec.Cmd {
		t.Helper()
		logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "run")
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.Env = []string{
			"ALERTDESK_NATS_URL=" + natsURL,
			"ALERTDESK_TOPDESK_URL=" + sim.URL(),
			"ALERTDESK_TOPDESK_USERNAME=" + topdesktest.DefaultUsername,
			"ALERTDESK_TOPDESK_PASSWORD=" + topdesktest.DefaultPassword,
			"ALERTDESK_MAPPING_FILE=" + mappingFile,
			"ALERTDESK_HTTP_ADDR=127.0.0.1:0",
			"ALERTDESK_LOG_LEVEL=warn",
			"HOME=" + dir,
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start alertdesk run: %v", err)
		}
		logFile.Close()
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }() // the exit status of a killed worker says nothing
		t.Cleanup(func() {
			if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
				t.Errorf("kill alertdesk run: %v", err)
			}
			<-exited
			if t.Failed() {
				b, _ := os.ReadFile(logPath) // only for the failure output
				t.Logf("worker log:\n%s", b)
			}
		})
		return cmd
	}
	worker := start(ns.ClientURL())

	_, js := workertest.Connect(t, ns)
	wait.For(t, 60*time.Second, "the worker to create the input stream", func() bool {
		_, err := js.Stream(t.Context(), "ALERTS")
		return err == nil
	})
	const key = "db-7/disk-full"
	publish := func(status string, at time.Time) {
		t.Helper()
		b, err := json.Marshal(map[string]any{"key": key, "status": status, "summary": "Disk full on db-7",
			"severity": "critical", "timestamp": at.UTC().Format(time.RFC3339Nano)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(t.Context(), "alerts.test", b); err != nil {
			t.Fatal(err)
		}
	}
	incident := func() (topdesktest.Incident, bool) {
		for _, inc := range sim.Incidents() {
			if inc.ExternalNumber == mapping.ExternalNumber(key) {
				return inc, true
			}
		}
		return topdesktest.Incident{}, false
	}
	timers := func(js jetstream.JetStream) uint64 {
		s, err := js.Stream(t.Context(), "ALERTDESK_TIMERS")
		if err != nil {
			return 0
		}
		info, err := s.Info(t.Context())
		if err != nil {
			return 0
		}
		return info.State.Msgs
	}
	now := time.Now()
	publish("firing", now)
	wait.For(t, 30*time.Second, "the incident", func() bool { _, ok := incident(); return ok })
	publish("resolved", now.Add(10*time.Millisecond))
	wait.For(t, 30*time.Second, "the resolve timer to be stored", func() bool { return timers(js) == 1 })

	if err := worker.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	if inc, _ := incident(); inc.Closed {
		t.Fatal("the incident closed before the delay")
	}
	ns = workertest.StartJetStreamIn(t, storeDir)
	_, js = workertest.Connect(t, ns)
	if n := timers(js); n != 1 {
		t.Fatalf("%d timers stored after the NATS restart, want the resolve timer", n)
	}
	start(ns.ClientURL())
	wait.For(t, 60*time.Second, "the new worker to close the incident", func() bool {
		inc, _ := incident()
		return inc.Closed
	})
	if d := time.Since(now); d < 4*time.Second {
		t.Errorf("closed %s after the resolve, before the delay", d)
	}
	closes := func() int {
		n := 0
		for _, r := range sim.Requests() {
			if r.Method == "PATCH" && strings.Contains(string(r.Body), `"closed":true`) {
				n++
			}
		}
		return n
	}
	// The simulator records a request once it has applied it: the close
	// can be seen before its record.
	wait.For(t, 10*time.Second, "the record of the close", func() bool { return closes() > 0 })
	if n := closes(); n != 1 {
		t.Errorf("%d closes, want 1", n)
	}
}
