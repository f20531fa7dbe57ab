package main

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// checkEnv is what `alertdesk check` is pointed at: an embedded JetStream
// server (ALERTDESK_NATS_URL) and the TOPdesk simulator (ALERTDESK_TOPDESK_*).
type checkEnv struct {
	js  jetstream.JetStream
	sim *topdesktest.Sim
}

func newCheckEnv(t *testing.T, provision bool) *checkEnv {
	t.Helper()
	e := newCLITestEnv(t, provision)
	sim := topdesktest.Start(t, topdesktest.Options{})
	t.Setenv("ALERTDESK_TOPDESK_URL", sim.URL())
	t.Setenv("ALERTDESK_TOPDESK_USERNAME", topdesktest.DefaultUsername)
	t.Setenv("ALERTDESK_TOPDESK_PASSWORD", topdesktest.DefaultPassword)
	return &checkEnv{js: e.js, sim: sim}
}

// runCheck runs `alertdesk check` in-process with stdout and stderr in one
// buffer, as a terminal shows them.
func runCheck(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var buf bytes.Buffer
	code := cmdCheck(t.Context(), &cli{stdin: strings.NewReader(""), stdout: &buf, stderr: &buf}, args)
	return code, buf.String()
}

// lineWith returns the first output line that starts with prefix and
// contains every one of parts, or "".
func lineWith(out, prefix string, parts ...string) string {
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return l
		}
	}
	return ""
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestCheckAllPass(t *testing.T) {
	for _, tc := range []struct {
		name      string
		provision bool
		mapping   string
		wantLines [][]string // each: prefix, then parts
	}{
		{
			name: "fresh NATS, built-in mapping",
			wantLines: [][]string{
				{"ok   ", "config valid"},
				{"ok   ", "mapping (built-in default) loads", "0 TOPdesk names"},
				{"ok   ", "NATS reachable at nats://127.0.0.1:"},
				{"ok   ", "JetStream enabled"},
				{"ok   ", "input stream ALERTS missing: will be created by run"},
				{"ok   ", "dead-letter stream ALERTS_DLQ missing: will be created by run"},
				{"ok   ", "state bucket alertdesk_incidents missing: will be created by run"},
				{"ok   ", "consumer alertdesk missing: will be created by run"},
				{"ok   ", "timer stream ALERTDESK_TIMERS missing: will be created by run"},
				{"ok   ", "TOPdesk at http://127.0.0.1:", `operator "alertdesk" accepted`, "(API version " + topdesktest.DefaultAPIVersion + ")"},
				{"ok   ", "TOPdesk names of the mapping: it uses none"},
				{"", "all 11 checks passed"},
			},
		},
		{
			name:      "provisioned NATS, mapping with names",
			provision: true,
			mapping: "incident: {category: Infrastructure, subcategory: Servers, operatorGroup: Operations}\n" +
				"severity: {critical: {priority: P1}}\nlifecycle: {resolve: close, resolvedStatus: Closed}\n",
			wantLines: [][]string{
				{"ok   ", "input stream ALERTS present (subjects alerts.>)"},
				{"ok   ", "dead-letter stream ALERTS_DLQ present (subjects alertdesk.dlq.>)"},
				{"ok   ", "state bucket alertdesk_incidents present (0 keys)"},
				{"ok   ", "consumer alertdesk present (0 pending, 0 unacked)"},
				{"ok   ", "timer stream ALERTDESK_TIMERS present (timers fire by message schedules)"},
				{"ok   ", `mapping category "Infrastructure" resolves`},
				{"ok   ", `mapping subcategory "Servers" in category "Infrastructure" resolves`},
				{"ok   ", `mapping operatorGroup "Operations" resolves`},
				{"ok   ", `mapping priority "P1" resolves`},
				{"ok   ", `mapping processingStatus "Closed" resolves`},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			newCheckEnv(t, tc.provision)
			if tc.mapping != "" {
				t.Setenv("ALERTDESK_MAPPING_FILE", writeFile(t, "mapping.yaml", tc.mapping))
			}
			code, out := runCheck(t)
			if code != 0 {
				t.Errorf("exit = %d, want 0\n%s", code, out)
			}
			for _, want := range tc.wantLines {
				if lineWith(out, want[0], want[1:]...) == "" {
					t.Errorf("no line %q with %q in\n%s", want[0], want[1:], out)
				}
			}
			if strings.Contains(out, "FAIL") || strings.Contains(out, "skip") {
				t.Errorf("output has failures:\n%s", out)
			}
			if strings.Contains(out, topdesktest.DefaultPassword) {
				t.Errorf("output contains the password:\n%s", out)
			}
		})
	}
}

