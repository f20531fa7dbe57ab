package topdesktest

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Tenant is the configuration a simulated TOPdesk tenant starts with: the
// searchlists, operator groups, operators and persons that requests may name.
// The yaml and json tags give the shape LoadTenant reads. An entry without an
// ID gets a stable UUID derived from its list and name.
type Tenant struct {
	Statuses         []Status       `yaml:"statuses" json:"statuses"`
	Priorities       []Priority     `yaml:"priorities" json:"priorities"`
	PriorityMatrix   []PriorityRule `yaml:"priorityMatrix" json:"priorityMatrix"`
	Impacts          []Entry        `yaml:"impacts" json:"impacts"`
	Urgencies        []Entry        `yaml:"urgencies" json:"urgencies"`
	Categories       []Category     `yaml:"categories" json:"categories"`
	CallTypes        []Entry        `yaml:"callTypes" json:"callTypes"`
	EntryTypes       []Entry        `yaml:"entryTypes" json:"entryTypes"`
	ClosureCodes     []Entry        `yaml:"closureCodes" json:"closureCodes"`
	Durations        []Duration     `yaml:"durations" json:"durations"`
	ArchivingReasons []Entry        `yaml:"archivingReasons" json:"archivingReasons"`
	OperatorGroups   []Entry        `yaml:"operatorGroups" json:"operatorGroups"`
	Operators        []Operator     `yaml:"operators" json:"operators"`
	Persons          []Person       `yaml:"persons" json:"persons"`
	// Objects are the assets an incident can be linked to ("object").
	Objects []Entry `yaml:"objects" json:"objects"`
}

// Entry is one searchlist value (impact, urgency, call type, …) or an
// operator group: a UUID and a name.
type Entry struct {
	ID   string `yaml:"id" json:"id"`
	Name string `yaml:"name" json:"name"`
}

// Status is a processing status. Setting a Closing status closes and
// completes an incident; setting any other status on a closed incident
// reopens it (unless the same request sends closed/completed itself).
// OnHold, ProcessingState, Response and Default are reported as they are by
// GET /tas/api/incidents/statuses; Default is the status a new incident gets.
type Status struct {
	ID              string `yaml:"id" json:"id"`
	Name            string `yaml:"name" json:"name"`
	OnHold          bool   `yaml:"onHold" json:"onHold"`
	ProcessingState string `yaml:"processingState" json:"processingState"`
	Response        bool   `yaml:"response" json:"response"`
	Default         bool   `yaml:"default" json:"default"`
	Closing         bool   `yaml:"closing" json:"closing"`
}

// Priority is a priority; the durations name entries of Tenant.Durations.
type Priority struct {
	ID                 string `yaml:"id" json:"id"`
	Name               string `yaml:"name" json:"name"`
	FirstLineDuration  string `yaml:"firstLineDuration" json:"firstLineDuration"`
	SecondLineDuration string `yaml:"secondLineDuration" json:"secondLineDuration"`
}

// PriorityRule is one cell of the priority matrix: an incident that gets this
// impact and urgency (by name) and no explicit priority gets Priority.
type PriorityRule struct {
	Impact   string `yaml:"impact" json:"impact"`
	Urgency  string `yaml:"urgency" json:"urgency"`
	Priority string `yaml:"priority" json:"priority"`
}

// Category is an incident category with its subcategories.
type Category struct {
	ID            string  `yaml:"id" json:"id"`
	Name          string  `yaml:"name" json:"name"`
	Subcategories []Entry `yaml:"subcategories" json:"subcategories"`
}

// Duration is an incident duration (target time).
type Duration struct {
	ID           string `yaml:"id" json:"id"`
	Name         string `yaml:"name" json:"name"`
	BasicPeriods int    `yaml:"basicPeriods" json:"basicPeriods"`
	TimeSpanType string `yaml:"timeSpanType" json:"timeSpanType"`
	InFirstLine  bool   `yaml:"inFirstLine" json:"inFirstLine"`
	InSecondLine bool   `yaml:"inSecondLine" json:"inSecondLine"`
}

