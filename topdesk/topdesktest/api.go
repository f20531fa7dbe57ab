package topdesktest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

func (s *Sim) apiRoutes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /tas/api/version", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": s.opts.APIVersion})
	})
	mux.HandleFunc("GET /tas/api/incidents", s.handleSearch)
	mux.HandleFunc("POST /tas/api/incidents", s.handleCreate)
	for _, by := range []string{"id", "number"} {
		base := "/tas/api/incidents/" + by + "/{key}"
		mux.HandleFunc("GET "+base, s.handleGet(by))
		mux.HandleFunc("PUT "+base, s.handleUpdate(by))
		mux.HandleFunc("PATCH "+base, func(w http.ResponseWriter, r *http.Request) {
			if s.opts.DisablePatch {
				w.Header().Set("Allow", "GET, PUT")
				writeError(w, http.StatusMethodNotAllowed, "HTTP method PATCH is not supported by this resource.")
				return
			}
			s.handleUpdate(by)(w, r)
		})
		mux.HandleFunc("GET "+base+"/actions", s.handleTrail(by, true))
		mux.HandleFunc("GET "+base+"/requests", s.handleTrail(by, false))
		mux.HandleFunc("PUT "+base+"/archive", s.handleArchive(by, true))
		mux.HandleFunc("PUT "+base+"/unarchive", s.handleArchive(by, false))
	}
	lookups := map[string]string{
		"statuses": listStatuses, "priorities": listPriorities, "impacts": listImpacts,
		"urgencies": listUrgencies, "categories": listCategories, "subcategories": listSubcategories,
		"call_types": listCallTypes, "entry_types": listEntryTypes, "closure_codes": listClosureCodes,
		"durations": listDurations,
	}
	for path, list := range lookups {
		mux.HandleFunc("GET /tas/api/incidents/"+path, s.handleLookup(list))
	}
	mux.HandleFunc("GET /tas/api/archiving-reasons", s.handleLookup(listArchivingReasons))
	for path, list := range map[string]string{"operatorgroups": listOperatorGroups, "operators": listOperators, "persons": listPersons} {
		mux.HandleFunc("GET /tas/api/"+path, s.handleDirectory(list))
		mux.HandleFunc("GET /tas/api/"+path+"/id/{id}", s.handleDirectoryEntry(list))
	}
	mux.HandleFunc("GET /tas/api/assetmgmt/assets", s.handleAssets)
	mux.HandleFunc("/tas/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("No resource found at %s.", r.URL.Path))
	})
	return mux
}

func login(r *http.Request) string {
	u, _, _ := r.BasicAuth()
	return u
}

func (s *Sim) handleCreate(w http.ResponseWriter, r *http.Request) {
	body, err := requestBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "The request body cannot be read.")
		return
	}
	out, errs, err := s.create(body, actor{login: login(r)})
	writeChange(w, http.StatusCreated, out, errs, err)
}

// writeChange answers a create or update: 400 with the request's problems,
// 500 when the change could not be saved, else status with the incident.
func writeChange(w http.ResponseWriter, status int, out []byte, errs []string, err error) {
	switch {
	case len(errs) > 0:
		writeError(w, http.StatusBadRequest, errs...)
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		writeRaw(w, status, out)
	}
}

func (s *Sim) handleUpdate(by string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		if by == "id" && !isUUID(key) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("'id' cannot be parsed: %q is not a UUID.", key))
			return
		}
		body, err := requestBody(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, "The request body cannot be read.")
			return
		}
		out, found, errs, err := s.update(by, key, body, actor{login: login(r)})
		if !found {
			writeError(w, http.StatusNotFound, fmt.Sprintf("No incident found with %s '%s'.", by, key))
			return
		}
		writeChange(w, http.StatusOK, out, errs, err)
	}
}

func (s *Sim) handleGet(by string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		if by == "id" && !isUUID(key) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("'id' cannot be parsed: %q is not a UUID.", key))
			return
		}
		want, msg := s.fieldsParam(r.URL.Query())
		if msg != "" {
			writeError(w, http.StatusBadRequest, msg)
			return
		}
		s.mu.Lock()
		inc := s.lookup(by, key)
		var out []byte
		if inc != nil {
			out = s.render(inc, want)
		}
		s.mu.Unlock()
		if inc == nil {
			writeError(w, http.StatusNotFound, fmt.Sprintf("No incident found with %s '%s'.", by, key))
			return
		}
		writeRaw(w, http.StatusOK, out)
	}
}