func TestCheckFailures(t *testing.T) {
	const wrongPassword = "wrong-app-password-4711"
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, e *checkEnv)
		// want are lines that must appear: prefix, then parts.
		want [][]string
		// secret must not appear in the output.
		secret string
	}{
		{
			name:   "wrong password",
			setup:  func(t *testing.T, _ *checkEnv) { t.Setenv("ALERTDESK_TOPDESK_PASSWORD", wrongPassword) },
			secret: wrongPassword,
			want: [][]string{
				{"FAIL ", "TOPdesk at http://127.0.0.1:", "401 Unauthorized", "application password", "ALERTDESK_TOPDESK_PASSWORD"},
				{"skip ", "TOPdesk names of the mapping"},
			},
		},
		{
			name: "permission group lacks the REST API",
			setup: func(_ *testing.T, e *checkEnv) {
				e.sim.Inject(topdesktest.Fault{Path: "/tas/api/version", Status: 403})
			},
			want: [][]string{{"FAIL ", "403 Forbidden", "permission group", "REST API"}},
		},
		{
			name: "wrong URL",
			setup: func(t *testing.T, e *checkEnv) {
				t.Setenv("ALERTDESK_TOPDESK_URL", e.sim.URL()+"/not-topdesk")
			},
			want: [][]string{{"FAIL ", "404 Not Found", "ALERTDESK_TOPDESK_URL"}},
		},
		{
			name:  "TOPdesk refuses connections",
			setup: func(t *testing.T, _ *checkEnv) { t.Setenv("ALERTDESK_TOPDESK_URL", "http://"+closedPort(t)) },
			want:  [][]string{{"FAIL ", "connection refused", "ALERTDESK_TOPDESK_URL"}},
		},
		{
			name: "TOPdesk times out",
			setup: func(t *testing.T, e *checkEnv) {
				t.Setenv("ALERTDESK_TOPDESK_TIMEOUT", "200ms")
				e.sim.Inject(topdesktest.Fault{Path: "/tas/api/version", Delay: 10 * time.Second})
			},
			want: [][]string{{"FAIL ", "no answer within 200ms", "ALERTDESK_TOPDESK_TIMEOUT"}},
		},
		{
			name: "unknown category in the mapping file",
			setup: func(t *testing.T, _ *checkEnv) {
				t.Setenv("ALERTDESK_MAPPING_FILE", writeFile(t, "mapping.yaml", "incident: {category: Infrastructur, operatorGroup: Operations}\n"))
			},
			want: [][]string{
				{"FAIL ", `mapping name: category "Infrastructur" not found in TOPdesk (nearest: "Infrastructure")`, "mapping.yaml"},
				{"ok   ", `mapping operatorGroup "Operations" resolves`},
			},
		},
		{
			name:  "NATS unreachable",
			setup: func(t *testing.T, _ *checkEnv) { t.Setenv("ALERTDESK_NATS_URL", "nats://"+closedPort(t)) },
			want: [][]string{
				{"FAIL ", "NATS reachable at nats://127.0.0.1:", "ALERTDESK_NATS_URL"},
				{"skip ", "JetStream"},
				{"ok   ", "TOPdesk at"},
			},
		},
		{
			name: "embedded server not running",
			setup: func(t *testing.T, _ *checkEnv) {
				t.Setenv("ALERTDESK_NATS_URL", "")
				t.Setenv("ALERTDESK_EMBEDDED_NATS_LISTEN", closedPort(t))
			},
			want: [][]string{{"FAIL ", "NATS reachable at nats://127.0.0.1:", "start one of them first"}},
		},
		{
			name: "NATS URL with credentials is redacted",
			setup: func(t *testing.T, _ *checkEnv) {
				t.Setenv("ALERTDESK_NATS_URL", "nats://bob:nats-secret-99@"+closedPort(t))
			},
			secret: "nats-secret-99",
			want:   [][]string{{"FAIL ", "NATS reachable at nats://redacted@127.0.0.1:"}},
		},
		{
			name: "input stream with other subjects",
			setup: func(t *testing.T, e *checkEnv) {
				if _, err := e.js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ALERTS", Subjects: []string{"events.>"}}); err != nil {
					t.Fatal(err)
				}
			},
			want: [][]string{
				{"FAIL ", "input stream ALERTS:", `do not include "alerts.>"`, "ALERTDESK_SUBJECTS"},
				{"ok   ", "dead-letter stream ALERTS_DLQ missing: will be created by run"},
			},
		},
		{
			name: "another stream binds the subjects",
			setup: func(t *testing.T, e *checkEnv) {
				if _, err := e.js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "LEGACY", Subjects: []string{"alerts.prom"}}); err != nil {
					t.Fatal(err)
				}
			},
			want: [][]string{{"FAIL ", "input stream ALERTS:", `stream "LEGACY" already binds`, "ALERTDESK_STREAM=LEGACY"}},
		},
		{
			name: "consumer without explicit acks",
			setup: func(t *testing.T, e *checkEnv) {
				if _, err := e.js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ALERTS", Subjects: []string{"alerts.>"}}); err != nil {
					t.Fatal(err)
				}
				if _, err := e.js.CreateConsumer(t.Context(), "ALERTS", jetstream.ConsumerConfig{Durable: "alertdesk", AckPolicy: jetstream.AckNonePolicy}); err != nil {
					t.Fatal(err)
				}
			},
			want: [][]string{{"FAIL ", "consumer alertdesk:", "explicit acks", "nats consumer rm ALERTS alertdesk"}},
		},
		{
			name: "timer stream without roll-ups",
			setup: func(t *testing.T, e *checkEnv) {
				if _, err := e.js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ALERTDESK_TIMERS", Subjects: []string{"alertdesk.timer.>"}}); err != nil {
					t.Fatal(err)
				}
			},
			want: [][]string{{"FAIL ", "timer stream ALERTDESK_TIMERS:", "roll-ups", "nats stream rm ALERTDESK_TIMERS"}},
		},
		{
			name:  "invalid setting",
			setup: func(t *testing.T, _ *checkEnv) { t.Setenv("ALERTDESK_CONCURRENCY", "0") },
			want: [][]string{
				{"FAIL ", "config: ALERTDESK_CONCURRENCY: 0 is out of range"},
				{"ok   ", "NATS reachable"},
			},
		},
		{
			name:  "unparseable setting",
			setup: func(t *testing.T, _ *checkEnv) { t.Setenv("ALERTDESK_MAX_DELIVER", "ten") },
			want:  [][]string{{"FAIL ", "config: ALERTDESK_MAX_DELIVER: cannot parse"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCheckEnv(t, false)
			tc.setup(t, e)
			code, out := runCheck(t)
			t.Logf("output:\n%s", out)
			if code != 1 {
				t.Errorf("exit = %d, want 1\n%s", code, out)
			}
			for _, want := range tc.want {
				if lineWith(out, want[0], want[1:]...) == "" {
					t.Errorf("no line %q with %q in\n%s", want[0], want[1:], out)
				}
			}
			for _, s := range []string{tc.secret, topdesktest.DefaultPassword} {
				if s != "" && strings.Contains(out, s) {
					t.Errorf("output contains the secret %q:\n%s", s, out)
				}
			}
			if strings.Contains(out, "all ") && strings.Contains(out, "checks passed") {
				t.Errorf("output claims success:\n%s", out)
			}
		})
	}
}

