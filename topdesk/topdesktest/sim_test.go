package topdesktest

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAuth(t *testing.T) {
	s := Start(t, Options{ReadOnlyUsers: map[string]string{"reader": "reader-pw"}})
	c := newClient(t, s)
	tests := []struct {
		name       string
		user, pass string
		method     string
		path       string
		body       any
		want       int
	}{
		{"no credentials", "", "", http.MethodGet, "/tas/api/version", nil, http.StatusUnauthorized},
		{"wrong password", DefaultUsername, "nope", http.MethodGet, "/tas/api/version", nil, http.StatusUnauthorized},
		{"wrong user", "someone", DefaultPassword, http.MethodGet, "/tas/api/version", nil, http.StatusUnauthorized},
		{"operator reads", DefaultUsername, DefaultPassword, http.MethodGet, "/tas/api/version", nil, http.StatusOK},
		{"operator writes", DefaultUsername, DefaultPassword, http.MethodPost, "/tas/api/incidents", map[string]any{"briefDescription": "x"}, http.StatusCreated},
		{"read-only user reads", "reader", "reader-pw", http.MethodGet, "/tas/api/incidents", nil, http.StatusOK},
		{"read-only user with wrong password", "reader", "nope", http.MethodGet, "/tas/api/incidents", nil, http.StatusUnauthorized},
		{"read-only user creates", "reader", "reader-pw", http.MethodPost, "/tas/api/incidents", map[string]any{"briefDescription": "x"}, http.StatusForbidden},
		{"read-only user patches", "reader", "reader-pw", http.MethodPatch, "/tas/api/incidents/number/I%201%201", map[string]any{"action": "x"}, http.StatusForbidden},
		{"read-only user puts", "reader", "reader-pw", http.MethodPut, "/tas/api/incidents/number/I%201%201", map[string]any{"action": "x"}, http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := c.on(t)
			status, h, b := c.as(tc.user, tc.pass).call(tc.method, tc.path, tc.body)
			if status != tc.want {
				t.Fatalf("status %d, want %d; body %s", status, tc.want, b)
			}
			if status >= 400 {
				if msgs := messages(t, b); len(msgs) == 0 || msgs[0] == "" {
					t.Errorf("error body %s has no message", b)
				}
			}
			if status == http.StatusUnauthorized && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("WWW-Authenticate = %q, want Basic", h.Get("WWW-Authenticate"))
			}
		})
	}
	if got := len(s.Incidents()); got != 1 {
		t.Errorf("%d incidents after the auth tests, want 1 (only the operator's)", got)
	}

	t.Run("rotated credentials", func(t *testing.T) {
		c := c.on(t)
		s.SetCredentials("ops", "new-secret")
		if status, _, _ := c.call(http.MethodGet, "/tas/api/version", nil); status != http.StatusUnauthorized {
			t.Errorf("old password: status %d, want 401", status)
		}
		if status, _, _ := c.as("ops", "new-secret").call(http.MethodGet, "/tas/api/version", nil); status != http.StatusOK {
			t.Errorf("new password: status %d, want 200", status)
		}
	})
}

func TestVersion(t *testing.T) {
	for _, v := range []string{"", "3.1.0"} {
		s := Start(t, Options{APIVersion: v})
		got := newClient(t, s).mustCall(http.MethodGet, "/tas/api/version", nil, http.StatusOK)
		want := v
		if want == "" {
			want = DefaultAPIVersion
		}
		if got["version"] != want {
			t.Errorf("version = %v, want %s", got["version"], want)
		}
	}
}

