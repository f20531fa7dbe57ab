package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alertdesk/alertdesk/mapping"
)

// TestRunReportsAllProblemsAtOnce checks that `alertdesk run` reports every
// bad setting in one go, one line each, before anything starts: unknown
// variables with the nearest known name, a NATS URL without a scheme with
// the form to write, missing and out-of-range values, a mapping that does
// not load.
func TestRunReportsAllProblemsAtOnce(t *testing.T) {
	isolateEnv(t)
	badMapping := filepath.Join(t.TempDir(), "mapping.yaml")
	if err := os.WriteFile(badMapping, []byte("incident:\n  categroy: Servers\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ALERTDESK_TOPDESK_URLL", "https://example.topdesk.net")
	t.Setenv("ALERTDESK_TOPDESK_USERNAME", "alertdesk")
	t.Setenv("ALERTDESK_TOPDESK_PASSWORD", "secret-never-printed")
	t.Setenv("ALERTDESK_NATS_URL", "127.0.0.1:4222")
	t.Setenv("ALERTDESK_MAX_DELIVER", "0")
	t.Setenv("ALERTDESK_CONCURENCY", "8")
	t.Setenv("ALERTDESK_COMPLETELY_DIFFERENT", "x")
	t.Setenv("ALERTDESK_MAPPING_FILE", badMapping)

	var stdout, stderr bytes.Buffer
	code := run([]string{"run"}, &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr})
	if code != 2 {
		t.Errorf("exit = %d, want 2", code)
	}
	got := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
	want := []string{
		"alertdesk: ALERTDESK_COMPLETELY_DIFFERENT is not a known variable (docs/configuration.md lists them)",
		"alertdesk: ALERTDESK_CONCURENCY is not a known variable; did you mean ALERTDESK_CONCURRENCY?",
		"alertdesk: ALERTDESK_TOPDESK_URLL is not a known variable; did you mean ALERTDESK_TOPDESK_URL?",
		`alertdesk: ALERTDESK_NATS_URL: "127.0.0.1:4222" has no scheme; write nats://127.0.0.1:4222 (tls:// for TLS)`,
		"alertdesk: ALERTDESK_TOPDESK_URL: required (the TOPdesk base URL, e.g. https://example.topdesk.net)",
		"alertdesk: ALERTDESK_MAX_DELIVER: 0 must be at least 1",
		"alertdesk: ALERTDESK_MAPPING_FILE: ",
	}
	if len(got) != len(want) {
		t.Fatalf("stderr has %d lines, want %d:\n%s", len(got), len(want), stderr.String())
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("line %d = %q, want %q", i+1, got[i], want[i])
		}
	}
	if !strings.Contains(got[6], "categroy") {
		t.Errorf("mapping line %q does not name the bad key", got[6])
	}
	if strings.Contains(stderr.String(), "secret-never-printed") || stdout.Len() != 0 {
		t.Errorf("stdout %q, stderr %q: want nothing on stdout and no password", stdout.String(), stderr.String())
	}
}

