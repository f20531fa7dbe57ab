package mapping_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
)

// TestLoadErrors checks that every invalid mapping fails with a *LoadError
// naming the line and key path of the problem.
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		wantLine int
		wantPath string
	}{
		{"unknown top-level key", "incidnet:\n  category: X\n", 1, "incidnet"},
		{"unknown incident key", "incident:\n  entryType: Monitoring\n  categroy: Servers\n", 3, "incident.categroy"},
		{"unknown severity key", "severity:\n  critical:\n    prioritty: P1\n", 3, "severity.critical.prioritty"},
		{"unknown lifecycle key", "lifecycle:\n  reopenAfter: 1h\n", 2, "lifecycle.reopenAfter"},
		{"unknown route key", "routes:\n  - match: {team: a}\n    incident: {category: A}\n    stop: true\n", 4, "routes[0].stop"},
		{"unknown route incident key", "routes:\n  - match: {team: a}\n    incident:\n      priority: P1\n", 4, "routes[0].incident.priority"},
		{"unknown caller key", "incident:\n  caller:\n    name: x\n", 3, "incident.caller.name"},
		{"duplicate key", "incident:\n  category: A\n  category: B\n", 3, "incident.category"},
		{"YAML syntax error", "incident:\n  category: [\n", 2, ""},
		{"root is a list", "- a\n", 1, ""},
		{"section is a string", "incident: yes please\n", 1, "incident"},
		{"template does not parse", "incident:\n  briefDescription: '{{ .Summary '\n", 2, "incident.briefDescription"},
		{"template uses an unknown field", "incident:\n  request: |\n    {{ .Sumary }}\n", 2, "incident.request"},
		{"unknown field through $", "actions:\n  update: '{{ with .Labels }}{{ $.Severty }}{{ end }}'\n", 2, "actions.update"},
		{"range over a number", "incident:\n  request: '{{ range 300000000 }}x{{ end }}'\n", 2, "incident.request"},
		{"unknown function", "incident:\n  briefDescription: '{{ env \"HOME\" }}'\n", 2, "incident.briefDescription"},
		{"markup that ends inside a tag", "incident:\n  request: '<a href=\"{{ .URL }}'\n", 2, "incident.request"},
		{"template is not a string", "incident:\n  request: {a: b}\n", 2, "incident.request"},
		{"name is a template", "incident:\n  category: '{{ .Labels.team }}'\n", 2, "incident.category"},
		{"name is empty", "incident:\n  operatorGroup: ''\n", 2, "incident.operatorGroup"},
		{"name is null", "incident:\n  operatorGroup:\n", 2, "incident.operatorGroup"},
		{"caller and callerLookup", "incident:\n  caller: {dynamicName: x}\n  callerLookup: {email: a@b.c}\n", 3, "incident.callerLookup"},
		{"callerLookup without e-mail", "incident:\n  callerLookup: {}\n", 2, "incident.callerLookup.email"},
		{"callerLookup e-mail invalid", "incident:\n  callerLookup: {email: ops}\n", 2, "incident.callerLookup.email"},
		{"caller without dynamicName", "incident:\n  caller: {}\n", 2, "incident.caller.dynamicName"},
		{"bad line status", "incident:\n  status: partial\n", 2, "incident.status"},
		{"severity with priority and impact", "severity:\n  critical: {priority: P1, impact: High, urgency: High}\n", 2, "severity.critical"},
		{"severity with impact only", "severity:\n  critical: {impact: High}\n", 2, "severity.critical"},
		{"severity with nothing", "severity:\n  critical: {}\n", 2, "severity.critical"},
		{"severity listed twice", "severity:\n  critical: {priority: P1}\n  Critical: {priority: P2}\n", 3, "severity.Critical"},
		{"severity is a list", "severity: [critical]\n", 1, "severity"},
		{"reopenWindow not a duration", "lifecycle:\n  reopenWindow: 1 day\n", 2, "lifecycle.reopenWindow"},
		{"reopenWindow negative", "lifecycle:\n  reopenWindow: -1h\n", 2, "lifecycle.reopenWindow"},
		{"reorderWindow not a duration", "lifecycle:\n  reorderWindow: soon\n", 2, "lifecycle.reorderWindow"},
		{"maxClockAhead negative", "lifecycle:\n  maxClockAhead: -5m\n", 2, "lifecycle.maxClockAhead"},
		{"resolveDelay not a duration", "lifecycle:\n  resolveDelay: a while\n", 2, "lifecycle.resolveDelay"},
		{"resolveDelay negative", "lifecycle:\n  resolveDelay: -1m\n", 2, "lifecycle.resolveDelay"},
		{"flapping changes below 2", "flapping:\n  changes: 1\n", 2, "flapping.changes"},
		{"flapping changes not a number", "flapping:\n  changes: many\n", 2, "flapping.changes"},
		{"flapping window zero", "flapping:\n  window: 0s\n", 2, "flapping.window"},
		{"flapping quiet not a duration", "flapping:\n  quiet: later\n", 2, "flapping.quiet"},
		{"unknown flapping key", "flapping:\n  count: 3\n", 2, "flapping.count"},
		{"unknown resolve mode", "lifecycle:\n  resolve: delete\n", 2, "lifecycle.resolve"},
		{"closureCode without close", "lifecycle:\n  resolve: complete\n  closureCode: Solved\n", 3, "lifecycle.closureCode"},
		{"resolvedStatus with comment", "lifecycle:\n  resolve: comment\n  resolvedStatus: Closed\n", 3, "lifecycle.resolvedStatus"},
		{"resolvedPrefix too long", "lifecycle:\n  resolvedPrefix: '" + strings.Repeat("x", 41) + "'\n", 2, "lifecycle.resolvedPrefix"},
		{"key labels not a list", "key:\n  labels: alertname\n", 2, "key.labels"},
		{"key label listed twice", "key:\n  labels: [a, b, a]\n", 2, "key.labels[2]"},
		{"key label with =", "key:\n  labels:\n    - 'a=b'\n", 3, "key.labels[0]"},
		{"routes not a list", "routes: {team: a}\n", 1, "routes"},
		{"route without incident", "routes:\n  - match: {team: a}\n", 2, "routes[0].incident"},
		{"route that sets nothing", "routes:\n  - match: {team: a}\n    incident: {}\n", 3, "routes[0].incident"},
		{"route match value not a string", "routes:\n  - match: {team: [a]}\n    incident: {category: A}\n", 2, "routes[0].match.team"},
		{"second route invalid", "routes:\n  - match: {team: a}\n    incident: {category: A}\n  - match: {team: b}\n    incident: {category: ''}\n", 5, "routes[1].incident.category"},
		{"empty update action", "actions:\n  update: ''\n", 2, "actions.update"},
		{"empty brief description", "incident:\n  briefDescription: ''\n", 2, "incident.briefDescription"},
		{"blank brief description", "incident:\n  briefDescription: '   '\n", 2, "incident.briefDescription"},
		{"null brief description", "incident:\n  briefDescription:\n", 2, "incident.briefDescription"},
		{"empty caller dynamicName", "incident:\n  caller: {dynamicName: ''}\n", 2, "incident.caller.dynamicName"},
		{"blank caller dynamicName", "incident:\n  caller:\n    dynamicName: \"\\t \"\n", 3, "incident.caller.dynamicName"},
		{"invisibleForCaller not a bool", "actions:\n  invisibleForCaller: yes\n", 2, "actions.invisibleForCaller"},
		{"status rule without from", "status:\n  resolved: [Clear]\n", 1, "status.from"},
		{"status rule without resolved values", "status:\n  from: '{{ .Severity }}'\n", 1, "status.resolved"},
		{"status rule from empty", "status:\n  from: ' '\n  resolved: [Clear]\n", 2, "status.from"},
		{"status rule from does not parse", "status:\n  from: '{{ .Severity '\n  resolved: [Clear]\n", 2, "status.from"},
		{"status rule unknown key", "status:\n  from: x\n  resolved: [Clear]\n  firing: [x]\n", 4, "status.firing"},
		{"merge key", "base: &b {category: A}\nincident:\n  <<: *b\n", 1, "base"},
		{"merge key only", "incident:\n  <<: {category: A}\n", 2, "incident.<<"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := mapping.Load([]byte(tc.yaml))
			var le *mapping.LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Load() = %v, %v; want a *LoadError", m, err)
			}
			if le.Line != tc.wantLine || le.Path != tc.wantPath {
				t.Errorf("Load() error %q at line %d path %q; want line %d path %q", err, le.Line, le.Path, tc.wantLine, tc.wantPath)
			}
			if le.Msg == "" {
				t.Errorf("Load() error %q says nothing", err)
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("incident:\n  categroy: X\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		wantErr func(error) bool
	}{
		{"missing file", filepath.Join(dir, "none.yaml"), func(err error) bool { return errors.Is(err, os.ErrNotExist) }},
		{"invalid file", bad, func(err error) bool {
			var le *mapping.LoadError
			return errors.As(err, &le) && le.Line == 2 && strings.Contains(err.Error(), bad)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := mapping.LoadFile(tc.path)
			if err == nil || !tc.wantErr(err) {
				t.Fatalf("LoadFile() = %v, %v", m, err)
			}
		})
	}
}

// TestDeployDefaultIsBuiltIn keeps deploy/mappings/default.yaml identical to
// the built-in default.
func TestDeployDefaultIsBuiltIn(t *testing.T) {
	deployed, err := os.ReadFile("../deploy/mappings/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(deployed, mapping.DefaultYAML()) {
		t.Fatal("deploy/mappings/default.yaml differs from mapping/default.yaml; copy one over the other")
	}
	m, err := mapping.LoadFile("../deploy/mappings/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := mapping.Alert{Key: "k", Status: mapping.StatusFiring, Severity: "critical", Summary: "s",
		Labels: map[string]string{"team": "dba"}}
	for _, op := range []mapping.Op{mapping.OpCreate, mapping.OpUpdate, mapping.OpResolve, mapping.OpReopen} {
		got, err1 := m.Render(&a, "k", op)
		want, err2 := mapping.Default().Render(&a, "k", op)
		if err1 != nil || err2 != nil {
			t.Fatalf("Render(%s): %v, %v", op, err1, err2)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: deploy default renders differently from Default() (-want +got):\n%s", op, diff)
		}
	}
}

func TestDefault(t *testing.T) {
	m := mapping.Default()
	want := []topdesk.NameRef{}
	if diff := cmp.Diff(want, m.Names()); diff != "" {
		t.Errorf("Default().Names() uses tenant names (-want +got):\n%s", diff)
	}
	wantLC := mapping.Lifecycle{Resolve: mapping.ResolveClose, ReopenWindow: 24 * time.Hour, ResolvedPrefix: "[RESOLVED] ",
		ReorderWindow: time.Minute, MaxClockAhead: 5 * time.Minute}
	if diff := cmp.Diff(wantLC, m.Lifecycle()); diff != "" {
		t.Errorf("Default().Lifecycle() mismatch (-want +got):\n%s", diff)
	}
	if got := m.KeyLabels(); len(got) != 0 {
		t.Errorf("Default().KeyLabels() = %v, want none", got)
	}
	a := mapping.Alert{Key: "k", Status: mapping.StatusFiring, Summary: "s"}
	r, err := m.Render(&a, "k", mapping.OpCreate)
	if err != nil {
		t.Fatal(err)
	}
	if r.Request.Caller == nil || r.Request.Caller.DynamicName != "alertdesk" {
		t.Errorf("Default() caller = %+v, want dynamicName alertdesk", r.Request.Caller)
	}
	r, err = m.Render(&a, "k", mapping.OpResolve)
	if err != nil {
		t.Fatal(err)
	}
	if r.Request.Closed == nil || !*r.Request.Closed || r.Request.ProcessingStatus != nil {
		t.Errorf("Default() resolve = %+v, want closed: true and no processing status", r.Request)
	}
}

// TestExampleMapping loads deploy/mappings/example.yaml and checks the names
// it asks `alertdesk check` to resolve.
func TestExampleMapping(t *testing.T) {
	m, err := mapping.LoadFile(exampleMappingFile)
	if err != nil {
		t.Fatal(err)
	}
	ref := func(f topdesk.Field, name, category string) topdesk.NameRef {
		return topdesk.NameRef{Field: f, Name: name, Category: category}
	}
	want := []topdesk.NameRef{
		ref(topdesk.FieldCategory, "Applications", ""),
		ref(topdesk.FieldCategory, "Databases", ""),
		ref(topdesk.FieldCategory, "Infrastructure", ""),
		ref(topdesk.FieldEntryType, "Monitoring", ""),
		ref(topdesk.FieldOperatorGroup, "DBA", ""),
		ref(topdesk.FieldOperatorGroup, "Network", ""),
		ref(topdesk.FieldOperatorGroup, "Operations", ""),
		ref(topdesk.FieldPriority, "P1", ""),
		ref(topdesk.FieldPriority, "P2", ""),
		ref(topdesk.FieldPriority, "P3", ""),
		ref(topdesk.FieldPriority, "P4", ""),
		ref(topdesk.FieldPriority, "P5", ""),
		ref(topdesk.FieldProcessingStatus, "Closed", ""),
		ref(topdesk.FieldProcessingStatus, "In progress", ""),
		ref(topdesk.FieldProcessingStatus, "Logged", ""),
		ref(topdesk.FieldSubcategory, "Network", "Infrastructure"),
		ref(topdesk.FieldSubcategory, "Oracle", "Databases"),
		ref(topdesk.FieldSubcategory, "PostgreSQL", "Databases"),
		ref(topdesk.FieldSubcategory, "Servers", "Infrastructure"),
		ref(topdesk.FieldSubcategory, "Web", "Applications"),
	}
	if diff := cmp.Diff(want, m.Names()); diff != "" {
		t.Errorf("Names() mismatch (-want +got):\n%s", diff)
	}
	wantLC := mapping.Lifecycle{
		OpenStatus: "Logged", Resolve: mapping.ResolveClose, ResolvedStatus: "Closed",
		ReopenWindow: 24 * time.Hour, ReopenStatus: "In progress", ResolvedPrefix: "[RESOLVED] ",
		ReorderWindow: time.Minute, MaxClockAhead: 5 * time.Minute,
	}
	if diff := cmp.Diff(wantLC, m.Lifecycle()); diff != "" {
		t.Errorf("Lifecycle() mismatch (-want +got):\n%s", diff)
	}
}

func TestNamesOfTestMappings(t *testing.T) {
	tests := []struct {
		file string
		want []topdesk.NameRef
	}{
		{"testdata/impact-urgency.mapping.yaml", []topdesk.NameRef{
			{Field: topdesk.FieldCallType, Name: "Disruption"},
			{Field: topdesk.FieldCallerEmail, Name: "monitoring@example.com"},
			{Field: topdesk.FieldCategory, Name: "Applications"},
			{Field: topdesk.FieldDuration, Name: "4 hours"},
			{Field: topdesk.FieldImpact, Name: "Company"},
			{Field: topdesk.FieldImpact, Name: "Department"},
			{Field: topdesk.FieldOperator, Name: "Jane Doe"},
			{Field: topdesk.FieldOperatorGroup, Name: "Platform"},
			{Field: topdesk.FieldProcessingStatus, Name: "Completed"},
			{Field: topdesk.FieldProcessingStatus, Name: "Registered"},
			{Field: topdesk.FieldSubcategory, Name: "Web", Category: "Applications"},
			{Field: topdesk.FieldUrgency, Name: "High"},
			{Field: topdesk.FieldUrgency, Name: "Medium"},
		}},
		{"testdata/routes.mapping.yaml", []topdesk.NameRef{
			{Field: topdesk.FieldCategory, Name: "Infrastructure"},
			{Field: topdesk.FieldClosureCode, Name: "Solved automatically"},
			{Field: topdesk.FieldEntryType, Name: "Monitoring"},
			{Field: topdesk.FieldEntryType, Name: "Zabbix"},
			{Field: topdesk.FieldOperatorGroup, Name: "NOC"},
			{Field: topdesk.FieldOperatorGroup, Name: "On-call"},
			{Field: topdesk.FieldOperatorGroup, Name: "Operations"},
			{Field: topdesk.FieldPriority, Name: "P1"},
			{Field: topdesk.FieldPriority, Name: "P3"},
			{Field: topdesk.FieldSubcategory, Name: "Servers", Category: "Infrastructure"},
			{Field: topdesk.FieldSubcategory, Name: "Storage", Category: "Infrastructure"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			m, err := mapping.LoadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, m.Names()); diff != "" {
				t.Errorf("Names() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLoadInherits checks that keys a file leaves out keep the default's
// values, and that an empty file is the default.
func TestLoadInherits(t *testing.T) {
	a := mapping.Alert{Key: "k", Status: mapping.StatusFiring, Severity: "critical", Summary: "Disk full"}
	want, err := mapping.Default().Render(&a, "k", mapping.OpCreate)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		yaml   string
		change func(*topdesk.IncidentRequest)
	}{
		{"empty file", "", func(*topdesk.IncidentRequest) {}},
		{"comments only", "# nothing\n", func(*topdesk.IncidentRequest) {}},
		{"category only", "incident: {category: Infrastructure}", func(r *topdesk.IncidentRequest) {
			r.Category = &topdesk.Ref{Name: "Infrastructure"}
		}},
		{"callerLookup replaces caller", "incident: {callerLookup: {email: a@example.com}}", func(r *topdesk.IncidentRequest) {
			r.Caller, r.CallerLookup = nil, &topdesk.CallerLookup{Email: "a@example.com"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mustLoad(t, tc.yaml).Render(&a, "k", mapping.OpCreate)
			if err != nil {
				t.Fatal(err)
			}
			w := want.Request
			tc.change(&w)
			if diff := cmp.Diff(w, got.Request); diff != "" {
				t.Errorf("Render mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLifecycleSettings(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want mapping.Lifecycle
	}{
		{"never reopen, no prefix", "lifecycle: {reopenWindow: 0s, resolvedPrefix: ''}",
			mapping.Lifecycle{Resolve: mapping.ResolveClose, ResolvedPrefix: "", ReorderWindow: time.Minute, MaxClockAhead: 5 * time.Minute}},
		{"complete with status", "lifecycle: {resolve: complete, resolvedStatus: Done, reopenWindow: 90m}",
			mapping.Lifecycle{Resolve: mapping.ResolveComplete, ResolvedStatus: "Done", ReopenWindow: 90 * time.Minute, ResolvedPrefix: "[RESOLVED] ", ReorderWindow: time.Minute, MaxClockAhead: 5 * time.Minute}},
		{"close with closure code", "lifecycle: {closureCode: Solved, openStatus: New}",
			mapping.Lifecycle{Resolve: mapping.ResolveClose, ClosureCode: "Solved", OpenStatus: "New", ReopenWindow: 24 * time.Hour, ResolvedPrefix: "[RESOLVED] ", ReorderWindow: time.Minute, MaxClockAhead: 5 * time.Minute}},
		{"event order windows", "lifecycle: {reorderWindow: 30s, maxClockAhead: 10m}",
			mapping.Lifecycle{Resolve: mapping.ResolveClose, ReopenWindow: 24 * time.Hour, ResolvedPrefix: "[RESOLVED] ", ReorderWindow: 30 * time.Second, MaxClockAhead: 10 * time.Minute}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, mustLoad(t, tc.yaml).Lifecycle()); diff != "" {
				t.Errorf("Lifecycle() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLoadReportsEveryProblem checks that one Load names every problem of
// a file, first line first, not only the first one.
func TestLoadReportsEveryProblem(t *testing.T) {
	src := "incident:\n  categroy: X\nlifecycle:\n  resolve: delete\nseverity:\n  critical: {}\nroutes:\n  - match: {team: a}\n"
	_, err := mapping.Load([]byte(src))
	var le *mapping.LoadError
	if !errors.As(err, &le) || le.Line != 2 {
		t.Fatalf("Load() = %v; want a *LoadError at line 2 first", err)
	}
	for _, want := range []string{
		"line 2: incident.categroy: unknown key",
		"line 4: lifecycle.resolve: must be close, complete or comment",
		"line 6: severity.critical: needs priority",
		"line 8: routes[0].incident: is required",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Load() error %q does not say %q", err, want)
		}
	}
}

// TestLoadRefusesEmptyTemplates: a brief description or caller name that
// is empty or blank would render empty for every event, and every event
// would be dead-lettered; Load refuses it, one line per problem, like an
// empty action.
func TestLoadRefusesEmptyTemplates(t *testing.T) {
	src := "incident:\n  briefDescription: ' '\n  caller: {dynamicName: ''}\nactions:\n  resolve: ''\n"
	_, err := mapping.Load([]byte(src))
	if err == nil {
		t.Fatal("Load() = nil error; want the empty templates refused")
	}
	want := "line 2: incident.briefDescription: must not be empty\n" +
		"line 3: incident.caller.dynamicName: must not be empty\n" +
		"line 5: actions.resolve: must not be empty: every resolve adds an action"
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("Load() error mismatch (-want +got):\n%s", diff)
	}
}

// FuzzLoad checks that Load never panics on any mapping file, and fails
// only with *LoadError problems.
func FuzzLoad(f *testing.F) {
	files, err := filepath.Glob("testdata/*.mapping.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range append(files, "../deploy/mappings/example.yaml", "../deploy/sources/opmanager/mapping.yaml") {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("incident:\n  categroy: X\nseverity: {a: {}}\nroutes: [{match: {a: [b]}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := mapping.Load(data)
		if err == nil {
			return
		}
		var le *mapping.LoadError
		if !errors.As(err, &le) {
			t.Fatalf("Load error %v is not a *LoadError", err)
		}
	})
}