func TestCreate(t *testing.T) {
	s := Start(t, Options{Now: fixedNow})
	c := newClient(t, s)
	inc := c.createIncident(map[string]any{
		"caller":           map[string]any{"dynamicName": "Monitoring"},
		"briefDescription": "Disk / at 97% on db-7",
		"request":          "Free space <b>below</b> 3%.<br>Key: db-7/disk-full",
		"action":           "Created by alertdesk",
		"externalNumber":   "alertdesk-0123456789abcdef0123456789abcdef",
		"entryType":        map[string]any{"name": "Monitoring"},
		"callType":         map[string]any{"name": "Disruption"},
		"subcategory":      map[string]any{"name": "Oracle"},
		"impact":           map[string]any{"name": "Organisation"},
		"urgency":          map[string]any{"name": "High"},
		"operatorGroup":    map[string]any{"id": stableUUID("operatorGroups//DBA")},
	})
	id, _ := inc["id"].(string)
	if !isUUID(id) {
		t.Errorf("id %q is not a UUID", id)
	}
	if inc["number"] != "I 2611 001" {
		t.Errorf("number = %v, want I 2611 001", inc["number"])
	}
	checks := map[string]string{
		"category":         "Databases", // filled in from the subcategory
		"subcategory":      "Oracle",
		"priority":         "P1", // from the priority matrix
		"processingStatus": "Logged",
		"entryType":        "Monitoring",
		"callType":         "Disruption",
		"operatorGroup":    "DBA",
	}
	for f, want := range checks {
		if got := refName(inc, f); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	if inc["status"] != "firstLine" || inc["closed"] != false || inc["closedDate"] != nil {
		t.Errorf("status/closed/closedDate = %v/%v/%v, want firstLine/false/null", inc["status"], inc["closed"], inc["closedDate"])
	}
	if inc["creationDate"] != "2026-11-05T10:30:00.000+0000" {
		t.Errorf("creationDate = %v", inc["creationDate"])
	}
	if inc["request"] != "Free space below 3%.\nKey: db-7/disk-full" {
		t.Errorf("request (plain text) = %q", inc["request"])
	}
	if caller, _ := inc["caller"].(map[string]any); caller["dynamicName"] != "Monitoring" {
		t.Errorf("caller = %v", inc["caller"])
	}

	second := c.createIncident(map[string]any{"briefDescription": "second"})
	if second["number"] != "I 2611 002" {
		t.Errorf("second number = %v, want I 2611 002", second["number"])
	}

	got, ok := s.Incident(id)
	if !ok {
		t.Fatalf("Incident(%s) not found", id)
	}
	want := Incident{
		ID: id, Number: "I 2611 001", Status: "firstLine", BriefDescription: "Disk / at 97% on db-7",
		ExternalNumber: "alertdesk-0123456789abcdef0123456789abcdef",
		Request:        "Free space <b>below</b> 3%.<br>Key: db-7/disk-full",
		CreationDate:   fixedNow(), ModificationDate: fixedNow(),
		ProcessingStatus: "Logged", Priority: "P1", Impact: "Organisation", Urgency: "High",
		Category: "Databases", Subcategory: "Oracle", CallType: "Disruption", EntryType: "Monitoring",
		OperatorGroup: "DBA", CallerName: "Monitoring",
		Actions:  []Action{{Text: "Created by alertdesk", Date: fixedNow(), By: "Alertdesk, API"}},
		Modifier: "Alertdesk, API",
		History:  []Change{{At: fixedNow(), By: "Alertdesk, API", What: "created"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Incident() mismatch (-want +got):\n%s", diff)
	}
	if byNumber, ok := s.Incident("I 2611 001"); !ok || byNumber.ID != id {
		t.Errorf("Incident(number) = %v, %v", byNumber.ID, ok)
	}
	if all := s.Incidents(); len(all) != 2 || all[0].ID != id || all[1].Number != "I 2611 002" {
		t.Errorf("Incidents() = %+v, want both in creation order", all)
	}
}

func TestCreateWithCallerLookupAndStatus(t *testing.T) {
	s := Start(t, Options{})
	c := newClient(t, s)
	inc := c.createIncident(map[string]any{
		"callerLookup":     map[string]any{"email": "Anna.Visser@example.com"},
		"status":           "secondLine",
		"processingStatus": map[string]any{"name": "In progress"},
		"priority":         map[string]any{"name": "P4"},
		"impact":           map[string]any{"name": "Organisation"},
		"urgency":          map[string]any{"name": "High"},
	})
	caller, _ := inc["caller"].(map[string]any)
	if caller["dynamicName"] != "Visser, Anna" || caller["id"] != stableUUID("persons//Visser, Anna") {
		t.Errorf("caller = %v", caller)
	}
	if inc["status"] != "secondLine" || refName(inc, "processingStatus") != "In progress" {
		t.Errorf("status %v, processingStatus %v", inc["status"], refName(inc, "processingStatus"))
	}
	if got := refName(inc, "priority"); got != "P4" {
		t.Errorf("priority = %q, want P4: an explicit priority wins over the matrix", got)
	}
}

func TestGetByIDAndNumber(t *testing.T) {
	s := Start(t, Options{Now: fixedNow})
	c := newClient(t, s)
	inc := c.createIncident(map[string]any{"briefDescription": "get me"})
	id := inc["id"].(string)
	tests := []struct {
		name string
		path string
		want int
	}{
		{"by id", "/tas/api/incidents/id/" + id, http.StatusOK},
		{"by upper-case id", "/tas/api/incidents/id/" + strings.ToUpper(id), http.StatusOK},
		{"by number", "/tas/api/incidents/number/" + url.PathEscape("I 2611 001"), http.StatusOK},
		{"by number with +", "/tas/api/incidents/number/I%202611%20001", http.StatusOK},
		{"unknown id", "/tas/api/incidents/id/" + stableUUID("nothing"), http.StatusNotFound},
		{"unknown number", "/tas/api/incidents/number/" + url.PathEscape("I 2611 999"), http.StatusNotFound},
		{"malformed id", "/tas/api/incidents/id/not-a-uuid", http.StatusBadRequest},
		{"unknown resource", "/tas/api/nothing", http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := c.on(t)
			status, _, b := c.call(http.MethodGet, tc.path, nil)
			if status != tc.want {
				t.Fatalf("status %d, want %d; body %s", status, tc.want, b)
			}
			if status == http.StatusOK {
				if !strings.Contains(string(b), `"briefDescription":"get me"`) {
					t.Errorf("body %s is not the incident", b)
				}
			} else if len(messages(t, b)) == 0 {
				t.Errorf("error body %s has no message", b)
			}
		})
	}
}

func TestPartialUpdateAndActionTrail(t *testing.T) {
	s := Start(t, Options{Now: fixedNow})
	c := newClient(t, s)
	inc := c.createIncident(map[string]any{
		"briefDescription": "original",
		"request":          "first request",
		"action":           "action 1",
		"externalNumber":   "ext-1",
		"category":         map[string]any{"name": "Databases"},
		"subcategory":      map[string]any{"name": "Oracle"},
		"priority":         map[string]any{"name": "P3"},
	})
	id := inc["id"].(string)
	byID := "/tas/api/incidents/id/" + id
	byNumber := "/tas/api/incidents/number/" + url.PathEscape(inc["number"].(string))

	steps := []struct {
		method, path string
		body         map[string]any
	}{
		{http.MethodPatch, byID, map[string]any{"action": "action 2", "actionInvisibleForCaller": true}},
		{http.MethodPut, byNumber, map[string]any{"action": "action 3", "request": "second request"}},
		{http.MethodPatch, byNumber, map[string]any{"briefDescription": "changed", "priority": map[string]any{"name": "P1"}}},
		{http.MethodPut, byID, map[string]any{"action": "action 4", "actionInvisibleForCaller": false}},
	}
	for _, st := range steps {
		c.mustCall(st.method, st.path, st.body, http.StatusOK)
	}
	got := c.mustCall(http.MethodGet, byID, nil, http.StatusOK)
	if got["briefDescription"] != "changed" || got["externalNumber"] != "ext-1" ||
		refName(got, "priority") != "P1" || refName(got, "category") != "Databases" || refName(got, "subcategory") != "Oracle" {
		t.Errorf("after partial updates: %v", got)
	}
	if got["request"] != "second request\n\nfirst request" {
		t.Errorf("request = %q, want both entries, newest first", got["request"])
	}
	snap, _ := s.Incident(id)
	wantActions := []Action{
		{Text: "action 1", Date: fixedNow(), By: "Alertdesk, API"},
		{Text: "action 2", InvisibleForCaller: true, Date: fixedNow(), By: "Alertdesk, API"},
		{Text: "action 3", Date: fixedNow(), By: "Alertdesk, API"},
		{Text: "action 4", Date: fixedNow(), By: "Alertdesk, API"},
	}
	if diff := cmp.Diff(wantActions, snap.Actions); diff != "" {
		t.Errorf("action trail (-want +got):\n%s", diff)
	}

	status, actions := c.list(byID + "/actions")
	if status != http.StatusOK || len(actions) != 4 {
		t.Fatalf("GET actions: %d, %d entries", status, len(actions))
	}
	if actions[0]["memoText"] != "action 4" || actions[2]["invisibleForCaller"] != true || actions[3]["plainText"] != "action 1" {
		t.Errorf("GET actions (newest first) = %v", actions)
	}
	if status, page := c.list(byID + "/actions?start=1&page_size=2"); status != http.StatusPartialContent || len(page) != 2 || page[0]["memoText"] != "action 3" {
		t.Errorf("GET actions page 2: %d %v", status, page)
	}
	if status, reqs := c.list(byNumber + "/requests"); status != http.StatusOK || len(reqs) != 2 || reqs[0]["memoText"] != "second request" {
		t.Errorf("GET requests: %d %v", status, reqs)
	}

	t.Run("category change drops a subcategory of another category", func(t *testing.T) {
		c := c.on(t)
		got := c.mustCall(http.MethodPatch, byID, map[string]any{"category": map[string]any{"name": "Applications"}}, http.StatusOK)
		if refName(got, "category") != "Applications" || got["subcategory"] != nil {
			t.Errorf("category %q, subcategory %v", refName(got, "category"), got["subcategory"])
		}
	})
	t.Run("null clears a field", func(t *testing.T) {
		c := c.on(t)
		got := c.mustCall(http.MethodPatch, byID, map[string]any{"priority": nil, "externalNumber": nil}, http.StatusOK)
		if got["priority"] != nil || got["externalNumber"] != "" {
			t.Errorf("priority %v, externalNumber %v", got["priority"], got["externalNumber"])
		}
	})
	t.Run("unknown incident", func(t *testing.T) {
		c := c.on(t)
		c.mustCall(http.MethodPatch, "/tas/api/incidents/id/"+stableUUID("none"), map[string]any{"action": "x"}, http.StatusNotFound)
		c.mustCall(http.MethodPut, "/tas/api/incidents/number/"+url.PathEscape("I 0000 000"), map[string]any{"action": "x"}, http.StatusNotFound)
	})
}

func TestCloseAndReopen(t *testing.T) {
	clock := fixedNow()
	s := Start(t, Options{Now: func() time.Time { return clock }})
	c := newClient(t, s)
	path := "/tas/api/incidents/id/" + c.createIncident(map[string]any{"briefDescription": "lifecycle"})["id"].(string)
	const stamp = "2026-11-05T10:30:00.000+0000"

	tests := []struct {
		name                       string
		body                       map[string]any
		wantClosed, wantCompleted  bool
		wantClosedDate, wantStatus any
	}{
		{"closed:true closes and completes, status unchanged", map[string]any{"closed": true, "closureCode": map[string]any{"name": "Solved"}}, true, true, stamp, "Logged"},
		{"closed:false reopens but stays completed", map[string]any{"closed": false}, false, true, nil, "Logged"},
		{"completed:false", map[string]any{"completed": false}, false, false, nil, "Logged"},
		{"closing status closes", map[string]any{"processingStatus": map[string]any{"name": "Closed"}}, true, true, stamp, "Closed"},
		{"open status reopens", map[string]any{"processingStatus": map[string]any{"name": "In progress"}}, false, false, nil, "In progress"},
		{"string booleans as TOPdesk accepts them", map[string]any{"closed": "true"}, true, true, stamp, "In progress"},
		{"explicit closed wins over an open status", map[string]any{"processingStatus": map[string]any{"name": "Logged"}, "closed": true}, true, true, stamp, "Logged"},
		{"given closedDate", map[string]any{"closedDate": "2026-11-01T08:00:00.000+0100"}, true, true, "2026-11-01T07:00:00.000+0000", "Logged"},
		{"reopen with both flags", map[string]any{"closed": false, "completed": false, "action": "re-fired"}, false, false, nil, "Logged"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := c.on(t)
			got := c.mustCall(http.MethodPatch, path, tc.body, http.StatusOK)
			if got["closed"] != tc.wantClosed || got["completed"] != tc.wantCompleted ||
				got["closedDate"] != tc.wantClosedDate || refName(got, "processingStatus") != tc.wantStatus {
				t.Errorf("closed %v completed %v closedDate %v status %q; want %v %v %v %q",
					got["closed"], got["completed"], got["closedDate"], refName(got, "processingStatus"),
					tc.wantClosed, tc.wantCompleted, tc.wantClosedDate, tc.wantStatus)
			}
			if tc.wantCompleted != (got["completedDate"] != nil) {
				t.Errorf("completedDate %v with completed %v", got["completedDate"], tc.wantCompleted)
			}
		})
	}
	snap, _ := s.Incident(strings.TrimPrefix(path, "/tas/api/incidents/id/"))
	if snap.ClosureCode != "Solved" || snap.Closed || len(snap.Actions) != 1 {
		t.Errorf("after reopen: %+v", snap)
	}

	t.Run("closedDate stays when closed again", func(t *testing.T) {
		c := c.on(t)
		c.mustCall(http.MethodPatch, path, map[string]any{"closed": true}, http.StatusOK)
		clock = clock.Add(time.Hour)
		got := c.mustCall(http.MethodPatch, path, map[string]any{"closed": true}, http.StatusOK)
		if got["closedDate"] != stamp {
			t.Errorf("closedDate = %v, want the first close's %s", got["closedDate"], stamp)
		}
	})
}

func TestSearch(t *testing.T) {
	s := Start(t, Options{Now: fixedNow})
	c := newClient(t, s)
	c.createIncident(map[string]any{"briefDescription": "a", "externalNumber": "ext-a"})
	c.createIncident(map[string]any{"briefDescription": "b", "externalNumber": "ext-b"})
	closed := c.createIncident(map[string]any{"briefDescription": "c", "externalNumber": "ext-b"})
	c.mustCall(http.MethodPatch, "/tas/api/incidents/id/"+closed["id"].(string), map[string]any{"closed": true}, http.StatusOK)
	c.createIncident(map[string]any{"briefDescription": "d with 'quote'", "externalNumber": "it's"})

	tests := []struct {
		name  string
		query string
		want  []string // brief descriptions; nil = 204
	}{
		{"single quotes", "query=externalNumber=='ext-a'", []string{"a"}},
		{"double quotes", `query=externalNumber=="ext-b"`, []string{"b", "c"}},
		{"bare value", "query=externalNumber==ext-a", []string{"a"}},
		{"case-insensitive", "query=externalNumber=='EXT-A'", []string{"a"}},
		{"escaped quote", `query=externalNumber=='it\'s'`, []string{"d with 'quote'"}},
		{"closed==false", "query=closed==false", []string{"a", "b", "d with 'quote'"}},
		{"closed==true", "query=closed==true", []string{"c"}},
		{"and", "query=externalNumber=='ext-b';closed==false", []string{"b"}},
		{"starts with", "query=briefDescription=sw=d", []string{"d with 'quote'"}},
		{"processing status name", "query=processingStatus.name=='Logged'", []string{"a", "b", "c", "d with 'quote'"}},
		{"not equal", "query=externalNumber!='ext-b'", []string{"a", "d with 'quote'"}},
		{"date", "query=creationDate=ge=2026-11-01T00:00:00Z", []string{"a", "b", "c", "d with 'quote'"}},
		{"two-way sync", "query=externalNumber=sw=EXT-;modificationDate=gt=2026-11-05T10:29:59Z", []string{"a", "b", "c"}},
		{"two-way sync, nothing newer", "query=externalNumber=sw=ext-;modificationDate=gt=2026-11-05T10:30:00Z", nil},
		{"index and a scan", "query=closed==false;externalNumber=='ext-b'", []string{"b"}},
		{"no match", "query=externalNumber=='nothing'", nil},
		{"legacy external_number", "external_number=ext-b", []string{"b", "c"}},
		{"legacy closed", "external_number=ext-b&closed=false", []string{"b"}},
		{"sort descending", "sort=creationDate:desc,number:desc&pageSize=2", []string{"d with 'quote'", "c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := c.on(t)
			status, items := c.list("/tas/api/incidents?" + encodeQuery(tc.query))
			if tc.want == nil {
				if status != http.StatusNoContent {
					t.Fatalf("status %d, want 204", status)
				}
				return
			}
			if status != http.StatusOK && status != http.StatusPartialContent {
				t.Fatalf("status %d", status)
			}
			var got []string
			for _, it := range items {
				got = append(got, it["briefDescription"].(string))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("matches (-want +got):\n%s", diff)
			}
		})
	}

	bad := []struct {
		name, query, wantMsg string
	}{
		{"unknown field", "query=nonsense=='x'", "Error parsing query"},
		{"unterminated quote", "query=externalNumber=='x", "Error parsing query"},
		{"missing operator", "query=externalNumber", "Error parsing query"},
		{"bad boolean", "query=closed==maybe", "Error parsing query"},
		{"gt on text", "query=externalNumber=gt=x", "Error parsing query"},
		{"null with sw", "query=externalNumber=sw=null", "Error parsing query"},
		// Forms TOPdesk has but alertdesk does not send.
		{"or", "query=externalNumber=='ext-a',externalNumber=='ext-b'", "Error parsing query"},
		{"parentheses", "query=(externalNumber=='ext-a');closed==false", "Error parsing query"},
		{"in", "query=externalNumber=in=(ext-a,nothing)", "Error parsing query"},
		{"mixing legacy and new parameters", "external_number=x&pageSize=10", "cannot be combined"},
		{"unknown sort field", "sort=request:asc", "Cannot sort"},
		{"bad all", "all=yes", "'all'"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			c := c.on(t)
			status, _, b := c.call(http.MethodGet, "/tas/api/incidents?"+encodeQuery(tc.query), nil)
			if status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", status, b)
			}
			if msgs := messages(t, b); len(msgs) != 1 || !strings.Contains(msgs[0], tc.wantMsg) {
				t.Errorf("messages %q, want one containing %q", msgs, tc.wantMsg)
			}
		})
	}
}