// TestUnparseableValues: every value that does not parse is reported at
// once (envconfig stops at the first), with the unknown variables, and no
// config is returned. The fields' defaults pass validate, so it adds nothing.
func TestUnparseableValues(t *testing.T) {
	isolateEnv(t)
	setTopdesk(t)
	t.Setenv("ALERTDESK_CONCURRENCY", "many")
	t.Setenv("ALERTDESK_ACK_WAIT", "30")
	t.Setenv("ALERTDESK_TOPDESK_RATE_LIMIT", "fast")
	t.Setenv("ALERTDESK_LOGLEVEL", "debug")
	cfg, err := loadConfig((*config).validateWorker)
	if cfg != nil {
		t.Errorf("config = %+v, want nil after a value that does not parse", cfg)
	}
	var got []string
	for _, e := range flatten(err) {
		got = append(got, e.Error())
	}
	want := []string{
		`ALERTDESK_CONCURRENCY: cannot parse "many" as a number`,
		`ALERTDESK_TOPDESK_RATE_LIMIT: cannot parse "fast" as a number`,
		`ALERTDESK_ACK_WAIT: cannot parse "30" as a duration such as 15s or 500ms`,
		"ALERTDESK_LOGLEVEL is not a known variable; did you mean ALERTDESK_LOG_LEVEL?",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestParseErrorDoesNotHideOtherProblems: a value that does not parse is
// reported with every other bad setting, not alone: the field keeps its
// default, validate runs, and each variable is named once.
func TestParseErrorDoesNotHideOtherProblems(t *testing.T) {
	isolateEnv(t)
	t.Setenv("ALERTDESK_ACK_WAIT", "30") // no unit: does not parse
	t.Setenv("ALERTDESK_TOPDESK_TIMEOUT", "15")
	t.Setenv("ALERTDESK_CLAIM_TTL", "20s") // not checked against a timeout that did not parse
	t.Setenv("ALERTDESK_MAX_DELIVER", "0")
	t.Setenv("ALERTDESK_CONCURENCY", "8")
	var stdout, stderr syncBuffer
	code := run([]string{"run"}, &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr})
	if code != 2 {
		t.Errorf("exit = %d, want 2", code)
	}
	got := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
	want := []string{
		`alertdesk: ALERTDESK_TOPDESK_TIMEOUT: cannot parse "15" as a duration such as 15s or 500ms`,
		`alertdesk: ALERTDESK_ACK_WAIT: cannot parse "30" as a duration such as 15s or 500ms`,
		"alertdesk: ALERTDESK_CONCURENCY is not a known variable; did you mean ALERTDESK_CONCURRENCY?",
		"alertdesk: ALERTDESK_TOPDESK_URL: required (the TOPdesk base URL, e.g. https://example.topdesk.net)",
		"alertdesk: ALERTDESK_TOPDESK_USERNAME: required (the operator login name)",
		"alertdesk: ALERTDESK_TOPDESK_PASSWORD: one of ALERTDESK_TOPDESK_PASSWORD or ALERTDESK_TOPDESK_PASSWORD_FILE is required",
		"alertdesk: ALERTDESK_MAX_DELIVER: 0 must be at least 1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("stderr:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestSimVariablesAreKnown: topdesk-sim's variables are not reported as
// unknown by the other commands (compose gives both to one environment).
func TestSimVariablesAreKnown(t *testing.T) {
	isolateEnv(t)
	t.Setenv("ALERTDESK_SIM_USERNAME", "ops")
	t.Setenv("ALERTDESK_SIM_PASSWORD_FILE", "/run/secrets/sim")
	if _, err := loadConfig(nil); err != nil {
		t.Errorf("loadConfig: %v", err)
	}
}

// TestDevSettings checks that dev sets config fields, not the environment,
// and that variables the user set win over dev's defaults.
func TestDevSettings(t *testing.T) {
	isolateEnv(t)
	t.Setenv("ALERTDESK_LOG_FORMAT", "json")
	t.Setenv("ALERTDESK_NATS_URL", "nats://elsewhere:4222")
	before := os.Environ()
	cfg, err := loadConfig(func(c *config) error {
		c.devSettings("http://127.0.0.1:9", "pw")
		return c.validateWorker()
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.LogFormat != "json" || cfg.HTTPAddr != "127.0.0.1:8080" || cfg.NATSURL != "" || cfg.TopdeskURL != "http://127.0.0.1:9" {
		t.Errorf("log format %q, HTTP addr %q, NATS URL %q, TOPdesk URL %q; want json, 127.0.0.1:8080, embedded, the simulator",
			cfg.LogFormat, cfg.HTTPAddr, cfg.NATSURL, cfg.TopdeskURL)
	}
	// Sorted: loadConfig sets any bare NATS_URL, LOG_FORMAT, … back after
	// hiding it from envconfig, which moves it to the end.
	slices.Sort(before)
	after := os.Environ()
	slices.Sort(after)
	if !slices.Equal(before, after) {
		t.Errorf("the environment changed:\nbefore %q\nafter  %q", before, after)
	}
}

// The input stream's duplicate window follows the mapping's reorder window:
// a minute, or the reorder window when shorter, at least a second.
func TestTopologyDedupeWindow(t *testing.T) {
	m, err := mapping.Load([]byte("lifecycle: {reorderWindow: 30s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var c config
	for _, tc := range []struct {
		m    *mapping.Mapping
		want time.Duration
	}{
		{nil, time.Minute},               // the mapping did not load: its default
		{mapping.Default(), time.Minute}, // reorderWindow 1m
		{m, 30 * time.Second},
	} {
		if got := c.topology(tc.m).Duplicates; got != tc.want {
			t.Errorf("duplicate window %s, want %s", got, tc.want)
		}
	}
	for reorder, want := range map[time.Duration]time.Duration{0: time.Second, time.Hour: time.Minute} {
		if got := dedupeWindow(reorder); got != want {
			t.Errorf("dedupeWindow(%s) = %s, want %s", reorder, got, want)
		}
	}
}

// TestOnlyPrefixedVariablesAreRead: a variable without the ALERTDESK_ prefix
// is not a setting, though envconfig falls back to the bare name when the
// prefixed one is unset. NATS_URL, exported for the nats CLI, must not send
// the worker to someone else's server. The bare variables stay set.
func TestOnlyPrefixedVariablesAreRead(t *testing.T) {
	isolateEnv(t)
	setTopdesk(t)
	t.Setenv("ALERTDESK_LOG_LEVEL", "debug")
	t.Setenv("NATS_URL", "nats://someone-elses-nats:4222")
	t.Setenv("HTTP_ADDR", ":9999")
	t.Setenv("CONCURRENCY", "many") // would not even parse
	t.Setenv("LOG_LEVEL", "error")  // the prefixed one is set: it wins
	cfg, err := loadConfig((*config).validateWorker)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATSURL != "" {
		t.Errorf("NATSURL = %q from the unprefixed NATS_URL; want empty (embedded server)", cfg.NATSURL)
	}
	if cfg.HTTPAddr != ":8080" || cfg.Concurrency != 16 || cfg.LogLevel != "debug" {
		t.Errorf("HTTP addr %q, concurrency %d, log level %q; want the defaults :8080 and 16, and ALERTDESK_LOG_LEVEL's debug",
			cfg.HTTPAddr, cfg.Concurrency, cfg.LogLevel)
	}
	if cfg.isSet("NATS_URL") || cfg.isSet("HTTP_ADDR") {
		t.Errorf("isSet reports an unprefixed variable as set")
	}
	for name, want := range map[string]string{"NATS_URL": "nats://someone-elses-nats:4222", "HTTP_ADDR": ":9999", "CONCURRENCY": "many", "LOG_LEVEL": "error"} {
		if got, ok := os.LookupEnv(name); got != want || !ok {
			t.Errorf("after loadConfig %s = %q (set %t), want %q", name, got, ok, want)
		}
	}
}

// TestSimReadsOnlyPrefixedVariables: topdesk-sim's ALERTDESK_SIM_USERNAME
// does not fall back to USERNAME, which many systems set to the login name.
func TestSimReadsOnlyPrefixedVariables(t *testing.T) {
	isolateEnv(t)
	t.Setenv("USERNAME", "someone")
	t.Setenv("PASSWORD", "not-the-sim's")
	var env simConfig
	if err := processEnv(envPrefix+"_SIM", &env); err != nil {
		t.Fatal(err)
	}
	if env.Username != "" || env.Password != "" {
		t.Errorf("username %q, password set %t; want both empty", env.Username, env.Password != "")
	}
	if got := os.Getenv("USERNAME"); got != "someone" {
		t.Errorf("after processEnv USERNAME = %q, want someone", got)
	}
}

// TestSubjectsProblems: ALERTDESK_SUBJECTS that JetStream would refuse when
// run provisions the input stream are reported at start-up, one line each
// naming the variable: a subject that is not valid, one that overlaps the
// subjects of alertdesk's dead-letter or timer stream, and two that overlap
// each other.
func TestSubjectsProblems(t *testing.T) {
	for _, tc := range []struct {
		subjects string
		want     []string
	}{
		{"alerts.>", nil},
		{"alerts.prometheus.>,alerts.http,alertdesk_alerts.*", nil},
		{">", []string{`ALERTDESK_SUBJECTS: ">" overlaps alertdesk.dlq.> (dead letters) and alertdesk.timer.> (timers), which alertdesk's own streams bind`}},
		{"alertdesk.>", []string{`ALERTDESK_SUBJECTS: "alertdesk.>" overlaps alertdesk.dlq.> (dead letters) and alertdesk.timer.> (timers), which alertdesk's own streams bind`}},
		{"*.dlq.>", []string{`ALERTDESK_SUBJECTS: "*.dlq.>" overlaps alertdesk.dlq.> (dead letters), which alertdesk's own streams bind`}},
		{"alertdesk.dlq.alerts", []string{`ALERTDESK_SUBJECTS: "alertdesk.dlq.alerts" overlaps alertdesk.dlq.> (dead letters), which alertdesk's own streams bind`}},
		{"alerts.x,alertdesk.timer.*.*.*", []string{`ALERTDESK_SUBJECTS: "alertdesk.timer.*.*.*" overlaps alertdesk.timer.> (timers), which alertdesk's own streams bind`}},
		{"alerts.>.x", []string{`ALERTDESK_SUBJECTS: "alerts.>.x" is not a valid subject (dot-separated tokens, no spaces, > only as the last token)`}},
		{"alerts.x, alerts.y", []string{`ALERTDESK_SUBJECTS: " alerts.y" is not a valid subject (dot-separated tokens, no spaces, > only as the last token)`}},
		{"alerts.>,alerts.http", []string{`ALERTDESK_SUBJECTS: "alerts.http" overlaps "alerts.>"; one stream cannot bind both`}},
	} {
		t.Run(tc.subjects, func(t *testing.T) {
			isolateEnv(t)
			setTopdesk(t)
			t.Setenv("ALERTDESK_SUBJECTS", tc.subjects)
			_, err := loadConfig((*config).validateWorker)
			var got []string
			for _, e := range flatten(err) {
				got = append(got, e.Error())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// setTopdesk sets valid TOPdesk settings, so that a test of the others
// sees only the problems it makes.
func setTopdesk(t *testing.T) {
	t.Helper()
	t.Setenv("ALERTDESK_TOPDESK_URL", "https://example.topdesk.net")
	t.Setenv("ALERTDESK_TOPDESK_USERNAME", "alertdesk")
	t.Setenv("ALERTDESK_TOPDESK_PASSWORD", "pw")
}
