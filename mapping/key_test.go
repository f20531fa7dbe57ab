package mapping_test

import (
	"errors"
	"testing"

	"github.com/alertdesk/alertdesk/mapping"
)

func TestKey(t *testing.T) {
	withLabels := mustLoad(t, "key: {labels: [instance, alertname]}")
	tests := []struct {
		name    string
		m       *mapping.Mapping
		alert   mapping.Alert
		want    string
		wantErr error
	}{
		{"explicit key", mapping.Default(), mapping.Alert{Key: "db-7/disk-full", Fingerprint: "f"}, "db-7/disk-full", nil},
		{"explicit key beats key labels", withLabels, mapping.Alert{Key: "k", Labels: map[string]string{"alertname": "A", "instance": "i"}}, "k", nil},
		{"fingerprint", mapping.Default(), mapping.Alert{Fingerprint: "5f1a2b3c"}, "5f1a2b3c", nil},
		{"key labels sorted by name", withLabels, mapping.Alert{Labels: map[string]string{"instance": "db-7:9100", "alertname": "DiskFull", "job": "node"}},
			`alertname="DiskFull",instance="db-7:9100"`, nil},
		{"key labels beat fingerprint", withLabels, mapping.Alert{Fingerprint: "f", Labels: map[string]string{"instance": "i", "alertname": "A"}},
			`alertname="A",instance="i"`, nil},
		{"empty label value", withLabels, mapping.Alert{Labels: map[string]string{"instance": "", "alertname": "A"}},
			`alertname="A",instance=""`, nil},
		{"values are escaped", withLabels, mapping.Alert{Labels: map[string]string{"instance": "a\",b\n", "alertname": `\`}},
			`alertname="\\",instance="a\",b\n"`, nil},
		{"missing key label", withLabels, mapping.Alert{Fingerprint: "f", Labels: map[string]string{"alertname": "A"}}, "", mapping.ErrInvalid},
		{"no labels at all", withLabels, mapping.Alert{}, "", mapping.ErrInvalid},
		{"no key", mapping.Default(), mapping.Alert{Labels: map[string]string{"a": "b"}}, "", mapping.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.m.Key(&tc.alert)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Key() error = %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("Key() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestKeyInjective checks label sets that a naive join would confuse.
func TestKeyInjective(t *testing.T) {
	m := mustLoad(t, "key: {labels: [a, b]}")
	tests := []struct {
		name string
		x, y map[string]string
	}{
		{"comma moved between values", map[string]string{"a": "x,b", "b": ""}, map[string]string{"a": "x", "b": ",b"}},
		{"equals sign moved", map[string]string{"a": "x=", "b": "y"}, map[string]string{"a": "x", "b": "=y"}},
		{"quote moved", map[string]string{"a": `x"`, "b": "y"}, map[string]string{"a": "x", "b": `"y`}},
		{"fake pair in a value", map[string]string{"a": `1",b="2`, "b": "3"}, map[string]string{"a": "1", "b": `2",b="3`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kx, err1 := m.Key(&mapping.Alert{Labels: tc.x})
			ky, err2 := m.Key(&mapping.Alert{Labels: tc.y})
			if err1 != nil || err2 != nil {
				t.Fatalf("Key: %v, %v", err1, err2)
			}
			if kx == ky {
				t.Errorf("Key(%v) == Key(%v) == %q", tc.x, tc.y, kx)
			}
		})
	}
}