// encodeQuery URL-encodes the values of a raw "k=v&k=v" query.
func encodeQuery(raw string) string {
	v := url.Values{}
	for part := range strings.SplitSeq(raw, "&") {
		k, val, _ := strings.Cut(part, "=")
		v.Add(k, val)
	}
	return v.Encode()
}

func TestPaging(t *testing.T) {
	s := Start(t, Options{})
	c := newClient(t, s)
	for i := range 25 {
		c.createIncident(map[string]any{"briefDescription": fmt.Sprintf("incident %02d", i), "externalNumber": "same"})
	}
	tests := []struct {
		query      string
		wantStatus int
		wantFirst  string
		wantLen    int
	}{
		{"", http.StatusPartialContent, "incident 00", 10}, // default page size 10
		{"pageStart=10&pageSize=10", http.StatusPartialContent, "incident 10", 10},
		{"pageStart=20&pageSize=10", http.StatusOK, "incident 20", 5},
		{"pageStart=0&pageSize=25", http.StatusOK, "incident 00", 25},
		{"pageStart=0&pageSize=10000", http.StatusOK, "incident 00", 25},
		{"pageStart=25&pageSize=10", http.StatusNoContent, "", 0},
		{"query=externalNumber=='same'&pageStart=24&pageSize=5", http.StatusOK, "incident 24", 1},
		{"start=0&page_size=100", http.StatusOK, "incident 00", 25},
		{"start=5&page_size=5", http.StatusPartialContent, "incident 05", 5},
		{"external_number=same&start=20&page_size=10", http.StatusOK, "incident 20", 5},
		{"start=30", http.StatusNoContent, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			c := c.on(t)
			status, items := c.list("/tas/api/incidents?" + encodeQuery(tc.query))
			if status != tc.wantStatus || len(items) != tc.wantLen {
				t.Fatalf("status %d with %d items, want %d with %d", status, len(items), tc.wantStatus, tc.wantLen)
			}
			if tc.wantLen > 0 && items[0]["briefDescription"] != tc.wantFirst {
				t.Errorf("first = %v, want %s", items[0]["briefDescription"], tc.wantFirst)
			}
		})
	}
	for _, q := range []string{"pageSize=10001", "pageSize=0", "pageStart=-1", "page_size=101", "pageSize=ten"} {
		t.Run("invalid "+q, func(t *testing.T) {
			c := c.on(t)
			if status, _, b := c.call(http.MethodGet, "/tas/api/incidents?"+q, nil); status != http.StatusBadRequest {
				t.Errorf("status %d, want 400; body %s", status, b)
			}
		})
	}
}

