package mapping_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
)

func TestNoiseSettings(t *testing.T) {
	tests := []struct {
		name      string
		yaml      string
		wantDelay time.Duration
		want      mapping.Flapping
	}{
		{"absent: off", "lifecycle: {reopenWindow: 1h}\n", 0, mapping.Flapping{}},
		{"resolve delay", "lifecycle:\n  resolveDelay: 2m\n", 2 * time.Minute, mapping.Flapping{}},
		{"resolve delay 0", "lifecycle:\n  resolveDelay: 0s\n", 0, mapping.Flapping{}},
		{"flapping given", "flapping: {changes: 6, window: 2h, quiet: 10m}\n", 0, mapping.Flapping{Changes: 6, Window: 2 * time.Hour, Quiet: 10 * time.Minute}},
		{"flapping defaults", "flapping: {}\n", 0, mapping.Flapping{Changes: 4, Window: time.Hour, Quiet: 30 * time.Minute}},
		{"flapping partly", "flapping: {quiet: 5m}\n", 0, mapping.Flapping{Changes: 4, Window: time.Hour, Quiet: 5 * time.Minute}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := mapping.Load([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Lifecycle().ResolveDelay; got != tc.wantDelay {
				t.Errorf("resolveDelay = %s, want %s", got, tc.wantDelay)
			}
			if diff := cmp.Diff(tc.want, m.Flapping()); diff != "" {
				t.Errorf("Flapping() (-want +got):\n%s", diff)
			}
			if got := m.Flapping().On(); got != (tc.want.Changes > 0) {
				t.Errorf("On() = %v", got)
			}
		})
	}
	if mapping.Default().Flapping().On() || mapping.Default().Lifecycle().ResolveDelay != 0 {
		t.Error("the built-in default has noise control on")
	}
}

func TestNote(t *testing.T) {
	m, err := mapping.Load([]byte("actions: {invisibleForCaller: false}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var r topdesk.IncidentRequest
	m.Note(&r, "")
	if r.Action != "" || r.ActionInvisibleForCaller != nil {
		t.Fatalf("an empty note changed the request: %+v", r)
	}
	m.Note(&r, "flapping <3>\nheld open")
	if want := "flapping &lt;3&gt;<br>held open"; r.Action != want {
		t.Errorf("Action = %q, want %q", r.Action, want)
	}
	if r.ActionInvisibleForCaller == nil || *r.ActionInvisibleForCaller {
		t.Errorf("ActionInvisibleForCaller = %v, want false as the mapping says", r.ActionInvisibleForCaller)
	}
	m.Note(&r, "ended")
	if want := "flapping &lt;3&gt;<br>held open<br><br>ended"; r.Action != want {
		t.Errorf("Action = %q, want %q", r.Action, want)
	}
}
