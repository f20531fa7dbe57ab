package topdesktest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestObjects links incidents to the tenant's objects (assets) by name or
// id, finds them with the asset list's nameFragment, and refuses an unknown
// name with TOPdesk's 400 naming the field, creating nothing.
func TestObjects(t *testing.T) {
	s := Start(t, Options{Now: fixedNow})
	c := newClient(t, s)

	byName := c.createIncident(map[string]any{"briefDescription": "disk", "object": map[string]any{"name": "db-7"}})
	if got := refName(byName, "object"); got != "db-7" {
		t.Errorf("object %v, want db-7", byName["object"])
	}
	id := byName["object"].(map[string]any)["id"].(string)
	byID := c.createIncident(map[string]any{"briefDescription": "disk again", "object": map[string]any{"id": id}})
	if refName(byID, "object") != "db-7" {
		t.Errorf("object by id %v, want db-7", byID["object"])
	}
	if snap, _ := s.Incident(byName["id"].(string)); snap.Object != "db-7" {
		t.Errorf("Incident().Object = %q", snap.Object)
	}

	status, _, b := c.call(http.MethodPost, "/tas/api/incidents", map[string]any{"briefDescription": "x", "object": map[string]any{"name": "no-such-host"}})
	if msgs := messages(t, b); status != http.StatusBadRequest || len(msgs) != 1 || !strings.Contains(msgs[0], "'object'") || !strings.Contains(msgs[0], "no-such-host") {
		t.Errorf("unknown object: %d %s, want 400 naming the field and the name", status, b)
	}
	if n := len(s.Incidents()); n != 2 {
		t.Errorf("%d incidents after a refused create, want 2", n)
	}
	// A PATCH links or unlinks it too.
	got := c.mustCall(http.MethodPatch, "/tas/api/incidents/id/"+byID["id"].(string), map[string]any{"object": map[string]any{"name": "web-01"}}, http.StatusOK)
	if refName(got, "object") != "web-01" {
		t.Errorf("after PATCH: object %v", got["object"])
	}
	if _, items := c.list("/tas/api/incidents?" + encodeQuery("query=object.name=='db-7'")); len(items) != 1 {
		t.Errorf("FIQL object.name: %d incidents, want 1", len(items))
	}

	assets := func(t *testing.T, query string) []string {
		t.Helper()
		status, _, b := c.on(t).call(http.MethodGet, "/tas/api/assetmgmt/assets?"+query, nil)
		if status != http.StatusOK {
			t.Fatalf("GET assets?%s: %d %s", query, status, b)
		}
		var body struct {
			DataSet []struct {
				ID   string `json:"id"`
				Text string `json:"text"`
			} `json:"dataSet"`
		}
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		var names []string
		for _, a := range body.DataSet {
			if a.ID == "" {
				t.Errorf("asset %q without an id", a.Text)
			}
			names = append(names, a.Text)
		}
		return names
	}
	for _, tc := range []struct{ query, want string }{
		{"nameFragment=db-7", "[db-7]"},
		{"nameFragment=WEB", "[web-01 web-02]"},
		{"nameFragment=web&pageStart=1&pageSize=1", "[web-02]"},
		{"nameFragment=nothing", "[]"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			if got := assets(t, tc.query); strings.Join(got, " ") != strings.Trim(tc.want, "[]") {
				t.Errorf("got %v, want %s", got, tc.want)
			}
		})
	}
	status, _, b = c.call(http.MethodGet, "/tas/api/assetmgmt/assets?pageSize=5000", nil)
	if status != http.StatusBadRequest || !strings.Contains(string(b), `"errorMessage"`) {
		t.Errorf("pageSize=5000: %d %s, want 400 in the services APIs' error shape", status, b)
	}
}
