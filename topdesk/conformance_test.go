package topdesk

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// schemaFile is TOPdesk's schema extract, kept next to the design notes.
const schemaFile = "../../shared/topdesk/object_schemas.yaml"

// schema is the part of an OpenAPI schema the conformance test reads.
type schema struct {
	Ref        string             `yaml:"$ref"`
	Type       string             `yaml:"type"`
	MaxLength  int                `yaml:"maxLength"`
	Properties map[string]*schema `yaml:"properties"`
}

func loadSchemas(t *testing.T) map[string]*schema {
	t.Helper()
	data, err := os.ReadFile(schemaFile)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("skipping: TOPdesk schema extract %s is not present (it lives in the shared design folder)", schemaFile)
	}
	if err != nil {
		t.Fatalf("read schema: %v", err)
	}
	var doc struct {
		Schemas map[string]*schema `yaml:"schemas"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("parse %s: %v", schemaFile, err)
	}
	if len(doc.Schemas) == 0 {
		t.Fatalf("%s has no schemas", schemaFile)
	}
	return doc.Schemas
}

// resolveSchema follows a "#/schemas/Name" reference.
func resolveSchema(t *testing.T, all map[string]*schema, s *schema) *schema {
	t.Helper()
	if s == nil || s.Ref == "" {
		return s
	}
	name := strings.TrimPrefix(s.Ref, "#/schemas/")
	target, ok := all[name]
	if !ok {
		t.Fatalf("schema reference %q does not resolve", s.Ref)
	}
	return target
}

// documentedOnlyInText are request fields that TOPdesk's spec documents in a
// description rather than as a property.
var documentedOnlyInText = map[string]bool{
	// "callerLookup" : { "email" : "email@domain.com" } is in the
	// callerLookup description; its properties list only id.
	"callerLookup.email": true,
}

// checkFields reports every JSON field of v (recursively) that is not a
// property of s.
func checkFields(t *testing.T, all map[string]*schema, s *schema, prefix string, v map[string]any) []string {
	t.Helper()
	var missing []string
	for key, val := range v {
		path := prefix + key
		prop, ok := s.Properties[key]
		if !ok {
			if !documentedOnlyInText[path] {
				missing = append(missing, path)
			}
			continue
		}
		if obj, isObj := val.(map[string]any); isObj {
			missing = append(missing, checkFields(t, all, resolveSchema(t, all, prop), path+".", obj)...)
		}
	}
	return missing
}

// maximalRequest sets every field of IncidentRequest. Ref values carry a
// name, so that they marshal as {"name": …}; one carries only an id.
func maximalRequest() *IncidentRequest {
	yes := true
	ref := func(name string) *Ref { return &Ref{Name: name} }
	return &IncidentRequest{
		CallerLookup:             &CallerLookup{Email: "ops@example.com"},
		Caller:                   &Caller{DynamicName: "Monitoring", Email: "mon@example.com", PhoneNumber: "123"},
		Status:                   "firstLine",
		BriefDescription:         "Disk full",
		Request:                  "request",
		Action:                   "action",
		ActionInvisibleForCaller: &yes,
		EntryType:                ref("Monitoring"),
		CallType:                 ref("Incident"),
		Category:                 ref("Infrastructure"),
		Subcategory:              ref("Servers"),
		ExternalNumber:           "alertdesk-0123",
		Impact:                   ref("Department"),
		Urgency:                  ref("High"),
		Priority:                 ref("P1"),
		Duration:                 ref("1 hour"),
		Operator:                 &Ref{ID: "11111111-1111-1111-1111-111111111111"},
		OperatorGroup:            &Ref{ID: "22222222-2222-2222-2222-222222222222"},
		ProcessingStatus:         ref("Logged"),
		Completed:                &yes,
		Closed:                   &yes,
		ClosureCode:              ref("Solved"),
		Object:                   &Ref{ID: "33333333-3333-3333-3333-333333333333"},
		MajorCall:                &yes,
		MajorCallObject:          &Ref{ID: "33333333-3333-3333-3333-333333333333"},
	}
}

func TestRequestConformsToSchema(t *testing.T) {
	all := loadSchemas(t)
	create := maximalRequest()
	update := maximalRequest()
	update.Status = "" // not part of IncidentUpdateBody; UpdateIncident refuses it
	tests := []struct {
		name   string
		schema string
		in     *IncidentRequest
	}{
		{"create", "IncidentCreateBody", create},
		{"update", "IncidentUpdateBody", update},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, ok := all[tc.schema]
			if !ok {
				t.Fatalf("schema %s missing from %s", tc.schema, schemaFile)
			}
			b, err := json.Marshal(tc.in)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			var obj map[string]any
			if err := json.Unmarshal(b, &obj); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			// Make sure the request really is maximal: every struct field
			// reached the JSON.
			want := reflect.TypeFor[IncidentRequest]().NumField()
			if tc.in.Status == "" {
				want--
			}
			if got := len(obj); got != want {
				t.Errorf("marshalled request has %d fields, want %d: %s", got, want, b)
			}
			missing := checkFields(t, all, s, "", obj)
			sort.Strings(missing)
			for _, m := range missing {
				t.Errorf("field %q is not a property of %s", m, tc.schema)
			}
		})
	}
	// The check itself finds unknown fields, also nested ones.
	bogus := map[string]any{"bogus": 1, "caller": map[string]any{"nickname": "x"}, "category": map[string]any{"name": "x"}}
	got := checkFields(t, all, all["IncidentCreateBody"], "", bogus)
	sort.Strings(got)
	if want := []string{"bogus", "caller.nickname"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("checkFields found %q, want %q", got, want)
	}
	if err := maximalRequest().validateUpdate(); err == nil {
		t.Error("validateUpdate accepted a status, which IncidentUpdateBody does not have")
	}
}

func TestLimitsMatchSchema(t *testing.T) {
	all := loadSchemas(t)
	caller := all["CallerCreate"]
	tests := []struct {
		name string
		s    *schema
		want int
	}{
		{"create briefDescription", all["IncidentCreateBody"].Properties["briefDescription"], MaxBriefDescription},
		{"update briefDescription", all["IncidentUpdateBody"].Properties["briefDescription"], MaxBriefDescription},
		{"create externalNumber", all["IncidentCreateBody"].Properties["externalNumber"], MaxExternalNumber},
		{"update externalNumber", all["IncidentUpdateBody"].Properties["externalNumber"], MaxExternalNumber},
		{"caller.dynamicName", caller.Properties["dynamicName"], MaxCallerDynamicName},
		{"caller.email", caller.Properties["email"], MaxCallerEmail},
		{"caller.phoneNumber", caller.Properties["phoneNumber"], MaxCallerPhoneNumber},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.s == nil {
				t.Fatalf("property missing from the schema")
			}
			if tc.s.MaxLength != tc.want {
				t.Errorf("schema maxLength = %d, client limit = %d", tc.s.MaxLength, tc.want)
			}
		})
	}
}
