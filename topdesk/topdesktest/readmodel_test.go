package topdesktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The read model used to be built as a list of fields with map values and
// encoded with encoding/json. That encoder is kept here as the oracle:
// TestReadModelMatchesOracle checks that appendIncident writes exactly the
// same bytes.

// oracleField is one key of a JSON object, in order.
type oracleField struct {
	name  string
	value any
}

// oracleIncidentFields is the read model of inc as the simulator used to
// build it, with maps and encoding/json. The caller holds s.mu.
func oracleIncidentFields(s *Sim, inc *incident) []oracleField {
	base := s.baseURL + "/tas/api/incidents/id/" + inc.id
	other := func(k string, zero any) any {
		if raw, ok := inc.other[k]; ok {
			return raw
		}
		return zero
	}
	status := inc.line
	if inc.archived {
		status += "Archived"
	}
	var caller any
	if c := inc.caller; c != nil {
		m := map[string]any{"id": nil, "dynamicName": c.dynamicName, "email": c.email, "phoneNumber": c.phone, "mobileNumber": c.mobile}
		if c.person != nil {
			m["id"] = c.person.id
		}
		for k, raw := range c.extra {
			m[k] = raw
		}
		caller = m
	}
	var operator any
	if o := inc.refs["operator"]; o != nil {
		operator = map[string]string{"id": o.id, "status": "operator", "name": o.name}
	} else if g := inc.refs["operatorGroup"]; g != nil {
		operator = map[string]string{"id": g.id, "status": "operatorGroup", "name": g.name}
	}
	var main any
	if m := inc.mainIncident; m != nil {
		main = map[string]string{"id": m.id, "number": m.number}
	}
	partials := make([]map[string]string, len(inc.partials))
	for i, p := range inc.partials {
		partials[i] = map[string]string{"link": s.baseURL + "/tas/api/incidents/id/" + p.id}
	}
	links := []json.RawMessage{}
	if raw, ok := inc.other["externalLink"]; ok {
		links = append(links, raw)
	}
	return []oracleField{
		{"id", inc.id},
		{"status", status},
		{"number", inc.number},
		{"request", regexpPlainText(joinNewestFirst(inc.requests))},
		{"requests", base + "/requests"},
		{"action", base + "/actions"},
		{"attachments", base + "/attachments"},
		{"caller", caller},
		{"callerBranch", nil},
		{"callerLocation", nil},
		{"branchExtraFieldA", nil},
		{"branchExtraFieldB", nil},
		{"briefDescription", inc.briefDescription},
		{"externalNumber", inc.externalNumber},
		{"category", wireRef(inc.refs["category"])},
		{"subcategory", wireRef(inc.refs["subcategory"])},
		{"callType", wireRef(inc.refs["callType"])},
		{"entryType", wireRef(inc.refs["entryType"])},
		{"object", other("object", nil)},
		{"asset", nil},
		{"branch", other("branch", nil)},
		{"location", other("location", nil)},
		{"impact", wireRef(inc.refs["impact"])},
		{"urgency", wireRef(inc.refs["urgency"])},
		{"priority", wireRef(inc.refs["priority"])},
		{"duration", wireRef(inc.refs["duration"])},
		{"actualDuration", nil},
		{"targetDate", other("targetDate", nil)},
		{"sla", other("sla", nil)},
		{"responseDate", other("responseDate", nil)},
		{"onHold", other("onHold", false)},
		{"onHoldDate", nil},
		{"onHoldDuration", 0},
		{"feedbackMessage", other("feedbackMessage", nil)},
		{"feedbackRating", other("feedbackRating", nil)},
		{"operator", operator},
		{"operatorGroup", wireRef(inc.refs["operatorGroup"])},
		{"supplier", other("supplier", nil)},
		{"processingStatus", wireRef(inc.refs["processingStatus"])},
		{"completed", inc.completed},
		{"completedDate", wireTime(inc.completedDate)},
		{"closed", inc.closed},
		{"closedDate", wireTime(inc.closedDate)},
		{"closureCode", wireRef(inc.refs["closureCode"])},
		{"timeSpent", 0},
		{"timeSpentFirstLine", 0},
		{"timeSpentSecondLine", 0},
		{"timeSpentPartial", 0},
		{"timeSpentLinkedPartials", 0},
		{"timeSpentSecondLineAndPartials", 0},
		{"itemCosts", 0},
		{"objectCosts", 0},
		{"costs", other("costs", 0)},
		{"escalationStatus", nil},
		{"escalationReason", nil},
		{"escalationOperator", nil},
		{"callDate", wireTime(inc.callDate)},
		{"creator", wireRef(inc.creator)},
		{"creationDate", wireTime(inc.creationDate)},
		{"modifier", wireRef(inc.modifier)},
		{"modificationDate", wireTime(inc.modificationDate)},
		{"archivingReason", wireRef(inc.archivingReason)},
		{"majorCall", other("majorCall", false)},
		{"majorCallObject", other("majorCallObject", nil)},
		{"publishToSsd", other("publishToSsd", false)},
		{"monitored", false},
		{"responded", other("responded", false)},
		{"expectedTimeSpent", 0},
		{"mainIncident", main},
		{"partialIncidents", partials},
		{"optionalFields1", other("optionalFields1", nil)},
		{"optionalFields2", other("optionalFields2", nil)},
		{"externalLinks", links},
	}
}

