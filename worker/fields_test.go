package worker

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// useMapping makes e's workers use the mapping src (over the default).
func (e *testEnv) useMapping(src string) {
	e.t.Helper()
	m, err := mapping.Load([]byte(src))
	if err != nil {
		e.t.Fatal(err)
	}
	e.mapping = m
}

// patches returns the bodies of the update requests (PATCH or PUT) sent
// since request number from, decoded.
func (e *testEnv) patches(from int) []map[string]any {
	e.t.Helper()
	var out []map[string]any
	for _, r := range e.sim.Requests()[from:] {
		if r.Method != "PATCH" && r.Method != "PUT" {
			continue
		}
		var body map[string]any
		if err := json.Unmarshal(r.Body, &body); err != nil {
			e.t.Fatalf("update body %q: %v", r.Body, err)
		}
		out = append(out, body)
	}
	return out
}

func lastAction(inc topdesktest.Incident) string {
	if len(inc.Actions) == 0 {
		return ""
	}
	return inc.Actions[len(inc.Actions)-1].Text
}

const prioritiesMapping = `
severity:
  critical: {priority: P1}
  warning: {priority: P3}
`

// TestOperatorEditWins: an operator raises the priority; the alert's
// severity then changes: the priority stays, the brief description is
// updated, and the action says which field was left alone, then and at
// every later change.
func TestOperatorEditWins(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.useMapping(prioritiesMapping)
	rw := e.startWorker(fastOptions())
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	const key = "db-7/disk-full"

	e.publish(firing(key, "warning", "Disk / at 91% on db-7", t0))
	e.waitSettled(10 * time.Second)
	inc := e.only(key)
	if inc.Priority != "P3" {
		t.Fatalf("created with priority %q, want P3", inc.Priority)
	}
	if _, err := e.sim.Edit("", inc.Number, map[string]any{"priority": map[string]string{"name": "P2"}}); err != nil {
		t.Fatal(err)
	}

	from := len(e.sim.Requests())
	e.publish(firing(key, "critical", "Disk / at 97% on db-7", t0.Add(time.Minute)))
	e.waitSettled(10 * time.Second)
	inc = e.only(key)
	if inc.Priority != "P2" {
		t.Errorf("priority %q after the update, want the operator's P2", inc.Priority)
	}
	if !strings.Contains(inc.BriefDescription, "97%") {
		t.Errorf("brief description %q not updated", inc.BriefDescription)
	}
	if got := lastAction(inc); !strings.Contains(got, "Left as an operator set it: priority.") {
		t.Errorf("the update's action %q does not say the priority was left alone", got)
	}
	gets := 0
	for _, r := range e.sim.Requests()[from:] {
		if r.Method == "GET" && strings.HasPrefix(r.Path, "/tas/api/incidents/id/") {
			gets++
		}
	}
	if gets != 1 {
		t.Errorf("the update read the incident %d times, want once", gets)
	}

	// Never later either: the next change of severity leaves it too.
	e.publish(firing(key, "warning", "Disk / at 99% on db-7", t0.Add(2*time.Minute)))
	e.waitSettled(10 * time.Second)
	inc = e.only(key)
	if inc.Priority != "P2" {
		t.Errorf("priority %q after the second update, want the operator's P2", inc.Priority)
	}
	if got := lastAction(inc); !strings.Contains(got, "priority") {
		t.Errorf("the second update's action %q does not name the priority", got)
	}
	// A summary change alone does not name it: alertdesk's priority did
	// not change.
	e.publish(firing(key, "warning", "Disk / at 100% on db-7", t0.Add(3*time.Minute)))
	e.waitSettled(10 * time.Second)
	if got := lastAction(e.only(key)); strings.Contains(got, "priority") {
		t.Errorf("an update that changes no priority names it: %q", got)
	}
	if n := counter(t, rw.reg, "alertdesk_fields_kept_total"); n != 2 {
		t.Errorf("alertdesk_fields_kept_total = %v, want 2", n)
	}

	for i, body := range e.patches(from) {
		if _, ok := body["request"]; ok {
			t.Errorf("update %d rewrites the request text: %v", i, body)
		}
		if _, ok := body["priority"]; ok {
			t.Errorf("update %d writes the priority: %v", i, body)
		}
	}
}

