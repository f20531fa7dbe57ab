package topdesktest

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// schemaPath is TOPdesk's schema extract, relative to this package.
const schemaPath = "../../../shared/topdesk/object_schemas.yaml"

// shape is a field's type as both the schema and the simulator's rules can
// describe it.
type shape struct {
	typ       string // string, boolean, number, object
	format    string // uuid, date-time, int32 or ""
	maxLength int
	enum      []string
	props     map[string]shape
}

// knownFormats are the schema formats the rules model; others (e.g. float)
// are not checked.
func knownFormats() map[string]bool {
	return map[string]bool{"uuid": true, "date-time": true, "int32": true}
}

// ruleShape describes a rule the way the schema would.
func ruleShape(r rule) shape {
	id := shape{typ: "string", format: "uuid"}
	switch r.kind {
	case kindString:
		return shape{typ: "string", maxLength: r.maxLength, enum: r.enum}
	case kindUUID:
		return id
	case kindDate:
		return shape{typ: "string", format: "date-time"}
	case kindBool:
		return shape{typ: "boolean"}
	case kindNumber:
		return shape{typ: "number"}
	case kindInt:
		return shape{typ: "number", format: "int32"}
	case kindRef:
		return shape{typ: "object", props: map[string]shape{"id": id, "name": {typ: "string"}}}
	case kindIDRef:
		return shape{typ: "object", props: map[string]shape{"id": id}}
	default:
		return shape{typ: "object", props: rulesShape(r.fields)}
	}
}

func rulesShape(rules map[string]rule) map[string]shape {
	m := map[string]shape{}
	for k, r := range rules {
		m[k] = ruleShape(r)
	}
	return m
}

// schemaShape reads a schema node, following "$ref": "#/schemas/X".
func schemaShape(t *testing.T, schemas map[string]any, node map[string]any) shape {
	t.Helper()
	if ref, ok := node["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/schemas/")
		target, ok := schemas[name].(map[string]any)
		if !ok {
			t.Fatalf("schema $ref %q points at nothing", ref)
		}
		return schemaShape(t, schemas, target)
	}
	s := shape{}
	s.typ, _ = node["type"].(string)
	if s.typ == "" && node["properties"] != nil {
		s.typ = "object"
	}
	s.format, _ = node["format"].(string)
	if n, ok := node["maxLength"].(int); ok {
		s.maxLength = n
	}
	if es, ok := node["enum"].([]any); ok {
		for _, e := range es {
			s.enum = append(s.enum, e.(string))
		}
	}
	if props, ok := node["properties"].(map[string]any); ok {
		s.props = map[string]shape{}
		for k, p := range props {
			s.props[k] = schemaShape(t, schemas, p.(map[string]any))
		}
	}
	return s
}

// compareShapes reports every way the rules (got) disagree with the schema
// (want). extras are rule fields the schema lacks but TOPdesk documents;
// looseFormat are fields whose schema format is not enforced, with why.
func compareShapes(t *testing.T, path string, want, got shape, extras, looseFormat map[string]string) {
	t.Helper()
	if want.typ != got.typ {
		t.Errorf("%s: type: schema %q, simulator %q", path, want.typ, got.typ)
		return
	}
	if knownFormats()[want.format] && want.format != got.format {
		if why, ok := looseFormat[path]; ok {
			t.Logf("%s: schema format %q not enforced: %s", path, want.format, why)
		} else {
			t.Errorf("%s: format: schema %q, simulator %q", path, want.format, got.format)
		}
	}
	if want.maxLength != got.maxLength {
		t.Errorf("%s: maxLength: schema %d, simulator %d", path, want.maxLength, got.maxLength)
	}
	we, ge := slices.Sorted(slices.Values(want.enum)), slices.Sorted(slices.Values(got.enum))
	if !slices.Equal(we, ge) {
		t.Errorf("%s: enum: schema %v, simulator %v", path, we, ge)
	}
	for k, w := range want.props {
		g, ok := got.props[k]
		if !ok {
			t.Errorf("%s.%s: in the schema, missing from the simulator's rules", path, k)
			continue
		}
		compareShapes(t, path+"."+k, w, g, extras, looseFormat)
	}
	for k := range got.props {
		if _, ok := want.props[k]; ok {
			continue
		}
		if why, ok := extras[path+"."+k]; ok {
			t.Logf("%s.%s: not in the schema, accepted because %s", path, k, why)
			continue
		}
		t.Errorf("%s.%s: accepted by the simulator but not in the schema", path, k)
	}
}

func TestRulesConformToSchema(t *testing.T) {
	data, err := os.ReadFile(schemaPath)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("TOPdesk schema %s not found (it lives in the shared/ directory beside the repository); schema conformance not checked", schemaPath)
	}
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Schemas map[string]any `yaml:"schemas"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("parse %s: %v", schemaPath, err)
	}
	extras := map[string]string{
		"IncidentCreateBody.callerLookup.email": "the schema's description documents {\"email\": …} lookups",
		"IncidentUpdateBody.callerLookup.email": "the schema's description documents {\"email\": …} lookups",
	}
	looseFormat := map[string]string{
		"IncidentCreateBody.externalLink.id": "the schema's own example is \"identifier-of-external-system\", not a UUID",
		"IncidentUpdateBody.externalLink.id": "the schema's own example is \"identifier-of-external-system\", not a UUID",
	}
	tests := []struct {
		schema string
		rules  map[string]rule
	}{
		{"IncidentCreateBody", createRules()},
		{"IncidentUpdateBody", updateRules()},
		{"CallerCreate", callerRules()},
	}
	for _, tc := range tests {
		t.Run(tc.schema, func(t *testing.T) {
			node, ok := doc.Schemas[tc.schema].(map[string]any)
			if !ok {
				t.Fatalf("schema %s not found in %s", tc.schema, schemaPath)
			}
			want := schemaShape(t, doc.Schemas, node)
			if len(want.props) < 5 {
				t.Fatalf("schema %s has only %d properties; the file's structure changed", tc.schema, len(want.props))
			}
			got := shape{typ: "object", props: rulesShape(tc.rules)}
			compareShapes(t, tc.schema, want, got, extras, looseFormat)
		})
	}
}

// TestReadModelMatchesSchema checks that an incident as the simulator
// answers it has exactly the properties of TOPdesk's Incident schema.
func TestReadModelMatchesSchema(t *testing.T) {
	data, err := os.ReadFile(schemaPath)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("TOPdesk schema %s not found; read model not checked", schemaPath)
	}
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Schemas struct {
			Incident struct {
				Properties map[string]any `yaml:"properties"`
			} `yaml:"Incident"`
		} `yaml:"schemas"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("parse %s: %v", schemaPath, err)
	}
	want := slices.Sorted(func(yield func(string) bool) {
		for k := range doc.Schemas.Incident.Properties {
			if !yield(k) {
				return
			}
		}
	})
	var got []string
	for k := range readModelFields() {
		got = append(got, k)
	}
	slices.Sort(got)
	if !slices.Equal(want, got) {
		t.Errorf("read model fields differ from the Incident schema:\nschema:    %v\nsimulator: %v", want, got)
	}
}
