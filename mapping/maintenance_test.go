package mapping_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/alertdesk/alertdesk/mapping"
)

// TestMaintenanceLoad: the mapping's maintenance windows compile and cover
// what they match.
func TestMaintenanceLoad(t *testing.T) {
	m, err := mapping.Load([]byte(`maintenance:
  - match: {env: staging}
    schedule: "0 22 * * 6"
    duration: 6h
    timezone: Europe/Amsterdam
    reason: weekly patching
  - match: {host: db-7}
    from: 2026-12-05T22:00:00+01:00
    to: "2026-12-06T02:00:00+01:00"
`))
	if err != nil {
		t.Fatal(err)
	}
	ws := m.Maintenance()
	if len(ws) != 2 || ws[0].ID != "maintenance[0]" || ws[0].Reason != "weekly patching" || ws[1].ID != "maintenance[1]" {
		t.Fatalf("windows %+v", ws)
	}
	// Saturday 2026-12-05 23:00 in Amsterdam.
	at := time.Date(2026, 12, 5, 22, 0, 0, 0, time.UTC)
	c, ok := ws.Cover(map[string]string{"env": "staging", "host": "web-1"}, at)
	if !ok || c.Window.ID != "maintenance[0]" || !c.End.Equal(time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)) {
		t.Errorf("staging at %s: covered %v by %+v", at, ok, c)
	}
	if _, ok := ws.Cover(map[string]string{"host": "db-8"}, at); ok {
		t.Error("db-8 is covered, want not")
	}
	if len(mapping.Default().Maintenance()) != 0 {
		t.Error("the built-in mapping has maintenance windows")
	}
}

// TestMaintenanceLoadErrors: every problem of a bad window is reported at
// its own line and path, all at once.
func TestMaintenanceLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // "line: path"
	}{
		{"bad schedule", "maintenance:\n  - match: {env: staging}\n    schedule: \"0 25 * * *\"\n    duration: 6h\n", []string{"3: maintenance[0].schedule"}},
		{"duration not a duration", "maintenance:\n  - match: {env: staging}\n    schedule: \"@daily\"\n    duration: 6 hours\n", []string{"4: maintenance[0].duration"}},
		{"schedule without duration", "maintenance:\n  - match: {env: staging}\n    schedule: \"@daily\"\n", []string{"2: maintenance[0].duration"}},
		{"unknown time zone", "maintenance:\n  - match: {env: staging}\n    schedule: \"@daily\"\n    duration: 1h\n    timezone: Mars/Olympus\n", []string{"5: maintenance[0].timezone"}},
		{"from not a time", "maintenance:\n  - match: {host: a}\n    from: yesterday\n    to: 2026-12-06T02:00:00Z\n", []string{"3: maintenance[0].from"}},
		{"to before from", "maintenance:\n  - match: {host: a}\n    from: 2026-12-06T02:00:00Z\n    to: 2026-12-06T01:00:00Z\n", []string{"4: maintenance[0].to"}},
		{"no match", "maintenance:\n  - schedule: \"@daily\"\n    duration: 1h\n", []string{"2: maintenance[0].match"}},
		{"unknown key", "maintenance:\n  - match: {host: a}\n    shedule: \"@daily\"\n    duration: 1h\n", []string{"3: maintenance[0].shedule"}},
		{"two problems in one window", "maintenance:\n  - match: {env: x}\n    schedule: \"0 25 * * *\"\n    duration: 6 hours\n",
			[]string{"3: maintenance[0].schedule", "4: maintenance[0].duration"}},
		{"several windows, several problems", "maintenance:\n  - match: {host: a}\n    schedule: \"@daily\"\n  - match: {host: b}\n    from: 2026-12-06T02:00:00Z\n    schedule: \"@daily\"\n",
			[]string{"2: maintenance[0].duration", "6: maintenance[1].schedule"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mapping.Load([]byte(tc.yaml))
			if err == nil {
				t.Fatal("loaded, want an error")
			}
			var got []string
			for _, e := range strings.Split(err.Error(), "\n") {
				var le *mapping.LoadError
				if !errors.As(err, &le) {
					t.Fatalf("error %v is not a *LoadError", err)
				}
				line, rest, _ := strings.Cut(strings.TrimPrefix(e, "line "), ": ")
				path, _, _ := strings.Cut(rest, ": ")
				got = append(got, line+": "+path)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s\nerror:\n%v", diff, err)
			}
		})
	}
}