// Operator is an operator. Name is TOPdesk's dynamicName; LoginName links an
// operator to the Basic-auth user that writes as it (creator/modifier).
type Operator struct {
	ID        string `yaml:"id" json:"id"`
	Name      string `yaml:"name" json:"name"`
	LoginName string `yaml:"loginName" json:"loginName"`
	Email     string `yaml:"email" json:"email"`
}

// Person is a registered caller, found by callerLookup id or email.
type Person struct {
	ID    string `yaml:"id" json:"id"`
	Name  string `yaml:"name" json:"name"`
	Email string `yaml:"email" json:"email"`
}

// DefaultTenant returns a small but realistic tenant: processing statuses
// Logged (default), In progress, Waiting for user (on hold) and Closed
// (closing); priorities P1..P5 with a priority matrix; impacts, urgencies,
// categories with subcategories (the subcategory "Other" exists under two
// categories); call types; entry types including "Monitoring"; closure codes;
// durations; archiving reasons; operator groups Operations, DBA and Network;
// operators (one with login name "alertdesk", the default user); persons with
// e-mail addresses.
func DefaultTenant() *Tenant {
	entries := func(names ...string) []Entry {
		out := make([]Entry, len(names))
		for i, n := range names {
			out[i] = Entry{Name: n}
		}
		return out
	}
	t := &Tenant{
		Statuses: []Status{
			{Name: "Logged", ProcessingState: "logged", Default: true},
			{Name: "In progress", ProcessingState: "in_progress", Response: true},
			{Name: "Waiting for user", ProcessingState: "on_hold", OnHold: true, Response: true},
			{Name: "Closed", ProcessingState: "closed", Response: true, Closing: true},
		},
		Durations: []Duration{
			{Name: "1 hour", BasicPeriods: 1, TimeSpanType: "hours", InFirstLine: true, InSecondLine: true},
			{Name: "4 hours", BasicPeriods: 4, TimeSpanType: "hours", InFirstLine: true, InSecondLine: true},
			{Name: "1 day", BasicPeriods: 1, TimeSpanType: "days", InFirstLine: true, InSecondLine: true},
			{Name: "3 days", BasicPeriods: 3, TimeSpanType: "days", InFirstLine: true, InSecondLine: true},
			{Name: "1 week", BasicPeriods: 1, TimeSpanType: "weeks", InFirstLine: true, InSecondLine: true},
		},
		Priorities: []Priority{
			{Name: "P1", FirstLineDuration: "1 hour", SecondLineDuration: "4 hours"},
			{Name: "P2", FirstLineDuration: "4 hours", SecondLineDuration: "1 day"},
			{Name: "P3", FirstLineDuration: "1 day", SecondLineDuration: "3 days"},
			{Name: "P4", FirstLineDuration: "3 days", SecondLineDuration: "1 week"},
			{Name: "P5", FirstLineDuration: "1 week", SecondLineDuration: "1 week"},
		},
		Impacts:   entries("Organisation", "Department", "Person"),
		Urgencies: entries("High", "Medium", "Low"),
		PriorityMatrix: []PriorityRule{
			{Impact: "Organisation", Urgency: "High", Priority: "P1"},
			{Impact: "Organisation", Urgency: "Medium", Priority: "P2"},
			{Impact: "Organisation", Urgency: "Low", Priority: "P3"},
			{Impact: "Department", Urgency: "High", Priority: "P2"},
			{Impact: "Department", Urgency: "Medium", Priority: "P3"},
			{Impact: "Department", Urgency: "Low", Priority: "P4"},
			{Impact: "Person", Urgency: "High", Priority: "P3"},
			{Impact: "Person", Urgency: "Medium", Priority: "P4"},
			{Impact: "Person", Urgency: "Low", Priority: "P5"},
		},
		Categories: []Category{
			{Name: "Infrastructure", Subcategories: entries("Servers", "Network", "Storage", "Other")},
			{Name: "Databases", Subcategories: entries("Oracle", "PostgreSQL", "MySQL")},
			{Name: "Applications", Subcategories: entries("Web", "Batch", "Other")},
		},
		CallTypes:        entries("Disruption", "Request", "Question", "Complaint"),
		EntryTypes:       entries("Monitoring", "E-mail", "Telephone", "Portal"),
		ClosureCodes:     entries("Solved", "Solved by monitoring", "No action needed", "Duplicate"),
		ArchivingReasons: entries("Outdated", "Duplicate"),
		Objects:          entries("db-1", "db-7", "web-01", "web-02", "router-ams-1"),
		OperatorGroups:   entries("Operations", "DBA", "Network"),
		Operators: []Operator{
			{Name: "Alertdesk, API", LoginName: "alertdesk", Email: "alertdesk@example.com"},
			{Name: "Jansen, Eva", LoginName: "ejansen", Email: "eva.jansen@example.com"},
			{Name: "Bakker, Tom", LoginName: "tbakker", Email: "tom.bakker@example.com"},
		},
		Persons: []Person{
			{Name: "Monitoring, System", Email: "monitoring@example.com"},
			{Name: "Visser, Anna", Email: "anna.visser@example.com"},
			{Name: "de Vries, Piet", Email: "piet.devries@example.com"},
		},
	}
	if err := t.normalize(); err != nil {
		// The literal above is valid; normalize only fails for bad input.
		panic(fmt.Sprintf("topdesktest: default tenant: %v", err))
	}
	return t
}