func TestFields(t *testing.T) {
	s := Start(t, Options{})
	c := newClient(t, s)
	inc := c.createIncident(map[string]any{"briefDescription": "fields", "externalNumber": "f"})
	want := []string{"closed", "completed", "id", "number", "processingStatus"}
	for _, path := range []string{
		"/tas/api/incidents?query=externalNumber=='f'&fields=id,number,closed,completed,processingStatus",
		"/tas/api/incidents?all=true&$fields=id,number,closed,completed,processingStatus",
	} {
		status, items := c.list(path)
		if status != http.StatusOK || len(items) != 1 {
			t.Fatalf("GET %s: %d, %d items", path, status, len(items))
		}
		var got []string
		for k := range items[0] {
			got = append(got, k)
		}
		slices.Sort(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("GET %s: keys (-want +got):\n%s", path, diff)
		}
	}
	one := c.mustCall(http.MethodGet, "/tas/api/incidents/id/"+inc["id"].(string)+"?fields=number", nil, http.StatusOK)
	if len(one) != 1 || one["number"] != inc["number"] {
		t.Errorf("single incident with fields=number: %v", one)
	}
	status, _, b := c.call(http.MethodGet, "/tas/api/incidents?fields=id,nonsense", nil)
	if status != http.StatusBadRequest || !strings.Contains(messages(t, b)[0], "nonsense") {
		t.Errorf("unknown field: %d %s", status, b)
	}
}

