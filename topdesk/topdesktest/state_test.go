package topdesktest

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestStateFileKeepsIncidents checks that a Sim started on the state file of
// an earlier one answers as the earlier one did: the same incidents with the
// same read models and trails, searchable, and numbered on from the last.
func TestStateFileKeepsIncidents(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sim.json")
	first := Start(t, Options{Now: fixedNow, StateFile: file})
	c := newClient(t, first)
	open := c.createIncident(map[string]any{
		"caller":           map[string]any{"dynamicName": "Monitoring", "department": map[string]any{"name": "IT"}},
		"briefDescription": "Disk / at 97% on db-7",
		"request":          "Free space below 3%.<br>Host: <b>db-7</b>",
		"externalNumber":   "alertdesk-disk-db-7",
		"category":         map[string]any{"name": "Databases"},
		"subcategory":      map[string]any{"name": "PostgreSQL"},
		"impact":           map[string]any{"name": "Department"},
		"urgency":          map[string]any{"name": "High"},
		"optionalFields1":  map[string]any{"text1": "db-7"},
		"status":           "secondLine",
	})
	closed := c.createIncident(map[string]any{"caller": map[string]any{"dynamicName": "Monitoring"},
		"briefDescription": "Load high", "externalNumber": "alertdesk-load"})
	c.mustCall(http.MethodPatch, "/tas/api/incidents/id/"+closed["id"].(string),
		map[string]any{"action": "Resolved.", "actionInvisibleForCaller": true, "closed": true}, http.StatusOK)
	partial := c.createIncident(map[string]any{"caller": map[string]any{"dynamicName": "Monitoring"}, "status": "partial",
		"briefDescription": "Part", "mainIncident": map[string]any{"id": open["id"]}})
	c.mustCall(http.MethodPut, "/tas/api/incidents/id/"+closed["id"].(string)+"/archive",
		map[string]any{"name": "Outdated"}, http.StatusOK)
	// An operator's change and its history survive too.
	if _, err := first.Edit("ejansen", open["number"].(string), map[string]any{"priority": map[string]any{"name": "P1"}}); err != nil {
		t.Fatal(err)
	}

	second, err := Open(Options{Now: fixedNow, StateFile: file})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first.Incidents(), second.Incidents()); diff != "" {
		t.Errorf("incidents after reload (-before +after):\n%s", diff)
	}
	// The read models, trails and searches: Start serves the second Sim at
	// another URL, which the links in the answers name.
	third := Start(t, Options{Now: fixedNow, StateFile: file})
	c3 := newClient(t, third)
	for _, path := range []string{
		"/tas/api/incidents/id/" + open["id"].(string),
		"/tas/api/incidents/id/" + partial["id"].(string),
		"/tas/api/incidents/id/" + closed["id"].(string) + "/actions",
		"/tas/api/incidents/id/" + open["id"].(string) + "/requests",
		"/tas/api/incidents?query=externalNumber=='alertdesk-disk-db-7'",
		"/tas/api/incidents?query=externalNumber=sw=alertdesk-&all=true",
	} {
		_, _, before := c.call(http.MethodGet, path, nil)
		_, _, after := c3.call(http.MethodGet, path, nil)
		before = bytes.ReplaceAll(before, []byte(first.URL()), []byte(third.URL()))
		if diff := cmp.Diff(string(before), string(after)); diff != "" {
			t.Errorf("GET %s after reload (-before +after):\n%s", path, diff)
		}
	}
	next := c3.createIncident(map[string]any{"caller": map[string]any{"dynamicName": "Monitoring"}, "briefDescription": "Next"})
	if got, want := next["number"], "I 2611 004"; got != want {
		t.Errorf("number after reload = %v, want %v", got, want)
	}
	c3.mustCall(http.MethodPost, "/_sim/reset", nil, http.StatusNoContent)
	if empty, err := Open(Options{StateFile: file}); err != nil || len(empty.Incidents()) != 0 {
		t.Errorf("after a reset the state file holds %d incidents (err %v), want none", len(empty.Incidents()), err)
	}
}

// TestStateFileDirectoryCreated checks that the state file's directory is
// created with the first change, as a data directory may not exist yet.
func TestStateFileDirectoryCreated(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data", "sim.json")
	s := Start(t, Options{StateFile: file})
	newClient(t, s).createIncident(map[string]any{"caller": map[string]any{"dynamicName": "Monitoring"}, "briefDescription": "x"})
	if again, err := Open(Options{StateFile: file}); err != nil || len(again.Incidents()) != 1 {
		t.Errorf("reopened state: err %v, want one incident", err)
	}
}

func TestStateFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"incidents":[`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{StateFile: bad}); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("Open of a cut state file: err = %v, want one naming the file", err)
	}

	// A change that cannot be stored is answered with 500, like a TOPdesk
	// whose database failed.
	sub := filepath.Join(dir, "sub")
	s := Start(t, Options{StateFile: filepath.Join(sub, "sim.json")})
	if err := os.WriteFile(sub, nil, 0o600); err != nil { // a file where the directory should be
		t.Fatal(err)
	}
	status, _, b := newClient(t, s).call(http.MethodPost, "/tas/api/incidents",
		map[string]any{"caller": map[string]any{"dynamicName": "Monitoring"}, "briefDescription": "x"})
	if status != http.StatusInternalServerError || !strings.Contains(string(b), "save state") {
		t.Errorf("create with an unwritable state file: %d %s, want 500 naming the save", status, b)
	}
}
