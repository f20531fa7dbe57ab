package mapping_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/google/go-cmp/cmp"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// exampleMappingFile is the tenant example that golden cases named
// "example-…" render with.
const exampleMappingFile = "../deploy/mappings/example.yaml"

// goldenAlert is what a golden file records for one alert.
type goldenAlert struct {
	Key            string                   `json:"key"`
	ExternalNumber string                   `json:"externalNumber"`
	Fingerprint    string                   `json:"fingerprint"`
	Create         *topdesk.IncidentRequest `json:"create"`
	Update         *topdesk.IncidentRequest `json:"update"`
	Resolve        *topdesk.IncidentRequest `json:"resolve"`
	// ResolvedBrief is the brief description a resolve gives the incident
	// Create made: Render leaves it out of Resolve, and the worker sets it
	// from the incident's own with ResolvedBrief.
	ResolvedBrief string                   `json:"resolvedBrief,omitempty"`
	Reopen        *topdesk.IncidentRequest `json:"reopen"`
}

// mappingFor returns the mapping of a golden case: the tenant example for
// "example-…" cases, the shipped source recipe's mapping for "sources-<x>"
// cases, else testdata/<case>.mapping.yaml, else the default.
func mappingFor(t *testing.T, name string) *mapping.Mapping {
	t.Helper()
	path := filepath.Join("testdata", name+".mapping.yaml")
	if strings.HasPrefix(name, "example-") {
		path = exampleMappingFile
	}
	if source, ok := strings.CutPrefix(name, "sources-"); ok {
		path = filepath.Join("..", "deploy", "sources", source, "mapping.yaml")
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return mapping.Default()
	}
	m, err := mapping.LoadFile(path)
	if err != nil {
		t.Fatalf("LoadFile(%s): %v", path, err)
	}
	return m
}

// renderAll renders every op of every alert in a payload.
func renderAll(t *testing.T, m *mapping.Mapping, payload []byte) []goldenAlert {
	t.Helper()
	alerts, err := m.Decode(payload, mapping.DecodeOptions{})
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	var out []goldenAlert
	for i := range alerts {
		a := &alerts[i]
		key, err := m.Key(a)
		if err != nil {
			t.Fatalf("alert %d: Key: %v", i, err)
		}
		g := goldenAlert{Key: key, ExternalNumber: mapping.ExternalNumber(key)}
		dst := map[mapping.Op]**topdesk.IncidentRequest{
			mapping.OpCreate: &g.Create, mapping.OpUpdate: &g.Update,
			mapping.OpResolve: &g.Resolve, mapping.OpReopen: &g.Reopen,
		}
		for _, op := range []mapping.Op{mapping.OpCreate, mapping.OpUpdate, mapping.OpResolve, mapping.OpReopen} {
			r, err := m.Render(a, key, op)
			if err != nil {
				t.Fatalf("alert %d: Render(%s): %v", i, op, err)
			}
			if g.Fingerprint == "" {
				g.Fingerprint = r.Fingerprint
			} else if r.Fingerprint != g.Fingerprint {
				t.Errorf("alert %d: %s fingerprint %s differs from create's %s", i, op, r.Fingerprint, g.Fingerprint)
			}
			checkLimits(t, op, &r.Request)
			*dst[op] = &r.Request
		}
		g.ResolvedBrief = m.ResolvedBrief(g.Create.BriefDescription)
		checkLimits(t, mapping.OpResolve, &topdesk.IncidentRequest{BriefDescription: g.ResolvedBrief})
		out = append(out, g)
	}
	return out
}

// checkLimits asserts TOPdesk's field limits. Only a resolve may leave the
// brief description out: it keeps the incident's own.
func checkLimits(t *testing.T, op mapping.Op, r *topdesk.IncidentRequest) {
	t.Helper()
	if n := len(utf16.Encode([]rune(r.BriefDescription))); n > mapping.MaxBriefDescription || n == 0 && op != mapping.OpResolve {
		t.Errorf("%s: briefDescription has %d characters: %q", op, n, r.BriefDescription)
	}
	if n := len(r.ExternalNumber); n > 60 {
		t.Errorf("%s: externalNumber has %d characters", op, n)
	}
	if r.Caller != nil && len(utf16.Encode([]rune(r.Caller.DynamicName))) > mapping.MaxDynamicName {
		t.Errorf("%s: dynamicName too long", op)
	}
}

func marshalGolden(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestGolden renders testdata/<case>.alert.json and compares the requests of
// every op with testdata/<case>.golden.json. Run with -update to rewrite.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.alert.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no golden cases in testdata")
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".alert.json")
		t.Run(name, func(t *testing.T) {
			payload, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got := marshalGolden(t, renderAll(t, mappingFor(t, name), payload))
			checkGolden(t, filepath.Join("testdata", name+".golden.json"), got)
		})
	}
}

// checkGolden compares got with the golden file at path; with -update it
// rewrites the file first.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./mapping -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func mustLoad(t testing.TB, src string) *mapping.Mapping {
	t.Helper()
	m, err := mapping.Load([]byte(src))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return m
}

