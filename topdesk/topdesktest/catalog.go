package topdesktest

import "strings"

// The tenant lists, by the name used in rules and error messages.
const (
	listStatuses         = "processingStatus"
	listPriorities       = "priority"
	listImpacts          = "impact"
	listUrgencies        = "urgency"
	listCategories       = "category"
	listSubcategories    = "subcategory"
	listCallTypes        = "callType"
	listEntryTypes       = "entryType"
	listClosureCodes     = "closureCode"
	listDurations        = "duration"
	listArchivingReasons = "archivingReason"
	listOperatorGroups   = "operatorGroup"
	listOperators        = "operator"
	listPersons          = "person"
	listObjects          = "object"
)

// entity is one tenant object as the simulator looks it up.
type entity struct {
	list   string
	id     string
	name   string
	parent *entity // a subcategory's category

	status   *Status
	priority *Priority
	duration *Duration
	email    string // persons and operators
	login    string // operators
}

func newEntity(e entity) *entity { return &e }

type entityList struct {
	all    []*entity
	byID   map[string]*entity
	byName map[string][]*entity
}

func (l *entityList) add(e *entity) {
	l.all = append(l.all, e)
	l.byID[e.id] = e
	l.byName[e.name] = append(l.byName[e.name], e)
}

// catalog indexes a tenant. It is built once and never changed, so it is read
// without the Sim's lock.
type catalog struct {
	lists         map[string]*entityList
	defaultStatus *entity
	matrix        map[[2]string]*entity // impact id, urgency id -> priority
	byLogin       map[string]*entity    // operator login name -> operator
	byEmail       map[string]*entity    // lower-case person e-mail -> person
}

func newCatalog(t *Tenant) *catalog {
	c := &catalog{
		lists:   map[string]*entityList{},
		matrix:  map[[2]string]*entity{},
		byLogin: map[string]*entity{},
		byEmail: map[string]*entity{},
	}
	for _, n := range []string{listStatuses, listPriorities, listImpacts, listUrgencies, listCategories,
		listSubcategories, listCallTypes, listEntryTypes, listClosureCodes, listDurations,
		listArchivingReasons, listOperatorGroups, listOperators, listPersons, listObjects} {
		c.lists[n] = &entityList{byID: map[string]*entity{}, byName: map[string][]*entity{}}
	}
	addEntries := func(list string, es []Entry) {
		for _, e := range es {
			c.lists[list].add(newEntity(entity{list: list, id: e.ID, name: e.Name}))
		}
	}
	for i := range t.Statuses {
		st := &t.Statuses[i]
		e := newEntity(entity{list: listStatuses, id: st.ID, name: st.Name, status: st})
		c.lists[listStatuses].add(e)
		if st.Default {
			c.defaultStatus = e
		}
	}
	for i := range t.Durations {
		d := &t.Durations[i]
		c.lists[listDurations].add(newEntity(entity{list: listDurations, id: d.ID, name: d.Name, duration: d}))
	}
	for i := range t.Priorities {
		p := &t.Priorities[i]
		c.lists[listPriorities].add(newEntity(entity{list: listPriorities, id: p.ID, name: p.Name, priority: p}))
	}
	addEntries(listImpacts, t.Impacts)
	addEntries(listUrgencies, t.Urgencies)
	for _, r := range t.PriorityMatrix {
		im := c.lists[listImpacts].byName[r.Impact][0]
		ur := c.lists[listUrgencies].byName[r.Urgency][0]
		c.matrix[[2]string{im.id, ur.id}] = c.lists[listPriorities].byName[r.Priority][0]
	}
	for _, cat := range t.Categories {
		ce := newEntity(entity{list: listCategories, id: cat.ID, name: cat.Name})
		c.lists[listCategories].add(ce)
		for _, sub := range cat.Subcategories {
			c.lists[listSubcategories].add(newEntity(entity{list: listSubcategories, id: sub.ID, name: sub.Name, parent: ce}))
		}
	}
	addEntries(listCallTypes, t.CallTypes)
	addEntries(listEntryTypes, t.EntryTypes)
	addEntries(listClosureCodes, t.ClosureCodes)
	addEntries(listArchivingReasons, t.ArchivingReasons)
	addEntries(listOperatorGroups, t.OperatorGroups)
	addEntries(listObjects, t.Objects)
	for _, o := range t.Operators {
		e := newEntity(entity{list: listOperators, id: o.ID, name: o.Name, email: o.Email, login: o.LoginName})
		c.lists[listOperators].add(e)
		if o.LoginName != "" {
			c.byLogin[o.LoginName] = e
		}
	}
	for _, p := range t.Persons {
		e := newEntity(entity{list: listPersons, id: p.ID, name: p.Name, email: p.Email})
		c.lists[listPersons].add(e)
		if p.Email != "" {
			c.byEmail[strings.ToLower(p.Email)] = e
		}
	}
	return c
}

// operator returns the operator a Basic-auth login writes as: the tenant's
// operator with that login name, else a stand-in named after the login.
func (c *catalog) operator(login string) *entity {
	if e, ok := c.byLogin[login]; ok {
		return e
	}
	return newEntity(entity{list: listOperators, id: stableUUID("login/" + login), name: login, login: login})
}
