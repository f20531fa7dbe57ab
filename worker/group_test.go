package worker

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// member is a native event of host in the switch-down group.
func memberEvent(host, status string, at time.Time) event {
	ev := event{"key": host, "status": status, "severity": "critical", "summary": "Switch sw-1 unreachable",
		"source": "test", "timestamp": at.UTC().Format(time.RFC3339Nano),
		"labels": map[string]string{"alertname": "SwitchDown", "cluster": "ams", "instance": host}}
	return ev
}

const switchGroup = `group:alertname="SwitchDown",cluster="ams"`

func groupEnv(t *testing.T, yaml string) *testEnv {
	t.Helper()
	e := newEnv(t, topdesktest.Options{})
	var err error
	if e.mapping, err = mapping.Load([]byte(yaml)); err != nil {
		t.Fatal(err)
	}
	return e
}

// groupState reads the group's state from the bucket.
func (e *testEnv) stateOf(key string) incidentState {
	e.t.Helper()
	entry, err := e.res.State.Get(e.t.Context(), mapping.ExternalNumber(key))
	if err != nil {
		e.t.Fatalf("state of %s: %v", key, err)
	}
	var st incidentState
	if err := json.Unmarshal(entry.Value(), &st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

// TestGroupFromThreeWorkers: 40 alerts of one group, handled by 3 workers
// at once, make one incident with 40 members (one action per member that
// joins), closed once, after the 40th resolve; a member firing again
// within the reopen window reopens it.
func TestGroupFromThreeWorkers(t *testing.T) {
	e := groupEnv(t, "group: {by: [alertname, cluster]}\n")
	for range 3 {
		e.startWorker(fastOptions())
	}
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	const n = 40
	publishAll := func(status string, at time.Time) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				b, _ := json.Marshal(memberEvent(fmt.Sprintf("h-%02d", i), status, at.Add(time.Duration(i)*time.Second)))
				if _, err := e.js.Publish(t.Context(), "alerts.test", b); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	publishAll("firing", t0)
	e.waitSettled(60 * time.Second)
	incs := e.incidentsFor(switchGroup)
	if len(incs) != 1 || len(e.sim.Incidents()) != 1 {
		t.Fatalf("%d incidents for the group, %d in all; want 1", len(incs), len(e.sim.Incidents()))
	}
	st := e.stateOf(switchGroup)
	if len(st.Members) != n || len(firingMembers(st.Members, "")) != n {
		t.Fatalf("state has %d members, %d firing; want %d firing", len(st.Members), len(firingMembers(st.Members, "")), n)
	}
	if creates, updates := e.writes(); creates != 1 || updates != n-1 {
		t.Fatalf("%d creates, %d updates; want 1 create and one update per member that joined (%d)", creates, updates, n-1)
	}
	if got := len(incs[0].Actions); got != n-1 {
		t.Errorf("%d actions, want %d", got, n-1)
	}
	if incs[0].Closed {
		t.Fatal("closed while members fire")
	}
	if !strings.Contains(incs[0].Request, "Firing members (1): h-") {
		t.Errorf("request does not list the first member: %q", incs[0].Request)
	}
	last := incs[0].Actions[len(incs[0].Actions)-1].Text
	if !strings.Contains(last, "Firing members (40)") || !strings.Contains(last, "… and 20 more") {
		t.Errorf("the last join does not list the members within the limit: %q", last)
	}

	// All but the last resolve: still open.
	publishAll("resolved", t0.Add(time.Hour))
	e.waitSettled(60 * time.Second)
	inc := e.incidentsFor(switchGroup)[0]
	if !inc.Closed {
		t.Fatal("not closed after every member resolved")
	}
	closes := 0
	for _, ch := range inc.History {
		if strings.Contains(ch.What, "closed") {
			closes++
		}
	}
	if closes != 1 {
		t.Errorf("closed %d times, want once: %+v", closes, inc.History)
	}
	if !strings.HasPrefix(inc.BriefDescription, "[RESOLVED] Switch sw-1") {
		t.Errorf("brief description %q", inc.BriefDescription)
	}
	if creates, updates := e.writes(); creates != 1 || updates != 2*(n-1)+1 {
		t.Errorf("%d creates, %d updates; want 1 and %d", creates, updates, 2*(n-1)+1)
	}

	// A member firing again within the reopen window reopens it.
	e.publish(memberEvent("h-07", "firing", t0.Add(2*time.Hour)))
	e.waitSettled(30 * time.Second)
	incs = e.incidentsFor(switchGroup)
	if len(incs) != 1 || incs[0].Closed {
		t.Fatalf("after a member fired again: %d incidents, closed %v; want the one reopened", len(incs), len(incs) == 1 && incs[0].Closed)
	}
	if strings.HasPrefix(incs[0].BriefDescription, "[RESOLVED]") {
		t.Errorf("reopened with brief description %q", incs[0].BriefDescription)
	}
	if acts := incs[0].Actions; !strings.Contains(acts[len(acts)-1].Text, "h-07 fires again") {
		t.Errorf("reopen action %q", acts[len(acts)-1].Text)
	}
}

// TestStormMajorCall: 30 new incidents of a route with threshold 10, from
// two workers, make one major call and link the 20 created after the
// threshold was crossed; when all are closed, so is the major call.
func TestStormMajorCall(t *testing.T) {
	e := groupEnv(t, "routes:\n  - match: {team: network}\n    majorIncident: {threshold: 10, window: 5m}\n")
	logs := &lockedBuffer{}
	e.logs = logs
	e.startWorker(fastOptions())
	e.startWorker(fastOptions())
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	const n = 30
	publishAll := func(status string, at time.Time, except string) {
		var wg sync.WaitGroup
		for i := range n {
			if fmt.Sprintf("port-%02d", i) == except {
				continue
			}
			wg.Go(func() {
				ev := memberEvent(fmt.Sprintf("port-%02d", i), status, at)
				ev["labels"] = map[string]string{"team": "network"}
				b, _ := json.Marshal(ev)
				if _, err := e.js.Publish(t.Context(), "alerts.test", b); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	publishAll("firing", t0, "")
	e.waitSettled(60 * time.Second)
	var majors []topdesktest.Incident
	linked, plain := 0, 0
	for _, inc := range e.sim.Incidents() {
		switch {
		case inc.MajorCall:
			majors = append(majors, inc)
		case inc.MajorCallNumber != "":
			linked++
		default:
			plain++
		}
	}
	if len(majors) != 1 || linked != n-10 || plain != 10 {
		t.Fatalf("%d major calls, %d linked and %d other incidents; want 1, %d and 10", len(majors), linked, plain, n-10)
	}
	major, last := majors[0], ""
	for _, inc := range e.sim.Incidents() {
		if inc.MajorCallNumber != "" && inc.MajorCallNumber != major.Number {
			t.Errorf("%s linked to %s, want %s", inc.Number, inc.MajorCallNumber, major.Number)
		}
		for i := range n {
			if k := fmt.Sprintf("port-%02d", i); inc.MajorCallNumber != "" && mapping.ExternalNumber(k) == inc.ExternalNumber {
				last = k
			}
		}
	}

	// While one linked incident is open, the check keeps the major call open.
	publishAll("resolved", t0.Add(time.Hour), last)
	e.waitSettled(60 * time.Second)
	wait.For(t, 30*time.Second, "the major call's check", func() bool { return logs.lines("debug", "timer handled") > 0 })
	for _, inc := range e.sim.Incidents() {
		if inc.Number == major.Number && inc.Closed {
			t.Fatalf("major call closed while %s is open", last)
		}
	}
	publishAll("resolved", t0.Add(time.Hour), "-")
	e.waitSettled(60 * time.Second)
	wait.For(t, 30*time.Second, "the major call is closed", func() bool {
		for _, inc := range e.sim.Incidents() {
			if inc.Number == major.Number {
				return inc.Closed
			}
		}
		return false
	})
	for _, inc := range e.sim.Incidents() {
		if !inc.Closed {
			t.Errorf("%s (%s) is open", inc.Number, inc.BriefDescription)
		}
	}
	rule, _ := e.mapping.MajorIncidentFor(&mapping.Alert{Labels: map[string]string{"team": "network"}})
	wait.For(t, 10*time.Second, "the storm entry forgets the closed major call", func() bool {
		entry, err := e.res.State.Get(t.Context(), "storm-"+rule.ID)
		var s storm
		return err == nil && json.Unmarshal(entry.Value(), &s) == nil && s.Major == nil && len(s.Recent) == 11
	})
}

// TestDecideMember: events are ordered per member (a stale event of one
// member is stale for it only), a member joining, resolving or firing again
// updates, the last firing member resolving resolves, and a group that
// closed reopens within the window.
func TestDecideMember(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	lc := mapping.Lifecycle{ReopenWindow: time.Hour, ReorderWindow: time.Minute}
	fire, res := string(mapping.StatusFiring), string(mapping.StatusResolved)
	open := func(members map[string]member) incidentState {
		return incidentState{IncidentID: "id", Number: "I 1", Open: true, Members: members}
	}
	tests := []struct {
		name   string
		st     incidentState
		member string
		status mapping.Status
		at     time.Time
		want   decision
	}{
		{"first member creates", incidentState{}, "a", mapping.StatusFiring, t0, doCreate},
		{"a new member joins", open(map[string]member{"a": {Status: fire, At: t0.Add(time.Hour)}}), "b", mapping.StatusFiring, t0, doUpdate},
		{"older than another member's event is not stale", open(map[string]member{"a": {Status: fire, At: t0.Add(time.Hour)}, "b": {Status: fire, At: t0}}),
			"b", mapping.StatusResolved, t0.Add(time.Minute), doUpdate},
		{"older than the member's own event is stale", open(map[string]member{"a": {Status: fire, At: t0}, "b": {Status: fire, At: t0.Add(time.Hour)}}),
			"b", mapping.StatusResolved, t0.Add(time.Minute), doStale},
		{"the same event again", open(map[string]member{"a": {Status: fire, At: t0}}), "a", mapping.StatusFiring, t0, doDuplicate},
		{"a firing member fires on", open(map[string]member{"a": {Status: fire, At: t0}}), "a", mapping.StatusFiring, t0.Add(time.Minute), doDuplicate},
		{"the last firing member resolves", open(map[string]member{"a": {Status: fire, At: t0}, "b": {Status: res, At: t0}}),
			"a", mapping.StatusResolved, t0.Add(time.Minute), doResolve},
		{"a resolved member fires again", open(map[string]member{"a": {Status: fire, At: t0}, "b": {Status: res, At: t0}}),
			"b", mapping.StatusFiring, t0.Add(time.Minute), doUpdate},
		{"an unknown member resolves", open(map[string]member{"a": {Status: fire, At: t0}}), "x", mapping.StatusResolved, t0, doNothing},
		{"adopted without members: a resolve closes", open(nil), "x", mapping.StatusResolved, t0, doResolve},
		{"closed group reopens within the window",
			incidentState{IncidentID: "id", ClosedAt: t0, Members: map[string]member{"a": {Status: res, At: t0}}},
			"a", mapping.StatusFiring, t0.Add(30 * time.Minute), doReopen},
		{"closed group: a new incident after the window",
			incidentState{IncidentID: "id", ClosedAt: t0, Members: map[string]member{"a": {Status: res, At: t0}}},
			"a", mapping.StatusFiring, t0.Add(2 * time.Hour), doCreate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := keyEvent{alert: &mapping.Alert{Status: tc.status}, key: "g", member: tc.member, at: tc.at, published: tc.at}
			if got := decide(&tc.st, &ev, lc); got != tc.want {
				t.Errorf("decide = %v, want %v", got, tc.want)
			}
		})
	}
	// An Alertmanager member re-sent with its original startsAt after its
	// resolve fires again (a re-fire), unless it comes within the reorder
	// window (a late copy).
	st := open(map[string]member{"a": {Status: fire, At: t0}, "b": {Status: res, At: t0.Add(time.Hour), Published: t0.Add(time.Hour)}})
	for _, tc := range []struct {
		published time.Time
		want      decision
	}{{t0.Add(time.Hour + 30*time.Second), doStale}, {t0.Add(2 * time.Hour), doUpdate}} {
		ev := keyEvent{alert: &mapping.Alert{Status: mapping.StatusFiring, Fingerprint: "fb"}, key: "g", member: "b",
			at: t0.Add(time.Minute), published: tc.published}
		if got := decide(&st, &ev, lc); got != tc.want {
			t.Errorf("Alertmanager member firing with its old startsAt, published %s after its resolve: %v, want %v",
				tc.published.Sub(t0.Add(time.Hour)), got, tc.want)
		}
	}
}

// TestMembersBounded: a full group gives the place of the member resolved
// longest ago to a new one, and tracks no new member while all fire.
func TestMembersBounded(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	st := incidentState{IncidentID: "id", Open: true, Members: map[string]member{}}
	for i := range maxMembers {
		st.Members[fmt.Sprintf("m%03d", i)] = member{Status: "firing", At: t0.Add(time.Duration(i) * time.Second)}
	}
	ev := keyEvent{alert: &mapping.Alert{Status: mapping.StatusFiring}, key: "g", member: "new", at: t0.Add(time.Hour)}
	if d := decide(&st, &ev, mapping.Lifecycle{}); d != doNothing {
		t.Fatalf("a new member of a full group: %v, want doNothing", d)
	}
	memberApplied(&st, &ev)
	if _, ok := st.Members["new"]; ok || len(st.Members) != maxMembers {
		t.Fatalf("tracked a member beyond the bound: %d members", len(st.Members))
	}
	st.Members["m007"] = member{Status: "resolved", At: t0}
	st.Members["m009"] = member{Status: "resolved", At: t0.Add(time.Minute)}
	if d := decide(&st, &ev, mapping.Lifecycle{}); d != doUpdate {
		t.Fatalf("a new member with a resolved one to replace: %v, want doUpdate", d)
	}
	memberApplied(&st, &ev)
	if _, ok := st.Members["m007"]; ok || len(st.Members) != maxMembers || st.Members["new"].Status != "firing" {
		t.Fatalf("want m007 replaced by new, got %d members", len(st.Members))
	}
}

// TestGroupByAlertmanagerKey: the alerts of an Alertmanager notification
// share the incident of its group key, and it closes when the
// notification says all are resolved.
func TestGroupByAlertmanagerKey(t *testing.T) {
	e := groupEnv(t, "group: {alertmanager: true}\n")
	e.startWorker(fastOptions())
	hook := amWebhook("f1", "f2", "f3")
	e.publish(hook)
	e.waitSettled(30 * time.Second)
	incs := e.incidentsFor("group:g")
	if len(incs) != 1 || len(e.sim.Incidents()) != 1 {
		t.Fatalf("%d incidents for the group key, %d in all; want 1", len(incs), len(e.sim.Incidents()))
	}
	if st := e.stateOf("group:g"); len(st.Members) != 3 {
		t.Fatalf("%d members, want 3", len(st.Members))
	}
	// Alertmanager repeats the whole group: nothing is written, not even
	// the state.
	before, err := e.res.State.Get(t.Context(), mapping.ExternalNumber("group:g"))
	if err != nil {
		t.Fatal(err)
	}
	_, updates := e.writes()
	e.publish(hook)
	e.waitSettled(30 * time.Second)
	after, err := e.res.State.Get(t.Context(), mapping.ExternalNumber("group:g"))
	if _, u := e.writes(); err != nil || after.Revision() != before.Revision() || u != updates {
		t.Fatalf("a repeat wrote: state revision %d -> %d (%v), TOPdesk updates %d -> %d", before.Revision(), after.Revision(), err, updates, u)
	}
	for _, a := range hook["alerts"].([]map[string]any) {
		a["status"], a["endsAt"] = "resolved", time.Now().UTC().Add(time.Second).Format(time.RFC3339)
	}
	hook["status"] = "resolved"
	e.publish(hook)
	e.waitSettled(30 * time.Second)
	if incs := e.incidentsFor("group:g"); len(incs) != 1 || !incs[0].Closed {
		t.Fatalf("after every alert resolved: %d incidents, want 1 closed", len(incs))
	}
}

// TestMemberRaceIsRetried: a worker whose remembered state of the group is
// stale (another worker applied a member since) loses the compare-and-swap
// of its claim, reads the state again and applies its member: neither
// member is lost.
func TestMemberRaceIsRetried(t *testing.T) {
	e := groupEnv(t, "group: {by: [alertname, cluster]}\n")
	if err := e.resolver.ResolveAll(t.Context(), e.mapping.Names()); err != nil {
		t.Fatal(err)
	}
	newWorker := func() *Worker {
		opts := fastOptions()
		opts.Logger = zerolog.Nop()
		w, err := New(e.res, e.api, e.resolver, e.mapping, opts)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	w1, w2 := newWorker(), newWorker()
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	apply := func(w *Worker, host string, at time.Time) string {
		t.Helper()
		b, err := json.Marshal(memberEvent(host, "firing", at))
		if err != nil {
			t.Fatal(err)
		}
		alerts, err := w.mapping.Decode(b, mapping.DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := w.newEvent(&alerts[0], at)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := w.apply(t.Context(), ev)
		if err != nil {
			t.Fatalf("apply %s: %v", host, err)
		}
		return out
	}
	if out := apply(w1, "a", t0); out != outcomeCreated {
		t.Fatalf("first member: %s", out)
	}
	_, before, _ := w1.state.known.get(mapping.ExternalNumber(switchGroup))
	if out := apply(w2, "c", t0.Add(time.Second)); out != outcomeUpdated {
		t.Fatalf("member of the other worker: %s", out)
	}
	if _, rev, ok := w1.state.known.get(mapping.ExternalNumber(switchGroup)); !ok || rev != before {
		t.Fatalf("the first worker no longer remembers the old revision %d (has %d, %v): the race is not set up", before, rev, ok)
	}
	if out := apply(w1, "b", t0.Add(2*time.Second)); out != outcomeUpdated {
		t.Fatalf("member applied on a stale state: %s", out)
	}
	st := e.stateOf(switchGroup)
	if got := firingMembers(st.Members, ""); strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("firing members %v, want a, b and c", got)
	}
	if incs := e.incidentsFor(switchGroup); len(incs) != 1 || len(incs[0].Actions) != 2 {
		t.Fatalf("want one incident with two join actions, got %+v", incs)
	}
}

// TestMemberList: at most maxListed names, each cut to maxNameLen
// characters and escaped, then how many more and how many resolved.
func TestMemberList(t *testing.T) {
	var firing []string
	for i := range maxListed + 5 {
		firing = append(firing, fmt.Sprintf("m%02d", i))
	}
	firing[0] = "<" + strings.Repeat("x", 2*maxNameLen)
	got := memberList(firing, 3)
	for _, want := range []string{"Firing members (25): &lt;xxx", "x…, m01", "m19 … and 5 more", "<br>Resolved members: 3"} {
		if !strings.Contains(got, want) {
			t.Errorf("memberList lacks %q: %q", want, got)
		}
	}
	if len([]rune(got)) > maxListed*(maxNameLen+10)+100 {
		t.Errorf("memberList is %d characters", len([]rune(got)))
	}
}
