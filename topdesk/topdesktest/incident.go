package topdesktest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// refFields are the reference fields the simulator resolves in the tenant
// and keeps as tenant entities.
func refFields() []string {
	return []string{
		"entryType", "callType", "category", "subcategory", "impact", "urgency", "priority",
		"duration", "operator", "operatorGroup", "processingStatus", "closureCode", "object",
	}
}

// entry is one action or request in an incident's trail.
type entry struct {
	id        string
	text      string
	invisible bool
	date      time.Time
	operator  *entity
}

// callerState is an incident's caller: a registered person or an
// unregistered caller known by name.
type callerState struct {
	person      *entity
	dynamicName string
	email       string
	phone       string
	mobile      string
	extra       map[string]json.RawMessage // department, location, … as sent
}

// incident is the simulator's state of one incident.
type incident struct {
	seq              int
	id               string
	number           string
	line             string // firstLine, secondLine or partial
	archived         bool
	archivingReason  *entity
	briefDescription string
	externalNumber   string
	requests         []entry
	requestText      string // the read model's request: plainText of the entries, newest first
	actions          []entry
	caller           *callerState
	refs             map[string]*entity
	closed           bool
	completed        bool
	closedDate       time.Time
	completedDate    time.Time
	callDate         time.Time
	creationDate     time.Time
	modificationDate time.Time
	creator          *entity
	modifier         *entity
	history          []change // who changed what, oldest first
	mainIncident     *incident
	partials         []*incident
	majorCall        bool                       // the incident is a major call
	majorCallOf      *incident                  // the major call it is linked to
	other            map[string]json.RawMessage // accepted fields the simulator echoes as sent
}

func (inc *incident) clone() *incident {
	c := *inc
	c.requests = slices.Clone(inc.requests)
	c.actions = slices.Clone(inc.actions)
	c.refs = maps.Clone(inc.refs)
	c.other = maps.Clone(inc.other)
	c.partials = slices.Clone(inc.partials)
	c.history = slices.Clone(inc.history)
	if inc.caller != nil {
		cs := *inc.caller
		cs.extra = maps.Clone(inc.caller.extra)
		c.caller = &cs
	}
	return &c
}

// edit is one validated create or update, applied to a copy of the
// incident so that a rejected request changes nothing.
type edit struct {
	vals   map[string]value
	now    time.Time
	author *entity
	create bool
}

// actor is who makes a change: alertdesk through the API (with the login of
// its Basic auth), or a person working in TOPdesk (the admin API and the
// operator methods), named by the operator's login name.
type actor struct {
	login    string
	operator bool
}

// change is one entry of an incident's history: who changed what, when.
type change struct {
	at       time.Time
	by       *entity
	operator bool // a person in TOPdesk, not the API user
	what     string
}

// deletion is an incident an operator deleted, for the page.
type deletion struct {
	number string
	change
}

// snapshot copies ch for inspection.
func (ch change) snapshot() Change {
	return Change{At: ch.at, By: ch.by.name, Operator: ch.operator, What: ch.what}
}

func (ch edit) has(k string) bool {
	v, ok := ch.vals[k]
	return ok && !v.null
}

