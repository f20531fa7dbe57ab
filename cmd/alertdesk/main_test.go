package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestFlagErrors checks that every command parses its flags the same way:
// a bad flag prints the problem and one line pointing to -h (not the whole
// usage) and exits 2; -h prints the usage and exits 0.
func TestFlagErrors(t *testing.T) {
	for _, name := range []string{"run", "dev", "publish", "render", "check", "dlq list", "dlq show", "dlq replay", "dlq purge", "topdesk-sim", "healthcheck", "version"} {
		t.Run(name, func(t *testing.T) {
			args := strings.Fields(name)
			var stdout, stderr bytes.Buffer
			code := run(append(args, "--no-such-flag"), &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr})
			want := "alertdesk " + name + ": flag provided but not defined: -no-such-flag\n" +
				"Run 'alertdesk " + name + " -h' for its usage.\n"
			if code != 2 || stderr.String() != want || stdout.Len() != 0 {
				t.Errorf("alertdesk %s --no-such-flag: exit %d, stdout %q, stderr\n%s\nwant exit 2 and stderr\n%s", name, code, stdout.String(), stderr.String(), want)
			}

			stdout.Reset()
			stderr.Reset()
			code = run(append(args, "-h"), &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr})
			if code != 0 || !strings.HasPrefix(stderr.String(), "usage: alertdesk "+name) {
				t.Errorf("alertdesk %s -h: exit %d, stderr %q; want 0 and the usage", name, code, stderr.String())
			}
		})
	}
}

// TestUsageErrorOneHint checks that a wrong argument, not only a wrong
// flag, gets the one-line pointer to -h.
func TestUsageErrorOneHint(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"check", "now"}, &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr})
	want := "alertdesk check: unexpected argument \"now\"; settings come from ALERTDESK_* variables\n" +
		"Run 'alertdesk check -h' for its usage.\n"
	if code != 2 || stderr.String() != want {
		t.Errorf("alertdesk check now: exit %d, stderr\n%s\nwant exit 2 and\n%s", code, stderr.String(), want)
	}
}

// TestUnknownCommand: the problem and one line pointing to -h.
func TestUnknownCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"rnu"}, &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr})
	want := "alertdesk: unknown command \"rnu\"\nRun 'alertdesk -h' for the commands.\n"
	if code != 2 || stderr.String() != want {
		t.Errorf("alertdesk rnu: exit %d, stderr\n%s\nwant exit 2 and\n%s", code, stderr.String(), want)
	}
}
