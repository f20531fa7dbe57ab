package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// phase is the time the workers spent in one kind of step.
type phase struct {
	count uint64
	sum   float64 // seconds
}

func (p phase) mean() time.Duration {
	if p.count == 0 {
		return 0
	}
	return time.Duration(p.sum / float64(p.count) * float64(time.Second))
}

// addPhases adds a worker's latency histograms to out: state operations by
// operation, TOPdesk requests as "topdesk" and their wait in the worker
// before sending as "topdesk-wait".
func addPhases(out map[string]phase, mfs []*dto.MetricFamily) {
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var name string
			switch mf.GetName() {
			case "alertdesk_state_operation_duration_seconds":
				for _, l := range m.GetLabel() {
					if l.GetName() == "operation" {
						name = l.GetValue()
					}
				}
			case "alertdesk_topdesk_request_duration_seconds":
				name = "topdesk"
			case "alertdesk_topdesk_wait_seconds":
				name = "topdesk-wait"
			default:
				continue
			}
			p := out[name]
			p.count += m.GetHistogram().GetSampleCount()
			p.sum += m.GetHistogram().GetSampleSum()
			out[name] = p
		}
	}
}

// scrapePhases reads the step latencies from the /metrics of worker
// processes, found on the one TCP port each of them listens on.
func scrapePhases(ctx context.Context, pids []int) (map[string]phase, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out := map[string]phase{}
	for _, pid := range pids {
		port, err := listenPort(pid)
		if err != nil {
			return nil, fmt.Errorf("worker %d: %w", pid, err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", port), nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("worker %d: %w", pid, err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("worker %d metrics: %w", pid, err)
		}
		mfs := make([]*dto.MetricFamily, 0, len(fams))
		for _, mf := range fams {
			mfs = append(mfs, mf)
		}
		addPhases(out, mfs)
	}
	return out, nil
}

// listenPort returns the TCP port a process listens on (Linux: its socket
// inodes in /proc/<pid>/fd matched against /proc/<pid>/net/tcp), and an
// error unless there is exactly one.
func listenPort(pid int) (int, error) {
	links, err := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	if err != nil {
		return 0, err
	}
	inodes := map[string]bool{}
	for _, l := range links {
		if t, err := os.Readlink(l); err == nil && strings.HasPrefix(t, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(t, "socket:["), "]")] = true
		}
	}
	var ports []int
	for _, table := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			f := strings.Fields(sc.Text())
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] { // 0A: LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			port, err := strconv.ParseUint(hexPort, 16, 16)
			if err == nil {
				ports = append(ports, int(port))
			}
		}
	}
	if len(ports) != 1 {
		return 0, fmt.Errorf("listens on %d TCP ports (%v), want 1", len(ports), ports)
	}
	return ports[0], nil
}
