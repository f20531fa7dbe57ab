package main

import (
	"strings"
	"testing"
)

// TestRenderGroup: render names the group key and the storm rule of an
// alert whose mapping groups it, and says nothing of either otherwise.
func TestRenderGroup(t *testing.T) {
	t.Setenv("ALERTDESK_MAPPING_FILE", "")
	grouped := writeFile(t, "group.yaml", "group: {alertmanager: true}\n"+
		"routes:\n  - match: {team: network}\n    majorIncident: {threshold: 10, window: 5m}\n")
	hook := strings.Replace(webhook, `"receiver": "alertdesk",`, `"receiver": "alertdesk", "groupKey": "{}:{team=\"network\"}",`, 1)
	code, stdout, stderr := runRender(t, hook, "--mapping", grouped)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	rest := stdout
	for _, w := range []string{
		"=== alert 1 of 2", `group:          group:{}:{team="network"} (externalNumber alertdesk-`,
		"storm:          routes[0]: over 10 new incidents within 5m0s make one major call",
		"=== alert 2 of 2", `group:          group:{}:{team="network"}`,
	} {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("output lacks %q (in order); output:\n%s", w, stdout)
		}
		rest = rest[i+len(w):]
	}
	if strings.Contains(rest, "storm:") {
		t.Errorf("the dba alert has no storm rule; output:\n%s", stdout)
	}

	_, plain, _ := runRender(t, hook)
	if strings.Contains(plain, "group:") || strings.Contains(plain, "storm:") {
		t.Errorf("the built-in mapping groups nothing; output:\n%s", plain)
	}
}