func TestArchived(t *testing.T) {
	s := Start(t, Options{})
	c := newClient(t, s)
	inc := c.createIncident(map[string]any{"briefDescription": "old", "externalNumber": "arch"})
	c.createIncident(map[string]any{"briefDescription": "current", "externalNumber": "arch"})
	path := "/tas/api/incidents/id/" + inc["id"].(string)

	c.mustCall(http.MethodPut, path+"/archive", map[string]any{"name": "nonsense"}, http.StatusBadRequest)
	got := c.mustCall(http.MethodPut, path+"/archive", map[string]any{"name": "Outdated"}, http.StatusOK)
	if got["status"] != "firstLineArchived" || refName(got, "archivingReason") != "Outdated" {
		t.Errorf("archived: status %v, reason %v", got["status"], got["archivingReason"])
	}
	if snap, _ := s.Incident(inc["id"].(string)); !snap.Archived {
		t.Error("Incident().Archived = false after archive")
	}

	count := func(query string) int {
		t.Helper()
		_, items := c.list("/tas/api/incidents?" + encodeQuery(query))
		return len(items)
	}
	if n := count("query=externalNumber=='arch'"); n != 1 {
		t.Errorf("without all=true: %d incidents, want 1", n)
	}
	if n := count("query=externalNumber=='arch'&all=true"); n != 2 {
		t.Errorf("with all=true: %d incidents, want 2", n)
	}
	if n := count("external_number=arch&archived=true"); n != 1 {
		t.Errorf("legacy archived=true: %d incidents, want 1", n)
	}
	status, _, b := c.call(http.MethodPatch, path, map[string]any{"action": "x"})
	if status != http.StatusBadRequest || !strings.Contains(messages(t, b)[0], "archived") {
		t.Errorf("update of an archived incident: %d %s", status, b)
	}
	c.mustCall(http.MethodGet, path, nil, http.StatusOK) // still readable by id
	c.mustCall(http.MethodPut, path+"/unarchive", nil, http.StatusOK)
	c.mustCall(http.MethodPut, path+"/unarchive", nil, http.StatusBadRequest)
	if n := count("query=externalNumber=='arch'"); n != 2 {
		t.Errorf("after unarchive: %d incidents, want 2", n)
	}
	c.mustCall(http.MethodPatch, path, map[string]any{"action": "back"}, http.StatusOK)
}