// fieldsParam reads fields= (or $fields=) from the query q: the read model
// properties to answer; nil means all of them.
func (s *Sim) fieldsParam(q url.Values) ([]string, string) {
	v := q.Get("fields")
	if v == "" {
		v = q.Get("$fields")
	}
	if v == "" {
		return nil, ""
	}
	var want []string
	for f := range strings.SplitSeq(v, ",") {
		f = strings.TrimSpace(f)
		if _, ok := s.modelFields[f]; !ok {
			return nil, fmt.Sprintf("Unknown field '%s' in the fields parameter.", f)
		}
		want = append(want, f)
	}
	return want, ""
}

// intParam reads a non-negative integer query parameter.
func intParam(q map[string][]string, name string, def, min, max int) (int, string) {
	vs, ok := q[name]
	if !ok || len(vs) == 0 || vs[0] == "" {
		return def, ""
	}
	n, err := strconv.Atoi(vs[0])
	if err != nil || n < min || n > max {
		return 0, fmt.Sprintf("'%s' must be a whole number from %d to %d, not %q.", name, min, max, vs[0])
	}
	return n, ""
}

// page picks items [start, start+size) of total and the answer's status:
// 204 when there is nothing, 206 when more pages follow, else 200.
func page(total, start, size int) (lo, hi, status int) {
	if start >= total {
		return 0, 0, http.StatusNoContent
	}
	hi = min(start+size, total)
	if hi < total {
		return start, hi, http.StatusPartialContent
	}
	return start, hi, http.StatusOK
}

// writePage answers a list: 204 with no body when empty.
func writePage(w http.ResponseWriter, status int, items []json.RawMessage) {
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, items)
}

// Incident list parameters.
func newListParams() []string { return []string{"query", "pageStart", "pageSize", "sort", "all"} }
func legacyListParams() []string {
	return []string{"start", "page_size", "external_number", "closed", "completed", "archived"}
}

func (s *Sim) handleSearch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var newer, legacy []string
	for _, p := range newListParams() {
		if q.Has(p) {
			newer = append(newer, p)
		}
	}
	for _, p := range legacyListParams() {
		if q.Has(p) {
			legacy = append(legacy, p)
		}
	}
	if len(newer) > 0 && len(legacy) > 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Deprecated parameters (%s) cannot be combined with their replacements (%s).",
			strings.Join(legacy, ", "), strings.Join(newer, ", ")))
		return
	}
	want, msg := s.fieldsParam(q)
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	var f searchFilter
	if len(legacy) > 0 {
		f, msg = s.legacyFilter(q)
	} else {
		f, msg = s.newFilter(q)
	}
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}

	s.mu.Lock()
	matches := s.match(f)
	lo, hi, status := page(len(matches), f.start, f.size)
	items := make([]json.RawMessage, 0, hi-lo)
	for _, inc := range matches[lo:hi] {
		items = append(items, s.render(inc, want))
	}
	s.mu.Unlock()
	writePage(w, status, items)
}

// searchFilter is a parsed incident search.
type searchFilter struct {
	start, size int
	query       fiqlQuery // nil = all
	archived    *bool     // nil = both; else only archived (true) or only not archived (false)
	sort        []sortKey
}

type sortKey struct {
	field string
	desc  bool
}

func (s *Sim) newFilter(q map[string][]string) (searchFilter, string) {
	f := searchFilter{archived: new(false)}
	var msg string
	if f.start, msg = intParam(q, "pageStart", 0, 0, 1<<31-1); msg != "" {
		return f, msg
	}
	if f.size, msg = intParam(q, "pageSize", 10, 1, 10000); msg != "" {
		return f, msg
	}
	if v := first(q, "all"); v == "true" {
		f.archived = nil
	} else if v != "" && v != "false" {
		return f, fmt.Sprintf("'all' must be true or false, not %q.", v)
	}
	if v := first(q, "query"); v != "" {
		if s.opts.DisableFIQL {
			return f, fmt.Sprintf("Error parsing query %q: the query parameter is not supported for incidents by this version (%s).", v, s.opts.APIVersion)
		}
		n, err := parseFIQL(v, s.queryFields)
		if err != nil {
			return f, err.Error()
		}
		f.query = n
	}
	if v := first(q, "sort"); v != "" {
		sortable := map[string]bool{"callDate": true, "creationDate": true, "modificationDate": true,
			"closedDate": true, "completedDate": true, "id": true, "number": true, "externalNumber": true, "briefDescription": true}
		for part := range strings.SplitSeq(v, ",") {
			name, dir, _ := strings.Cut(part, ":")
			if !sortable[name] || (dir != "" && dir != "asc" && dir != "desc") {
				return f, fmt.Sprintf("Cannot sort on %q: use field:asc or field:desc with one of callDate, closedDate, completedDate, creationDate, id, modificationDate, number, externalNumber, briefDescription.", part)
			}
			f.sort = append(f.sort, sortKey{field: name, desc: dir == "desc"})
		}
	}
	return f, ""
}