// LoadTenant reads a tenant from YAML or JSON in the shape of Tenant's tags.
// Unknown keys, empty or duplicate names, malformed or duplicate ids, more
// than one default status and names that refer to nothing (priority matrix,
// priority durations) are errors. Missing ids are filled in.
func LoadTenant(data []byte) (*Tenant, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var t Tenant
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("parse tenant: %w", err)
	}
	if err := t.normalize(); err != nil {
		return nil, fmt.Errorf("tenant: %w", err)
	}
	return &t, nil
}

// clone returns a deep copy so that a Sim owns its tenant.
func (t *Tenant) clone() *Tenant {
	c := *t
	c.Statuses = append([]Status(nil), t.Statuses...)
	c.Priorities = append([]Priority(nil), t.Priorities...)
	c.PriorityMatrix = append([]PriorityRule(nil), t.PriorityMatrix...)
	c.Impacts = append([]Entry(nil), t.Impacts...)
	c.Urgencies = append([]Entry(nil), t.Urgencies...)
	c.Categories = make([]Category, len(t.Categories))
	for i, cat := range t.Categories {
		cat.Subcategories = append([]Entry(nil), cat.Subcategories...)
		c.Categories[i] = cat
	}
	c.CallTypes = append([]Entry(nil), t.CallTypes...)
	c.EntryTypes = append([]Entry(nil), t.EntryTypes...)
	c.ClosureCodes = append([]Entry(nil), t.ClosureCodes...)
	c.Durations = append([]Duration(nil), t.Durations...)
	c.ArchivingReasons = append([]Entry(nil), t.ArchivingReasons...)
	c.Objects = append([]Entry(nil), t.Objects...)
	c.OperatorGroups = append([]Entry(nil), t.OperatorGroups...)
	c.Operators = append([]Operator(nil), t.Operators...)
	c.Persons = append([]Person(nil), t.Persons...)
	return &c
}

