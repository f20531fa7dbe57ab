package worker

import (
	"fmt"
	"html"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
)

// Grouping (PRODUCT.md "Grouping"): the alerts of a group share one
// incident, whose key is the group key (mapping.Group), so its
// externalNumber, state, lock and claim are the group's. The state keeps
// the members; each member is ordered on its own (a stale event of a
// member is stale for that member only), and the incident closes when the
// last firing member resolves.

// maxMembers bounds the members a group's state keeps (about 150 bytes
// each in the KV entry). When it is full, a new member takes the place of
// the member resolved longest ago; when every member fires, a new member is
// not tracked (and writes nothing) until one resolves.
const maxMembers = 500

// maxListed is how many firing members a request or action names, each
// cut to maxNameLen characters; the others are summarised as "… and N
// more". TOPdesk documents no limit for request and action texts; this
// keeps the list under about 2,500 characters.
const (
	maxListed  = 20
	maxNameLen = 120
)

// member is a group member's newest applied event.
type member struct {
	Status    string    `json:"status"`
	At        time.Time `json:"at"`
	Published time.Time `json:"published,omitzero"`
}

// grouped makes ev an event of its group, when the mapping groups it: its
// key becomes the group key and its own key the member.
func (w *Worker) grouped(ev *keyEvent) {
	if g := w.mapping.Group(ev.alert); g != "" {
		ev.member, ev.key, ev.ext = ev.key, g, mapping.ExternalNumber(g)
	}
}

// decideMember is decide for an event of a group member: the order of
// events is the member's own; a member joining, resolving or firing again
// updates the incident (one action); the last firing member resolving
// resolves it.
func decideMember(st *incidentState, ev *keyEvent, lc mapping.Lifecycle) decision {
	m, known := st.Members[ev.member]
	status := string(ev.alert.Status)
	// The group's newest event, as applyOnce reads it, is the member's:
	// an event no newer than the member's own (an Alertmanager repeat of
	// the whole group) writes nothing, not even the state. memberApplied
	// clears it again before the state is written.
	st.LastEvent, st.LastStatus = m.At, m.Status
	firing := ev.alert.Status == mapping.StatusFiring
	if known && refired(ev, m.At, m.Status, m.Published, lc.ReorderWindow) {
		ev.at = ev.published
	}
	if known {
		switch c := order(ev.at, status, m.At, m.Status); {
		case c < 0:
			return doStale
		case c == 0:
			return doDuplicate
		}
	}
	if !known && firing && len(st.Members) >= maxMembers && oldestResolved(st.Members) == "" {
		return doNothing // full: not tracked
	}
	others := firingMembers(st.Members, ev.member)
	if !firing {
		switch {
		case st.IncidentID == "" || !st.Open || (known && m.Status == status):
			return doNothing
		case !known && len(others) > 0:
			return doNothing // a member the group never saw fire
		case len(others) > 0:
			return doUpdate
		}
		// The last firing member, or one of an incident adopted from
		// TOPdesk whose members are unknown. (A resolve delay applies to
		// it as to any doResolve; note that a group's state keeps no
		// LastEvent/LastStatus of its own: firingMembers says whether
		// the group still fires.)
		return doResolve
	}
	return firingDecision(st, ev, known && m.Status == status, lc)
}

// memberApplied records ev as its member's newest applied event. The
// group's own newest event is not kept: events are ordered per member.
func memberApplied(st *incidentState, ev *keyEvent) {
	if ev.member == "" {
		return
	}
	st.LastEvent, st.LastStatus, st.LastPublished = time.Time{}, "", time.Time{}
	members := withMember(st.Members, ev)
	if len(members) > maxMembers {
		if old := oldestResolved(st.Members); old != "" {
			delete(members, old)
		} else {
			return // full and every member fires: not tracked
		}
	}
	st.Members = members
}

// withMember returns a copy of members with ev's member at ev (the state's
// map may be shared with the worker's cache).
func withMember(members map[string]member, ev *keyEvent) map[string]member {
	out := maps.Clone(members)
	if out == nil {
		out = make(map[string]member, 1)
	}
	out[ev.member] = member{Status: string(ev.alert.Status), At: ev.at, Published: ev.published}
	return out
}

// firingMembers returns the firing members other than except, sorted.
func firingMembers(members map[string]member, except string) []string {
	var out []string
	for k, m := range members {
		if k != except && m.Status == string(mapping.StatusFiring) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// oldestResolved returns the member resolved longest ago, or "".
func oldestResolved(members map[string]member) string {
	old := ""
	for k, m := range members {
		if m.Status == string(mapping.StatusResolved) && (old == "" || m.At.Before(members[old].At)) {
			old = k
		}
	}
	return old
}

// memberRequest turns the request rendered for a member's alert into the
// group incident's: the create's request lists the firing members; an
// update is one action saying what the member did, with the firing
// members, and keeps the incident's brief description and priority; a
// resolve and a reopen keep the group's brief description.
func (w *Worker) memberRequest(ev *keyEvent, st *incidentState, d decision, req *topdesk.IncidentRequest) {
	after := withMember(st.Members, ev)
	firing := firingMembers(after, "")
	who := html.EscapeString(ev.member)
	var what string
	switch prev, known := st.Members[ev.member]; {
	case ev.alert.Status == mapping.StatusResolved:
		what = "Alert " + who + " resolved."
	case known && prev.Status == string(mapping.StatusResolved):
		what = "Alert " + who + " fires again."
	default:
		what = "Alert " + who + " joined the group."
	}
	list := memberList(firing, len(after)-len(firing))
	switch d {
	case doCreate:
		req.Request += "<br><br>" + list
	case doUpdate:
		*req = topdesk.IncidentRequest{Action: what + "<br>" + list, ActionInvisibleForCaller: req.ActionInvisibleForCaller}
	case doResolve:
		req.Action = joinHTML(req.Action, what+" Every member of the group is resolved.")
	case doReopen:
		if st.Brief != "" {
			req.BriefDescription = strings.TrimPrefix(st.Brief, w.mapping.Lifecycle().ResolvedPrefix)
		}
		req.Action = joinHTML(req.Action, what+"<br>"+list)
	}
}

// memberList says which members fire (at most maxListed by name) and how
// many are resolved.
func memberList(firing []string, resolved int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Firing members (%d):", len(firing))
	for i, k := range firing[:min(len(firing), maxListed)] {
		if i > 0 {
			b.WriteString(",")
		}
		if r := []rune(k); len(r) > maxNameLen {
			k = string(r[:maxNameLen-1]) + "…"
		}
		b.WriteString(" " + html.EscapeString(k))
	}
	if n := len(firing) - maxListed; n > 0 {
		fmt.Fprintf(&b, " … and %d more", n)
	}
	if resolved > 0 {
		fmt.Fprintf(&b, "<br>Resolved members: %d", resolved)
	}
	return b.String()
}

// joinHTML joins two action texts with a line break.
func joinHTML(a, b string) string {
	if a == "" {
		return b
	}
	return a + "<br>" + b
}