func TestRenderErrors(t *testing.T) {
	firing := mapping.Alert{Key: "k", Status: mapping.StatusFiring, Summary: "s", Labels: map[string]string{"a": "1"}}
	tests := []struct {
		name    string
		mapping string
		alert   mapping.Alert
		key     string
		op      mapping.Op
		wantErr error
	}{
		{
			name:    "missing label in brief description",
			mapping: `incident: {briefDescription: '{{ .Labels.team }}'}`,
			alert:   firing, key: "k", op: mapping.OpUpdate, wantErr: mapping.ErrTemplate,
		},
		{
			name:    "missing label in request",
			mapping: `incident: {request: '{{ .Annotations.runbook }}'}`,
			alert:   firing, key: "k", op: mapping.OpCreate, wantErr: mapping.ErrTemplate,
		},
		{
			name:    "missing label in caller",
			mapping: `incident: {caller: {dynamicName: '{{ .Labels.who }}'}}`,
			alert:   firing, key: "k", op: mapping.OpCreate, wantErr: mapping.ErrTemplate,
		},
		{
			name:    "missing label in action",
			mapping: `actions: {resolve: 'by {{ .Labels.who }}'}`,
			alert:   firing, key: "k", op: mapping.OpResolve, wantErr: mapping.ErrTemplate,
		},
		{
			name:    "brief description renders empty",
			mapping: `incident: {briefDescription: '{{ .Summary }}'}`,
			alert:   mapping.Alert{Key: "k", Status: mapping.StatusFiring}, key: "k", op: mapping.OpCreate, wantErr: mapping.ErrTemplate,
		},
		{
			name:    "caller renders empty",
			mapping: `incident: {caller: {dynamicName: '{{ .Source }}'}}`,
			alert:   firing, key: "k", op: mapping.OpCreate, wantErr: mapping.ErrTemplate,
		},
		{
			name:  "empty key",
			alert: firing, key: "", op: mapping.OpCreate, wantErr: mapping.ErrInvalid,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := mustLoad(t, tc.mapping)
			got, err := m.Render(&tc.alert, tc.key, tc.op)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Render() = %v, %v; want error %v", got, err, tc.wantErr)
			}
		})
	}
	t.Run("unknown op", func(t *testing.T) {
		if _, err := mapping.Default().Render(&firing, "k", mapping.Op(7)); err == nil {
			t.Fatal("Render(Op(7)) succeeded")
		}
	})
}

func TestRenderFingerprint(t *testing.T) {
	m := mustLoad(t, "severity: {critical: {priority: P1}, warning: {priority: P3}}")
	base := mapping.Alert{Key: "k", Status: mapping.StatusFiring, Severity: "critical", Summary: "Disk full",
		Description: "details", Labels: map[string]string{"host": "a"}}
	fp := func(a mapping.Alert) string {
		t.Helper()
		r, err := m.Render(&a, "k", mapping.OpUpdate)
		if err != nil {
			t.Fatal(err)
		}
		return r.Fingerprint
	}
	want := fp(base)
	tests := []struct {
		name   string
		change func(*mapping.Alert)
		same   bool
	}{
		{"resolved event of the same alert", func(a *mapping.Alert) { a.Status = mapping.StatusResolved }, true},
		{"other description", func(a *mapping.Alert) { a.Description = "other" }, true},
		{"other labels", func(a *mapping.Alert) { a.Labels = map[string]string{"host": "b"} }, true},
		{"other summary", func(a *mapping.Alert) { a.Summary = "Disk almost full" }, false},
		{"other severity", func(a *mapping.Alert) { a.Severity = "warning" }, false},
		{"unmapped severity", func(a *mapping.Alert) { a.Severity = "info" }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := base
			tc.change(&a)
			if got := fp(a); (got == want) != tc.same {
				t.Errorf("fingerprint %s vs %s: same = %v, want %v", got, want, got == want, tc.same)
			}
		})
	}
}

func TestOpString(t *testing.T) {
	tests := []struct {
		op   mapping.Op
		want string
	}{
		{mapping.OpCreate, "create"}, {mapping.OpUpdate, "update"},
		{mapping.OpResolve, "resolve"}, {mapping.OpReopen, "reopen"}, {mapping.Op(9), "Op(9)"},
	}
	for _, tc := range tests {
		if got := tc.op.String(); got != tc.want {
			t.Errorf("Op(%d).String() = %q, want %q", int(tc.op), got, tc.want)
		}
	}
}

// TestRenderConcurrent renders from many goroutines at once (run with -race).
func TestRenderConcurrent(t *testing.T) {
	m, err := mapping.LoadFile(exampleMappingFile)
	if err != nil {
		t.Fatal(err)
	}
	a := mapping.Alert{Key: "k", Status: mapping.StatusFiring, Severity: "critical", Summary: "Disk <full>",
		Description: "a\nb", Labels: map[string]string{"team": "dba"}}
	want, err := m.Render(&a, "k", mapping.OpCreate)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for range 200 {
				got, err := m.Render(&a, "k", mapping.OpCreate)
				if err != nil {
					errs <- err
					return
				}
				if diff := cmp.Diff(want, got); diff != "" {
					errs <- errors.New(diff)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// Fingerprint agrees with Render's fingerprint for every op and changes
// with what an update compares.
func TestFingerprintMatchesRender(t *testing.T) {
	m := mapping.Default()
	base := mapping.Alert{Key: "k", Status: mapping.StatusFiring, Severity: "warning", Summary: "Disk at 91%"}
	fp, err := m.Fingerprint(&base, "k")
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []mapping.Op{mapping.OpCreate, mapping.OpUpdate, mapping.OpResolve, mapping.OpReopen} {
		r, err := m.Render(&base, "k", op)
		if err != nil {
			t.Fatal(err)
		}
		if r.Fingerprint != fp {
			t.Errorf("%s: Render fingerprint %s, Fingerprint %s", op, r.Fingerprint, fp)
		}
	}
	for name, change := range map[string]func(*mapping.Alert){
		"severity": func(a *mapping.Alert) { a.Severity = "critical" },
		"summary":  func(a *mapping.Alert) { a.Summary = "Disk at 97%" },
	} {
		a := base
		change(&a)
		got, err := m.Fingerprint(&a, "k")
		if err != nil {
			t.Fatal(err)
		}
		if got == fp {
			t.Errorf("changing the %s left the fingerprint unchanged", name)
		}
	}
}