// apply changes inc (a fresh or cloned incident) and returns the problems
// that make the request invalid. The caller holds s.mu.
func (s *Sim) apply(inc *incident, ch edit) []string {
	var errs []string
	v := ch.vals
	setStr := func(k string, dst *string) {
		if x, ok := v[k]; ok {
			*dst = x.str
		}
	}
	setStr("briefDescription", &inc.briefDescription)
	setStr("externalNumber", &inc.externalNumber)
	if x := v["request"]; x.str != "" {
		inc.requests = append(inc.requests, entry{id: newUUID(), text: x.str, date: ch.now, operator: ch.author})
		inc.requestText = plainText(joinNewestFirst(inc.requests))
	}
	if x := v["action"]; x.str != "" {
		inc.actions = append(inc.actions, entry{id: newUUID(), text: x.str, invisible: v["actionInvisibleForCaller"].b, date: ch.now, operator: ch.author})
	}
	if ch.has("callDate") {
		inc.callDate = v["callDate"].t
	}

	errs = append(errs, s.applyCaller(inc, ch)...)
	errs = append(errs, s.applyRefs(inc, ch)...)
	errs = append(errs, applyState(inc, ch)...)
	errs = append(errs, s.applyMajorCall(inc, ch)...)

	if ch.create {
		inc.line = "firstLine"
		setStr("status", &inc.line)
		if inc.line == "" {
			inc.line = "firstLine"
		}
		errs = append(errs, s.applyMainIncident(inc, ch)...)
	}

	for k, x := range v {
		if s.modelled[k] {
			continue
		}
		if x.null {
			delete(inc.other, k)
			continue
		}
		if inc.other == nil {
			inc.other = map[string]json.RawMessage{}
		}
		inc.other[k] = x.raw
	}
	return errs
}

// modelledFields lists the request fields apply handles itself; all other
// accepted fields are stored as sent.
func modelledFields() map[string]bool {
	m := map[string]bool{}
	for _, k := range []string{"caller", "callerLookup", "briefDescription", "request", "action",
		"actionInvisibleForCaller", "externalNumber", "completed", "completedDate", "closed",
		"closedDate", "status", "mainIncident", "callDate", "majorCall", "majorCallObject"} {
		m[k] = true
	}
	for _, k := range refFields() {
		m[k] = true
	}
	return m
}

func (s *Sim) applyCaller(inc *incident, ch edit) []string {
	v := ch.vals
	switch {
	case ch.has("caller") && ch.has("callerLookup"):
		return []string{"It is an error to provide both 'caller' and 'callerLookup'."}
	case ch.has("callerLookup"):
		lk := v["callerLookup"].obj
		var p *entity
		if id, ok := lk["id"]; ok {
			p = s.cat.lists[listPersons].byID[id.str]
			if p == nil {
				return []string{fmt.Sprintf("'callerLookup.id': no person found with id '%s'.", id.str)}
			}
		} else {
			email := lk["email"].str
			p = s.cat.byEmail[strings.ToLower(email)]
			if p == nil {
				return []string{fmt.Sprintf("'callerLookup.email': no person found with email '%s'.", email)}
			}
		}
		inc.caller = &callerState{person: p, dynamicName: p.name, email: p.email}
	case ch.has("caller"):
		c := v["caller"].obj
		if inc.caller != nil && inc.caller.person != nil && !ch.create {
			if _, ok := c["dynamicName"]; ok {
				return []string{"'caller.dynamicName' can only be changed for unregistered callers."}
			}
		}
		cs := &callerState{}
		if inc.caller != nil && !ch.create {
			cs = inc.caller
		}
		for k, x := range c {
			switch k {
			case "dynamicName":
				cs.dynamicName = x.str
			case "email":
				cs.email = x.str
			case "phoneNumber":
				cs.phone = x.str
			case "mobileNumber":
				cs.mobile = x.str
			default:
				if cs.extra == nil {
					cs.extra = map[string]json.RawMessage{}
				}
				cs.extra[k] = x.raw
			}
		}
		inc.caller = cs
	case !ch.create && (v["caller"].null || v["callerLookup"].null):
		inc.caller = nil
	}
	return nil
}

