package mapping

import (
	"fmt"
	htmltemplate "html/template"
	"slices"
	"strings"
	"time"

	"github.com/alertdesk/alertdesk/topdesk"
)

// The fields an update may write (updates.fields). They are the fields whose
// change the content fingerprint sees, so that a change of any of them
// makes an update.
const (
	FieldBriefDescription = "briefDescription"
	FieldPriority         = string(topdesk.FieldPriority)
	FieldImpact           = string(topdesk.FieldImpact)
	FieldUrgency          = string(topdesk.FieldUrgency)
)

// UpdatableFields are the names updates.fields accepts, in the order
// Updates.Fields lists them; every one is updatable by default.
var UpdatableFields = []string{FieldBriefDescription, FieldPriority, FieldImpact, FieldUrgency}

// MinRepeatEvery is the shortest updates.repeat.every.
const MinRepeatEvery = time.Second

// Updates is what an update (and a reopen or a resolve) of an open
// incident may write (PRODUCT.md "Incidents and operators").
type Updates struct {
	// Fields are the incident fields an update, reopen or resolve writes,
	// in the order of UpdatableFields. Every other field is set at create
	// only, and the request text is never rewritten.
	Fields []string
	// RepeatEvery is the shortest time between two "still firing" actions
	// of a key; 0 = none.
	RepeatEvery time.Duration
}

// Writes reports whether an update writes the field (one of
// UpdatableFields).
func (u Updates) Writes(field string) bool { return slices.Contains(u.Fields, field) }

// updatesFile is the updates section of a mapping file.
type updatesFile struct {
	Fields []string   `yaml:"fields"`
	Repeat repeatFile `yaml:"repeat"`
}

type repeatFile struct {
	Every string `yaml:"every"`
}

// Updates returns what an update may write.
func (m *Mapping) Updates() Updates {
	u := m.updates
	u.Fields = slices.Clone(u.Fields)
	return u
}

// defaultUpdates is the updates section of a mapping that gives none.
func defaultUpdates() Updates {
	return Updates{Fields: slices.Clone(UpdatableFields)}
}

// validateUpdates checks the updates section and incident.object.
func (f *file) validateUpdates(v *validator, m *Mapping) {
	m.updates = defaultUpdates()
	if v.has("updates.fields") {
		var set []string
		for i, name := range f.Updates.Fields {
			path := fmt.Sprintf("updates.fields[%d]", i)
			switch {
			case !slices.Contains(UpdatableFields, name):
				v.addf(path, "%q is not a field an update can write (use %s)", name, strings.Join(UpdatableFields, ", "))
			case slices.Contains(set, name):
				v.addf(path, "%q is listed twice", name)
			default:
				set = append(set, name)
			}
		}
		m.updates.Fields = slices.DeleteFunc(slices.Clone(UpdatableFields), func(f string) bool { return !slices.Contains(set, f) })
	}
	if v.has("updates.repeat") {
		const path = "updates.repeat.every"
		d, err := time.ParseDuration(f.Updates.Repeat.Every)
		switch {
		case !v.has(path):
			v.addf(path, "is required: how often a still-firing alert adds an action, such as 1h")
		case err != nil:
			v.addf(path, "%q is not a duration such as 1h or 30m", f.Updates.Repeat.Every)
		case d < MinRepeatEvery:
			v.addf(path, "%s is too short: at least %s", d, MinRepeatEvery)
		default:
			m.updates.RepeatEvery = d
		}
	}
	v.template("incident.object", f.Incident.Object, parseText, &m.object)
}

// filterUpdate leaves out of the request of an update, resolve or reopen
// the fields that updates.fields does not list.
func (u Updates) filterUpdate(r *topdesk.IncidentRequest) {
	if !u.Writes(FieldBriefDescription) {
		r.BriefDescription = ""
	}
	if !u.Writes(FieldPriority) {
		r.Priority = nil
	}
	if !u.Writes(FieldImpact) {
		r.Impact = nil
	}
	if !u.Writes(FieldUrgency) {
		r.Urgency = nil
	}
}

// object renders incident.object on one line as a reference by name; nil
// when the mapping has none or it renders empty. The worker resolves the
// name to the object's id.
func (m *Mapping) objectRef(d *templateData) (*topdesk.Ref, error) {
	if m.object == nil {
		return nil, nil
	}
	name, err := execute(m.object, d)
	if err != nil {
		return nil, err
	}
	return ref(oneLine(name)), nil
}

// NoteObjectMissing returns the request text req of a create with a line
// saying that the object (asset) named name was not linked, and why (such
// as "not found in TOPdesk"), put before the closing alert key line.
func NoteObjectMissing(req, name, why string) string {
	note := "Object " + htmltemplate.HTMLEscapeString(name) + " " + htmltemplate.HTMLEscapeString(why) + "; the incident is not linked to it."
	if i := strings.LastIndex(req, keyLine); i >= 0 {
		return req[:i] + "<br><br>" + note + req[i:]
	}
	return req + "<br><br>" + note
}

// keyLine starts the last line of every request text.
const keyLine = "<br><br>Alert key: "

// StillFiring returns the update that says the alert still fires: an
// action only, "Alert still firing (n notifications since <since>)", with
// the mapping's actions.invisibleForCaller (updates.repeat).
func (m *Mapping) StillFiring(n int, since time.Time) topdesk.IncidentRequest {
	word := "notifications"
	if n == 1 {
		word = "notification"
	}
	return topdesk.IncidentRequest{
		Action:                   fmt.Sprintf("Alert still firing (%d %s since %s).", n, word, since.UTC().Format("2006-01-02 15:04:05 UTC")),
		ActionInvisibleForCaller: new(m.invisible),
	}
}
