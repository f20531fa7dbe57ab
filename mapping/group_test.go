package mapping_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alertdesk/alertdesk/mapping"
)

const groupYAML = `
group: {by: [cluster, alertname]}
routes:
  - match: {team: network}
    group: {alertmanager: true}
    majorIncident: {threshold: 10, window: 5m}
  - match: {team: dba}
    incident: {category: Databases}
`

// TestGroup checks the group key by labels (top level), by Alertmanager's
// group key (a route's), and that a mapping without group groups nothing.
func TestGroup(t *testing.T) {
	m, err := mapping.Load([]byte(groupYAML))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		a    mapping.Alert
		want string
	}{
		{"by labels", mapping.Alert{Labels: map[string]string{"alertname": "Down", "cluster": "ams", "instance": "a"}},
			`group:alertname="Down",cluster="ams"`},
		{"same labels, other instance", mapping.Alert{Labels: map[string]string{"alertname": "Down", "cluster": "ams", "instance": "b"}},
			`group:alertname="Down",cluster="ams"`},
		{"a missing label is empty", mapping.Alert{Labels: map[string]string{"alertname": "Down"}}, `group:alertname="Down",cluster=""`},
		{"route without group keeps the top level's", mapping.Alert{Labels: map[string]string{"team": "dba", "alertname": "X", "cluster": "c"}},
			`group:alertname="X",cluster="c"`},
		{"route by Alertmanager's group key", mapping.Alert{GroupKey: `{}:{alertname="Down"}`, Labels: map[string]string{"team": "network"}},
			`group:{}:{alertname="Down"}`},
		{"no group key: not grouped", mapping.Alert{Labels: map[string]string{"team": "network"}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := m.Group(&tc.a); got != tc.want {
				t.Errorf("Group = %q, want %q", got, tc.want)
			}
		})
	}
	plain := mapping.Alert{Labels: map[string]string{"alertname": "Down", "cluster": "ams"}, GroupKey: "g"}
	if got := mapping.Default().Group(&plain); got != "" {
		t.Errorf("the default mapping groups: %q", got)
	}
	if _, ok := mapping.Default().MajorIncidentFor(&plain); ok {
		t.Error("the default mapping has a storm rule")
	}

	mi, ok := m.MajorIncidentFor(&mapping.Alert{Labels: map[string]string{"team": "network"}})
	if !ok || mi.Threshold != 10 || mi.Window != 5*time.Minute || mi.Route != "routes[0]" || mi.ID == "" {
		t.Errorf("MajorIncidentFor(network) = %+v, %v", mi, ok)
	}
	if _, ok := m.MajorIncidentFor(&mapping.Alert{Labels: map[string]string{"team": "dba"}}); ok {
		t.Error("the dba route has no storm rule")
	}
	// The route's ID does not depend on its place.
	swapped, err := mapping.Load([]byte(strings.Replace(groupYAML, "routes:\n", "routes:\n  - match: {team: other}\n    incident: {category: X}\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	mi2, _ := swapped.MajorIncidentFor(&mapping.Alert{Labels: map[string]string{"team": "network"}})
	if mi2.ID != mi.ID || mi2.Route != "routes[1]" {
		t.Errorf("moved route: %+v, want ID %s at routes[1]", mi2, mi.ID)
	}
}

func TestGroupLoadErrors(t *testing.T) {
	tests := []struct {
		name, yaml, path string
	}{
		{"empty group", "group: {}\n", "group"},
		{"both", "group: {by: [a], alertmanager: true}\n", "group"},
		{"bad label", "group: {by: ['a=b']}\n", "group.by[0]"},
		{"label twice", "group: {by: [a, a]}\n", "group.by[1]"},
		{"unknown key", "group: {labels: [a]}\n", "group.labels"},
		{"threshold", "routes:\n  - match: {a: b}\n    majorIncident: {threshold: 0, window: 5m}\n", "routes[0].majorIncident.threshold"},
		{"window", "routes:\n  - match: {a: b}\n    majorIncident: {threshold: 3, window: soon}\n", "routes[0].majorIncident.window"},
		{"no window", "routes:\n  - match: {a: b}\n    majorIncident: {threshold: 3}\n", "routes[0].majorIncident.window"},
		{"top-level majorIncident", "majorIncident: {threshold: 3, window: 5m}\n", "majorIncident"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mapping.Load([]byte(tc.yaml))
			var le *mapping.LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Load: %v, want a *LoadError", err)
			}
			if le.Path != tc.path {
				t.Errorf("path %q (%v), want %q", le.Path, err, tc.path)
			}
		})
	}
}