func (s *Sim) applyRefs(inc *incident, ch edit) []string {
	if inc.refs == nil {
		inc.refs = map[string]*entity{}
	}
	var errs []string
	v := ch.vals
	for _, k := range refFields() {
		x, ok := v[k]
		switch {
		case !ok || k == "subcategory":
		case x.null:
			delete(inc.refs, k)
		default:
			inc.refs[k] = x.ents[0]
		}
	}
	cat := inc.refs["category"]
	if x, ok := v["subcategory"]; ok && !x.null {
		cands := x.ents
		if ch.has("category") || len(cands) > 1 {
			// Within the category of this request, or to choose between
			// equal names, within the incident's category.
			cands = slices.DeleteFunc(slices.Clone(cands), func(e *entity) bool { return e.parent != cat })
		}
		switch {
		case len(cands) == 1:
			inc.refs["subcategory"] = cands[0]
			inc.refs["category"] = cands[0].parent
		case ch.has("category"):
			errs = append(errs, fmt.Sprintf("'subcategory': '%s' is not a subcategory of category '%s'.", x.ents[0].name, cat.name))
		default:
			errs = append(errs, fmt.Sprintf("'subcategory': '%s' exists under several categories; give the category too.", x.ents[0].name))
		}
	} else if ok && x.null {
		delete(inc.refs, "subcategory")
	} else if sub := inc.refs["subcategory"]; sub != nil && sub.parent != cat {
		// The category changed and the old subcategory is not under it.
		delete(inc.refs, "subcategory")
	}
	if (ch.has("impact") || ch.has("urgency")) && !ch.has("priority") {
		if im, ur := inc.refs["impact"], inc.refs["urgency"]; im != nil && ur != nil {
			if p := s.cat.matrix[[2]string{im.id, ur.id}]; p != nil {
				inc.refs["priority"] = p
			}
		}
	}
	return errs
}

// applyState sets closed/completed from the request and from a processing
// status: a closing status closes and completes, any other status reopens a
// closed or completed incident; explicit closed/completed win.
func applyState(inc *incident, ch edit) []string {
	v := ch.vals
	closed, completed := inc.closed, inc.completed
	if st, ok := v["processingStatus"]; ok && !st.null {
		if st.ents[0].status.Closing {
			closed, completed = true, true
		} else {
			closed, completed = false, false
		}
	}
	explicitClosed, explicitCompleted := ch.has("closed"), ch.has("completed")
	if explicitClosed {
		closed = v["closed"].b
		if closed && !explicitCompleted {
			completed = true
		}
	}
	if explicitCompleted {
		completed = v["completed"].b
		if !completed && !explicitClosed {
			closed = false
		}
	}
	if closed && !completed {
		return []string{"An incident cannot be closed without being completed."}
	}
	setDate := func(on, was bool, field string, dst *time.Time) {
		switch {
		case !on:
			*dst = time.Time{}
		case ch.has(field):
			*dst = v[field].t
		case !was:
			*dst = ch.now
		}
	}
	setDate(closed, inc.closed, "closedDate", &inc.closedDate)
	setDate(completed, inc.completed, "completedDate", &inc.completedDate)
	inc.closed, inc.completed = closed, completed
	return nil
}

// applyMajorCall sets whether inc is a major call and links it to the
// major call majorCallObject names by id or number ("name").
func (s *Sim) applyMajorCall(inc *incident, ch edit) []string {
	v := ch.vals
	if x, ok := v["majorCall"]; ok {
		inc.majorCall = x.b
	}
	if x, ok := v["majorCallObject"]; ok && x.null {
		inc.majorCallOf = nil
	} else if ok {
		var ref struct{ ID, Name string }
		// The checker accepted raw as {"id"} or {"name"} with a string.
		_ = json.Unmarshal(x.raw, &ref)
		m, what, key := s.byID[strings.ToLower(ref.ID)], "id", ref.ID
		if ref.ID == "" {
			m, what, key = s.byNumber[ref.Name], "name", ref.Name
		}
		if m == nil || !m.majorCall || m.archived || m.id == inc.id {
			return []string{fmt.Sprintf("'majorCallObject': no major call found with %s '%s'.", what, key)}
		}
		inc.majorCallOf = m
	}
	if inc.majorCall && inc.majorCallOf != nil {
		return []string{"A major call cannot be linked to another major call."}
	}
	return nil
}