// TestUpdateFieldsAndReopen: with updates.fields [priority] an update,
// resolve and reopen never write the brief description (which an operator
// may reword), and a reopen sends the open state with the priority.
func TestUpdateFieldsAndReopen(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.useMapping(prioritiesMapping + "updates: {fields: [priority]}\n")
	e.startWorker(fastOptions())
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	const key = "web-01/http-5xx"

	e.publish(firing(key, "warning", "5xx on web-01", t0))
	e.waitSettled(10 * time.Second)
	from := len(e.sim.Requests())
	for _, ev := range []event{
		firing(key, "critical", "Many 5xx on web-01", t0.Add(time.Minute)),
		resolved(key, t0.Add(2*time.Minute)),
		firing(key, "warning", "5xx on web-01 again", t0.Add(3*time.Minute)),
	} {
		e.publish(ev)
		e.waitSettled(10 * time.Second)
	}

	inc := e.only(key)
	if inc.BriefDescription != "5xx on web-01" || inc.Closed || inc.Priority != "P3" {
		t.Errorf("incident: brief %q, closed %v, priority %q; want the create's brief, open, P3", inc.BriefDescription, inc.Closed, inc.Priority)
	}
	bodies := e.patches(from)
	if len(bodies) != 3 {
		t.Fatalf("got %d updates, want 3 (update, resolve, reopen)", len(bodies))
	}
	for i, body := range bodies {
		if _, ok := body["briefDescription"]; ok {
			t.Errorf("write %d sends briefDescription: %v", i, body)
		}
		if _, ok := body["request"]; ok {
			t.Errorf("write %d sends the request text: %v", i, body)
		}
	}
	if reopen := bodies[2]; reopen["closed"] != false || reopen["priority"] == nil {
		t.Errorf("reopen body %v: want closed: false and the priority", reopen)
	}
}

// TestStillFiring: 50 duplicates within the interval write no state and
// add no action; the first one after it adds one still-firing action with
// the count, and the next one within the new interval adds none.
func TestStillFiring(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	const every = 2 * time.Second
	e.useMapping("updates: {repeat: {every: 2s}}\n")
	rw := e.startWorker(fastOptions())
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	const key = "db-1/replication-lag"
	ev := firing(key, "warning", "Replication lag on db-1", t0)

	created := time.Now()
	e.publish(ev)
	e.waitSettled(10 * time.Second)
	kv := e.res.State
	ext := mapping.ExternalNumber(key)
	entry, err := kv.Get(t.Context(), ext)
	if err != nil {
		t.Fatal(err)
	}
	rev := entry.Revision()
	actions := len(e.only(key).Actions)

	for range 50 {
		e.publish(ev) // Alertmanager re-sends with the same time
	}
	e.waitSettled(10 * time.Second)
	if time.Since(created) >= every {
		t.Skip("the machine took longer than the interval to handle 50 duplicates")
	}
	if entry, err = kv.Get(t.Context(), ext); err != nil || entry.Revision() != rev {
		t.Fatalf("state written by duplicates: revision %d, want %d (err %v)", entry.Revision(), rev, err)
	}
	if n := len(e.only(key).Actions); n != actions {
		t.Fatalf("duplicates within the interval added %d actions", n-actions)
	}

	var st incidentState
	if err := json.Unmarshal(entry.Value(), &st); err != nil || st.RepeatAt.IsZero() {
		t.Fatalf("state %s has no repeat_at (err %v)", entry.Value(), err)
	}
	// The interval runs from the create's publish time, by the server's
	// clock (the same machine's).
	wait.For(t, 5*time.Second, "the interval has passed", func() bool { return time.Since(st.RepeatAt) > every })
	e.publish(ev)
	e.publish(ev)
	e.waitSettled(10 * time.Second)
	inc := e.only(key)
	if n := len(inc.Actions) - actions; n != 1 {
		t.Fatalf("got %d actions after the interval, want 1", n)
	}
	if got := lastAction(inc); !strings.Contains(got, "Alert still firing (51 notifications since ") {
		t.Errorf("still-firing action %q, want 51 notifications", got)
	}
	if n := counter(t, rw.reg, "alertdesk_still_firing_actions_total"); n != 1 {
		t.Errorf("alertdesk_still_firing_actions_total = %v, want 1", n)
	}
}

// TestObjectLink: a known object is linked by id; an unknown one still
// gives an incident, without the link, with a note and the metric; its
// miss is cached.
func TestObjectLink(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.useMapping(`incident: {object: '{{ index .Labels "host" }}'}` + "\n")
	rw := e.startWorker(fastOptions())
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	withHost := func(key, host string) event {
		ev := firing(key, "warning", "Disk full on "+host, t0)
		ev["labels"] = map[string]string{"host": host}
		return ev
	}

	e.publish(withHost("db-7/disk", "db-7"))
	e.publish(withHost("db-99/disk", "db-99"))
	e.waitSettled(10 * time.Second)
	e.publish(withHost("db-99/cpu", "DB-99"))
	e.waitSettled(10 * time.Second)

	if inc := e.only("db-7/disk"); inc.Object != "db-7" {
		t.Errorf("known host: object %q, want db-7", inc.Object)
	}
	for _, key := range []string{"db-99/disk", "db-99/cpu"} {
		inc := e.only(key)
		if inc.Object != "" {
			t.Errorf("%s: linked to %q, want no link", key, inc.Object)
		}
		if !strings.Contains(inc.Request, "not found in TOPdesk") {
			t.Errorf("%s: request text %q does not say the object was not found", key, inc.Request)
		}
	}
	if n := counter(t, rw.reg, "alertdesk_objects_unknown_total"); n != 2 {
		t.Errorf("alertdesk_objects_unknown_total = %v, want 2", n)
	}
	lookups := slices.DeleteFunc(e.sim.Requests(), func(r topdesktest.Request) bool { return !strings.Contains(r.Path, "/assetmgmt/") })
	if len(lookups) != 2 {
		t.Errorf("got %d object lookups, want 2 (db-99 is cached, any case)", len(lookups))
	}
	if dl := e.dlqEntries(); len(dl) != 0 {
		t.Errorf("dead letters: %v", dl)
	}
}

