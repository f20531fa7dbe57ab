package topdesktest

import (
	"maps"
	"slices"
	"time"
)

// readField is one property of the incident read model.
type readField struct {
	name string
	add  appender
}

// appender appends a property's JSON value for inc; base is the Sim's URL,
// for links.
type appender func(dst []byte, base string, inc *incident) []byte

// readModel lists every property of TOPdesk's Incident schema, in the order
// the simulator writes them. Values that never change are written as
// constants, tenant entities from their pre-encoded JSON.
func readModel() []readField {
	null, zero, no := constant("null"), constant("0"), constant("false")
	str := func(get func(*incident) string) appender {
		return func(dst []byte, _ string, inc *incident) []byte { return appendString(dst, get(inc)) }
	}
	date := func(get func(*incident) time.Time) appender {
		return func(dst []byte, _ string, inc *incident) []byte { return appendTime(dst, get(inc)) }
	}
	flag := func(get func(*incident) bool) appender {
		return func(dst []byte, _ string, inc *incident) []byte {
			if get(inc) {
				return append(dst, "true"...)
			}
			return append(dst, "false"...)
		}
	}
	entityOf := func(get func(*incident) *entity) appender {
		return func(dst []byte, _ string, inc *incident) []byte { return appendRef(dst, get(inc)) }
	}
	ref := func(k string) appender {
		return entityOf(func(inc *incident) *entity { return inc.refs[k] })
	}
	// other is a field stored as sent, or its default when it never was.
	other := func(k, def string) appender {
		return func(dst []byte, _ string, inc *incident) []byte {
			if raw, ok := inc.other[k]; ok {
				return append(dst, raw...)
			}
			return append(dst, def...)
		}
	}
	return []readField{
		{"id", str(func(inc *incident) string { return inc.id })},
		{"status", func(dst []byte, _ string, inc *incident) []byte {
			dst = append(dst, '"')
			dst = appendEscaped(dst, inc.line)
			if inc.archived {
				dst = append(dst, "Archived"...)
			}
			return append(dst, '"')
		}},
		{"number", str(func(inc *incident) string { return inc.number })},
		{"request", str(func(inc *incident) string { return inc.requestText })},
		{"requests", incidentLink("/requests")},
		{"action", incidentLink("/actions")},
		{"attachments", incidentLink("/attachments")},
		{"caller", func(dst []byte, _ string, inc *incident) []byte { return appendCaller(dst, inc.caller) }},
		{"callerBranch", null},
		{"callerLocation", null},
		{"branchExtraFieldA", null},
		{"branchExtraFieldB", null},
		{"briefDescription", str(func(inc *incident) string { return inc.briefDescription })},
		{"externalNumber", str(func(inc *incident) string { return inc.externalNumber })},
		{"category", ref("category")},
		{"subcategory", ref("subcategory")},
		{"callType", ref("callType")},
		{"entryType", ref("entryType")},
		{"object", other("object", "null")},
		{"asset", null},
		{"branch", other("branch", "null")},
		{"location", other("location", "null")},
		{"impact", ref("impact")},
		{"urgency", ref("urgency")},
		{"priority", ref("priority")},
		{"duration", ref("duration")},
		{"actualDuration", null},
		{"targetDate", other("targetDate", "null")},
		{"sla", other("sla", "null")},
		{"responseDate", other("responseDate", "null")},
		{"onHold", other("onHold", "false")},
		{"onHoldDate", null},
		{"onHoldDuration", zero},
		{"feedbackMessage", other("feedbackMessage", "null")},
		{"feedbackRating", other("feedbackRating", "null")},
		{"operator", func(dst []byte, _ string, inc *incident) []byte {
			if o := inc.refs["operator"]; o != nil {
				return appendWithStatus(dst, o, "operator")
			}
			if g := inc.refs["operatorGroup"]; g != nil {
				return appendWithStatus(dst, g, "operatorGroup")
			}
			return append(dst, "null"...)
		}},
		{"operatorGroup", ref("operatorGroup")},
		{"supplier", other("supplier", "null")},
		{"processingStatus", ref("processingStatus")},
		{"completed", flag(func(inc *incident) bool { return inc.completed })},
		{"completedDate", date(func(inc *incident) time.Time { return inc.completedDate })},
		{"closed", flag(func(inc *incident) bool { return inc.closed })},
		{"closedDate", date(func(inc *incident) time.Time { return inc.closedDate })},
		{"closureCode", ref("closureCode")},
		{"timeSpent", zero},
		{"timeSpentFirstLine", zero},
		{"timeSpentSecondLine", zero},
		{"timeSpentPartial", zero},
		{"timeSpentLinkedPartials", zero},
		{"timeSpentSecondLineAndPartials", zero},
		{"itemCosts", zero},
		{"objectCosts", zero},
		{"costs", other("costs", "0")},
		{"escalationStatus", null},
		{"escalationReason", null},
		{"escalationOperator", null},
		{"callDate", date(func(inc *incident) time.Time { return inc.callDate })},
		{"creator", entityOf(func(inc *incident) *entity { return inc.creator })},
		{"creationDate", date(func(inc *incident) time.Time { return inc.creationDate })},
		{"modifier", entityOf(func(inc *incident) *entity { return inc.modifier })},
		{"modificationDate", date(func(inc *incident) time.Time { return inc.modificationDate })},
		{"archivingReason", entityOf(func(inc *incident) *entity { return inc.archivingReason })},
		{"majorCall", other("majorCall", "false")},
		{"majorCallObject", other("majorCallObject", "null")},
		{"publishToSsd", other("publishToSsd", "false")},
		{"monitored", no},
		{"responded", other("responded", "false")},
		{"expectedTimeSpent", zero},
		{"mainIncident", func(dst []byte, _ string, inc *incident) []byte {
			m := inc.mainIncident
			if m == nil {
				return append(dst, "null"...)
			}
			dst = append(dst, `{"id":`...)
			dst = appendString(dst, m.id)
			dst = append(dst, `,"number":`...)
			dst = appendString(dst, m.number)
			return append(dst, '}')
		}},
		{"partialIncidents", func(dst []byte, base string, inc *incident) []byte {
			dst = append(dst, '[')
			for i, p := range inc.partials {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, `{"link":`...)
				dst = appendLink(dst, base, p.id, "")
				dst = append(dst, '}')
			}
			return append(dst, ']')
		}},
		{"optionalFields1", other("optionalFields1", "null")},
		{"optionalFields2", other("optionalFields2", "null")},
		{"externalLinks", func(dst []byte, _ string, inc *incident) []byte {
			dst = append(dst, '[')
			if raw, ok := inc.other["externalLink"]; ok {
				dst = appendCompact(dst, raw)
			}
			return append(dst, ']')
		}},
	}
}

