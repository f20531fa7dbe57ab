package topdesktest

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// kind is the JSON shape a request field must have.
type kind int

const (
	kindString kind = iota + 1 // a JSON string, at most maxLength characters when set
	kindUUID                   // a JSON string in UUID form
	kindDate                   // a JSON string with a TOPdesk date-time
	kindBool                   // true/false (or "true"/"false", which TOPdesk also accepts)
	kindNumber                 // a JSON number (or a numeric string)
	kindInt                    // a JSON number without a fraction
	kindRef                    // {"id": uuid} or {"name": …}, never both: a searchlist
	kindIDRef                  // {"id": uuid} only
	kindObject                 // an object with its own field rules
)

// rule is what the simulator accepts for one request field.
type rule struct {
	kind      kind
	maxLength int             // kindString: UTF-16 code units, as TOPdesk's Java back end counts
	enum      []string        // kindString: the allowed values, if limited
	list      string          // kindRef/kindIDRef: tenant list resolving the value; "" = not simulated (any well-formed value)
	fields    map[string]rule // kindObject
	oneOf     bool            // kindObject: exactly one of fields must be given
}

func str(maxLength int) rule   { return rule{kind: kindString, maxLength: maxLength} }
func searchlist(l string) rule { return rule{kind: kindRef, list: l} }
func idOnly(l string) rule     { return rule{kind: kindIDRef, list: l} }

// callerRules is TOPdesk's CallerCreate (the "caller" field).
func callerRules() map[string]rule {
	return map[string]rule{
		"branch":            idOnly(""),
		"dynamicName":       str(109),
		"phoneNumber":       str(25),
		"mobileNumber":      str(25),
		"email":             str(100),
		"department":        searchlist(""),
		"location":          idOnly(""),
		"budgetHolder":      searchlist(""),
		"personExtraFieldA": searchlist(""),
		"personExtraFieldB": searchlist(""),
	}
}

// optionalFieldsRules is TOPdesk's OptionalFields (optionalFields1/2).
func optionalFieldsRules() map[string]rule {
	m := map[string]rule{}
	for i := 1; i <= 5; i++ {
		n := strconv.Itoa(i)
		m["boolean"+n] = rule{kind: kindBool}
		m["number"+n] = rule{kind: kindNumber}
		m["text"+n] = str(0)
		m["memo"+n] = str(0)
		m["date"+n] = rule{kind: kindDate}
		m["searchlist"+n] = searchlist("")
	}
	return m
}

// commonRules are the fields IncidentCreateBody and IncidentUpdateBody share.
func commonRules() map[string]rule {
	return map[string]rule{
		"caller": {kind: kindObject, fields: callerRules()},
		// The schema lists only "id"; its description and every integration
		// also use "email". Exactly one is allowed.
		"callerLookup":             {kind: kindObject, oneOf: true, fields: map[string]rule{"id": {kind: kindUUID}, "email": str(0)}},
		"briefDescription":         str(80),
		"request":                  str(0),
		"action":                   str(0),
		"actionInvisibleForCaller": {kind: kindBool},
		"entryType":                searchlist(listEntryTypes),
		"callType":                 searchlist(listCallTypes),
		"category":                 searchlist(listCategories),
		"subcategory":              searchlist(listSubcategories),
		"externalNumber":           str(60),
		"object":                   searchlist(listObjects),
		"location":                 idOnly(""),
		"branch":                   idOnly(""),
		"impact":                   searchlist(listImpacts),
		"urgency":                  searchlist(listUrgencies),
		"priority":                 searchlist(listPriorities),
		"duration":                 searchlist(listDurations),
		"targetDate":               {kind: kindDate},
		"sla":                      idOnly(""),
		"onHold":                   {kind: kindBool},
		"operator":                 idOnly(listOperators),
		"operatorGroup":            idOnly(listOperatorGroups),
		"supplier":                 idOnly(""),
		"processingStatus":         searchlist(listStatuses),
		"responded":                {kind: kindBool},
		"responseDate":             {kind: kindDate},
		"completed":                {kind: kindBool},
		"completedDate":            {kind: kindDate},
		"closed":                   {kind: kindBool},
		"closedDate":               {kind: kindDate},
		"closureCode":              searchlist(listClosureCodes),
		"costs":                    {kind: kindNumber},
		"feedbackRating":           {kind: kindInt},
		"feedbackMessage":          str(0),
		"majorCall":                {kind: kindBool},
		"majorCallObject":          searchlist(""),
		"publishToSsd":             {kind: kindBool},
		"optionalFields1":          {kind: kindObject, fields: optionalFieldsRules()},
		"optionalFields2":          {kind: kindObject, fields: optionalFieldsRules()},
		// The schema says externalLink.id is a UUID, but its own example is
		// "identifier-of-external-system"; any string is accepted.
		"externalLink": {kind: kindObject, fields: map[string]rule{
			"id": str(0), "type": str(0), "date": {kind: kindDate},
		}},
	}
}

