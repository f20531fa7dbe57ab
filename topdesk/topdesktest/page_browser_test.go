package topdesktest

import (
	"context"
	"errors"
	"html"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// chromiumPath is where Debian's chromium package installs the browser
// (.ci/run installs it when it runs as root).
const chromiumPath = "/usr/bin/chromium"

// browserTimeout bounds one headless Chromium run.
const browserTimeout = 90 * time.Second

// TestPageInBrowser opens the simulator's incident page in headless Chromium
// and checks that an incident created through the API is shown with its
// action trail, as an operator watching `docker compose up` would see it.
func TestPageInBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("headless browser test skipped: %s not found (Debian: apt-get install chromium; .ci/run installs it as root)", chromiumPath)
	}
	s := Start(t, Options{})
	c := newClient(t, s)
	inc := c.createIncident(map[string]any{
		"briefDescription": "Disk / at 97% on db-7",
		"request":          "Free space below 3% on db-7.",
		"action":           "Created by alertdesk: disk-full fired",
		"externalNumber":   "alertdesk-browser-test",
		"category":         map[string]any{"name": "Infrastructure"},
		"subcategory":      map[string]any{"name": "Servers"},
	})
	number, _ := inc["number"].(string)
	if number == "" {
		t.Fatalf("created incident has no number: %v", inc)
	}
	c.mustCall(http.MethodPatch, "/tas/api/incidents/number/"+url.PathEscape(number),
		map[string]any{"action": "Alert resolved: disk-full on db-7", "actionInvisibleForCaller": true}, http.StatusOK)

	dom := dumpDOM(t, s.URL()+"/")

	for _, want := range []string{
		number,
		"Disk / at 97% on db-7",
		"Created by alertdesk: disk-full fired",
		"Alert resolved: disk-full on db-7",
		"Actions (2)",
		"alertdesk-browser-test",
	} {
		if !strings.Contains(dom, html.EscapeString(want)) && !strings.Contains(dom, want) {
			t.Errorf("page DOM does not show %q; DOM:\n%s", want, dom)
		}
	}
	if strings.Contains(dom, "No incidents yet.") {
		t.Errorf("page DOM says there are no incidents")
	}
}

// dumpDOM loads u in headless Chromium and returns the DOM after load.
func dumpDOM(t *testing.T, u string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), browserTimeout)
	defer cancel()
	profile := t.TempDir()
	cmd := exec.CommandContext(ctx, chromiumPath,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+profile, "--dump-dom", u)
	// Chromium writes caches and crash reports under HOME.
	cmd.Env = append(os.Environ(), "HOME="+profile)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("chromium did not finish within %s; stderr:\n%s", browserTimeout, stderr.String())
	}
	if err != nil {
		t.Fatalf("chromium --dump-dom %s: %v; stderr:\n%s", u, err, stderr.String())
	}
	if !strings.Contains(string(out), "TOPdesk simulator") {
		t.Fatalf("chromium returned no simulator page; stdout:\n%s\nstderr:\n%s", out, stderr.String())
	}
	return string(out)
}