func TestCheckCreatesTestIncident(t *testing.T) {
	e := newCheckEnv(t, true)
	code, out := runCheck(t, "--create-test-incident")
	if code != 0 {
		t.Fatalf("exit = %d, want 0\n%s", code, out)
	}
	incs := e.sim.Incidents()
	if len(incs) != 1 {
		t.Fatalf("simulator has %d incidents, want 1", len(incs))
	}
	inc := incs[0]
	if inc.BriefDescription != "alertdesk connection test" || !strings.HasPrefix(inc.ExternalNumber, "alertdesk-test-") {
		t.Errorf("incident = %q / externalNumber %q, want the connection test", inc.BriefDescription, inc.ExternalNumber)
	}
	if !inc.Closed {
		t.Errorf("incident %s is not closed", inc.Number)
	}
	if len(inc.Actions) == 0 {
		t.Errorf("incident %s has no action", inc.Number)
	}
	if lineWith(out, "ok   ", "test incident "+inc.Number+" created and closed", inc.ExternalNumber) == "" {
		t.Errorf("no ok line naming %s and %s in\n%s", inc.Number, inc.ExternalNumber, out)
	}
}

func TestCheckUsage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    int
		mention string
	}{
		{"extra argument", []string{"now"}, 2, "Run 'alertdesk check -h' for its usage."},
		{"unknown flag", []string{"--frobnicate"}, 2, "Run 'alertdesk check -h' for its usage."},
		{"help", []string{"-h"}, 0, "usage: alertdesk check"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runCheck(t, tc.args...)
			if code != tc.want {
				t.Errorf("exit = %d, want %d\n%s", code, tc.want, out)
			}
			if !strings.Contains(out, tc.mention) {
				t.Errorf("%q not in\n%s", tc.mention, out)
			}
		})
	}
}
