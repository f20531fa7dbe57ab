package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const exampleMapping = "../../deploy/mappings/example.yaml"

const productEvent = `{"key": "db-7/disk-full", "status": "firing", "severity": "critical",
 "summary": "Disk / at 97% on db-7", "description": "Free space below 3%.",
 "source": "prometheus", "labels": {"host": "db-7", "team": "dba"},
 "annotations": {"runbook": "https://wiki/runbooks/disk"},
 "startsAt": "2026-11-22T10:00:00Z", "timestamp": "2026-11-22T10:00:05Z",
 "url": "https://prometheus/graph?g0.expr=up"}`

const webhook = `{"version": "4", "status": "firing", "receiver": "alertdesk", "alerts": [
 {"status": "firing", "labels": {"alertname": "SwitchPortDown", "team": "network", "severity": "warning"},
  "annotations": {"summary": "Port down on sw-1"}, "startsAt": "2026-11-22T09:55:00Z", "fingerprint": "5f1a2b3c4d5e6f70"},
 {"status": "resolved", "labels": {"alertname": "HostDown", "team": "dba"},
  "startsAt": "2026-11-22T09:00:00Z", "endsAt": "2026-11-22T09:30:00Z", "fingerprint": "0a1b2c3d4e5f6071"}]}`

// wantDefaultProduct is the whole output for productEvent with the built-in
// mapping.
const wantDefaultProduct = `=== alert 1 of 1 (firing)
key:            db-7/disk-full
externalNumber: alertdesk-996cb5eb62a326af56e1eb117398a38a
fingerprint:    ad8b45cbfdaab9188e45a17d1db708c4

--- create
POST /tas/api/incidents
{
  "caller": {
    "dynamicName": "alertdesk"
  },
  "briefDescription": "Disk / at 97% on db-7",
  "request": "Disk / at 97% on db-7<br><br>Free space below 3%.<br><br>Severity: critical<br>Source: prometheus<br>Link: <a href=\"https://prometheus/graph?g0.expr=up\">https://prometheus/graph?g0.expr=up</a><br>Labels: host=db-7, team=dba<br><br>Alert key: db-7/disk-full",
  "externalNumber": "alertdesk-996cb5eb62a326af56e1eb117398a38a"
}

--- update
PATCH /tas/api/incidents/id/{id}
{
  "briefDescription": "Disk / at 97% on db-7",
  "action": "Alert changed: Disk / at 97% on db-7 (severity critical)",
  "actionInvisibleForCaller": true
}

--- resolve
PATCH /tas/api/incidents/id/{id}
{
  "briefDescription": "[RESOLVED] Disk / at 97% on db-7",
  "action": "Alert resolved: Disk / at 97% on db-7",
  "actionInvisibleForCaller": true,
  "closed": true
}

--- reopen
PATCH /tas/api/incidents/id/{id}
{
  "briefDescription": "Disk / at 97% on db-7",
  "action": "Alert fired again: Disk / at 97% on db-7 (severity critical)",
  "actionInvisibleForCaller": true,
  "completed": false,
  "closed": false
}
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runRender(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut}
	code = cmdRender(t.Context(), c, args)
	return code, out.String(), errOut.String()
}

func TestRenderDefaultExactOutput(t *testing.T) {
	t.Setenv("ALERTDESK_MAPPING_FILE", "")
	code, stdout, stderr := runRender(t, productEvent)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if diff := cmp.Diff(wantDefaultProduct, stdout); diff != "" {
		t.Errorf("output mismatch (-want +got):\n%s", diff)
	}
}

func TestRender(t *testing.T) {
	eventFile := writeFile(t, "event.json", productEvent)
	webhookFile := writeFile(t, "webhook.json", webhook)
	tests := []struct {
		name    string
		env     string
		stdin   string
		args    []string
		want    []string // in this order in stdout
		notWant []string
	}{
		{
			name:  "stdin with dash",
			stdin: productEvent, args: []string{"-"},
			want: []string{"key:            db-7/disk-full", `"dynamicName": "alertdesk"`},
		},
		{
			name: "file then --mapping flag",
			args: []string{eventFile, "--mapping", exampleMapping},
			want: []string{
				"=== alert 1 of 1 (firing)", "--- create", "POST /tas/api/incidents",
				`"dynamicName": "Monitoring (prometheus)"`, `"category": {`, `"name": "Databases"`,
				`"name": "PostgreSQL"`, `"name": "P1"`, `"name": "DBA"`, `"name": "Logged"`,
				"--- update", "PATCH /tas/api/incidents/id/{id}",
				"--- resolve", `"briefDescription": "[RESOLVED] Disk / at 97% on db-7"`, `"name": "Closed"`, `"closed": true`,
				"--- reopen", `"name": "In progress"`, `"closed": false`,
			},
		},
		{
			name: "mapping from the environment",
			env:  exampleMapping, args: []string{eventFile},
			want: []string{`"name": "Logged"`},
		},
		{
			name: "--mapping beats the environment",
			env:  "/nonexistent/mapping.yaml", args: []string{"--mapping=" + exampleMapping, eventFile},
			want: []string{`"name": "Logged"`},
		},
		{
			name: "alertmanager webhook renders every alert",
			args: []string{"--mapping", exampleMapping, webhookFile},
			want: []string{
				"=== alert 1 of 2 (firing)", "key:            5f1a2b3c4d5e6f70", `"name": "Network"`,
				"=== alert 2 of 2 (resolved)", "key:            0a1b2c3d4e5f6071", `"briefDescription": "HostDown"`,
			},
			notWant: []string{"invalid"},
		},
		{
			name:  "array of native events",
			stdin: `[{"key":"a","status":"firing","summary":"A"},{"key":"b","status":"resolved","summary":"B"}]`,
			want:  []string{"=== alert 1 of 2 (firing)", "key:            a", "=== alert 2 of 2 (resolved)", "key:            b"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("ALERTDESK_MAPPING_FILE", tc.env)
			code, stdout, stderr := runRender(t, tc.stdin, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if stderr != "" {
				t.Errorf("stderr = %q, want nothing", stderr)
			}
			rest := stdout
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (in order); output:\n%s", w, stdout)
				}
				rest = rest[i+len(w):]
			}
			for _, w := range tc.notWant {
				if strings.Contains(stdout, w) {
					t.Errorf("output contains %q", w)
				}
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	badMapping := writeFile(t, "bad.yaml", "incident:\n  categroy: Servers\n")
	keyLabels := writeFile(t, "keys.yaml", "key: {labels: [instance]}\n")
	strict := writeFile(t, "strict.yaml", "incident:\n  briefDescription: '{{ .Labels.missing }}'\n")
	tests := []struct {
		name     string
		stdin    string
		args     []string
		wantCode int
		mention  string
	}{
		{"not JSON", "{", nil, 1, "not valid JSON"},
		{"unknown status", `{"key":"k","status":"boom"}`, nil, 1, `field "status": unknown value "boom"`},
		{"empty input", "", nil, 1, "payload is empty"},
		{"no key", `{"status":"firing"}`, nil, 1, "no key"},
		{"missing key label", `{"status":"firing"}`, []string{"--mapping", keyLabels}, 1, `key label "instance" is missing`},
		{"template error", `{"key":"k","status":"firing"}`, []string{"--mapping", strict}, 1, "template error"},
		{"bad mapping", productEvent, []string{"--mapping", badMapping}, 1, "line 2: incident.categroy: unknown key"},
		{"missing mapping file", productEvent, []string{"--mapping", "/nonexistent/mapping.yaml"}, 1, "/nonexistent/mapping.yaml"},
		{"missing event file", "", []string{"/nonexistent/event.json"}, 1, "/nonexistent/event.json"},
		{"two event files", "", []string{"a.json", "b.json"}, 2, "at most one event file"},
		{"unknown flag", "", []string{"--mappings", "x"}, 2, "flag provided but not defined"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("ALERTDESK_MAPPING_FILE", "")
			code, stdout, stderr := runRender(t, tc.stdin, tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.wantCode, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			if !strings.Contains(stderr, tc.mention) {
				t.Errorf("stderr %q does not say %q", stderr, tc.mention)
			}
			if tc.wantCode == 1 && (strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "alertdesk render: ")) {
				t.Errorf("stderr %q is not one line starting with \"alertdesk render: \"", stderr)
			}
		})
	}
}

func TestRenderHelp(t *testing.T) {
	code, _, stderr := runRender(t, "", "-h")
	if code != 0 || !strings.Contains(stderr, "usage: alertdesk render") {
		t.Errorf("render -h: exit %d, stderr %q", code, stderr)
	}
}

// TestRenderMaintenance: render says which of the mapping's windows covers
// the event now, and that it would be suppressed, and the resolve delay and
// flapping settings in words (flapping is not judged for a grouped alert);
// without them it says nothing about them.
func TestRenderMaintenance(t *testing.T) {
	t.Setenv("ALERTDESK_MAPPING_FILE", "")
	now := time.Now().UTC()
	windows := writeFile(t, "maintenance.yaml", fmt.Sprintf(`maintenance:
  - match: {host: db-8}
    schedule: "@yearly"
    duration: 1h
  - match: {host: db-7}
    from: %s
    to: %s
    reason: disk swap
`, now.Add(-time.Hour).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339)))
	end := now.Add(time.Hour).Format(time.RFC3339)
	resolvedEvent := strings.Replace(productEvent, `"status": "firing"`, `"status": "resolved"`, 1)
	otherHost := strings.Replace(productEvent, `"host": "db-7"`, `"host": "db-9"`, 1)
	tests := []struct {
		name, event string
		args        []string
		want        string // "" = no maintenance line
	}{
		{"covered firing", productEvent, []string{"--mapping", windows},
			"maintenance:    suppressed: window maintenance[1] (disk swap) covers it now, until " + end + "; no incident is created or reopened before then"},
		{"covered resolve", resolvedEvent, []string{"--mapping", windows},
			"maintenance:    suppressed: window maintenance[1] (disk swap) covers it now, until " + end + "; a resolve is not held back"},
		{"not covered", otherHost, []string{"--mapping", windows}, "maintenance:    none of the mapping's 2 windows covers it now\n"},
		{"no windows", productEvent, nil, ""},
		{"resolve delay", productEvent, []string{"--mapping", writeFile(t, "delay.yaml", "lifecycle: {resolveDelay: 5m}\n")},
			"resolve delay:  5m0s: a resolve closes the incident only if the alert does not fire again within it\n"},
		{"flapping", productEvent, []string{"--mapping", writeFile(t, "flap.yaml", "flapping: {}\n")},
			"flapping:       4 changes between firing and resolved within 1h0m0s make the key flap: one action, the incident held open, closed after 30m0s without a change if resolved\n"},
		{"flapping, grouped", productEvent, []string{"--mapping", writeFile(t, "flapgroup.yaml", "flapping: {}\ngroup: {by: [host]}\n")},
			"flapping:       not judged for grouped alerts: a member that resolves and fires again adds one action to the group's incident\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runRender(t, tc.event, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if tc.want == "" {
				if strings.Contains(stdout, "maintenance:") {
					t.Errorf("output mentions maintenance without windows:\n%s", stdout)
				}
				return
			}
			// After the fingerprint, before the requests.
			fp := strings.Index(stdout, "fingerprint:")
			i := strings.Index(stdout, tc.want)
			if i < 0 || i < fp || i > strings.Index(stdout, "--- create") {
				t.Errorf("output lacks %q after the fingerprint:\n%s", tc.want, stdout)
			}
		})
	}
}
