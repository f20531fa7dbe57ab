package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
)

func TestPublishFromFlags(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		wantSubject string
		want        map[string]any
	}{
		{
			name:        "key only",
			args:        []string{"--key", "db-7/disk", "--timestamp", "2026-11-22T10:00:05Z"},
			wantSubject: "alerts.cli",
			want:        map[string]any{"key": "db-7/disk", "status": "firing", "source": "cli", "timestamp": "2026-11-22T10:00:05Z"},
		},
		{
			name: "every field",
			args: []string{"--key", "k1", "--status", "resolved", "--severity", "critical", "--summary", "Disk full",
				"--description", "Free space below 3%.", "--source", "prometheus", "--label", "host=db-7", "--label", "team=dba",
				"--annotation", "runbook=https://wiki/disk", "--timestamp", "2026-11-22T10:00:05+01:00"},
			wantSubject: "alerts.prometheus",
			want: map[string]any{"key": "k1", "status": "resolved", "severity": "critical", "summary": "Disk full",
				"description": "Free space below 3%.", "source": "prometheus",
				"labels":      map[string]any{"host": "db-7", "team": "dba"},
				"annotations": map[string]any{"runbook": "https://wiki/disk"}, "timestamp": "2026-11-22T10:00:05+01:00"},
		},
		{
			name:        "labels instead of a key, own subject",
			args:        []string{"--label", "alertname=DiskFull", "--subject", "alerts.ops.eu", "--timestamp", "2026-11-22T10:00:05Z"},
			wantSubject: "alerts.ops.eu",
			want:        map[string]any{"status": "firing", "source": "cli", "labels": map[string]any{"alertname": "DiskFull"}, "timestamp": "2026-11-22T10:00:05Z"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newCLITestEnv(t, true)
			code, out, errOut := runCommand(t, cmdPublish, "", tc.args...)
			if code != 0 {
				t.Fatalf("publish = %d, stderr %q", code, errOut)
			}
			if want := "published to " + tc.wantSubject + ": stream ALERTS seq 1\n"; out != want {
				t.Errorf("stdout = %q, want %q", out, want)
			}
			msgs := e.msgs(t, "ALERTS")
			if len(msgs) != 1 {
				t.Fatalf("ALERTS holds %d messages, want 1", len(msgs))
			}
			if msgs[0].Subject != tc.wantSubject {
				t.Errorf("subject = %q, want %q", msgs[0].Subject, tc.wantSubject)
			}
			var got map[string]any
			if err := json.Unmarshal(msgs[0].Data, &got); err != nil {
				t.Fatalf("decode %q: %v", msgs[0].Data, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPublishDefaultTimestamp(t *testing.T) {
	e := newCLITestEnv(t, true)
	before := time.Now().Add(-time.Second)
	if code, _, errOut := runCommand(t, cmdPublish, "", "--key", "k"); code != 0 {
		t.Fatalf("publish = %d, stderr %q", code, errOut)
	}
	var ev publishEvent
	if err := json.Unmarshal(e.msgs(t, "ALERTS")[0].Data, &ev); err != nil {
		t.Fatalf("decode: %v", err)
	}
	ts, err := time.Parse(time.RFC3339, ev.Timestamp)
	if err != nil || ts.Before(before.Truncate(time.Second)) || ts.After(time.Now()) {
		t.Errorf("timestamp = %q (%v), want now", ev.Timestamp, err)
	}
}

func TestPublishMsgIDDuplicate(t *testing.T) {
	e := newCLITestEnv(t, true)
	args := []string{"--key", "k", "--msg-id", "evt-1", "--timestamp", "2026-11-22T10:00:05Z"}
	if code, out, errOut := runCommand(t, cmdPublish, "", args...); code != 0 || out != "published to alerts.cli: stream ALERTS seq 1\n" {
		t.Fatalf("first publish = %d %q %q", code, out, errOut)
	}
	if code, out, errOut := runCommand(t, cmdPublish, "", args...); code != 0 || out != "published to alerts.cli: stream ALERTS seq 1 (duplicate)\n" {
		t.Errorf("second publish = %d %q %q, want the duplicate ack", code, out, errOut)
	}
	msgs := e.msgs(t, "ALERTS")
	if len(msgs) != 1 || msgs[0].Header.Get(jetstream.MsgIDHeader) != "evt-1" {
		t.Errorf("ALERTS holds %d messages, want 1 with Nats-Msg-Id evt-1", len(msgs))
	}
}

func TestPublishFromFile(t *testing.T) {
	native := `{"key":"db-7/disk","status":"firing","source":"prometheus","labels":{"host":"db-7"}}`
	webhook := `{"version":"4","status":"firing","receiver":"alertdesk","alerts":[{"status":"firing","labels":{"alertname":"X"},"fingerprint":"abc"}]}`
	dir := t.TempDir()
	nativeFile := filepath.Join(dir, "native.json")
	if err := os.WriteFile(nativeFile, []byte(native), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		args        []string
		stdin       string
		wantSubject string
		wantData    string
	}{
		{"native file", []string{"--file", nativeFile}, "", "alerts.prometheus", native},
		{"native file, own subject", []string{"--file", nativeFile, "--subject", "alerts.batch"}, "", "alerts.batch", native},
		{"webhook on stdin", []string{"-"}, webhook, "alerts.alertmanager", webhook},
		{"webhook via --file -", []string{"--file", "-"}, webhook + "\n", "alerts.alertmanager", webhook + "\n"},
		{"native without source", []string{"-"}, `{"key":"k","status":"resolved"}`, "alerts.cli", `{"key":"k","status":"resolved"}`},
		{"array of one source", []string{"-"}, `[{"key":"a","status":"firing","source":"zabbix"},{"key":"b","status":"firing","source":"zabbix"}]`, "alerts.zabbix",
			`[{"key":"a","status":"firing","source":"zabbix"},{"key":"b","status":"firing","source":"zabbix"}]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newCLITestEnv(t, true)
			code, out, errOut := runCommand(t, cmdPublish, tc.stdin, tc.args...)
			if code != 0 {
				t.Fatalf("publish = %d, stderr %q", code, errOut)
			}
			if want := "published to " + tc.wantSubject + ": stream ALERTS seq 1\n"; out != want {
				t.Errorf("stdout = %q, want %q", out, want)
			}
			msgs := e.msgs(t, "ALERTS")
			if len(msgs) != 1 || msgs[0].Subject != tc.wantSubject || string(msgs[0].Data) != tc.wantData {
				t.Errorf("ALERTS holds %d messages; first %q on %q, want %q on %q", len(msgs), msgs[0].Data, msgs[0].Subject, tc.wantData, tc.wantSubject)
			}
		})
	}
}

func TestPublishErrors(t *testing.T) {
	dir := t.TempDir()
	notJSON := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(notJSON, []byte("key: v\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantErr  string
	}{
		{name: "bad status", args: []string{"--key", "k", "--status", "open"}, wantCode: 2, wantErr: `--status "open": want firing or resolved`},
		{name: "no key or labels", args: []string{"--summary", "x"}, wantCode: 2, wantErr: "needs --key or at least one --label"},
		{name: "bad timestamp", args: []string{"--key", "k", "--timestamp", "yesterday"}, wantCode: 2, wantErr: `--timestamp "yesterday" is not an RFC 3339 time`},
		{name: "bad label", args: []string{"--key", "k", "--label", "novalue"}, wantCode: 2, wantErr: `"novalue" is not key=value`},
		{name: "file and event flags", args: []string{"--file", "-", "--key", "k", "--summary", "s"}, wantCode: 2, wantErr: "--key, --summary cannot be combined with --file"},
		{name: "wildcard subject", args: []string{"--key", "k", "--subject", "alerts.*"}, wantCode: 2, wantErr: `"alerts.*" is not a subject to publish to`},
		{name: "source with a space", args: []string{"--key", "k", "--source", "my tool"}, wantCode: 2, wantErr: `"alerts.my tool" is not a subject`},
		{name: "stray argument", args: []string{"--key", "k", "extra"}, wantCode: 2, wantErr: `unexpected argument "extra"`},
		{name: "file not JSON", args: []string{"--file", notJSON}, wantCode: 1, wantErr: "is not a JSON object"},
		{name: "file missing", args: []string{"--file", filepath.Join(dir, "nope.json")}, wantCode: 1, wantErr: "no such file"},
		{name: "empty stdin", args: []string{"-"}, wantCode: 1, wantErr: "stdin is empty"},
		{name: "subject no stream binds", args: []string{"--key", "k", "--subject", "other.x"}, wantCode: 1, wantErr: "no JetStream stream captures other.x (the input stream ALERTS binds alerts.>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newCLITestEnv(t, true)
			code, out, errOut := runCommand(t, cmdPublish, tc.stdin, tc.args...)
			if code != tc.wantCode || !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("publish %v = %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.wantCode, tc.wantErr)
			}
			if out != "" {
				t.Errorf("stdout = %q, want nothing", out)
			}
			if tc.wantCode == 2 && (!strings.HasSuffix(errOut, "Run 'alertdesk publish -h' for its usage.\n") || strings.Contains(errOut, "usage: alertdesk publish")) {
				t.Errorf("stderr is not the problem and one line pointing to -h:\n%s", errOut)
			}
			if n := len(e.msgs(t, "ALERTS")); n != 0 {
				t.Errorf("ALERTS holds %d messages, want 0", n)
			}
		})
	}
}

// TestPublishNATSHints: publish with no NATS running says how to start one
// or where to point it; a NATS URL without a scheme shows what was typed
// and the form to write.
func TestPublishNATSHints(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      map[string]string
		wantCode int
		want     []string
	}{
		{"nothing listens on the embedded address", map[string]string{"ALERTDESK_EMBEDDED_NATS_LISTEN": closedPort(t)}, 1,
			[]string{"no servers available", "hint: ALERTDESK_NATS_URL is empty", "`alertdesk dev` or `alertdesk run`", "or set ALERTDESK_NATS_URL"}},
		{"URL without a scheme", map[string]string{"ALERTDESK_NATS_URL": "127.0.0.1:4222"}, 2,
			[]string{`ALERTDESK_NATS_URL: "127.0.0.1:4222" has no scheme; write nats://127.0.0.1:4222`}},
		{"URL without a scheme, with a password", map[string]string{"ALERTDESK_NATS_URL": "ops:s3cret@nats.example:4222"}, 2,
			[]string{`"redacted@nats.example:4222" has no scheme; write nats://redacted@nats.example:4222`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolateEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, _, errOut := runCommand(t, cmdPublish, "", "--key", "k")
			if code != tc.wantCode {
				t.Errorf("exit = %d, want %d; stderr %q", code, tc.wantCode, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
			if strings.Contains(errOut, "s3cret") {
				t.Errorf("stderr shows the password: %q", errOut)
			}
		})
	}
}
