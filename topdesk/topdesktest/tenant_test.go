package topdesktest

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const tenantYAML = `
statuses:
  - {name: Registered, default: true, processingState: logged}
  - {name: Being handled, processingState: in_progress, response: true}
  - {name: Done, closing: true, processingState: closed}
priorities:
  - {name: Urgent}
  - {name: Normal}
impacts: [{name: Wide}, {name: Narrow}]
urgencies: [{name: Now}, {name: Later}]
priorityMatrix:
  - {impact: Wide, urgency: Now, priority: Urgent}
categories:
  - name: Hardware
    id: 6c1bd2d5-3c1a-4b0e-9d6f-3b5c1f0a2e11
    subcategories: [{name: Disks}]
entryTypes: [{name: Monitoring}]
operatorGroups: [{name: Second line}]
persons: [{name: "Doe, Jane", email: jane@example.org}]
`

func TestLoadTenant(t *testing.T) {
	tn, err := LoadTenant([]byte(tenantYAML))
	if err != nil {
		t.Fatalf("LoadTenant: %v", err)
	}
	if got := tn.Categories[0].ID; got != "6c1bd2d5-3c1a-4b0e-9d6f-3b5c1f0a2e11" {
		t.Errorf("given id changed to %s", got)
	}
	for _, st := range tn.Statuses {
		if !isUUID(st.ID) {
			t.Errorf("status %q got no UUID: %q", st.Name, st.ID)
		}
	}
	again, err := LoadTenant([]byte(tenantYAML))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tn, again); diff != "" {
		t.Errorf("generated ids are not stable (-first +second):\n%s", diff)
	}

	t.Run("JSON", func(t *testing.T) {
		js, err := LoadTenant([]byte(`{"statuses":[{"name":"Open","default":true}],"operatorGroups":[{"name":"Ops","id":"6C1BD2D5-3C1A-4B0E-9D6F-3B5C1F0A2E12"}]}`))
		if err != nil {
			t.Fatalf("LoadTenant(JSON): %v", err)
		}
		if js.Statuses[0].Name != "Open" || js.OperatorGroups[0].ID != "6c1bd2d5-3c1a-4b0e-9d6f-3b5c1f0a2e12" {
			t.Errorf("tenant = %+v", js)
		}
	})

	t.Run("used by a Sim", func(t *testing.T) {
		s := Start(t, Options{Tenant: tn, Now: fixedNow})
		c := newClient(t, s)
		inc := c.createIncident(map[string]any{
			"subcategory":  map[string]any{"name": "Disks"},
			"impact":       map[string]any{"name": "Wide"},
			"urgency":      map[string]any{"name": "Now"},
			"callerLookup": map[string]any{"email": "jane@example.org"},
		})
		if refName(inc, "processingStatus") != "Registered" || refName(inc, "category") != "Hardware" || refName(inc, "priority") != "Urgent" {
			t.Errorf("incident = %v", inc)
		}
		got := c.mustCall(http.MethodPatch, "/tas/api/incidents/id/"+inc["id"].(string),
			map[string]any{"processingStatus": map[string]any{"name": "Done"}}, http.StatusOK)
		if got["closed"] != true {
			t.Errorf("the tenant's closing status did not close: %v", got["closed"])
		}
		status, _, b := c.call(http.MethodPatch, "/tas/api/incidents/id/"+inc["id"].(string),
			map[string]any{"processingStatus": map[string]any{"name": "Logged"}})
		if status != http.StatusBadRequest || !strings.Contains(string(b), "Logged") {
			t.Errorf("a status of the default tenant: %d %s, want 400", status, b)
		}
		// The Sim copied the tenant.
		tn.Statuses[0].Name = "changed"
		if _, items := c.list("/tas/api/incidents/statuses"); items[0]["name"] != "Registered" {
			t.Errorf("changing the Tenant after New changed the Sim: %v", items[0])
		}
	})
}

func TestLoadTenantErrors(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"not YAML", "statuses: [", "parse tenant"},
		{"unknown key", "statusses: []", "statusses"},
		{"unknown entry key", "statuses: [{name: A, closed: true}]", "closed"},
		{"empty name", "impacts: [{id: 6c1bd2d5-3c1a-4b0e-9d6f-3b5c1f0a2e11}]", "no name"},
		{"duplicate name", "impacts: [{name: A}, {name: A}]", `duplicate name "A"`},
		{"bad id", "urgencies: [{name: A, id: nope}]", "not a UUID"},
		{"duplicate id", "urgencies: [{name: A, id: 6c1bd2d5-3c1a-4b0e-9d6f-3b5c1f0a2e11}, {name: B, id: 6c1bd2d5-3c1a-4b0e-9d6f-3b5c1f0a2e11}]", "already used"},
		{"two defaults", "statuses: [{name: A, default: true}, {name: B, default: true}]", "at most one"},
		{"matrix names nothing", "priorityMatrix: [{impact: X, urgency: Y, priority: Z}]", "priorityMatrix"},
		{"priority duration unknown", "priorities: [{name: P1, firstLineDuration: forever}]", `unknown duration "forever"`},
		{"duplicate subcategory", "categories: [{name: C, subcategories: [{name: S}, {name: S}]}]", "subcategories of C"},
		{"duplicate person email", "persons: [{name: A, email: a@x}, {name: B, email: A@x}]", "duplicate email"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadTenant([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestDefaultTenant(t *testing.T) {
	tn := DefaultTenant()
	names := func(es []Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Name)
		}
		return out
	}
	if diff := cmp.Diff([]string{"Operations", "DBA", "Network"}, names(tn.OperatorGroups)); diff != "" {
		t.Errorf("operator groups (-want +got):\n%s", diff)
	}
	var closing, defaults []string
	for _, st := range tn.Statuses {
		if st.Closing {
			closing = append(closing, st.Name)
		}
		if st.Default {
			defaults = append(defaults, st.Name)
		}
	}
	if diff := cmp.Diff([]string{"Closed"}, closing); diff != "" {
		t.Errorf("closing statuses (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"Logged"}, defaults); diff != "" {
		t.Errorf("default statuses (-want +got):\n%s", diff)
	}
	others := 0
	for _, c := range tn.Categories {
		for _, s := range c.Subcategories {
			if s.Name == "Other" {
				others++
			}
		}
	}
	if others != 2 {
		t.Errorf(`subcategory "Other" under %d categories, want 2`, others)
	}
	for _, p := range tn.Persons {
		if !strings.Contains(p.Email, "@") {
			t.Errorf("person %q has no e-mail", p.Name)
		}
	}
	if !cmp.Equal(tn, DefaultTenant()) {
		t.Error("DefaultTenant is not the same twice")
	}
}
