package mapping_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
)

// opManagerBody returns deploy/sources/opmanager/body.json as OpManager
// sends it: with its variables replaced by their values, as they are.
func opManagerBody(t *testing.T, vars map[string]string) []byte {
	t.Helper()
	body, err := os.ReadFile("../deploy/sources/opmanager/body.json")
	if err != nil {
		t.Fatal(err)
	}
	s := string(body)
	for name, v := range vars {
		s = strings.ReplaceAll(s, "$"+name, v)
	}
	if strings.Contains(s, "$") {
		t.Fatalf("body keeps a variable this test does not set:\n%s", s)
	}
	return []byte(s)
}

// lifecycleStep is one rendered step of a source's lifecycle.
type lifecycleStep struct {
	Notification string                   `json:"notification"`
	Status       mapping.Status           `json:"status"`
	Op           string                   `json:"op"`
	Request      *topdesk.IncidentRequest `json:"request"`
}

// TestOpManagerLifecycle posts the shipped OpManager body with OpManager's
// values through the shipped mapping: one custom integration gives the
// requests of create, update, close and reopen. The worker's decisions are
// what the statuses and fingerprints lead to: a first firing creates, a
// changed fingerprint updates, a resolve closes, a firing after it reopens.
func TestOpManagerLifecycle(t *testing.T) {
	m, err := mapping.LoadFile("../deploy/sources/opmanager/mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	device := map[string]string{"displayName": "sw-core-1", "category": "Switch"}
	steps := []struct {
		severity, message, modTime string
		wantStatus                 mapping.Status
		op                         mapping.Op
	}{
		{"Trouble", "Interface Gi1/0/24 is down", "Dec 4, 2026 10:00:00 AM", mapping.StatusFiring, mapping.OpCreate},
		{"Critical", "Interface Gi1/0/24 and Gi1/0/23 are down", "Dec 4, 2026 10:05:00 AM", mapping.StatusFiring, mapping.OpUpdate},
		{"Clear", "Interface Gi1/0/24 is up", "Dec 4, 2026 10:20:00 AM", mapping.StatusResolved, mapping.OpResolve},
		{"Critical", "Interface Gi1/0/24 is down", "Dec 4, 2026 11:00:00 AM", mapping.StatusFiring, mapping.OpReopen},
	}
	var got []lifecycleStep
	var key, lastFingerprint string
	for i, s := range steps {
		vars := map[string]string{"stringseverity": s.severity, "message": s.message, "strModTime": s.modTime}
		for k, v := range device {
			vars[k] = v
		}
		alerts, err := m.Decode(opManagerBody(t, vars), mapping.DecodeOptions{})
		if err != nil {
			t.Fatalf("step %d: Decode: %v", i, err)
		}
		if len(alerts) != 1 || alerts[0].Status != s.wantStatus {
			t.Fatalf("step %d: decoded %+v, want one %s event", i, alerts, s.wantStatus)
		}
		a := &alerts[0]
		k, err := m.Key(a)
		if err != nil {
			t.Fatalf("step %d: Key: %v", i, err)
		}
		if key != "" && k != key {
			t.Fatalf("step %d: key %q, want the device's key %q for every notification", i, k, key)
		}
		key = k
		r, err := m.Render(a, key, s.op)
		if err != nil {
			t.Fatalf("step %d: Render(%s): %v", i, s.op, err)
		}
		if s.op == mapping.OpUpdate && r.Fingerprint == lastFingerprint {
			t.Errorf("step %d: a new severity keeps the fingerprint: the worker would drop it as a duplicate", i)
		}
		lastFingerprint = r.Fingerprint
		checkLimits(t, s.op, &r.Request)
		got = append(got, lifecycleStep{Notification: s.severity, Status: a.Status, Op: s.op.String(), Request: &r.Request})
	}
	checkGolden(t, filepath.Join("testdata", "sources-opmanager.lifecycle.golden.json"), marshalGolden(t, got))
}
