package mapping_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
)

func TestUpdatesLoad(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want mapping.Updates
	}{
		{"default: every updatable field, no repeat", "", mapping.Updates{Fields: mapping.UpdatableFields}},
		{"fields in canonical order", "updates: {fields: [priority, briefDescription]}",
			mapping.Updates{Fields: []string{"briefDescription", "priority"}}},
		{"no field: actions only", "updates: {fields: []}", mapping.Updates{Fields: []string{}}},
		{"repeat", "updates: {repeat: {every: 1h}}", mapping.Updates{Fields: mapping.UpdatableFields, RepeatEvery: time.Hour}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mustLoad(t, tc.yaml).Updates()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Updates() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUpdatesLoadErrors(t *testing.T) {
	tests := []struct {
		name, yaml, wantPath string
	}{
		{"unknown field", "updates:\n  fields: [briefDescription, category]\n", "updates.fields[1]"},
		{"request is never rewritten", "updates:\n  fields: [request]\n", "updates.fields[0]"},
		{"field listed twice", "updates:\n  fields: [priority, priority]\n", "updates.fields[1]"},
		{"repeat without every", "updates:\n  repeat: {}\n", "updates.repeat.every"},
		{"repeat not a duration", "updates:\n  repeat: {every: hourly}\n", "updates.repeat.every"},
		{"repeat too short", "updates:\n  repeat: {every: 10ms}\n", "updates.repeat.every"},
		{"unknown updates key", "updates:\n  feilds: [priority]\n", "updates.feilds"},
		{"object template does not parse", "incident:\n  object: '{{ .Labels.host '\n", "incident.object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mapping.Load([]byte(tc.yaml))
			var le *mapping.LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Load: got %v, want a *LoadError", err)
			}
			if le.Path != tc.wantPath {
				t.Errorf("path: got %q, want %q (%v)", le.Path, tc.wantPath, err)
			}
		})
	}
}

// TestRenderUpdateFields checks that an update, a resolve and a reopen
// write only the fields of updates.fields, and never the request text.
func TestRenderUpdateFields(t *testing.T) {
	m := mustLoad(t, `
severity:
  critical: {impact: High, urgency: High}
updates:
  fields: [urgency]
`)
	a := &mapping.Alert{Status: mapping.StatusFiring, Severity: "critical", Summary: "Disk full"}
	for _, op := range []mapping.Op{mapping.OpUpdate, mapping.OpResolve, mapping.OpReopen} {
		r, err := m.Render(a, "k", op)
		if err != nil {
			t.Fatal(err)
		}
		req := r.Request
		if req.BriefDescription != "" || req.Impact != nil || req.Priority != nil || req.Request != "" {
			t.Errorf("%s writes fields updates.fields leaves out: %+v", op, req)
		}
		if op != mapping.OpResolve && (req.Urgency == nil || req.Urgency.Name != "High") {
			t.Errorf("%s: urgency = %v, want High", op, req.Urgency)
		}
		if req.Action == "" {
			t.Errorf("%s: no action", op)
		}
	}
	if got := m.ResolvedBrief("Disk full"); got != "" {
		t.Errorf("ResolvedBrief = %q, want none: the brief description is not updatable", got)
	}
	r, err := m.Render(a, "k", mapping.OpReopen)
	if err != nil {
		t.Fatal(err)
	}
	if r.Request.Closed == nil || *r.Request.Closed {
		t.Errorf("reopen: closed = %v, want false", r.Request.Closed)
	}
	r, err = m.Render(a, "k", mapping.OpCreate)
	if err != nil {
		t.Fatal(err)
	}
	if r.Request.BriefDescription != "Disk full" || r.Request.Impact == nil || r.Request.Request == "" {
		t.Errorf("create lacks fields: %+v", r.Request)
	}
}

func TestRenderObject(t *testing.T) {
	m := mustLoad(t, `incident: {object: '{{ index .Labels "host" }}'}`)
	a := &mapping.Alert{Status: mapping.StatusFiring, Summary: "Disk full", Labels: map[string]string{"host": "db-7"}}
	r, err := m.Render(a, "k", mapping.OpCreate)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&topdesk.Ref{Name: "db-7"}, r.Request.Object); diff != "" {
		t.Errorf("create object (-want +got):\n%s", diff)
	}
	if r, err = m.Render(a, "k", mapping.OpUpdate); err != nil || r.Request.Object != nil {
		t.Errorf("update: object %v, err %v; want none: the link is set at create only", r.Request.Object, err)
	}
	if r, err = m.Render(&mapping.Alert{Status: mapping.StatusFiring, Summary: "x"}, "k", mapping.OpCreate); err != nil || r.Request.Object != nil {
		t.Errorf("index of a missing label: object %v, err %v; want none", r.Request.Object, err)
	}
	strict := mustLoad(t, `incident: {object: '{{ .Labels.host }}'}`)
	_, err = strict.Render(&mapping.Alert{Status: mapping.StatusFiring, Summary: "x", Labels: map[string]string{}}, "k", mapping.OpCreate)
	if !errors.Is(err, mapping.ErrTemplate) {
		t.Errorf("alert without the label: got %v, want ErrTemplate", err)
	}
	empty := mustLoad(t, `incident: {object: '{{ .Labels.host | default "" }}'}`)
	a.Labels = map[string]string{"host": " "}
	if r, err = empty.Render(a, "k", mapping.OpCreate); err != nil || r.Request.Object != nil {
		t.Errorf("blank object name: object %v, err %v; want none", r.Request.Object, err)
	}
}

func TestNoteObjectMissing(t *testing.T) {
	r, err := mapping.Default().Render(&mapping.Alert{Status: mapping.StatusFiring, Summary: "Disk full"}, "db-7/disk", mapping.OpCreate)
	if err != nil {
		t.Fatal(err)
	}
	got := mapping.NoteObjectMissing(r.Request.Request, "db<7>", "not found in TOPdesk")
	if !strings.Contains(got, "Object db&lt;7&gt; not found in TOPdesk") {
		t.Errorf("note missing or not escaped: %q", got)
	}
	if !strings.HasSuffix(got, "Alert key: db-7/disk") {
		t.Errorf("the key line is no longer last: %q", got)
	}
}

func TestStillFiring(t *testing.T) {
	m := mustLoad(t, "actions: {invisibleForCaller: false}")
	got := m.StillFiring(51, time.Date(2026, 11, 22, 10, 0, 5, 0, time.FixedZone("CET", 3600)))
	want := topdesk.IncidentRequest{Action: "Alert still firing (51 notifications since 2026-11-22 09:00:05 UTC).", ActionInvisibleForCaller: new(false)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("StillFiring (-want +got):\n%s", diff)
	}
}