// legacyFilter reads the deprecated parameters: start, page_size (at most
// 100), external_number, closed, completed and archived (all exact filters).
func (s *Sim) legacyFilter(q map[string][]string) (searchFilter, string) {
	f := searchFilter{archived: new(false)}
	var msg string
	if f.start, f.size, msg = legacyPaging(q); msg != "" {
		return f, msg
	}
	if v := first(q, "external_number"); v != "" {
		f.query = append(f.query, fiqlCmp{field: "externalNumber", op: "==", arg: fiqlValue{s: v}})
	}
	for _, name := range []string{"closed", "completed", "archived"} {
		v := first(q, name)
		if v == "" {
			continue
		}
		if v != "true" && v != "false" {
			return f, fmt.Sprintf("'%s' must be true or false, not %q.", name, v)
		}
		if name == "archived" {
			f.archived = new(v == "true")
			continue
		}
		f.query = append(f.query, fiqlCmp{field: name, op: "==", arg: fiqlValue{b: v == "true"}})
	}
	return f, ""
}

// legacyPaging reads start and page_size (1 to 100, default 10).
func legacyPaging(q map[string][]string) (start, size int, msg string) {
	if start, msg = intParam(q, "start", 0, 0, 1<<31-1); msg != "" {
		return 0, 0, msg
	}
	size, msg = intParam(q, "page_size", 10, 1, 100)
	return start, size, msg
}

