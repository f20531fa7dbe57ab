package mapping_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/alertdesk/alertdesk/mapping"
)

// TestStatusRule checks that events without a status get it from the
// mapping's status rule, and that an event's own status wins.
func TestStatusRule(t *testing.T) {
	m := mustLoad(t, "status:\n  from: '{{ .Severity }}'\n  resolved: [Clear, ' OK ']\n")
	tests := []struct {
		name  string
		input string
		want  []mapping.Status
	}{
		{"resolved word", `{"key":"k","severity":"Clear"}`, []mapping.Status{mapping.StatusResolved}},
		{"resolved word in other case and spaces", `{"key":"k","severity":" ok "}`, []mapping.Status{mapping.StatusResolved}},
		{"any other value fires", `{"key":"k","severity":"Critical"}`, []mapping.Status{mapping.StatusFiring}},
		{"own status wins", `{"key":"k","severity":"Clear","status":"firing"}`, []mapping.Status{mapping.StatusFiring}},
		{"array mixes both", `[{"key":"a","severity":"Trouble"},{"key":"b","status":"resolved","severity":"Trouble"}]`,
			[]mapping.Status{mapping.StatusFiring, mapping.StatusResolved}},
		{"alertmanager webhook keeps its statuses", `{"version":"4","alerts":[{"status":"resolved","fingerprint":"f"}]}`,
			[]mapping.Status{mapping.StatusResolved}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			alerts, err := m.Decode([]byte(tc.input), mapping.DecodeOptions{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			var got []mapping.Status
			for _, a := range alerts {
				got = append(got, a.Status)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("statuses (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStatusRuleInvalid checks the events that the rule cannot serve.
func TestStatusRuleInvalid(t *testing.T) {
	tests := []struct {
		name    string
		mapping string
		input   string
		mention string
	}{
		{"no rule: status stays required", "", `{"key":"k","severity":"Clear"}`, `field "status": is required`},
		{"rule renders nothing", "status: {from: '{{ .Severity }}', resolved: [Clear]}", `{"key":"k"}`, "status.from rendered empty"},
		{"rule names a missing label", "status: {from: '{{ .Labels.state }}', resolved: [Clear]}", `{"key":"k","labels":{"a":"b"}}`, "status rule"},
		{"unknown status is still refused", "status: {from: '{{ .Severity }}', resolved: [Clear]}", `{"key":"k","status":"pending"}`, `unknown value "pending"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mustLoad(t, tc.mapping).Decode([]byte(tc.input), mapping.DecodeOptions{})
			checkInvalid(t, got, err, tc.mention)
		})
	}
}