func TestValidation(t *testing.T) {
	s := Start(t, Options{})
	c := newClient(t, s)
	existing := c.createIncident(map[string]any{"briefDescription": "target"})
	update := "/tas/api/incidents/id/" + existing["id"].(string)
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name    string
		path    string // "" = create
		body    any
		wantMsg string // "" = accepted
	}{
		{"not an object", "", `["briefDescription"]`, "JSON object"},
		{"not JSON", "", `{"briefDescription":`, "JSON object"},
		{"unknown field", "", map[string]any{"briefDescripton": "typo"}, "Unrecognized field 'briefDescripton'"},
		{"unknown nested field", "", map[string]any{"caller": map[string]any{"name": "x"}}, "Unrecognized field 'caller.name'"},
		{"status on update", update, map[string]any{"status": "secondLine"}, "Unrecognized field 'status'"},
		{"callDate on create", "", map[string]any{"callDate": "2026-01-01T00:00:00.000+0000"}, "Unrecognized field 'callDate'"},
		{"callDate on update", update, map[string]any{"callDate": "2026-01-01T00:00:00.000+0000"}, ""},
		{"string as number", "", map[string]any{"briefDescription": 42}, "'briefDescription' must be a string"},
		{"bool as string", "", map[string]any{"closed": "yes"}, "'closed' must be a boolean"},
		{"object as string", "", map[string]any{"category": "Databases"}, "'category' must be an object"},
		{"bad date", update, map[string]any{"closedDate": "yesterday"}, "'closedDate' cannot be parsed"},
		{"bad enum", "", map[string]any{"status": "thirdLine"}, "'status' must be one of"},
		{"partial without main incident", "", map[string]any{"status": "partial"}, "'mainIncident' is required"},
		{"main incident for first line", "", map[string]any{"mainIncident": map[string]any{"number": "I 1"}}, "non-partial"},
		{"briefDescription 80", "", map[string]any{"briefDescription": long(80)}, ""},
		{"briefDescription 81", "", map[string]any{"briefDescription": long(81)}, "'briefDescription' is too long: 81 characters, the maximum is 80"},
		{"briefDescription 80 runes but 160 UTF-16 units", "", map[string]any{"briefDescription": strings.Repeat("😀", 80)}, "'briefDescription' is too long: 160"},
		{"briefDescription 80 accented", "", map[string]any{"briefDescription": strings.Repeat("é", 80)}, ""},
		{"briefDescription 81 on update", update, map[string]any{"briefDescription": long(81)}, "too long"},
		{"externalNumber 60", "", map[string]any{"externalNumber": long(60)}, ""},
		{"externalNumber 61", "", map[string]any{"externalNumber": long(61)}, "'externalNumber' is too long"},
		{"caller.dynamicName 109", "", map[string]any{"caller": map[string]any{"dynamicName": long(109)}}, ""},
		{"caller.dynamicName 110", "", map[string]any{"caller": map[string]any{"dynamicName": long(110)}}, "'caller.dynamicName' is too long"},
		{"caller.email 101", "", map[string]any{"caller": map[string]any{"email": long(101)}}, "'caller.email' is too long"},
		{"caller.phoneNumber 26", "", map[string]any{"caller": map[string]any{"phoneNumber": long(26)}}, "'caller.phoneNumber' is too long"},
		{"ref with id and name", "", map[string]any{"category": map[string]any{"id": stableUUID("categories//Databases"), "name": "Databases"}}, "both an id and a name"},
		{"ref with neither", "", map[string]any{"priority": map[string]any{}}, "must have an id or a name"},
		{"ref with unknown key", "", map[string]any{"priority": map[string]any{"label": "P1"}}, "Unrecognized field 'priority.label'"},
		{"unknown searchlist name", "", map[string]any{"priority": map[string]any{"name": "P9"}}, "no priority found with name 'P9'"},
		{"unknown searchlist id", "", map[string]any{"impact": map[string]any{"id": stableUUID("none")}}, "no impact found with id"},
		{"searchlist id not a UUID", "", map[string]any{"urgency": map[string]any{"id": "high"}}, "'urgency.id' cannot be parsed"},
		{"processing status by name", update, map[string]any{"processingStatus": map[string]any{"name": "Waiting for user"}}, ""},
		{"unknown processing status", update, map[string]any{"processingStatus": map[string]any{"name": "Resolved"}}, "no processingStatus found with name 'Resolved'"},
		{"name for operatorGroup", "", map[string]any{"operatorGroup": map[string]any{"name": "DBA"}}, "'operatorGroup' can only be set by id"},
		{"name for operator", update, map[string]any{"operator": map[string]any{"name": "Jansen, Eva"}}, "'operator' can only be set by id"},
		{"unknown operator group id", "", map[string]any{"operatorGroup": map[string]any{"id": stableUUID("none")}}, "no operatorGroup found"},
		{"operator by id", "", map[string]any{"operator": map[string]any{"id": stableUUID("operators//Jansen, Eva")}}, ""},
		{"name for location", "", map[string]any{"location": map[string]any{"name": "HQ"}}, "'location' can only be set by id"},
		{"location by id (not simulated)", "", map[string]any{"location": map[string]any{"id": stableUUID("loc")}}, ""},
		{"empty callerLookup", "", map[string]any{"callerLookup": map[string]any{}}, "exactly one lookup value"},
		{"callerLookup with two keys", "", map[string]any{"callerLookup": map[string]any{"id": stableUUID("persons//Visser, Anna"), "email": "anna.visser@example.com"}}, "exactly one lookup value"},
		{"callerLookup unknown email", "", map[string]any{"callerLookup": map[string]any{"email": "nobody@example.com"}}, "no person found with email"},
		{"callerLookup unknown id", "", map[string]any{"callerLookup": map[string]any{"id": stableUUID("none")}}, "no person found with id"},
		{"callerLookup bad id", "", map[string]any{"callerLookup": map[string]any{"id": "anna"}}, "'callerLookup.id' cannot be parsed"},
		{"caller and callerLookup", "", map[string]any{"caller": map[string]any{"dynamicName": "x"}, "callerLookup": map[string]any{"email": "anna.visser@example.com"}}, "both 'caller' and 'callerLookup'"},
		{"ambiguous subcategory", "", map[string]any{"subcategory": map[string]any{"name": "Other"}}, "several categories"},
		{"subcategory with its category", "", map[string]any{"category": map[string]any{"name": "Applications"}, "subcategory": map[string]any{"name": "Other"}}, ""},
		{"subcategory of another category", "", map[string]any{"category": map[string]any{"name": "Databases"}, "subcategory": map[string]any{"name": "Web"}}, "not a subcategory of category 'Databases'"},
		{"closed but not completed", update, map[string]any{"closed": true, "completed": false}, "cannot be closed without being completed"},
		{"number as string", "", map[string]any{"costs": "0.15"}, ""},
		{"bad number", "", map[string]any{"costs": "cheap"}, "'costs' must be a number"},
		{"feedbackRating fraction", update, map[string]any{"feedbackRating": 2.5}, "'feedbackRating' must be a whole number"},
		{"optional fields", "", map[string]any{"optionalFields1": map[string]any{"text1": "db-7", "boolean2": true, "searchlist1": map[string]any{"name": "x"}}}, ""},
		{"bad optional field", "", map[string]any{"optionalFields1": map[string]any{"text6": "x"}}, "Unrecognized field 'optionalFields1.text6'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := c.on(t)
			before := s.Incidents()
			method, path, okStatus := http.MethodPost, "/tas/api/incidents", http.StatusCreated
			if tc.path != "" {
				method, path, okStatus = http.MethodPatch, tc.path, http.StatusOK
			}
			status, _, b := c.call(method, path, tc.body)
			if tc.wantMsg == "" {
				if status != okStatus {
					t.Fatalf("status %d, want %d; body %s", status, okStatus, b)
				}
				return
			}
			if status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", status, b)
			}
			msgs := messages(t, b)
			if !slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, tc.wantMsg) }) {
				t.Errorf("messages %q, want one containing %q", msgs, tc.wantMsg)
			}
			if diff := cmp.Diff(before, s.Incidents()); diff != "" {
				t.Errorf("a rejected request changed the incidents:\n%s", diff)
			}
		})
	}

	t.Run("every problem is reported", func(t *testing.T) {
		c := c.on(t)
		status, _, b := c.call(http.MethodPost, "/tas/api/incidents", map[string]any{
			"briefDescription": long(81), "externalNumber": long(61), "bogus": 1,
		})
		if msgs := messages(t, b); status != http.StatusBadRequest || len(msgs) != 3 {
			t.Errorf("status %d, messages %q; want 400 with 3 messages", status, msgs)
		}
	})
}

