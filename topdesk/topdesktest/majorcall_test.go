package topdesktest

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestMajorCalls marks an incident as a major call and links others to it
// by id or number, as issue 20's grouping will; GET shows both, the link
// must name an existing major call, and the state file keeps them.
func TestMajorCalls(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sim.json")
	s := Start(t, Options{Now: fixedNow, StateFile: file})
	c := newClient(t, s)
	major := c.createIncident(map[string]any{"briefDescription": "Datacenter AMS down", "majorCall": true})
	if major["majorCall"] != true || major["majorCallObject"] != nil {
		t.Errorf("major call: majorCall %v, majorCallObject %v", major["majorCall"], major["majorCallObject"])
	}
	plain := c.createIncident(map[string]any{"briefDescription": "web-01 down"})
	byID := c.createIncident(map[string]any{"briefDescription": "db-1 down", "majorCallObject": map[string]any{"id": major["id"]}})
	got := c.mustCall(http.MethodGet, "/tas/api/incidents/id/"+byID["id"].(string), nil, http.StatusOK)
	link, _ := got["majorCallObject"].(map[string]any)
	if got["majorCall"] != false || link["id"] != major["id"] || link["name"] != major["number"] {
		t.Errorf("linked by id: majorCall %v, majorCallObject %v", got["majorCall"], got["majorCallObject"])
	}
	byNumber := c.mustCall(http.MethodPatch, "/tas/api/incidents/id/"+plain["id"].(string),
		map[string]any{"majorCallObject": map[string]any{"name": major["number"]}}, http.StatusOK)
	if refName(byNumber, "majorCallObject") != major["number"] {
		t.Errorf("linked by number: %v", byNumber["majorCallObject"])
	}
	if _, items := c.list("/tas/api/incidents?" + encodeQuery("query=majorCall==true")); len(items) != 1 {
		t.Errorf("FIQL majorCall==true: %d incidents, want 1", len(items))
	}

	for _, tc := range []struct {
		name string
		body map[string]any
		msg  string
	}{
		{"not a major call", map[string]any{"majorCallObject": map[string]any{"id": plain["id"]}}, "no major call found"},
		{"unknown number", map[string]any{"majorCallObject": map[string]any{"name": "I 9999 999"}}, "no major call found"},
		{"a major call linked to one", map[string]any{"majorCall": true, "majorCallObject": map[string]any{"id": major["id"]}}, "cannot be linked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, b := c.on(t).call(http.MethodPost, "/tas/api/incidents", tc.body)
			if status != http.StatusBadRequest || !strings.Contains(string(b), tc.msg) {
				t.Errorf("%d %s, want 400 with %q", status, b, tc.msg)
			}
		})
	}

	again, err := Open(Options{Now: fixedNow, StateFile: file})
	if err != nil {
		t.Fatal(err)
	}
	for _, inc := range again.Incidents() {
		want := map[string]string{"Datacenter AMS down": "", "web-01 down": major["number"].(string), "db-1 down": major["number"].(string)}[inc.BriefDescription]
		if inc.MajorCallNumber != want || inc.MajorCall != (inc.BriefDescription == "Datacenter AMS down") {
			t.Errorf("after reload %q: majorCall %v, linked to %q, want %q", inc.BriefDescription, inc.MajorCall, inc.MajorCallNumber, want)
		}
	}

	// Deleting the major call unlinks the others.
	if err := s.Delete("ejansen", major["number"].(string)); err != nil {
		t.Fatal(err)
	}
	if got := c.mustCall(http.MethodGet, "/tas/api/incidents/id/"+byID["id"].(string), nil, http.StatusOK); got["majorCallObject"] != nil {
		t.Errorf("after deleting the major call: majorCallObject %v", got["majorCallObject"])
	}
}
