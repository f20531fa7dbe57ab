package topdesktest

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestOperatorActions walks an incident alertdesk created through what
// people do to it in TOPdesk: each change is visible through the API with
// its modificationDate and the operator as modifier, and in the history as
// an operator's.
func TestOperatorActions(t *testing.T) {
	clock := fixedNow()
	s := Start(t, Options{Now: func() time.Time { return clock }})
	c := newClient(t, s)
	inc := c.createIncident(map[string]any{"briefDescription": "Disk full", "externalNumber": "alertdesk-op",
		"priority": map[string]any{"name": "P3"}})
	id, number := inc["id"].(string), inc["number"].(string)
	path := "/tas/api/incidents/id/" + id

	// step does one operator change an hour after the last and checks
	// what the API answers afterwards.
	step := func(name string, do func() (Incident, error), check func(t *testing.T, got map[string]any)) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			clock = clock.Add(time.Hour)
			if _, err := do(); err != nil {
				t.Fatal(err)
			}
			got := c.on(t).mustCall(http.MethodGet, path, nil, http.StatusOK)
			if want := clock.UTC().Format(topdeskTimeLayout); got["modificationDate"] != want {
				t.Errorf("modificationDate %v, want %s", got["modificationDate"], want)
			}
			if refName(got, "modifier") != "Jansen, Eva" {
				t.Errorf("modifier %v, want the operator", got["modifier"])
			}
			check(t, got)
		})
	}
	step("edit priority and description", func() (Incident, error) {
		return s.Edit("ejansen", number, map[string]any{"priority": map[string]any{"name": "P1"}, "briefDescription": "Disk full on db-1"})
	}, func(t *testing.T, got map[string]any) {
		if refName(got, "priority") != "P1" || got["briefDescription"] != "Disk full on db-1" {
			t.Errorf("priority %v, briefDescription %v", got["priority"], got["briefDescription"])
		}
	})
	step("add an action", func() (Incident, error) {
		return s.AddAction("ejansen", id, "Looking into it.")
	}, func(t *testing.T, _ map[string]any) {
		snap, _ := s.Incident(id)
		if n := len(snap.Actions); n != 1 || snap.Actions[0].By != "Jansen, Eva" || snap.Actions[0].Text != "Looking into it." {
			t.Errorf("actions %+v", snap.Actions)
		}
	})
	step("close with a closure code", func() (Incident, error) {
		return s.Close("ejansen", id, "No action needed")
	}, func(t *testing.T, got map[string]any) {
		if got["closed"] != true || refName(got, "closureCode") != "No action needed" || refName(got, "processingStatus") != "Closed" {
			t.Errorf("closed %v, closureCode %v, processingStatus %v", got["closed"], got["closureCode"], got["processingStatus"])
		}
	})
	step("reopen", func() (Incident, error) {
		return s.Reopen("ejansen", id)
	}, func(t *testing.T, got map[string]any) {
		if got["closed"] != false || got["completed"] != false || refName(got, "processingStatus") != "Logged" {
			t.Errorf("closed %v, completed %v, processingStatus %v", got["closed"], got["completed"], got["processingStatus"])
		}
	})
	step("archive", func() (Incident, error) {
		return s.Archive("ejansen", id, "Duplicate")
	}, func(t *testing.T, got map[string]any) {
		if got["status"] != "firstLineArchived" || refName(got, "archivingReason") != "Duplicate" {
			t.Errorf("status %v, archivingReason %v", got["status"], got["archivingReason"])
		}
		// As TOPDESK.md says: left out of lists, writes answer 400.
		if status, _ := c.on(t).list("/tas/api/incidents?" + encodeQuery("query=externalNumber=='alertdesk-op'")); status != http.StatusNoContent {
			t.Errorf("search without all=true: %d, want 204", status)
		}
		if status, _, b := c.on(t).call(http.MethodPatch, path, map[string]any{"action": "x"}); status != http.StatusBadRequest {
			t.Errorf("PATCH of an archived incident: %d %s, want 400", status, b)
		}
		if _, err := s.Edit("ejansen", id, map[string]any{"action": "x"}); !isOperatorError(err, http.StatusBadRequest) {
			t.Errorf("operator edit of an archived incident: %v, want a 400", err)
		}
	})
	step("unarchive", func() (Incident, error) {
		return s.Unarchive("ejansen", id)
	}, func(t *testing.T, got map[string]any) {
		if got["status"] != "firstLine" {
			t.Errorf("status %v", got["status"])
		}
	})

	snap, _ := s.Incident(id)
	var whats []string
	for _, h := range snap.History {
		who := "api:" + h.By
		if h.Operator {
			who = "operator:" + h.By
		}
		whats = append(whats, who+" "+h.What)
	}
	want := []string{
		"api:Alertdesk, API created",
		"operator:Jansen, Eva briefDescription, priority",
		"operator:Jansen, Eva added an action",
		"operator:Jansen, Eva closed, closureCode, processingStatus",
		"operator:Jansen, Eva reopened, processingStatus",
		"operator:Jansen, Eva archived (Duplicate)",
		"operator:Jansen, Eva unarchived",
	}
	if diff := cmp.Diff(want, whats); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}

	if err := s.Delete("ejansen", number); err != nil {
		t.Fatal(err)
	}
	c.mustCall(http.MethodGet, path, nil, http.StatusNotFound)
	if status, _ := c.list("/tas/api/incidents?" + encodeQuery("query=externalNumber=='alertdesk-op'&all=true")); status != http.StatusNoContent {
		t.Errorf("search for a deleted incident: %d, want 204", status)
	}
	if err := s.Delete("ejansen", number); !isOperatorError(err, http.StatusNotFound) {
		t.Errorf("second delete: %v, want a 404", err)
	}
}

