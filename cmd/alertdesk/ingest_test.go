package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/worker"
	"github.com/alertdesk/alertdesk/worker/workertest"
)

// postIngest POSTs body to the worker's /v1/alerts with the bearer token
// and requires 202.
func postIngest(t *testing.T, addr, token, body string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addr+"/v1/alerts", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /v1/alerts: %v", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST /v1/alerts: %v", err)
	}
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/alerts: %d %s, want 202", resp.StatusCode, answer)
	}
}

// TestIngestTimelessArrayOrder: events without a time are ordered by the
// publish time of their own messages, so in the array [resolved, firing]
// the firing, published last, wins and the incident stays open.
func TestIngestTimelessArrayOrder(t *testing.T) {
	const token = "ingest-test-token"
	_, cfg := stateEnv(t, map[string]string{"ALERTDESK_INGEST_TOKEN": token})
	addr := startWorker(t, cfg, zerolog.Nop())
	wait.For(t, 30*time.Second, "the worker to be ready", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	const key = "ingest/timeless"
	get := func() worker.KeyState {
		code, out, _ := runState(t, "get", key, "--json")
		if code != 0 {
			return worker.KeyState{}
		}
		return stateJSONLines(t, out)[0]
	}
	postIngest(t, addr, token, `{"key": "`+key+`", "status": "firing", "summary": "disk full"}`)
	wait.For(t, 20*time.Second, "the incident to open", func() bool { return get().Open })

	postIngest(t, addr, token, `[{"key": "`+key+`", "status": "resolved"}, {"key": "`+key+`", "status": "firing", "summary": "disk full"}]`)
	_, js := workertest.ConnectURL(t, cfg.NATSURL)
	wait.For(t, 20*time.Second, "the input stream to be drained", func() bool {
		s, err := js.Stream(t.Context(), cfg.Stream)
		return err == nil && s.CachedInfo().State.Msgs == 0
	})
	if ks := get(); !ks.Open {
		t.Errorf("after [resolved, firing] the incident is closed (last %s at %s); the firing was published last and must win", ks.LastStatus, ks.LastEvent)
	}
}

// TestValidateIngest: with ingest on, ALERTDESK_SUBJECTS must cover the
// subjects ingest publishes to; with ingest off it may be narrower.
func TestValidateIngest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     config
		wantErr bool
	}{
		{"default", config{IngestToken: "t", Subjects: []string{"alerts.>"}}, false},
		{"one token wildcard", config{IngestToken: "t", Subjects: []string{"alerts.*"}}, false},
		{"each subject", config{IngestToken: "t", Subjects: []string{"alerts.grafana", "alerts.alertmanager", "alerts.http"}}, false},
		{"narrowed, ingest off", config{Subjects: []string{"alerts.prometheus.>"}}, false},
		{"narrowed, token", config{IngestToken: "t", Subjects: []string{"alerts.prometheus.>"}}, true},
		{"narrowed, dev on loopback", config{ingestOpen: true, Subjects: []string{"alerts.prometheus.>"}}, true},
		{"one missing", config{IngestToken: "t", Subjects: []string{"alerts.http", "alerts.alertmanager"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.validateIngest(); (err != nil) != tc.wantErr {
				t.Errorf("validateIngest() = %v, want an error: %v", err, tc.wantErr)
			}
		})
	}
}
