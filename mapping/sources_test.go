package mapping_test

import (
	"maps"
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
// Like the worker, the resolve gives the incident's own brief description
// (the update's) the resolved prefix: "Interface Gi1/0/24 is up" never
// replaces it.
func TestOpManagerLifecycle(t *testing.T) {
	m, err := mapping.LoadFile("../deploy/sources/opmanager/mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	device := map[string]string{"alarmid": "1001", "displayName": "sw-core-1", "category": "Switch"}
	steps := []struct {
		severity, message, modTime string
		wantStatus                 mapping.Status
		op                         mapping.Op
	}{
		// One alarm, the device's availability: its severity rises with the
		// polls it misses, then it clears, then it is raised again.
		{"Attention", "Device not responding", "Dec 4, 2026 10:00:00 AM", mapping.StatusFiring, mapping.OpCreate},
		{"Critical", "Device not responding", "Dec 4, 2026 10:05:00 AM", mapping.StatusFiring, mapping.OpUpdate},
		{"Clear", "Device is responding", "Dec 4, 2026 10:20:00 AM", mapping.StatusResolved, mapping.OpResolve},
		{"Attention", "Device not responding", "Dec 4, 2026 11:00:00 AM", mapping.StatusFiring, mapping.OpReopen},
	}
	var got []lifecycleStep
	var key, lastFingerprint, brief string
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
			t.Fatalf("step %d: key %q, want the alarm's key %q for every notification", i, k, key)
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
		if s.op == mapping.OpResolve {
			if r.Request.BriefDescription != "" {
				t.Errorf("step %d: resolve sets briefDescription %q from the resolve event", i, r.Request.BriefDescription)
			}
			r.Request.BriefDescription = m.ResolvedBrief(brief)
		}
		brief = r.Request.BriefDescription
		checkLimits(t, s.op, &r.Request)
		got = append(got, lifecycleStep{Notification: s.severity, Status: a.Status, Op: s.op.String(), Request: &r.Request})
	}
	checkGolden(t, filepath.Join("testdata", "sources-opmanager.lifecycle.golden.json"), marshalGolden(t, got))
}

// TestOpManagerClearOfOtherAlarmKeepsIncident posts a Critical CPU alarm and
// the Clear of another alarm (an interface) of the same device: the Clear
// must not have the CPU alarm's key, or it would close the incident of an
// alarm that is still active and of which OpManager sends nothing more.
func TestOpManagerClearOfOtherAlarmKeepsIncident(t *testing.T) {
	m, err := mapping.LoadFile("../deploy/sources/opmanager/mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	keyOf := func(alarmID, severity, message string) (string, mapping.Status) {
		t.Helper()
		alerts, err := m.Decode(opManagerBody(t, map[string]string{"alarmid": alarmID, "displayName": "sw-core-1",
			"category": "Switch", "stringseverity": severity, "message": message, "strModTime": "Dec 4, 2026 10:00:00 AM"}),
			mapping.DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(alerts) != 1 {
			t.Fatalf("decoded %d events, want 1", len(alerts))
		}
		k, err := m.Key(&alerts[0])
		if err != nil {
			t.Fatal(err)
		}
		return k, alerts[0].Status
	}
	cpu, _ := keyOf("1001", "Critical", "CPU utilization is 98%")
	ifClear, st := keyOf("1002", "Clear", "Interface Gi1/0/24 is up")
	if st != mapping.StatusResolved {
		t.Fatalf("the Clear decoded as %s, want resolved", st)
	}
	if cpu == ifClear {
		t.Errorf("the Clear of the interface alarm has the CPU alarm's key %q: it closes the incident of an alarm still active", cpu)
	}
	if again, _ := keyOf("1001", "Clear", "CPU utilization is 40%"); again != cpu {
		t.Errorf("the CPU alarm's Clear has key %q, want its alarm's key %q", again, cpu)
	}
}

// TestOpManagerGroupByDevice checks the commented-out line of the shipped
// OpManager mapping that gives one incident per device: with it, two alarms
// of a device keep their own keys and share the device's group.
func TestOpManagerGroupByDevice(t *testing.T) {
	data, err := os.ReadFile("../deploy/sources/opmanager/mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const line = "# group: {by: [device]}\n"
	if !strings.Contains(string(data), line) {
		t.Fatalf("mapping.yaml has no line %q", line)
	}
	m, err := mapping.Load([]byte(strings.Replace(string(data), line, line[2:], 1)))
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string]bool{}
	for _, id := range []string{"1001", "1002"} {
		alerts, err := m.Decode(opManagerBody(t, map[string]string{"alarmid": id, "displayName": "sw-core-1",
			"category": "Switch", "stringseverity": "Critical", "message": "alarm " + id, "strModTime": "Dec 4, 2026 10:00:00 AM"}),
			mapping.DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		groups[m.Group(&alerts[0])] = true
	}
	if want := map[string]bool{`group:device="sw-core-1"`: true}; !maps.Equal(groups, want) {
		t.Errorf("groups %v, want %v", groups, want)
	}
}