func isOperatorError(err error, status int) bool {
	var oe *OperatorError
	return errors.As(err, &oe) && oe.Status == status
}

// TestOperatorAdminAPI drives the operator actions over HTTP, as a script
// or a person with curl would, and checks the page shows who did what.
func TestOperatorAdminAPI(t *testing.T) {
	s := Start(t, Options{Now: fixedNow})
	c := newClient(t, s)
	inc := c.createIncident(map[string]any{"briefDescription": "Load high", "externalNumber": "alertdesk-admin"})
	admin := c.as("", "")
	base := "/_sim/incidents/" + url.PathEscape(inc["number"].(string))

	got := admin.mustCall(http.MethodPost, base+"/close", map[string]any{"operator": "tbakker", "closureCode": "Solved"}, http.StatusOK)
	if got["closed"] != true || got["closureCode"] != "Solved" || got["modifier"] != "Bakker, Tom" {
		t.Errorf("close: %v", got)
	}
	got = admin.mustCall(http.MethodPost, base+"/edit", map[string]any{"fields": map[string]any{"priority": map[string]any{"name": "P2"}}}, http.StatusOK)
	if got["priority"] != "P2" || got["modifier"] != "Jansen, Eva" {
		t.Errorf("edit by the default operator: %v", got)
	}
	admin.mustCall(http.MethodPost, base+"/action", map[string]any{"operator": "tbakker", "text": "Called the <b>owner</b>."}, http.StatusOK)

	for _, tc := range []struct {
		name, path string
		body       any
		status     int
		msg        string
	}{
		{"unknown closure code", base + "/close", map[string]any{"closureCode": "Nope"}, http.StatusBadRequest, "closureCode"},
		{"unknown field", base + "/edit", map[string]any{"fields": map[string]any{"colour": "red"}}, http.StatusBadRequest, "colour"},
		{"unknown incident", "/_sim/incidents/I%209999%20999/reopen", nil, http.StatusNotFound, "No incident"},
		{"unknown action", base + "/explode", nil, http.StatusNotFound, "explode"},
		{"unknown body member", base + "/close", map[string]any{"code": "Solved"}, http.StatusBadRequest, "code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, b := admin.on(t).call(http.MethodPost, tc.path, tc.body)
			if status != tc.status || !strings.Contains(string(b), tc.msg) {
				t.Errorf("%d %s, want %d with %q", status, b, tc.status, tc.msg)
			}
		})
	}

	_, _, b := admin.call(http.MethodGet, "/", nil)
	page := string(b)
	for _, want := range []string{"alertdesk (API, Alertdesk, API)</span>: created", "operator Bakker, Tom</strong>: closed, closureCode", "operator Jansen, Eva</strong>: priority"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}

	admin.mustCall(http.MethodPost, base+"/archive", nil, http.StatusOK)
	admin.mustCall(http.MethodPost, base+"/delete", map[string]any{"operator": "tbakker"}, http.StatusNoContent)
	if _, ok := s.Incident(inc["id"].(string)); ok {
		t.Error("the incident is still there after delete")
	}
	_, _, b = admin.call(http.MethodGet, "/", nil)
	if !strings.Contains(string(b), "<strong>I 2611 001</strong> by operator Bakker, Tom") {
		t.Errorf("page does not list the deletion:\n%s", b)
	}
}
