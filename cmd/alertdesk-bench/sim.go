package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// simProcess is `alertdesk topdesk-sim` running as a process of its own,
// so that the simulator does not compete with the workers or NATS for one
// Go runtime.
type simProcess struct {
	cmd *exec.Cmd
	url string
	log *os.File
}

// startSim starts the simulator with the scenario's latency (± simJitter)
// and limit of requests in flight, logging to dir, and waits until it
// listens.
func startSim(ctx context.Context, kids children, dir string, sc scenario) (*simProcess, error) {
	args := []string{"topdesk-sim", "-addr", "127.0.0.1:0", "-max-requests", strconv.Itoa(1 << 21)}
	if sc.latency > 0 {
		args = append(args, "-latency", sc.latency.String(), "-jitter", strconv.FormatFloat(simJitter, 'f', -1, 64))
	}
	if sc.maxInFlight > 0 {
		args = append(args, "-max-in-flight", strconv.Itoa(sc.maxInFlight))
	}
	logf, err := os.Create(filepath.Join(dir, "topdesk-sim.log"))
	if err != nil {
		return nil, err
	}
	// A pipe of our own rather than StdoutPipe: its reader may outlive Wait.
	out, w, err := os.Pipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	cmd := kids.alertdesk(ctx, args...)
	cmd.Stdout, cmd.Stderr = w, logf
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	err = cmd.Start()
	w.Close() // the child has its copy; reads end when it exits
	if err != nil {
		out.Close()
		logf.Close()
		return nil, fmt.Errorf("topdesk-sim: %w", err)
	}
	p := &simProcess{cmd: cmd, log: logf}
	rd := bufio.NewReader(out)
	line, err := rd.ReadString('\n')
	url, found := strings.CutPrefix(strings.TrimSpace(line), "TOPdesk simulator listening on ")
	if err != nil || !found {
		p.stop()
		return nil, fmt.Errorf("topdesk-sim did not say where it listens (%q, %v; log in %s)", line, err, dir)
	}
	p.url = url
	go func() {
		// The rest of its output goes to the log; the copy ends with the
		// process.
		defer out.Close()
		if _, err := io.Copy(logf, rd); err != nil && !errors.Is(err, os.ErrClosed) {
			fmt.Fprintf(os.Stderr, "topdesk-sim output: %v\n", err)
		}
	}()
	return p, nil
}

// stop kills the simulator and waits for it. Its record was read already,
// and a graceful shutdown would wait for the keep-alive connections of
// in-process workers.
func (p *simProcess) stop() {
	// An already ended process is the only failure, and Wait reports it.
	_ = p.cmd.Process.Kill()
	if err := p.cmd.Wait(); err != nil && p.cmd.ProcessState.ExitCode() != -1 {
		fmt.Fprintf(os.Stderr, "topdesk-sim: %v (log in %s)\n", err, p.log.Name())
	}
	p.log.Close()
}

// simRequest is one API request the simulator recorded, as /_sim/requests
// lists it.
type simRequest struct {
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Status int       `json:"status"`
	Body   string    `json:"body"`
	At     time.Time `json:"at"`
}

// requests returns the API requests the simulator received.
func (p *simProcess) requests(ctx context.Context) ([]simRequest, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/_sim/requests", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("simulator requests: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("simulator requests: %s", resp.Status)
	}
	var rs []simRequest
	if err := json.NewDecoder(resp.Body).Decode(&rs); err != nil {
		return nil, fmt.Errorf("simulator requests: %w", err)
	}
	if rs == nil {
		return nil, errors.New("simulator requests: none recorded")
	}
	return rs, nil
}