func TestPartialIncident(t *testing.T) {
	s := Start(t, Options{})
	c := newClient(t, s)
	main := c.createIncident(map[string]any{"briefDescription": "main", "status": "secondLine"})
	first := c.createIncident(map[string]any{"briefDescription": "first line"})
	part := c.createIncident(map[string]any{"status": "partial", "mainIncident": map[string]any{"number": main["number"]}})
	if m, _ := part["mainIncident"].(map[string]any); m["id"] != main["id"] {
		t.Errorf("mainIncident = %v", part["mainIncident"])
	}
	status, _, b := c.call(http.MethodPost, "/tas/api/incidents", map[string]any{"status": "partial", "mainIncident": map[string]any{"id": first["id"]}})
	if status != http.StatusBadRequest || !strings.Contains(messages(t, b)[0], "second line") {
		t.Errorf("partial of a first-line incident: %d %s", status, b)
	}
	got := c.mustCall(http.MethodGet, "/tas/api/incidents/id/"+main["id"].(string), nil, http.StatusOK)
	if ps, _ := got["partialIncidents"].([]any); len(ps) != 1 {
		t.Errorf("partialIncidents = %v", got["partialIncidents"])
	}
}

func TestDisableFIQL(t *testing.T) {
	s := Start(t, Options{DisableFIQL: true, APIVersion: "3.1.0"})
	c := newClient(t, s)
	c.createIncident(map[string]any{"briefDescription": "x", "externalNumber": "old-style"})
	status, _, b := c.call(http.MethodGet, "/tas/api/incidents?"+encodeQuery("query=externalNumber=='old-style'"), nil)
	if status != http.StatusBadRequest || !strings.Contains(messages(t, b)[0], "Error parsing query") {
		t.Errorf("FIQL query: %d %s, want 400 Error parsing query", status, b)
	}
	if status, items := c.list("/tas/api/incidents?external_number=old-style"); status != http.StatusOK || len(items) != 1 {
		t.Errorf("legacy external_number: %d, %d items", status, len(items))
	}
	if status, _ := c.list("/tas/api/operatorgroups?" + encodeQuery("query=groupName=='DBA'")); status != http.StatusOK {
		t.Errorf("FIQL on operator groups: %d, want 200 (only incidents lack FIQL)", status)
	}
}

func TestDisablePatch(t *testing.T) {
	s := Start(t, Options{DisablePatch: true})
	c := newClient(t, s)
	inc := c.createIncident(map[string]any{"briefDescription": "x"})
	for _, path := range []string{"/tas/api/incidents/id/" + inc["id"].(string), "/tas/api/incidents/number/" + url.PathEscape(inc["number"].(string))} {
		status, h, b := c.call(http.MethodPatch, path, map[string]any{"action": "patch"})
		if status != http.StatusMethodNotAllowed || !strings.Contains(h.Get("Allow"), "PUT") {
			t.Errorf("PATCH %s: %d (Allow %q) %s, want 405 allowing PUT", path, status, h.Get("Allow"), b)
		}
		c.mustCall(http.MethodPut, path, map[string]any{"action": "put"}, http.StatusOK)
	}
	snap, _ := s.Incident(inc["id"].(string))
	if len(snap.Actions) != 2 || snap.Actions[0].Text != "put" {
		t.Errorf("actions %+v, want the two PUT actions only", snap.Actions)
	}
}