// constant is a value that is the same for every incident.
func constant(v string) appender {
	return func(dst []byte, _ string, _ *incident) []byte { return append(dst, v...) }
}

// incidentLink is a URL below the incident's own.
func incidentLink(suffix string) appender {
	return func(dst []byte, base string, inc *incident) []byte { return appendLink(dst, base, inc.id, suffix) }
}

// appendLink appends the JSON string base/tas/api/incidents/id/<id><suffix>.
func appendLink(dst []byte, base, id, suffix string) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, base)
	dst = append(dst, "/tas/api/incidents/id/"...)
	dst = appendEscaped(dst, id)
	dst = appendEscaped(dst, suffix)
	return append(dst, '"')
}

// appendTime appends t in UTC in TOPdesk's format (topdeskTimeLayout), or
// null for the zero time. Years of four digits are written here, others by
// time.Time.AppendFormat; neither writes anything JSON escapes.
func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, "null"...)
	}
	t = t.UTC()
	dst = append(dst, '"')
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		dst = t.AppendFormat(dst, topdeskTimeLayout)
		return append(dst, '"')
	}
	hour, minute, sec := t.Clock()
	dst = appendDigits(dst, year, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, minute, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec, 2)
	dst = append(dst, '.')
	dst = appendDigits(dst, t.Nanosecond()/int(time.Millisecond), 3)
	return append(dst, `+0000"`...)
}

// appendDigits appends v, which is not negative, in decimal with leading
// zeros to width digits.
func appendDigits(dst []byte, v, width int) []byte {
	var b [4]byte
	for i := width - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, b[:width]...)
}

// appendRef appends e as {"id": …, "name": …}, or null.
func appendRef(dst []byte, e *entity) []byte {
	if e == nil {
		return append(dst, "null"...)
	}
	return append(dst, e.ref...)
}

// appendWithStatus appends e as {"id": …, "name": …, "status": status}.
func appendWithStatus(dst []byte, e *entity, status string) []byte {
	dst = append(dst, e.ref[:len(e.ref)-1]...)
	dst = append(dst, `,"status":`...)
	dst = appendString(dst, status)
	return append(dst, '}')
}

// callerKeys are the properties every caller has, in the sorted order in
// which json.Marshal writes a map.
func callerKeys() []string {
	return []string{"dynamicName", "email", "id", "mobileNumber", "phoneNumber"}
}

// appendCaller appends the caller with its properties sorted by name, the
// ones the request set beyond the modelled ones (department, location, …)
// as sent but compacted.
func appendCaller(dst []byte, c *callerState) []byte {
	if c == nil {
		return append(dst, "null"...)
	}
	keys := callerKeys()
	if len(c.extra) > 0 {
		keys = append(keys, slices.Collect(maps.Keys(c.extra))...)
		slices.Sort(keys)
	}
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		switch k {
		case "dynamicName":
			dst = appendString(dst, c.dynamicName)
		case "email":
			dst = appendString(dst, c.email)
		case "id":
			if c.person == nil {
				dst = append(dst, "null"...)
			} else {
				dst = appendString(dst, c.person.id)
			}
		case "mobileNumber":
			dst = appendString(dst, c.mobile)
		case "phoneNumber":
			dst = appendString(dst, c.phone)
		default:
			dst = appendCompact(dst, c.extra[k])
		}
	}
	return append(dst, '}')
}

// readModelFields maps the names fields= may ask for to their position in
// the read model.
func (s *Sim) readModelFields() map[string]int { return s.modelIndex }

// appendIncident appends inc's read model, limited to the properties whose
// position want marks when it is not nil. The caller holds s.mu.
func (s *Sim) appendIncident(dst []byte, inc *incident, want []bool) []byte {
	dst = append(dst, '{')
	first := true
	for i, f := range s.model {
		if want != nil && !want[i] {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, f.name...)
		dst = append(dst, `":`...)
		dst = f.add(dst, s.baseURL, inc)
	}
	return append(dst, '}')
}
