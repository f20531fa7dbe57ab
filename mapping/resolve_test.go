package mapping_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/alertdesk/alertdesk/mapping"
)

// TestResolveWithoutSummary checks PRODUCT.md "Incidents and operators": a
// resolve that carries no summary never turns the brief description into
// "[RESOLVED] <key>", and no shipped action leaves an empty sentence such as
// "Alert resolved:" with nothing after it.
func TestResolveWithoutSummary(t *testing.T) {
	mappings := map[string]*mapping.Mapping{"default": mapping.Default()}
	for _, name := range []string{"../deploy/mappings/example.yaml"} {
		m, err := mapping.LoadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		mappings[name] = m
	}
	a := mapping.Alert{Key: "db-7/disk-full", Status: mapping.StatusResolved, Severity: "critical"}
	for name, m := range mappings {
		for _, op := range []mapping.Op{mapping.OpUpdate, mapping.OpResolve, mapping.OpReopen} {
			r, err := m.Render(&a, a.Key, op)
			if err != nil {
				t.Fatalf("%s: Render(%s): %v", name, op, err)
			}
			if op == mapping.OpResolve && strings.Contains(r.Request.BriefDescription, a.Key) {
				t.Errorf("%s: resolve sets briefDescription %q: the key replaces the incident's own", name, r.Request.BriefDescription)
			}
			if emptySentence.MatchString(r.Request.Action) {
				t.Errorf("%s: %s action %q leaves an empty sentence", name, op, r.Request.Action)
			}
		}
	}
}

// emptySentence matches a colon followed by nothing: "Alert resolved:" or
// "Alert changed:  (severity critical)".
var emptySentence = regexp.MustCompile(`:\s*(\(|$)`)

// TestResolvedBrief checks the brief description a resolve gives an
// incident from its own: the prefix once, within TOPdesk's limit.
func TestResolvedBrief(t *testing.T) {
	m := mapping.Default()
	tests := []struct{ current, want string }{
		{"Disk / at 97% on db-7", "[RESOLVED] Disk / at 97% on db-7"},
		{"[RESOLVED] Disk / at 97% on db-7", "[RESOLVED] Disk / at 97% on db-7"},
		{strings.Repeat("x", 80), "[RESOLVED] " + strings.Repeat("x", 68) + "…"},
	}
	for _, tc := range tests {
		if got := m.ResolvedBrief(tc.current); got != tc.want {
			t.Errorf("ResolvedBrief(%q) = %q, want %q", tc.current, got, tc.want)
		}
	}
}

// TestResolveKeepsIncidentBrief checks PRODUCT.md "Incidents and
// operators": a resolve keeps the incident's own brief description. The
// resolve event's summary often differs from the firing's (Grafana values,
// "Interface … is up"), so the resolve leaves the brief description to the
// caller, which knows the incident's (ResolvedBrief), and never renders one
// from the resolve event.
func TestResolveKeepsIncidentBrief(t *testing.T) {
	m := mapping.Default()
	firing := &mapping.Alert{Key: "k", Status: mapping.StatusFiring, Summary: "CPU at 97% on web-1"}
	resolved := &mapping.Alert{Key: "k", Status: mapping.StatusResolved, Summary: "CPU at 12% on web-1"}
	c, err := m.Render(firing, "k", mapping.OpCreate)
	if err != nil {
		t.Fatal(err)
	}
	r, err := m.Render(resolved, "k", mapping.OpResolve)
	if err != nil {
		t.Fatal(err)
	}
	if b := r.Request.BriefDescription; b != "" && b != m.ResolvedBrief(c.Request.BriefDescription) {
		t.Errorf("resolve brief = %q; the incident's own is %q", b, c.Request.BriefDescription)
	}
}