// TestOperatorBriefOnResolve: a brief description an operator reworded is
// neither replaced nor prefixed by the resolve, which still closes the
// incident; the reopen leaves it too.
func TestOperatorBriefOnResolve(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.startWorker(fastOptions())
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	const key, mine = "db-7/disk-full", "db-7 disk: Eva is on it"

	e.publish(firing(key, "warning", "Disk / at 91% on db-7", t0))
	e.waitSettled(10 * time.Second)
	if _, err := e.sim.Edit("", e.only(key).Number, map[string]any{"briefDescription": mine}); err != nil {
		t.Fatal(err)
	}
	for i, ev := range []event{resolved(key, t0.Add(time.Minute)), firing(key, "critical", "Disk / at 99% on db-7", t0.Add(2*time.Minute))} {
		e.publish(ev)
		e.waitSettled(10 * time.Second)
		inc := e.only(key)
		if inc.BriefDescription != mine {
			t.Errorf("step %d: brief description %q, want the operator's %q", i, inc.BriefDescription, mine)
		}
		if got := lastAction(inc); !strings.Contains(got, "Left as an operator set it: brief description.") {
			t.Errorf("step %d: action %q does not say the brief description was left alone", i, got)
		}
		if inc.Closed != (i == 0) {
			t.Errorf("step %d: closed = %v", i, inc.Closed)
		}
	}
}

// TestCurrentIs: a remembered searchlist value matches the incident's by
// id, or by name when alertdesk only knew the name; a brief description by
// its text.
func TestCurrentIs(t *testing.T) {
	inc := &topdesk.Incident{BriefDescription: "Disk full", Priority: &topdesk.Ref{ID: "p1-id", Name: "P1"}}
	tests := []struct {
		name, field, last string
		want              bool
	}{
		{"brief description", mapping.FieldBriefDescription, short("Disk full"), true},
		{"brief description changed", mapping.FieldBriefDescription, short("Disk almost full"), false},
		{"priority by id", mapping.FieldPriority, short("p1-id"), true},
		{"priority by name, any case", mapping.FieldPriority, short(refValue(&topdesk.Ref{Name: "p1"})), true},
		{"another priority", mapping.FieldPriority, short("p2-id"), false},
		{"impact the incident lacks", mapping.FieldImpact, short("high-id"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := currentIs(inc, tc.field, tc.last); got != tc.want {
				t.Errorf("currentIs = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestWrittenFieldsJSON: the hashes of the written fields keep the JSON of
// the map they once were, so that states written before read the same;
// every updatable field has its place, and no hash leaves no "values".
func TestWrittenFieldsJSON(t *testing.T) {
	const old = `{"incident":"b7a2c1f0","values":{"briefDescription":"0a1b2c3d","urgency":"4e5f6a7b"},"operator":["priority"]}`
	var f writtenFields
	if err := json.Unmarshal([]byte(old), &f); err != nil {
		t.Fatal(err)
	}
	if got := f.Values.get(mapping.FieldBriefDescription); got != "0a1b2c3d" {
		t.Errorf("brief description hash %q, want 0a1b2c3d", got)
	}
	if got := f.Values.get(mapping.FieldUrgency); got != "4e5f6a7b" {
		t.Errorf("urgency hash %q, want 4e5f6a7b", got)
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != old {
		t.Errorf("encoded as\n%s\nwant\n%s", b, old)
	}

	var all fieldHashes
	for i, name := range mapping.UpdatableFields {
		all.set(name, strings.Repeat(string(rune('a'+i)), 8))
	}
	for i, name := range mapping.UpdatableFields {
		if got, want := all.get(name), strings.Repeat(string(rune('a'+i)), 8); got != want {
			t.Errorf("field %s holds %q, want %q", name, got, want)
		}
	}
	if b, err = json.Marshal(writtenFields{Incident: "b7a2c1f0"}); err != nil || string(b) != `{"incident":"b7a2c1f0"}` {
		t.Errorf("no hashes encoded as %s (%v), want no values", b, err)
	}
}