// oracleEncodeFields writes fs as a JSON object, keeping only the names in
// want (all when want is nil).
func oracleEncodeFields(buf *bytes.Buffer, fs []oracleField, want map[string]bool) error {
	buf.WriteByte('{')
	first := true
	for _, f := range fs {
		if want != nil && !want[f.name] {
			continue
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		buf.WriteByte('"')
		buf.WriteString(f.name)
		buf.WriteString(`":`)
		switch v := f.value.(type) {
		case nil:
			buf.WriteString("null")
		case bool:
			buf.WriteString(strconv.FormatBool(v))
		case int:
			buf.WriteString(strconv.Itoa(v))
		case json.RawMessage:
			buf.Write(v)
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return fmt.Errorf("encode %s: %w", f.name, err)
			}
			buf.Write(b)
		}
	}
	buf.WriteByte('}')
	return nil
}

// TestReadModelMatchesOracle builds incidents with every kind of value the
// read model shows (strings that JSON escapes, invalid UTF-8, caller extras
// and stored fields with white space, partials, archived, closed, a
// stand-in operator) and compares appendIncident with the oracle, for all
// fields and for fields= selections.
func TestReadModelMatchesOracle(t *testing.T) {
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
	  "object": { "name" : "server <1>" }, "location": ` + id("loc") + `, "branch": ` + id("br") + `,
	  "targetDate": "2026-12-01T10:00:00.000+0100", "sla": ` + id("sla") + `, "onHold": "true", "responseDate": "2026-11-05",
	  "feedbackMessage": "<ok>", "feedbackRating": 4, "operator": ` + id("operators//Jansen, Eva") + `,
	  "operatorGroup": ` + id("operatorGroups//DBA") + `, "supplier": ` + id("sup") + `,
	  "processingStatus": {"name": "In progress"}, "closureCode": {"name": "Solved"},
	  "costs": "0.15", "majorCall": true, "majorCallObject": {"name": "major"}, "publishToSsd": false, "responded": true,
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

	wants := []map[string]bool{nil, {"caller": true, "externalLinks": true}, {"status": true}}
	find := map[string]bool{}
	for f := range strings.SplitSeq("id,number,status,briefDescription,externalNumber,closed,closedDate,completed,completedDate,"+
		"creationDate,modificationDate,processingStatus,priority,category,subcategory,operatorGroup", ",") {
		find[f] = true
	}
	wants = append(wants, find)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.incidents) != 7 {
		t.Fatalf("%d incidents, want 7", len(s.incidents))
	}
	for _, inc := range s.incidents {
		for _, want := range wants {
			var positions []bool
			if want != nil {
				positions = make([]bool, len(s.model))
				for name := range want {
					positions[s.modelIndex[name]] = true
				}
			}
			var buf bytes.Buffer
			if err := oracleEncodeFields(&buf, oracleIncidentFields(s, inc), want); err != nil {
				t.Fatalf("oracle: incident %s: %v", inc.number, err)
			}
			if got := s.render(inc, positions); !bytes.Equal(got, buf.Bytes()) {
				t.Errorf("incident %s, fields %v:\ngot  %s\nwant %s", inc.number, want, got, buf.Bytes())
			}
		}
	}
}

func TestAppendTime(t *testing.T) {
	amsterdam := time.FixedZone("CET", 3600)
	times := []time.Time{
		{},
		fixedNow(),
		time.Date(2026, 1, 2, 3, 4, 5, 999_999_999, time.UTC),
		time.Date(2026, 12, 31, 23, 30, 0, 1_000_000, amsterdam),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(0, 0),
	}
	for i := range 1000 {
		times = append(times, time.Unix(int64(i)*7_919_993, int64(i)*999_331).In(amsterdam))
	}
	for _, tm := range times {
		want := "null"
		if !tm.IsZero() {
			b, err := json.Marshal(tm.UTC().Format(topdeskTimeLayout))
			if err != nil {
				t.Fatal(err)
			}
			want = string(b)
		}
		if got := string(appendTime(nil, tm)); got != want {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}