// normalize fills in missing ids and checks the tenant for consistency.
func (t *Tenant) normalize() error {
	var errs []error
	ids := map[string]string{}
	check := func(list string, id *string, name, scope string) {
		if strings.TrimSpace(name) == "" {
			errs = append(errs, fmt.Errorf("%s: an entry has no name", list))
			return
		}
		if *id == "" {
			*id = stableUUID(list + "/" + scope + "/" + name)
		} else if !isUUID(*id) {
			errs = append(errs, fmt.Errorf("%s %q: id %q is not a UUID", list, name, *id))
			return
		}
		*id = strings.ToLower(*id)
		if prev, ok := ids[*id]; ok {
			errs = append(errs, fmt.Errorf("%s %q: id %s is already used by %s", list, name, *id, prev))
			return
		}
		ids[*id] = list + " " + name
	}
	unique := func(list string) func(name, scope string) {
		seen := map[string]bool{}
		return func(name, scope string) {
			k := scope + "\x00" + name
			if seen[k] {
				errs = append(errs, fmt.Errorf("%s: duplicate name %q", list, name))
			}
			seen[k] = true
		}
	}
	entries := func(list string, es []Entry) map[string]bool {
		names := map[string]bool{}
		u := unique(list)
		for i := range es {
			check(list, &es[i].ID, es[i].Name, "")
			u(es[i].Name, "")
			names[es[i].Name] = true
		}
		return names
	}

	defaults := 0
	u := unique("statuses")
	for i := range t.Statuses {
		st := &t.Statuses[i]
		check("statuses", &st.ID, st.Name, "")
		u(st.Name, "")
		if st.Default {
			defaults++
		}
	}
	if defaults > 1 {
		errs = append(errs, fmt.Errorf("statuses: %d statuses are marked default, at most one may be", defaults))
	}

	durations := map[string]bool{}
	u = unique("durations")
	for i := range t.Durations {
		d := &t.Durations[i]
		check("durations", &d.ID, d.Name, "")
		u(d.Name, "")
		durations[d.Name] = true
	}
	priorities := map[string]bool{}
	u = unique("priorities")
	for i := range t.Priorities {
		p := &t.Priorities[i]
		check("priorities", &p.ID, p.Name, "")
		u(p.Name, "")
		priorities[p.Name] = true
		for _, d := range []string{p.FirstLineDuration, p.SecondLineDuration} {
			if d != "" && !durations[d] {
				errs = append(errs, fmt.Errorf("priorities %q: unknown duration %q", p.Name, d))
			}
		}
	}
	impacts := entries("impacts", t.Impacts)
	urgencies := entries("urgencies", t.Urgencies)
	for _, r := range t.PriorityMatrix {
		if !impacts[r.Impact] || !urgencies[r.Urgency] || !priorities[r.Priority] {
			errs = append(errs, fmt.Errorf("priorityMatrix: %q/%q -> %q names an unknown impact, urgency or priority", r.Impact, r.Urgency, r.Priority))
		}
	}

	uc := unique("categories")
	for i := range t.Categories {
		c := &t.Categories[i]
		check("categories", &c.ID, c.Name, "")
		uc(c.Name, "")
		us := unique("subcategories of " + c.Name)
		for j := range c.Subcategories {
			s := &c.Subcategories[j]
			check("subcategories", &s.ID, s.Name, c.Name)
			us(s.Name, "")
		}
	}
	entries("callTypes", t.CallTypes)
	entries("entryTypes", t.EntryTypes)
	entries("closureCodes", t.ClosureCodes)
	entries("archivingReasons", t.ArchivingReasons)
	entries("operatorGroups", t.OperatorGroups)
	entries("objects", t.Objects)

	u = unique("operators")
	for i := range t.Operators {
		o := &t.Operators[i]
		check("operators", &o.ID, o.Name, "")
		u(o.Name, "")
	}
	u = unique("persons")
	emails := map[string]bool{}
	for i := range t.Persons {
		p := &t.Persons[i]
		check("persons", &p.ID, p.Name, "")
		u(p.Name, "")
		if e := strings.ToLower(p.Email); e != "" {
			if emails[e] {
				errs = append(errs, fmt.Errorf("persons: duplicate email %q", p.Email))
			}
			emails[e] = true
		}
	}
	return errors.Join(errs...)
}

// stableUUID derives a version-5-style UUID from a seed, so that the default
// tenant's ids are the same in every run.
func stableUUID(seed string) string {
	h := sha1.Sum([]byte("alertdesk-topdesk-sim/" + seed))
	h[6] = (h[6] & 0x0f) | 0x50
	h[8] = (h[8] & 0x3f) | 0x80
	return formatUUID(h[:16])
}

// formatUUID writes 16 bytes in the 8-4-4-4-12 form, in lower-case hex.
func formatUUID(b []byte) string {
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	hex.Encode(out[9:13], b[4:6])
	hex.Encode(out[14:18], b[6:8])
	hex.Encode(out[19:23], b[8:10])
	hex.Encode(out[24:36], b[10:16])
	out[8], out[13], out[18], out[23] = '-', '-', '-', '-'
	return string(out[:])
}

// isUUID reports whether s has the 8-4-4-4-12 hex form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