func first(q map[string][]string, k string) string {
	if vs := q[k]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// match returns the incidents f selects, in creation order unless sorted.
// An externalNumber term is answered from the index. The caller holds s.mu.
func (s *Sim) match(f searchFilter) []*incident {
	candidates := s.incidents
	if key, ok := f.query.externalNumber(); ok {
		candidates = s.byExternal[key]
	}
	var out []*incident
	for _, inc := range candidates {
		if f.archived != nil && inc.archived != *f.archived {
			continue
		}
		if !f.query.eval(inc.queryField) {
			continue
		}
		out = append(out, inc)
	}
	if len(f.sort) > 0 {
		slices.SortStableFunc(out, func(a, b *incident) int {
			for _, k := range f.sort {
				c := compareField(a, b, k.field)
				if k.desc {
					c = -c
				}
				if c != 0 {
					return c
				}
			}
			return 0
		})
	}
	return out
}

func compareField(a, b *incident, name string) int {
	va, vb := a.queryField(name), b.queryField(name)
	switch {
	case va.null || vb.null:
		// Empty values sort first.
		return cmp.Compare(boolInt(!va.null), boolInt(!vb.null))
	case !va.t.IsZero() || !vb.t.IsZero():
		return va.t.Compare(vb.t)
	}
	return cmp.Compare(va.s, vb.s)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// incidentQueryFields are the fields FIQL can query on incidents.
func incidentQueryFields() map[string]fieldType {
	m := map[string]fieldType{
		"id": ftString, "number": ftString, "externalNumber": ftString, "briefDescription": ftString,
		"status": ftString, "closed": ftBool, "completed": ftBool, "majorCall": ftBool,
		"creationDate": ftDate, "modificationDate": ftDate, "callDate": ftDate, "closedDate": ftDate, "completedDate": ftDate,
		"caller.id": ftString, "caller.dynamicName": ftString, "caller.email": ftString,
	}
	for _, k := range refFields() {
		m[k+".id"] = ftString
		m[k+".name"] = ftString
	}
	return m
}

// queryField is inc's value of a field incidentQueryFields lists.
func (inc *incident) queryField(name string) fiqlValue {
	str := func(s string) fiqlValue { return fiqlValue{s: s, null: s == ""} }
	date := func(t time.Time) fiqlValue { return fiqlValue{t: t, null: t.IsZero()} }
	switch name {
	case "id":
		return str(inc.id)
	case "number":
		return str(inc.number)
	case "externalNumber":
		return str(inc.externalNumber)
	case "briefDescription":
		return str(inc.briefDescription)
	case "status":
		if inc.archived {
			return str(inc.line + "Archived")
		}
		return str(inc.line)
	case "closed":
		return fiqlValue{b: inc.closed}
	case "completed":
		return fiqlValue{b: inc.completed}
	case "majorCall":
		return fiqlValue{b: inc.majorCall}
	case "creationDate":
		return date(inc.creationDate)
	case "modificationDate":
		return date(inc.modificationDate)
	case "callDate":
		return date(inc.callDate)
	case "closedDate":
		return date(inc.closedDate)
	case "completedDate":
		return date(inc.completedDate)
	}
	if rest, ok := strings.CutPrefix(name, "caller."); ok {
		if inc.caller == nil {
			return fiqlValue{null: true}
		}
		switch rest {
		case "id":
			if inc.caller.person == nil {
				return fiqlValue{null: true}
			}
			return str(inc.caller.person.id)
		case "email":
			return str(inc.caller.email)
		default:
			return str(inc.caller.dynamicName)
		}
	}
	ref, attr, _ := strings.Cut(name, ".")
	e := inc.refs[ref]
	switch {
	case e == nil:
		return fiqlValue{null: true}
	case attr == "id":
		return str(e.id)
	default:
		return str(e.name)
	}
}

// handleTrail lists an incident's actions or requests, newest first, with
// start/page_size (at most 100).
func (s *Sim) handleTrail(by string, actions bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start, size, msg := legacyPaging(r.URL.Query())
		if msg != "" {
			writeError(w, http.StatusBadRequest, msg)
			return
		}
		s.mu.Lock()
		inc := s.lookup(by, r.PathValue("key"))
		var es []entry
		if inc != nil {
			es = inc.requests
			if actions {
				es = inc.actions
			}
			es = slices.Clone(es)
		}
		s.mu.Unlock()
		if inc == nil {
			writeError(w, http.StatusNotFound, fmt.Sprintf("No incident found with %s '%s'.", by, r.PathValue("key")))
			return
		}
		slices.Reverse(es)
		lo, hi, status := page(len(es), start, size)
		items := make([]json.RawMessage, 0, hi-lo)
		for _, e := range es[lo:hi] {
			m := map[string]any{
				"id": e.id, "memoText": e.text, "plainText": plainText(e.text), "flag": nil,
				"entryDate": wireTime(e.date), "creationDate": wireTime(e.date),
				"operator": wireRef(e.operator), "person": nil,
			}
			if actions {
				m["invisibleForCaller"] = e.invisible
			}
			b, err := json.Marshal(m)
			if err != nil {
				writeError(w, http.StatusInternalServerError, err.Error())
				return
			}
			items = append(items, b)
		}
		writePage(w, status, items)
	}
}

// handleArchive archives (with a reason {"id"} or {"name"}) or unarchives.
func (s *Sim) handleArchive(by string, archive bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var reason *entity
		if archive {
			body, err := requestBody(r)
			if err != nil {
				writeError(w, http.StatusBadRequest, "The request body cannot be read.")
				return
			}
			var errs []string
			if reason, errs = s.archivingReason(body); len(errs) > 0 {
				writeError(w, http.StatusBadRequest, errs...)
				return
			}
		}
		out, found, errs, err := s.archive(by, r.PathValue("key"), reason, archive, actor{login: login(r)})
		if !found {
			writeError(w, http.StatusNotFound, fmt.Sprintf("No incident found with %s '%s'.", by, r.PathValue("key")))
			return
		}
		writeChange(w, http.StatusOK, out, errs, err)
	}
}

// lookupJSON is how a searchlist entry is listed.
func lookupJSON(e *entity) map[string]any {
	m := map[string]any{"id": e.id, "name": e.name}
	switch {
	case e.status != nil:
		m["onHold"] = strconv.FormatBool(e.status.OnHold)
		m["processingState"] = e.status.ProcessingState
		m["response"] = strconv.FormatBool(e.status.Response)
		m["default"] = e.status.Default
	case e.priority != nil:
		m["firstLineDuration"], m["secondLineDuration"] = nil, nil
	case e.duration != nil:
		m["basicPeriods"] = e.duration.BasicPeriods
		m["timeSpanType"] = e.duration.TimeSpanType
		m["inFirstLine"] = e.duration.InFirstLine
		m["inSecondLine"] = e.duration.InSecondLine
	case e.parent != nil:
		m["category"] = wireRef(e.parent)
	}
	return m
}