func TestLookups(t *testing.T) {
	s := Start(t, Options{})
	c := newClient(t, s)
	tests := []struct {
		path     string
		wantLen  int
		wantName string // the first entry's name (or groupName/dynamicName)
	}{
		{"/tas/api/incidents/statuses", 4, "Logged"},
		{"/tas/api/incidents/priorities", 5, "P1"},
		{"/tas/api/incidents/impacts", 3, "Organisation"},
		{"/tas/api/incidents/urgencies", 3, "High"},
		{"/tas/api/incidents/categories", 3, "Infrastructure"},
		{"/tas/api/incidents/subcategories", 10, "Servers"},
		{"/tas/api/incidents/call_types", 4, "Disruption"},
		{"/tas/api/incidents/entry_types", 4, "Monitoring"},
		{"/tas/api/incidents/closure_codes", 4, "Solved"},
		{"/tas/api/incidents/durations", 5, "1 hour"},
		{"/tas/api/archiving-reasons", 2, "Outdated"},
		{"/tas/api/operatorgroups", 3, "Operations"},
		{"/tas/api/operators", 3, "Alertdesk, API"},
		{"/tas/api/persons", 3, "Monitoring, System"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			c := c.on(t)
			status, items := c.list(tc.path)
			if status != http.StatusOK || len(items) != tc.wantLen {
				t.Fatalf("status %d with %d items, want 200 with %d", status, len(items), tc.wantLen)
			}
			name := items[0]["name"]
			if name == nil {
				name = items[0]["groupName"]
			}
			if name == nil {
				name = items[0]["dynamicName"]
			}
			if name != tc.wantName {
				t.Errorf("first entry %v, want %s", items[0], tc.wantName)
			}
			for _, it := range items {
				if id, _ := it["id"].(string); !isUUID(id) {
					t.Errorf("entry %v has no UUID id", it)
				}
			}
		})
	}

	t.Run("details", func(t *testing.T) {
		c := c.on(t)
		_, statuses := c.list("/tas/api/incidents/statuses")
		if statuses[0]["default"] != true || statuses[2]["onHold"] != "true" || statuses[3]["processingState"] != "closed" {
			t.Errorf("statuses = %v", statuses)
		}
		_, subs := c.list("/tas/api/incidents/subcategories")
		if refName(subs[0], "category") != "Infrastructure" {
			t.Errorf("subcategory %v has no category", subs[0])
		}
		_, prios := c.list("/tas/api/incidents/priorities")
		if refName(prios[0], "firstLineDuration") != "1 hour" {
			t.Errorf("priority %v", prios[0])
		}
	})

	queries := []struct {
		path       string
		wantStatus int
		wantNames  []string
	}{
		{"/tas/api/operatorgroups?query=groupName=='DBA'", http.StatusOK, []string{"DBA"}},
		{"/tas/api/operatorgroups?query=groupName=='Nobody'", http.StatusNoContent, nil},
		{"/tas/api/operatorgroups?page_size=2", http.StatusPartialContent, []string{"Operations", "DBA"}},
		{"/tas/api/operatorgroups?start=2&page_size=2", http.StatusOK, []string{"Network"}},
		{"/tas/api/operatorgroups?start=3", http.StatusNoContent, nil},
		{"/tas/api/operators?query=dynamicName=='Jansen, Eva'", http.StatusOK, []string{"Jansen, Eva"}},
		{"/tas/api/persons?query=email=='piet.devries@example.com'", http.StatusOK, []string{"de Vries, Piet"}},
		{"/tas/api/persons?email=ANNA.VISSER@example.com", http.StatusOK, []string{"Visser, Anna"}},
		{"/tas/api/persons?query=groupName=='x'", http.StatusBadRequest, nil},
		{"/tas/api/operatorgroups?page_size=101", http.StatusBadRequest, nil},
	}
	for _, tc := range queries {
		t.Run(tc.path, func(t *testing.T) {
			c := c.on(t)
			path, query, _ := strings.Cut(tc.path, "?")
			status, items := c.list(path + "?" + encodeQuery(query))
			if status != tc.wantStatus {
				t.Fatalf("status %d, want %d", status, tc.wantStatus)
			}
			var names []string
			for _, it := range items {
				n, _ := it["groupName"].(string)
				if n == "" {
					n, _ = it["dynamicName"].(string)
				}
				names = append(names, n)
			}
			if diff := cmp.Diff(tc.wantNames, names); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("by id", func(t *testing.T) {
		c := c.on(t)
		got := c.mustCall(http.MethodGet, "/tas/api/operatorgroups/id/"+stableUUID("operatorGroups//Network"), nil, http.StatusOK)
		if got["groupName"] != "Network" {
			t.Errorf("operator group = %v", got)
		}
		c.mustCall(http.MethodGet, "/tas/api/persons/id/"+stableUUID("none"), nil, http.StatusNotFound)
	})
}

func TestRequestsAreRecorded(t *testing.T) {
	clock := fixedNow()
	s := Start(t, Options{Now: func() time.Time { return clock }})
	c := newClient(t, s)
	c.createIncident(map[string]any{"briefDescription": "recorded"})
	c.as("intruder", "x").call(http.MethodGet, "/tas/api/incidents?pageSize=5", nil)
	c.call(http.MethodGet, "/_sim/incidents", nil) // not an API request
	c.call(http.MethodGet, "/", nil)               // neither
	got := s.Requests()
	want := []Request{
		{Method: http.MethodPost, Path: "/tas/api/incidents", Status: http.StatusCreated, Body: []byte(`{"briefDescription":"recorded"}`), User: DefaultUsername, At: clock},
		{Method: http.MethodGet, Path: "/tas/api/incidents", RawQuery: "pageSize=5", Status: http.StatusUnauthorized, Body: []byte{}, User: "intruder", At: clock},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Requests() (-want +got):\n%s", diff)
	}
	s.ResetRequests()
	if got := s.Requests(); len(got) != 0 {
		t.Errorf("after ResetRequests: %d requests", len(got))
	}
}

func TestMaxRequests(t *testing.T) {
	s := Start(t, Options{MaxRequests: 3})
	c := newClient(t, s)
	for i := range 10 {
		c.call(http.MethodGet, fmt.Sprintf("/tas/api/incidents?pageStart=%d", i), nil)
	}
	var got []string
	for _, r := range s.Requests() {
		got = append(got, r.RawQuery)
	}
	if diff := cmp.Diff([]string{"pageStart=7", "pageStart=8", "pageStart=9"}, got); diff != "" {
		t.Errorf("kept requests (-want +got):\n%s", diff)
	}
}

func TestNumberFormat(t *testing.T) {
	number := regexp.MustCompile(`^I \d{4} \d{3,}$`)
	s := Start(t, Options{})
	c := newClient(t, s)
	inc := c.createIncident(map[string]any{"briefDescription": "now"})
	n, _ := inc["number"].(string)
	if !number.MatchString(n) || !strings.HasPrefix(n, "I "+time.Now().Format("0601")+" ") {
		t.Errorf("number %q is not I yymm nnn for this month", n)
	}
}