// createRules is IncidentCreateBody.
func createRules() map[string]rule {
	m := commonRules()
	m["status"] = rule{kind: kindString, enum: []string{"firstLine", "secondLine", "partial"}}
	m["mainIncident"] = rule{kind: kindObject, oneOf: true, fields: map[string]rule{"id": {kind: kindUUID}, "number": str(0)}}
	return m
}

// updateRules is IncidentUpdateBody.
func updateRules() map[string]rule {
	m := commonRules()
	m["callDate"] = rule{kind: kindDate}
	return m
}

// value is a checked request value.
type value struct {
	null bool
	str  string
	b    bool
	num  float64
	t    time.Time
	ents []*entity // kindRef/kindIDRef resolved in the tenant (several only for an ambiguous subcategory name)
	obj  map[string]value
	raw  json.RawMessage
}

// checker validates request bodies against rules and the tenant.
type checker struct {
	cat *catalog
}

// object checks a JSON object against rules; errs lists every problem found,
// in field order. Of fields sent twice, the last counts.
func (c checker) object(path string, raw json.RawMessage, rules map[string]rule, oneOf bool) (map[string]value, []string) {
	ms, ok := members(raw)
	if !ok {
		if path == "" {
			return nil, []string{"The request body must be a JSON object."}
		}
		return nil, []string{fmt.Sprintf("'%s' must be an object.", path)}
	}
	out := make(map[string]value, len(ms))
	var errs []string
	for _, k := range sortedKeys(ms) {
		p := join(path, k)
		r, ok := rules[k]
		if !ok {
			errs = append(errs, fmt.Sprintf("Unrecognized field '%s'.", p))
			continue
		}
		v, e := c.value(p, r, ms[k])
		errs = append(errs, e...)
		if len(e) == 0 {
			out[k] = v
		}
	}
	if oneOf && len(ms) != 1 {
		errs = append(errs, fmt.Sprintf("'%s' must have exactly one lookup value (one of %s), it has %d.", path, strings.Join(sortedKeys(rules), ", "), len(ms)))
	}
	return out, errs
}

// members decodes raw, which must be a JSON object; of names sent twice,
// the last counts.
func members(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	var ms map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ms); err != nil || ms == nil {
		return nil, false
	}
	return ms, true
}

