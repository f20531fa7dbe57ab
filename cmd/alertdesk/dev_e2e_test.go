package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// TestDevEndToEnd builds the binary, starts `alertdesk dev`, runs the two
// publish commands it prints exactly as printed, and watches the incident
// appear and close in the simulator; then SIGTERM must end it with status 0.
func TestDevEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir, bin := t.TempDir(), buildAlertdesk(t)

	env := []string{
		"ALERTDESK_EMBEDDED_NATS_LISTEN=127.0.0.1:0",
		"ALERTDESK_HTTP_ADDR=127.0.0.1:0",
		"ALERTDESK_DATA_DIR=" + t.TempDir(),
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ALERTDESK_") {
			env = append(env, kv)
		}
	}
	logPath := filepath.Join(dir, "dev.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	dev := exec.Command(bin, "dev", "--sim-addr", "127.0.0.1:0")
	dev.Dir, dev.Env, dev.Stderr = dir, env, logFile
	stdout, err := dev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Start(); err != nil {
		t.Fatalf("start alertdesk dev: %v", err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		// Wait only after stdout is read to its end (os/exec's rule).
		exited <- dev.Wait()
	}()
	stopped := false
	t.Cleanup(func() {
		go func() { // the reader must not block on a full channel
			for range lines {
			}
		}()
		if !stopped {
			if err := dev.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
				t.Errorf("kill alertdesk dev: %v", err)
			}
			<-exited
		}
	})
	devLog := func() string {
		b, err := os.ReadFile(logPath)
		if err != nil {
			return fmt.Sprintf("(cannot read the log: %v)", err)
		}
		return string(b)
	}

	// The banner: the simulator URL, the two publish commands and check.
	var simURL, check string
	var publish []string
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	for len(publish) < 2 || check == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("alertdesk dev ended its output before printing two publish commands and check\nlog:\n%s", devLog())
			}
			f := strings.Fields(l)
			switch {
			case len(f) >= 3 && f[0] == "TOPdesk" && f[1] == "simulator":
				simURL = strings.TrimRight(f[2], "/")
			case strings.Contains(l, "alertdesk publish --key "):
				publish = append(publish, strings.TrimSpace(l))
			case strings.HasSuffix(l, "alertdesk check"):
				check = strings.TrimSpace(l)
			}
		case <-deadline.C:
			t.Fatalf("alertdesk dev printed no publish and check commands within 60s\nlog:\n%s", devLog())
		}
	}
	go func() { // keep draining so that the process never blocks on stdout
		for range lines {
		}
	}()
	if simURL == "" {
		t.Fatalf("no simulator URL in the banner\nlog:\n%s", devLog())
	}

	runPrinted := func(command string) string {
		t.Helper()
		sh := exec.CommandContext(t.Context(), "sh", "-c", command)
		sh.Dir, sh.Env = dir, env
		out, err := sh.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s\nlog:\n%s", command, err, out, devLog())
		}
		return string(out)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	incidents := func() ([]topdesktest.Incident, error) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, simURL+"/_sim/incidents", nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var incs []topdesktest.Incident
		if err := json.NewDecoder(resp.Body).Decode(&incs); err != nil {
			return nil, fmt.Errorf("decode /_sim/incidents: %w", err)
		}
		return incs, nil
	}
	waitIncident := func(what string, want func(topdesktest.Incident) bool) topdesktest.Incident {
		t.Helper()
		var last []topdesktest.Incident
		var lastErr error
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		limit := time.NewTimer(30 * time.Second)
		defer limit.Stop()
		for {
			last, lastErr = incidents()
			if lastErr == nil && len(last) == 1 && want(last[0]) {
				return last[0]
			}
			select {
			case <-tick.C:
			case <-limit.C:
				t.Fatalf("no %s within 30s; incidents %+v, error %v\nlog:\n%s", what, last, lastErr, devLog())
			}
		}
	}

	runPrinted(publish[0])
	created := waitIncident("open incident", func(inc topdesktest.Incident) bool { return !inc.Closed })
	if !strings.Contains(created.BriefDescription, "Disk / at 97% on demo-1") {
		t.Errorf("incident brief description = %q, want the published summary", created.BriefDescription)
	}
	runPrinted(publish[1])
	closed := waitIncident("closed incident", func(inc topdesktest.Incident) bool { return inc.Closed })
	if closed.Number != created.Number {
		t.Errorf("closed incident %s, want %s", closed.Number, created.Number)
	}

	// check, as printed, passes against dev: the simulator's credentials
	// come from the password file dev wrote.
	if out := runPrinted(check); !strings.Contains(out, "checks passed") {
		t.Errorf("%s:\n%s", check, out)
	}

	// The log went to a file: no terminal colours; durations carry a unit
	// (quoted when the unit is µs: zerolog quotes values beyond ASCII).
	if log := devLog(); strings.Contains(log, "\x1b[") {
		t.Errorf("the console log to a file has ANSI escapes:\n%.500s", log)
	} else if !regexp.MustCompile(`\btook="?[0-9.]+(ns|µs|ms|s|m)\b`).MatchString(log) {
		t.Errorf("no took=<duration with unit> in the log:\n%s", log)
	}

	if err := dev.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	stopLimit := time.NewTimer(30 * time.Second)
	defer stopLimit.Stop()
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("alertdesk dev after SIGTERM: %v, want exit status 0\nlog:\n%s", err, devLog())
		}
	case <-stopLimit.C:
		t.Fatalf("alertdesk dev still running 30s after SIGTERM\nlog:\n%s", devLog())
	}
}

// buildAlertdesk builds the alertdesk binary into a temporary directory of
// t and returns its path, for tests that run it as a process.
func buildAlertdesk(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "alertdesk")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
