package main

import (
	"bytes"
	"strings"
	"testing"
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