// applyMainIncident links a partial incident to its main incident.
func (s *Sim) applyMainIncident(inc *incident, ch edit) []string {
	m, hasMain := ch.vals["mainIncident"]
	hasMain = hasMain && !m.null
	switch {
	case inc.line == "partial" && !hasMain:
		return []string{"'mainIncident' is required for a partial incident."}
	case inc.line != "partial" && hasMain:
		return []string{"It is an error to provide a main incident for a non-partial incident."}
	case !hasMain:
		return nil
	}
	var main *incident
	if id, ok := m.obj["id"]; ok {
		main = s.byID[id.str]
	} else {
		main = s.byNumber[m.obj["number"].str]
	}
	if main == nil || main.line != "secondLine" || main.closed || main.archived {
		return []string{"'mainIncident' must be an open, unarchived second line incident."}
	}
	inc.mainIncident = main
	return nil
}

// create validates body, stores a new incident and returns its read model;
// errs are the request's problems (400), err a failure to save it (500).
func (s *Sim) create(body []byte, a actor) (out []byte, errs []string, err error) {
	vals, errs := s.check.object("", body, s.createRules, false)
	if len(errs) > 0 {
		return nil, errs, nil
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	author := s.cat.operator(a.login)
	inc := &incident{id: newUUID(), creationDate: now, callDate: now, creator: author, refs: make(map[string]*entity, len(refFields()))}
	if st := s.cat.defaultStatus; st != nil {
		inc.refs["processingStatus"] = st
	}
	if errs := s.apply(inc, edit{vals: vals, now: now, author: author, create: true}); len(errs) > 0 {
		return nil, errs, nil
	}
	s.seq++
	inc.seq = s.seq
	inc.number = fmt.Sprintf("I %s %03d", now.Format("0601"), s.seq)
	s.incidents = append(s.incidents, inc)
	s.byID[inc.id] = inc
	s.byNumber[inc.number] = inc
	s.index(inc)
	if inc.mainIncident != nil {
		inc.mainIncident.partials = append(inc.mainIncident.partials, inc)
	}
	s.changedLocked(inc, a, now, "created")
	return s.render(inc, nil), nil, s.saveLocked()
}

// update validates body, applies it to the incident with this id or number
// and returns its read model; found is false when there is no such incident
// (whether or not the body is valid); err is a failure to save it.
func (s *Sim) update(by, key string, body []byte, a actor) (out []byte, found bool, errs []string, err error) {
	// The body is checked against the tenant, which never changes, so
	// outside the lock.
	vals, errs := s.check.object("", body, s.updateRules, false)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	inc := s.lookup(by, key)
	switch {
	case inc == nil:
		return nil, false, nil, nil
	case len(errs) > 0:
		return nil, true, errs, nil
	case inc.archived:
		return nil, true, []string{fmt.Sprintf("Incident %s is archived and cannot be changed; unarchive it first.", inc.number)}, nil
	}
	next := inc.clone()
	if errs := s.apply(next, edit{vals: vals, now: now, author: s.cat.operator(a.login)}); len(errs) > 0 {
		return nil, true, errs, nil
	}
	wasClosed := inc.closed
	s.unindex(inc)
	*inc = *next
	s.index(inc)
	s.changedLocked(inc, a, now, describe(vals, wasClosed, inc.closed))
	return s.render(inc, nil), true, nil, s.saveLocked()
}

// describe says what an update did, for the history: closed or reopened
// when it did, an added action, and the other fields it sent.
func describe(vals map[string]value, wasClosed, closed bool) string {
	var parts []string
	switch {
	case closed && !wasClosed:
		parts = append(parts, "closed")
	case wasClosed && !closed:
		parts = append(parts, "reopened")
	}
	for _, k := range sortedKeys(vals) {
		switch k {
		case "actionInvisibleForCaller", "closed", "closedDate", "completed", "completedDate":
		case "action":
			parts = append(parts, "added an action")
		default:
			parts = append(parts, k)
		}
	}
	if len(parts) == 0 {
		return "saved without changes"
	}
	return strings.Join(parts, ", ")
}

// changedLocked records a change of inc in its history, sets it as
// modified by a at now and calls the automated action when a's changes
// call it. The caller holds s.mu.
func (s *Sim) changedLocked(inc *incident, a actor, now time.Time, what string) {
	who := s.cat.operator(a.login)
	inc.modificationDate, inc.modifier = now, who
	inc.history = append(inc.history, change{at: now, by: who, operator: a.operator, what: what})
	s.notifyLocked(inc.number, a)
}

// lookup finds an incident by "id" or "number". The caller holds s.mu.
func (s *Sim) lookup(by, key string) *incident {
	if by == "id" {
		return s.byID[strings.ToLower(key)]
	}
	return s.byNumber[key]
}

func (s *Sim) index(inc *incident) {
	if inc.externalNumber == "" {
		return
	}
	k := strings.ToLower(inc.externalNumber)
	l := s.byExternal[k]
	i, _ := slices.BinarySearchFunc(l, inc.seq, func(e *incident, seq int) int { return e.seq - seq })
	s.byExternal[k] = slices.Insert(l, i, inc)
}

func (s *Sim) unindex(inc *incident) {
	if inc.externalNumber == "" {
		return
	}
	k := strings.ToLower(inc.externalNumber)
	l := slices.DeleteFunc(s.byExternal[k], func(e *incident) bool { return e == inc })
	if len(l) == 0 {
		delete(s.byExternal, k)
	} else {
		s.byExternal[k] = l
	}
}

func newUUID() string {
	var b [16]byte
	// crypto/rand.Read never returns an error (it panics if the system's
	// source of randomness fails).
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return formatUUID(b[:])
}

// Wire format.

// topdeskTimeLayout is how TOPdesk writes timestamps.
const topdeskTimeLayout = "2006-01-02T15:04:05.000-0700"

func joinNewestFirst(es []entry) string {
	texts := make([]string, len(es))
	for i, e := range es {
		texts[len(es)-1-i] = e.text
	}
	return strings.Join(texts, "\n\n")
}

// plainText turns TOPdesk's memo HTML into text: each <br> tag becomes a
// line break, every other tag is removed and character references are
// decoded.
func plainText(s string) string {
	s = breakTag.ReplaceAllString(s, "\n")
	s = anyTag.ReplaceAllString(s, "")
	return html.UnescapeString(s)
}

// The tags plainText replaces and removes.
var (
	breakTag = regexp.MustCompile(`(?i)<br\s*/?>`)
	anyTag   = regexp.MustCompile(`<[^>]*>`)
)

// Inspection.

// Incident is the simulator's view of one incident, for test assertions.
// Reference fields hold names; the dates are zero when unset.
type Incident struct {
	ID               string    `json:"id"`
	Number           string    `json:"number"`
	Status           string    `json:"status"` // firstLine, secondLine or partial
	BriefDescription string    `json:"briefDescription"`
	ExternalNumber   string    `json:"externalNumber"`
	Request          string    `json:"request"` // the request entries as sent, newest first, separated by blank lines
	Closed           bool      `json:"closed"`
	Completed        bool      `json:"completed"`
	ClosedDate       time.Time `json:"closedDate,omitzero"`
	CompletedDate    time.Time `json:"completedDate,omitzero"`
	CreationDate     time.Time `json:"creationDate,omitzero"`
	ModificationDate time.Time `json:"modificationDate,omitzero"`
	ProcessingStatus string    `json:"processingStatus,omitempty"`
	Priority         string    `json:"priority,omitempty"`
	Impact           string    `json:"impact,omitempty"`
	Urgency          string    `json:"urgency,omitempty"`
	Category         string    `json:"category,omitempty"`
	Subcategory      string    `json:"subcategory,omitempty"`
	CallType         string    `json:"callType,omitempty"`
	EntryType        string    `json:"entryType,omitempty"`
	OperatorGroup    string    `json:"operatorGroup,omitempty"`
	Operator         string    `json:"operator,omitempty"`
	ClosureCode      string    `json:"closureCode,omitempty"`
	Object           string    `json:"object,omitempty"` // the linked asset's name
	MajorCall        bool      `json:"majorCall,omitempty"`
	MajorCallNumber  string    `json:"majorCallNumber,omitempty"` // of the major call it is linked to
	CallerName       string    `json:"callerName,omitempty"`
	Actions          []Action  `json:"actions"`
	Archived         bool      `json:"archived"`
	ArchivingReason  string    `json:"archivingReason,omitempty"`
	Modifier         string    `json:"modifier,omitempty"` // the operator's name
	History          []Change  `json:"history"`
}

// Change is one entry of an incident's history: who changed what.
type Change struct {
	At time.Time `json:"at"`
	// By is the operator's name (for alertdesk, the operator its API
	// login writes as).
	By string `json:"by"`
	// Operator is true for a person working in TOPdesk (the operator
	// methods and admin API), false for a change through the API.
	Operator bool `json:"operator"`
	// What is e.g. "created", "closed, closureCode", "added an action",
	// "priority", "archived (Outdated)".
	What string `json:"what"`
}

// Action is one entry of an incident's action trail.
type Action struct {
	Text               string    `json:"text"`
	InvisibleForCaller bool      `json:"invisibleForCaller"`
	Date               time.Time `json:"date"`
	By                 string    `json:"by,omitempty"` // the operator's name
}

// snapshot copies inc for inspection. The caller holds s.mu.
func (inc *incident) snapshot() Incident {
	name := func(k string) string { return nameOf(inc.refs[k]) }
	out := Incident{
		ID:               inc.id,
		Number:           inc.number,
		Status:           inc.line,
		BriefDescription: inc.briefDescription,
		ExternalNumber:   inc.externalNumber,
		Request:          joinNewestFirst(inc.requests),
		Closed:           inc.closed,
		Completed:        inc.completed,
		ClosedDate:       inc.closedDate,
		CompletedDate:    inc.completedDate,
		CreationDate:     inc.creationDate,
		ModificationDate: inc.modificationDate,
		ProcessingStatus: name("processingStatus"),
		Priority:         name("priority"),
		Impact:           name("impact"),
		Urgency:          name("urgency"),
		Category:         name("category"),
		Subcategory:      name("subcategory"),
		CallType:         name("callType"),
		EntryType:        name("entryType"),
		OperatorGroup:    name("operatorGroup"),
		Operator:         name("operator"),
		ClosureCode:      name("closureCode"),
		Object:           name("object"),
		Actions:          make([]Action, len(inc.actions)),
		Archived:         inc.archived,
		ArchivingReason:  nameOf(inc.archivingReason),
		Modifier:         nameOf(inc.modifier),
		History:          make([]Change, len(inc.history)),
		MajorCall:        inc.majorCall,
	}
	if m := inc.majorCallOf; m != nil {
		out.MajorCallNumber = m.number
	}
	for i, ch := range inc.history {
		out.History[i] = ch.snapshot()
	}
	if inc.caller != nil {
		out.CallerName = inc.caller.dynamicName
	}
	for i, a := range inc.actions {
		out.Actions[i] = Action{Text: a.text, InvisibleForCaller: a.invisible, Date: a.date, By: nameOf(a.operator)}
	}
	return out
}

// nameOf is e's name, or "" for nil.
func nameOf(e *entity) string {
	if e == nil {
		return ""
	}
	return e.name
}

// Incidents returns copies of all incidents, in creation order.
func (s *Sim) Incidents() []Incident {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Incident, len(s.incidents))
	for i, inc := range s.incidents {
		out[i] = inc.snapshot()
	}
	return out
}

// Incident returns a copy of the incident with this id or number.
func (s *Sim) Incident(idOrNumber string) (Incident, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inc := s.byID[strings.ToLower(idOrNumber)]
	if inc == nil {
		inc = s.byNumber[idOrNumber]
	}
	if inc == nil {
		return Incident{}, false
	}
	return inc.snapshot(), true
}