// jsonString decodes raw if it is a JSON string.
func jsonString(raw json.RawMessage) (string, bool) {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// value checks one member's value, as members returns it.
func (c checker) value(p string, r rule, raw json.RawMessage) (value, []string) {
	if string(raw) == "null" {
		return value{null: true, raw: raw}, nil
	}
	v := value{raw: raw}
	bad := func(want string) (value, []string) {
		return value{}, []string{fmt.Sprintf("'%s' must be %s.", p, want)}
	}
	switch r.kind {
	case kindString, kindUUID, kindDate:
		var ok bool
		if v.str, ok = jsonString(raw); !ok {
			return bad("a string")
		}
		switch r.kind {
		case kindUUID:
			if !isUUID(v.str) {
				return value{}, []string{fmt.Sprintf("'%s' cannot be parsed: %q is not a UUID.", p, v.str)}
			}
			v.str = strings.ToLower(v.str)
		case kindDate:
			t, err := parseDate(v.str)
			if err != nil {
				return value{}, []string{fmt.Sprintf("'%s' cannot be parsed: %q is not a date-time like 2015-11-15T14:00:00.000+0200.", p, v.str)}
			}
			v.t = t
		}
		// A string has at most as many UTF-16 code units as bytes.
		if r.maxLength > 0 && len(v.str) > r.maxLength {
			if n := utf16Len(v.str); n > r.maxLength {
				return value{}, []string{fmt.Sprintf("'%s' is too long: %d characters, the maximum is %d.", p, n, r.maxLength)}
			}
		}
		if len(r.enum) > 0 && !slices.Contains(r.enum, v.str) {
			return value{}, []string{fmt.Sprintf("'%s' must be one of %s, not %q.", p, strings.Join(r.enum, ", "), v.str)}
		}
	case kindBool:
		switch string(raw) {
		case "true", `"true"`:
			v.b = true
		case "false", `"false"`:
		default:
			return bad("a boolean")
		}
	case kindNumber, kindInt:
		s, quoted := jsonString(raw)
		if !quoted {
			// TOPdesk's own examples send numbers as strings ("costs": "0.15").
			s = string(raw)
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return bad("a number")
		}
		if r.kind == kindInt && f != float64(int64(f)) {
			return bad("a whole number")
		}
		v.num = f
	case kindRef, kindIDRef:
		return c.ref(p, r, raw)
	case kindObject:
		obj, errs := c.object(p, raw, r.fields, r.oneOf)
		if len(errs) > 0 {
			return value{}, errs
		}
		v.obj = obj
	}
	return v, nil
}

// ref checks {"id": …} / {"name": …} and resolves it in the tenant.
func (c checker) ref(p string, r rule, raw json.RawMessage) (value, []string) {
	ms, ok := members(raw)
	if !ok {
		return value{}, []string{fmt.Sprintf("'%s' must be an object like {\"id\": \"<UUID>\"}.", p)}
	}
	v := value{raw: raw}
	var id, name string
	var errs []string
	for _, k := range sortedKeys(ms) {
		s, isString := jsonString(ms[k])
		switch {
		case k == "id":
			if !isString || !isUUID(s) {
				errs = append(errs, fmt.Sprintf("'%s.id' cannot be parsed: %s is not a UUID.", p, ms[k]))
				continue
			}
			id = strings.ToLower(s)
		case k == "name" && r.kind == kindIDRef:
			errs = append(errs, fmt.Sprintf("'%s' can only be set by id, not by name.", p))
		case k == "name":
			if !isString || s == "" {
				errs = append(errs, fmt.Sprintf("'%s.name' must be a non-empty string.", p))
				continue
			}
			name = s
		default:
			errs = append(errs, fmt.Sprintf("Unrecognized field '%s.%s'.", p, k))
		}
	}
	if len(errs) > 0 {
		return value{}, errs
	}
	switch {
	case id != "" && name != "":
		return value{}, []string{fmt.Sprintf("'%s': it is an error to provide both an id and a name.", p)}
	case id == "" && name == "" && r.kind == kindIDRef:
		return value{}, []string{fmt.Sprintf("'%s' must have an id.", p)}
	case id == "" && name == "":
		return value{}, []string{fmt.Sprintf("'%s' must have an id or a name.", p)}
	}
	if r.list == "" {
		v.str = id + name
		return v, nil
	}
	l := c.cat.lists[r.list]
	if id != "" {
		e, ok := l.byID[id]
		if !ok {
			return value{}, []string{fmt.Sprintf("'%s': no %s found with id '%s'.", p, r.list, id)}
		}
		v.ents = []*entity{e}
		return v, nil
	}
	v.ents = l.byName[name]
	if len(v.ents) == 0 {
		return value{}, []string{fmt.Sprintf("'%s': no %s found with name '%s'.", p, r.list, name)}
	}
	return v, nil
}

// parseDate reads the date-time forms TOPdesk accepts; a time without an
// offset is UTC.
func parseDate(s string) (time.Time, error) {
	layouts := [...]string{
		"2006-01-02T15:04:05.000-0700",
		"2006-01-02T15:04:05-0700",
		time.RFC3339Nano,
		"2006-01-02T15:04:05.000",
		"2006-01-02T15:04:05",
		"2006-01-02",
	}
	var err error
	for _, l := range layouts {
		var t time.Time
		if t, err = time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("parse date %q: %w", s, err)
}

// utf16Len is how many UTF-16 code units s has, as TOPdesk's Java back end
// counts: two for a character beyond U+FFFF, one for any other character
// and for each byte that is not valid UTF-8.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r > 0xffff {
			n++
		}
	}
	return n
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