func (s *Sim) handleLookup(list string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		all := s.cat.lists[list].all
		out := make([]map[string]any, len(all))
		for i, e := range all {
			out[i] = lookupJSON(e)
			if e.priority != nil {
				durations := s.cat.lists[listDurations].byName
				for k, d := range map[string]string{"firstLineDuration": e.priority.FirstLineDuration, "secondLineDuration": e.priority.SecondLineDuration} {
					if ds := durations[d]; len(ds) > 0 {
						out[i][k] = wireRef(ds[0])
					}
				}
			}
		}
		if len(out) == 0 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// directoryJSON is how an operator group, operator or person is listed.
func directoryJSON(e *entity) map[string]any {
	switch e.list {
	case listOperatorGroups:
		return map[string]any{"id": e.id, "groupName": e.name, "status": "operatorGroup"}
	case listOperators:
		return map[string]any{"id": e.id, "dynamicName": e.name, "email": e.email, "loginName": e.login, "status": "operator"}
	default:
		return map[string]any{"id": e.id, "dynamicName": e.name, "email": e.email, "status": "person"}
	}
}

// directoryQueryFields are the FIQL fields of operator groups, operators
// and persons.
func directoryQueryFields(list string) map[string]fieldType {
	if list == listOperatorGroups {
		return map[string]fieldType{"id": ftString, "groupName": ftString}
	}
	m := map[string]fieldType{"id": ftString, "dynamicName": ftString, "email": ftString}
	if list == listOperators {
		m["loginName"] = ftString
	}
	return m
}

func directoryField(e *entity, name string) fiqlValue {
	var v string
	switch name {
	case "id":
		v = e.id
	case "groupName", "dynamicName":
		v = e.name
	case "email":
		v = e.email
	case "loginName":
		v = e.login
	}
	return fiqlValue{s: v, null: v == ""}
}

// handleDirectory lists operator groups, operators or persons with
// start/page_size (at most 100) and an optional FIQL query (persons also take
// the legacy email= parameter).
func (s *Sim) handleDirectory(list string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		start, size, msg := legacyPaging(q)
		var query fiqlQuery
		if v := first(q, "query"); v != "" && msg == "" {
			n, err := parseFIQL(v, directoryQueryFields(list))
			if err != nil {
				msg = err.Error()
			}
			query = n
		}
		if msg != "" {
			writeError(w, http.StatusBadRequest, msg)
			return
		}
		email := first(q, "email")
		var matches []*entity
		for _, e := range s.cat.lists[list].all {
			get := func(f string) fiqlValue { return directoryField(e, f) }
			if query.eval(get) && (email == "" || strings.EqualFold(email, e.email)) {
				matches = append(matches, e)
			}
		}
		lo, hi, status := page(len(matches), start, size)
		items := make([]json.RawMessage, 0, hi-lo)
		for _, e := range matches[lo:hi] {
			b, err := json.Marshal(directoryJSON(e))
			if err != nil {
				writeError(w, http.StatusInternalServerError, err.Error())
				return
			}
			items = append(items, b)
		}
		writePage(w, status, items)
	}
}

func (s *Sim) handleDirectoryEntry(list string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		e, ok := s.cat.lists[list].byID[strings.ToLower(id)]
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("No %s found with id '%s'.", list, id))
			return
		}
		writeJSON(w, http.StatusOK, directoryJSON(e))
	}
}

// handleAssets serves the asset management API's asset list, which finds
// the objects an incident's "object" can name: nameFragment (part of the
// name, any case), pageStart and pageSize (default 50, at most 1000). It
// answers {"dataSet": [{"id", "text"}]}, text being the name, always with
// 200; errors use the services APIs' {"errors": [{"errorCode",
// "errorMessage"}]}.
func (s *Sim) handleAssets(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	start, msg := intParam(q, "pageStart", 0, 0, 1<<31-1)
	size := 0
	if msg == "" {
		size, msg = intParam(q, "pageSize", 50, 1, 1000)
	}
	if msg != "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errors": []map[string]string{{"errorCode": "invalidParameter", "errorMessage": msg}}})
		return
	}
	frag := strings.ToLower(first(q, "nameFragment"))
	type asset struct {
		ID   string `json:"id"`
		Text string `json:"text"`
	}
	set := []asset{}
	for _, e := range s.cat.lists[listObjects].all {
		if strings.Contains(strings.ToLower(e.name), frag) {
			set = append(set, asset{ID: e.id, Text: e.name})
		}
	}
	set = set[min(start, len(set)):min(start+size, len(set))]
	writeJSON(w, http.StatusOK, map[string]any{"dataSet": set})
}
