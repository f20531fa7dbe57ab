package topdesktest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Options.StateFile keeps the incidents across runs of a process (alertdesk
// dev keeps its JetStream store and the simulator's incidents in the same
// data directory). The file is the JSON encoding of savedState; recorded
// requests and faults are not kept.

// savedState is the content of a state file.
type savedState struct {
	// Seq is the number of the last incident created.
	Seq       int             `json:"seq"`
	Incidents []savedIncident `json:"incidents"`
}

// savedRef is a tenant entity an incident points at. On load it is looked
// up by list and id; one the tenant no longer has is kept by id and name.
type savedRef struct {
	List string `json:"list"`
	ID   string `json:"id"`
	Name string `json:"name"`
}

type savedEntry struct {
	ID        string    `json:"id"`
	Text      string    `json:"text"`
	Invisible bool      `json:"invisible,omitempty"`
	Date      time.Time `json:"date"`
	Operator  *savedRef `json:"operator,omitempty"`
}

type savedChange struct {
	At       time.Time `json:"at"`
	By       *savedRef `json:"by"`
	Operator bool      `json:"operator,omitempty"`
	What     string    `json:"what"`
}

type savedCaller struct {
	Person      *savedRef                  `json:"person,omitempty"`
	DynamicName string                     `json:"dynamicName,omitempty"`
	Email       string                     `json:"email,omitempty"`
	Phone       string                     `json:"phoneNumber,omitempty"`
	Mobile      string                     `json:"mobileNumber,omitempty"`
	Extra       map[string]json.RawMessage `json:"extra,omitempty"`
}

type savedIncident struct {
	Seq              int                        `json:"seq"`
	ID               string                     `json:"id"`
	Number           string                     `json:"number"`
	Line             string                     `json:"status"`
	Archived         bool                       `json:"archived,omitempty"`
	ArchivingReason  *savedRef                  `json:"archivingReason,omitempty"`
	BriefDescription string                     `json:"briefDescription,omitempty"`
	ExternalNumber   string                     `json:"externalNumber,omitempty"`
	Requests         []savedEntry               `json:"requests,omitempty"`
	Actions          []savedEntry               `json:"actions,omitempty"`
	Caller           *savedCaller               `json:"caller,omitempty"`
	Refs             map[string]savedRef        `json:"refs,omitempty"`
	Closed           bool                       `json:"closed,omitempty"`
	Completed        bool                       `json:"completed,omitempty"`
	ClosedDate       time.Time                  `json:"closedDate,omitzero"`
	CompletedDate    time.Time                  `json:"completedDate,omitzero"`
	CallDate         time.Time                  `json:"callDate,omitzero"`
	CreationDate     time.Time                  `json:"creationDate,omitzero"`
	ModificationDate time.Time                  `json:"modificationDate,omitzero"`
	Creator          *savedRef                  `json:"creator,omitempty"`
	Modifier         *savedRef                  `json:"modifier,omitempty"`
	History          []savedChange              `json:"history,omitempty"`
	MainIncident     string                     `json:"mainIncident,omitempty"` // its id
	MajorCall        bool                       `json:"majorCall,omitempty"`
	MajorCallObject  string                     `json:"majorCallObject,omitempty"` // the id of the major call it is linked to
	Other            map[string]json.RawMessage `json:"other,omitempty"`
}

func saveRef(e *entity) *savedRef {
	if e == nil {
		return nil
	}
	return &savedRef{List: e.list, ID: e.id, Name: e.name}
}

func saveEntries(es []entry) []savedEntry {
	out := make([]savedEntry, len(es))
	for i, e := range es {
		out[i] = savedEntry{ID: e.id, Text: e.text, Invisible: e.invisible, Date: e.date, Operator: saveRef(e.operator)}
	}
	return out
}

func (inc *incident) save() savedIncident {
	out := savedIncident{
		Seq: inc.seq, ID: inc.id, Number: inc.number, Line: inc.line,
		Archived: inc.archived, ArchivingReason: saveRef(inc.archivingReason),
		BriefDescription: inc.briefDescription, ExternalNumber: inc.externalNumber,
		Requests: saveEntries(inc.requests), Actions: saveEntries(inc.actions),
		Refs:   make(map[string]savedRef, len(inc.refs)),
		Closed: inc.closed, Completed: inc.completed,
		ClosedDate: inc.closedDate, CompletedDate: inc.completedDate, CallDate: inc.callDate,
		CreationDate: inc.creationDate, ModificationDate: inc.modificationDate,
		Creator: saveRef(inc.creator), Modifier: saveRef(inc.modifier),
		Other: inc.other, MajorCall: inc.majorCall,
	}
	for _, ch := range inc.history {
		out.History = append(out.History, savedChange{At: ch.at, By: saveRef(ch.by), Operator: ch.operator, What: ch.what})
	}
	for k, e := range inc.refs {
		out.Refs[k] = *saveRef(e)
	}
	if inc.mainIncident != nil {
		out.MainIncident = inc.mainIncident.id
	}
	if inc.majorCallOf != nil {
		out.MajorCallObject = inc.majorCallOf.id
	}
	if c := inc.caller; c != nil {
		out.Caller = &savedCaller{Person: saveRef(c.person), DynamicName: c.dynamicName, Email: c.email,
			Phone: c.phone, Mobile: c.mobile, Extra: c.extra}
	}
	return out
}

// entity returns the tenant's entity that r names, or a stand-in with r's
// id and name when the tenant has none.
func (c *catalog) entity(r *savedRef) *entity {
	if r == nil {
		return nil
	}
	if l := c.lists[r.List]; l != nil {
		if e := l.byID[r.ID]; e != nil {
			return e
		}
	}
	return newEntity(entity{list: r.List, id: r.ID, name: r.Name})
}

func (c *catalog) entries(es []savedEntry) []entry {
	out := make([]entry, len(es))
	for i, e := range es {
		out[i] = entry{id: e.ID, text: e.Text, invisible: e.Invisible, date: e.Date, operator: c.entity(e.Operator)}
	}
	return out
}

func (c *catalog) incident(v savedIncident) *incident {
	inc := &incident{
		seq: v.Seq, id: v.ID, number: v.Number, line: v.Line,
		archived: v.Archived, archivingReason: c.entity(v.ArchivingReason),
		briefDescription: v.BriefDescription, externalNumber: v.ExternalNumber,
		requests: c.entries(v.Requests), actions: c.entries(v.Actions),
		refs:   make(map[string]*entity, len(v.Refs)),
		closed: v.Closed, completed: v.Completed,
		closedDate: v.ClosedDate, completedDate: v.CompletedDate, callDate: v.CallDate,
		creationDate: v.CreationDate, modificationDate: v.ModificationDate,
		creator: c.entity(v.Creator), modifier: c.entity(v.Modifier),
		other: v.Other, majorCall: v.MajorCall,
	}
	inc.requestText = plainText(joinNewestFirst(inc.requests))
	for _, ch := range v.History {
		inc.history = append(inc.history, change{at: ch.At, by: c.entity(ch.By), operator: ch.Operator, what: ch.What})
	}
	for k, r := range v.Refs {
		inc.refs[k] = c.entity(&r)
	}
	if sc := v.Caller; sc != nil {
		inc.caller = &callerState{person: c.entity(sc.Person), dynamicName: sc.DynamicName, email: sc.Email,
			phone: sc.Phone, mobile: sc.Mobile, extra: sc.Extra}
	}
	return inc
}

// load replaces the incidents with those of the state file, if it exists.
func (s *Sim) load() error {
	b, err := os.ReadFile(s.opts.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("topdesktest: load state: %w", err)
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("topdesktest: load state from %s: %w", s.opts.StateFile, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clearLocked()
	s.seq = st.Seq
	for _, v := range st.Incidents {
		inc := s.cat.incident(v)
		s.incidents = append(s.incidents, inc)
		s.byID[inc.id] = inc
		s.byNumber[inc.number] = inc
		s.index(inc)
	}
	for i, v := range st.Incidents {
		if m := s.byID[v.MainIncident]; m != nil {
			s.incidents[i].mainIncident = m
			m.partials = append(m.partials, s.incidents[i])
		}
		s.incidents[i].majorCallOf = s.byID[v.MajorCallObject]
	}
	return nil
}

// saveLocked writes the incidents to the state file, if there is one (its
// directory is created when missing): to a temporary file first, renamed over the old one, so that a crash leaves
// either the old state or the new. The caller holds s.mu.
func (s *Sim) saveLocked() error {
	if s.opts.StateFile == "" {
		return nil
	}
	st := savedState{Seq: s.seq, Incidents: make([]savedIncident, len(s.incidents))}
	for i, inc := range s.incidents {
		st.Incidents[i] = inc.save()
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("topdesktest: save state: %w", err)
	}
	dir := filepath.Dir(s.opts.StateFile)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("topdesktest: save state: %w", err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(s.opts.StateFile)+".*.tmp")
	if err != nil {
		return fmt.Errorf("topdesktest: save state: %w", err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), s.opts.StateFile)
	}
	if err != nil {
		// The temporary file is useless now; failing to remove it changes nothing.
		_ = os.Remove(f.Name())
		return fmt.Errorf("topdesktest: save state: %w", err)
	}
	return nil
}
