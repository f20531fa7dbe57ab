package topdesktest

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReadModel builds incidents with every kind of value the read model
// shows (strings that JSON escapes, caller extras and stored fields with
// white space, partials, archived, closed, a stand-in operator) and checks
// the answers to GET, for all fields and for fields= selections.
func TestReadModel(t *testing.T) {
	s := Start(t, Options{Now: fixedNow})
	c := newClient(t, s)
	id := func(seed string) string { return `{"id": "` + stableUUID(seed) + `"}` }
	full := `{ "caller" : { "dynamicName" : "Ops <team> & co\u2028", "email": "ops@example.com", "phoneNumber": "+31 1", "mobileNumber": "06",
		"department" : { "name" : "IT <x> \u2029" }, "location": ` + id("loc") + `, "branch": ` + id("br") + `,
		"budgetHolder": {"name": "b & h"}, "personExtraFieldA": {"name": "a"}, "personExtraFieldB": ` + id("pb") + ` },
	  "briefDescription": "Disk <full> & \"quoted\" \u00e9\ud83d\ude00 \u0001 bad ` + "\xff" + ` byte",
	  "request": "<b>Port down</b><br><br>Graph: <a href=\"http://x/?a=1&amp;b=2\">link</a> &#43; &lt;",
	  "action": "created", "actionInvisibleForCaller": "true",
	  "externalNumber": "alertdesk-\u00e9<1>",
	  "entryType": {"name": "Monitoring"}, "callType": {"name": "Disruption"}, "subcategory": {"name": "Oracle"},
	  "impact": {"name": "Organisation"}, "urgency": {"name": "High"}, "duration": {"name": "1 day"},
	  "object": { "name" : "db-7" }, "location": ` + id("loc") + `, "branch": ` + id("br") + `,
	  "targetDate": "2026-12-01T10:00:00.000+0100", "sla": ` + id("sla") + `, "onHold": "true", "responseDate": "2026-11-05",
	  "feedbackMessage": "<ok>", "feedbackRating": 4, "operator": ` + id("operators//Jansen, Eva") + `,
	  "operatorGroup": ` + id("operatorGroups//DBA") + `, "supplier": ` + id("sup") + `,
	  "processingStatus": {"name": "In progress"}, "closureCode": {"name": "Solved"},
	  "costs": "0.15", "majorCall": true, "publishToSsd": false, "responded": true,
	  "optionalFields1": { "text1" : "a<b", "boolean2" : true, "number3": 1.5e3 }, "optionalFields2": {"searchlist1": {"name": "x"}},
	  "externalLink": { "id" : "ext & <1> \u2028", "type" : "t", "date": "2026-11-05T10:30:00Z" } }`
	main := c.mustCall(http.MethodPost, "/tas/api/incidents", `{"status": "secondLine", "briefDescription": "main"}`, http.StatusCreated)
	steps := []struct {
		method, path, body string
		as                 string // login; "" = the operator
	}{
		{http.MethodPost, "/tas/api/incidents", full, ""},
		{http.MethodPost, "/tas/api/incidents", `{}`, ""},
		{http.MethodPost, "/tas/api/incidents", `{"callerLookup": {"email": "anna.visser@example.com"}, "operatorGroup": ` + id("operatorGroups//DBA") + `}`, ""},
		{http.MethodPost, "/tas/api/incidents", `{"status": "partial", "mainIncident": {"number": "` + main["number"].(string) + `"}}`, ""},
		{http.MethodPost, "/tas/api/incidents", `{"status": "partial", "mainIncident": {"id": "` + main["id"].(string) + `"}}`, ""},
		{http.MethodPost, "/tas/api/incidents", `{"briefDescription": "by a user without an operator"}`, "stand-in"},
		{http.MethodPatch, "/tas/api/incidents/number/" + url.PathEscape("I 2611 002"), `{"request": "second <br/> request", "caller": {"dynamicName": "changed"}, "closed": true}`, ""},
		{http.MethodPut, "/tas/api/incidents/number/" + url.PathEscape("I 2611 004"), `{"processingStatus": {"name": "Closed"}, "externalLink": {"id": "x"}}`, ""},
		{http.MethodPut, "/tas/api/incidents/number/" + url.PathEscape("I 2611 003") + "/archive", `{"name": "Outdated"}`, ""},
	}
	for _, st := range steps {
		cc := c
		if st.as != "" {
			s.SetCredentials(st.as, "pw")
			cc = c.as(st.as, "pw")
		}
		if status, _, b := cc.call(st.method, st.path, st.body); status >= 300 {
			t.Fatalf("%s %s: status %d: %s", st.method, st.path, status, b)
		}
		s.SetCredentials(DefaultUsername, DefaultPassword)
	}
	// A base URL with characters that JSON escapes.
	s.SetURL("http://sim.test/a&b<c>\u2028")
	get := func(number, fields string) map[string]any {
		t.Helper()
		path := "/tas/api/incidents/number/" + url.PathEscape(number)
		if fields != "" {
			path += "?fields=" + fields
		}
		return c.mustCall(http.MethodGet, path, nil, http.StatusOK)
	}

	model := get("I 2611 002", "")
	if got, want := slices.Sorted(maps.Keys(model)), slices.Sorted(maps.Keys(readModelFields())); !slices.Equal(got, want) {
		t.Errorf("read model properties %v, want %v", got, want)
	}
	want := map[string]any{
		"status":           "firstLine",
		"briefDescription": "Disk <full> & \"quoted\" \u00e9\U0001F600 \u0001 bad \uFFFD byte",
		"request":          "second \n request\n\nPort down\n\nGraph: link + <",
		"externalNumber":   "alertdesk-\u00e9<1>",
		"requests":         "http://sim.test/a&b<c>\u2028/tas/api/incidents/id/" + model["id"].(string) + "/requests",
		"caller": map[string]any{"id": nil, "dynamicName": "changed", "email": "ops@example.com", "phoneNumber": "+31 1",
			"mobileNumber": "06", "department": map[string]any{"name": "IT <x> \u2029"},
			"location": map[string]any{"id": stableUUID("loc")}, "branch": map[string]any{"id": stableUUID("br")},
			"budgetHolder": map[string]any{"name": "b & h"}, "personExtraFieldA": map[string]any{"name": "a"},
			"personExtraFieldB": map[string]any{"id": stableUUID("pb")}},
		"operator":        map[string]any{"id": stableUUID("operators//Jansen, Eva"), "name": "Jansen, Eva", "status": "operator"},
		"object":          map[string]any{"id": stableUUID("objects//db-7"), "name": "db-7"},
		"onHold":          "true",
		"costs":           "0.15",
		"feedbackRating":  4.0,
		"closed":          true,
		"closedDate":      "2026-11-05T10:30:00.000+0000",
		"optionalFields1": map[string]any{"text1": "a<b", "boolean2": true, "number3": 1.5e3},
		"externalLinks":   []any{map[string]any{"id": "ext & <1> \u2028", "type": "t", "date": "2026-11-05T10:30:00Z"}},
		"priority":        map[string]any{"id": stableUUID("priorities//P1"), "name": "P1"},
		"asset":           nil,
		"timeSpent":       0.0,
	}
	got := map[string]any{}
	for k := range want {
		got[k] = model[k]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("read model of the full incident (-want +got):\n%s", diff)
	}

	if got := get("I 2611 003", "status,archivingReason,caller"); !cmp.Equal(got, map[string]any{
		"status":          "firstLineArchived",
		"archivingReason": map[string]any{"id": stableUUID("archivingReasons//Outdated"), "name": "Outdated"},
		"caller":          nil,
	}) {
		t.Errorf("fields=status,archivingReason,caller of an archived incident: %v", got)
	}
	if got := get("I 2611 004", "caller,operator,closed,completed,externalLinks"); !cmp.Equal(got, map[string]any{
		"caller": map[string]any{"id": stableUUID("persons//Visser, Anna"), "dynamicName": "Visser, Anna",
			"email": "anna.visser@example.com", "phoneNumber": "", "mobileNumber": ""},
		"operator":      map[string]any{"id": stableUUID("operatorGroups//DBA"), "name": "DBA", "status": "operatorGroup"},
		"closed":        true,
		"completed":     true,
		"externalLinks": []any{map[string]any{"id": "x"}},
	}) {
		t.Errorf("fields= of an incident closed by its status: %v", got)
	}
	if got := get("I 2611 005", "mainIncident"); !cmp.Equal(got, map[string]any{
		"mainIncident": map[string]any{"id": main["id"], "number": main["number"]},
	}) {
		t.Errorf("fields=mainIncident of a partial incident: %v", got)
	}
	mainModel := get(main["number"].(string), "partialIncidents")
	if links, _ := mainModel["partialIncidents"].([]any); len(links) != 2 {
		t.Errorf("main incident's partialIncidents = %v, want two links", mainModel["partialIncidents"])
	}
	if got := get("I 2611 007", "creator"); !cmp.Equal(got, map[string]any{
		"creator": map[string]any{"id": stableUUID("login/stand-in"), "name": "stand-in"},
	}) {
		t.Errorf("creator of an incident by a login without an operator: %v", got)
	}
}
