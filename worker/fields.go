package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
)

// What an update may write (PRODUCT.md "Incidents and operators",
// docs/operators.md):
//
//   - updates.fields: an update, resolve or reopen writes only those fields
//     (the mapping leaves the others out of its request);
//   - operator edits win: per key the state remembers a short hash of what
//     alertdesk last wrote of each of those fields. Before a write that
//     would change one, the incident is read (one GET); a field whose value
//     differs from the remembered one was changed by a person. It is left
//     out, the action says so, and the field is the operator's from then
//     on: alertdesk never writes it to that incident again;
//   - updates.repeat: a duplicate of an open incident's alert adds a
//     "still firing" action when the last action of the key is older than
//     the interval. The notifications are counted in this worker's memory,
//     so that a duplicate writes no state;
//   - incident.object: the create links the object (asset) of that name,
//     resolved with a small cache; an unknown object leaves the link out and
//     says so in the request text.

// writtenFields is what alertdesk last wrote of the updatable fields of the
// key's incident.
type writtenFields struct {
	// Incident is the id of the incident the values were written to.
	Incident string `json:"incident"`
	// Values are, per field, a short hash of the value TOPdesk answered
	// after alertdesk's last write of it: the text of the brief
	// description, the id of a priority, impact or urgency.
	Values fieldHashes `json:"values,omitzero"`
	// Operator are the fields an operator changed: alertdesk leaves them
	// alone for the life of the incident.
	Operator []string `json:"operator,omitempty"`
}

// clone returns a deep copy of f (nil for nil): the state a worker loaded
// is shared with its cache of known states, so it is not changed in place.
func (f *writtenFields) clone() *writtenFields {
	if f == nil {
		return nil
	}
	return &writtenFields{Incident: f.Incident, Values: f.Values, Operator: slices.Clone(f.Operator)}
}

// fieldHashes holds a short hash per updatable field (mapping.UpdatableFields);
// "" = none. It is a struct rather than a map because every state a worker
// keeps in memory has one: a map per state was a fifth of a full cache's
// heap, all of it scanned by every garbage collection. Its JSON is the map's.
type fieldHashes struct {
	BriefDescription string `json:"briefDescription,omitempty"`
	Priority         string `json:"priority,omitempty"`
	Impact           string `json:"impact,omitempty"`
	Urgency          string `json:"urgency,omitempty"`
}

// slot is where the hash of field f is kept; nil for a name that is not an
// updatable field (mapping.Load rejects those).
func (h *fieldHashes) slot(f string) *string {
	switch f {
	case mapping.FieldBriefDescription:
		return &h.BriefDescription
	case mapping.FieldPriority:
		return &h.Priority
	case mapping.FieldImpact:
		return &h.Impact
	case mapping.FieldUrgency:
		return &h.Urgency
	}
	return nil
}

// get returns the hash of field f, "" for none.
func (h *fieldHashes) get(f string) string {
	if p := h.slot(f); p != nil {
		return *p
	}
	return ""
}

func (h *fieldHashes) set(f, hash string) {
	if p := h.slot(f); p != nil {
		*p = hash
	}
}

// fieldsWork is the worker's memory for these features.
type fieldsWork struct {
	updates mapping.Updates
	// objects caches object names (lower-cased) resolved to ids, misses
	// included. It spares a TOPdesk request (tens to hundreds of
	// milliseconds) per create of the same host.
	objects bounded[string, objectEntry]
	// repeats counts, per key, the duplicates this worker handled since
	// the key's last action.
	repeats bounded[string, repeatCount]
}

// The object cache: size and how long an answer is trusted. A miss expires
// sooner, so that an object added in TOPdesk is linked soon.
const (
	objectCacheSize = 1000
	objectHitTTL    = time.Hour
	objectMissTTL   = 5 * time.Minute
)

type objectEntry struct {
	id    string    // "" = not linkable
	why   string    // for "": why, as the request text says it
	until time.Time // expiry
}

// repeatCount is this worker's count of a key's notifications since the
// key's last action (base, incidentState.RepeatAt) or, when the state knows
// no last action, since first.
type repeatCount struct {
	base, first time.Time
	n           int
}

// since is when the count started: the key's last action, else the first
// notification counted.
func (c repeatCount) since(st *incidentState) time.Time {
	if st.RepeatAt.IsZero() {
		return c.first
	}
	return st.RepeatAt
}

func (f *fieldsWork) init(m *mapping.Mapping, opts Options) {
	f.updates = m.Updates()
	f.objects.max = objectCacheSize
	f.repeats.max = opts.SeenKeys
}

// fieldsMetrics are the counters of these features.
type fieldsMetrics struct {
	fieldsKept     *prometheus.CounterVec
	objectsUnknown prometheus.Counter
	stillFiring    prometheus.Counter
}

func newFieldsMetrics() fieldsMetrics {
	m := fieldsMetrics{
		fieldsKept: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "alertdesk_fields_kept_total",
			Help: "Incident fields a write left alone because an operator had changed them (updates.fields), by field; counted per write.",
		}, []string{"field"}),
		objectsUnknown: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "alertdesk_objects_unknown_total",
			Help: "Incidents created without their object link (incident.object): TOPdesk knows no object of that name, or refused the lookup.",
		}),
		stillFiring: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "alertdesk_still_firing_actions_total",
			Help: "Still-firing actions added to open incidents whose alert kept firing (updates.repeat).",
		}),
	}
	for _, f := range mapping.UpdatableFields {
		m.fieldsKept.WithLabelValues(f)
	}
	return m
}

func (m fieldsMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.fieldsKept, m.objectsUnknown, m.stillFiring}
}

// stillFiring turns d, the decision for ev, into doRepeat when ev is a
// duplicate of an open incident's alert and the key's last action is at
// least updates.repeat.every old (by the publish times of the messages).
// It counts the duplicate in memory; fresh is set when the same event is
// looked at again after a state conflict, which counts it only if another
// worker added an action since.
func (w *Worker) stillFiring(st *incidentState, ev *keyEvent, d decision, fresh bool) decision {
	every := w.fields.updates.RepeatEvery
	if every == 0 || d != doDuplicate || !st.Open || st.IncidentID == "" || ev.alert.Status != mapping.StatusFiring {
		return d
	}
	c, ok := w.fields.repeats.get(ev.ext)
	if !ok || !c.base.Equal(st.RepeatAt) {
		c = repeatCount{base: st.RepeatAt, first: ev.published}
	} else if fresh {
		return w.repeatDue(st, c, ev, d)
	}
	c.n++
	w.fields.repeats.put(ev.ext, c)
	return w.repeatDue(st, c, ev, d)
}

func (w *Worker) repeatDue(st *incidentState, c repeatCount, ev *keyEvent, d decision) decision {
	if ev.published.Sub(c.since(st)) >= w.fields.updates.RepeatEvery {
		return doRepeat
	}
	return d
}

// fieldsBefore prepares the request of write for decision d, its names
// already resolved: a create gets its object linked by id (or the request
// text says why not); a still-firing write becomes its action; any other
// write leaves out the fields an operator changed, and its action says so.
func (w *Worker) fieldsBefore(ctx context.Context, ev *keyEvent, st *incidentState, d decision, req *topdesk.IncidentRequest) error {
	switch d {
	case doCreate:
		return w.linkObject(ctx, req)
	case doRepeat:
		c, _ := w.fields.repeats.get(ev.ext)
		*req = w.mapping.StillFiring(max(c.n, 1), c.since(st))
		return nil
	}
	sent := w.sentFields(req, nil)
	if sent == (fieldHashes{}) || st.Fields == nil || st.Fields.Incident != st.IncidentID {
		// Nothing remembered for this incident (adopted from TOPdesk, or
		// state from before): what is written now is remembered.
		return nil
	}
	mem := st.Fields.clone()
	st.Fields = mem
	if st.Fingerprint == "" {
		// The state was rebuilt from TOPdesk (fromTOPdesk clears the
		// fingerprint): after a write whose outcome was unknown, or a lost
		// state. Such a write may have landed, so the values alertdesk
		// last wrote are not known: this write sends them and they are
		// remembered again. The operator's fields stay the operator's.
		mem.Values = fieldHashes{}
	}
	var kept []string
	var inc *topdesk.Incident
	for _, f := range mapping.UpdatableFields {
		h := sent.get(f)
		if h == "" {
			continue
		}
		last := mem.Values.get(f)
		remembered := last != ""
		switch {
		case remembered && last == h:
			// alertdesk's value did not change: writing it again could
			// only undo a person's change.
			clearField(req, f)
			continue
		case slices.Contains(mem.Operator, f):
		case !remembered:
			continue // nothing to compare with: written, and remembered
		default:
			if inc == nil {
				var err error
				if inc, err = w.getIncident(ctx, st.IncidentID); topdesk.IsNotFound(err) {
					return nil // the write finds out, and starts a new incident
				} else if err != nil {
					return err
				}
			}
			if currentIs(inc, f, last) {
				continue
			}
			mem.Operator = append(mem.Operator, f)
		}
		// The operator's field: left alone. What alertdesk would have
		// written is remembered, so that the action names the field only
		// when alertdesk's value changes again.
		mem.Values.set(f, h)
		kept = append(kept, f)
		w.m.fields.fieldsKept.WithLabelValues(f).Inc()
	}
	if len(kept) == 0 {
		return nil
	}
	names := make([]string, len(kept))
	for i, f := range kept {
		clearField(req, f)
		names[i] = fieldTitle(f)
	}
	note := "Left as an operator set it: " + strings.Join(names, ", ") + "."
	if req.Action == "" {
		req.Action = note
	} else {
		req.Action += "<br>" + note
	}
	return nil
}

// fieldsAfter records what write wrote: the updatable fields of req, as
// inc (TOPdesk's answer) has them, and the time of the key's last action.
func (w *Worker) fieldsAfter(st *incidentState, d decision, ev *keyEvent, inc *topdesk.Incident, req *topdesk.IncidentRequest) {
	if st.IncidentID == "" {
		return
	}
	if d == doCreate || st.Fields == nil || st.Fields.Incident != st.IncidentID {
		st.Fields = &writtenFields{Incident: st.IncidentID}
	} else {
		st.Fields = st.Fields.clone()
	}
	sent := w.sentFields(req, inc)
	for _, f := range mapping.UpdatableFields {
		if h := sent.get(f); h != "" {
			st.Fields.Values.set(f, h)
		}
	}
	switch {
	case w.fields.updates.RepeatEvery == 0 || d == doResolve:
		st.RepeatAt = time.Time{}
	default:
		st.RepeatAt = ev.published
		if d == doRepeat {
			w.m.fields.stillFiring.Inc()
		}
	}
}

// sentFields returns, for the updatable fields that req writes, a short
// hash of the value: TOPdesk's value in inc when inc has one, else the
// value sent.
func (w *Worker) sentFields(req *topdesk.IncidentRequest, inc *topdesk.Incident) fieldHashes {
	var out fieldHashes
	for _, f := range w.fields.updates.Fields {
		sent, got := fieldValue(req, f), ""
		if inc != nil {
			got = readValue(inc, f)
		}
		switch {
		case sent == "":
		case got != "":
			out.set(f, short(got))
		default:
			out.set(f, short(sent))
		}
	}
	return out
}

// fieldValue is the value req writes to field f: the text of the brief
// description, the id of a searchlist entry (by name when the id is not
// known); "" for none.
func fieldValue(req *topdesk.IncidentRequest, f string) string {
	switch f {
	case mapping.FieldBriefDescription:
		return req.BriefDescription
	case mapping.FieldPriority:
		return refValue(req.Priority)
	case mapping.FieldImpact:
		return refValue(req.Impact)
	case mapping.FieldUrgency:
		return refValue(req.Urgency)
	}
	return ""
}

// readValue is fieldValue of the incident's read model.
func readValue(inc *topdesk.Incident, f string) string {
	return fieldValue(&topdesk.IncidentRequest{BriefDescription: inc.BriefDescription,
		Priority: inc.Priority, Impact: inc.Impact, Urgency: inc.Urgency}, f)
}

// currentIs reports whether the incident's field f has the value whose
// hash is last. A searchlist entry matches by id or by name.
func currentIs(inc *topdesk.Incident, f, last string) bool {
	if short(readValue(inc, f)) == last {
		return true
	}
	var r *topdesk.Ref
	switch f {
	case mapping.FieldPriority:
		r = inc.Priority
	case mapping.FieldImpact:
		r = inc.Impact
	case mapping.FieldUrgency:
		r = inc.Urgency
	}
	return r != nil && r.Name != "" && short(refValue(&topdesk.Ref{Name: r.Name})) == last
}

func refValue(r *topdesk.Ref) string {
	switch {
	case r == nil:
		return ""
	case r.ID != "":
		return r.ID
	case r.Name != "":
		return "name:" + strings.ToLower(r.Name)
	}
	return ""
}

// short is a short hash of a field's value: enough to tell an operator's
// value from alertdesk's, small in the state.
func short(v string) string {
	h := sha256.Sum256([]byte(v))
	return hex.EncodeToString(h[:4])
}

func clearField(req *topdesk.IncidentRequest, f string) {
	switch f {
	case mapping.FieldBriefDescription:
		req.BriefDescription = ""
	case mapping.FieldPriority:
		req.Priority = nil
	case mapping.FieldImpact:
		req.Impact = nil
	case mapping.FieldUrgency:
		req.Urgency = nil
	}
}

// fieldTitle names a field in an action.
func fieldTitle(f string) string {
	if f == mapping.FieldBriefDescription {
		return "brief description"
	}
	return f
}

func (w *Worker) getIncident(ctx context.Context, id string) (*topdesk.Incident, error) {
	return call(ctx, w, "get", func(ctx context.Context) (*topdesk.Incident, error) { return w.api.GetIncident(ctx, id) })
}

// linkObject replaces the object name of a create by the object's id. An
// object TOPdesk does not know (or will not look up) is left out, the
// request text says so and a counter counts it: the incident is never lost
// for it.
func (w *Worker) linkObject(ctx context.Context, req *topdesk.IncidentRequest) error {
	if req.Object == nil || req.Object.ID != "" {
		return nil
	}
	name := req.Object.Name
	e, err := w.objectID(ctx, name)
	if err != nil {
		return err
	}
	if e.id != "" {
		req.Object = &topdesk.Ref{ID: e.id}
		return nil
	}
	req.Object = nil
	req.Request = mapping.NoteObjectMissing(req.Request, name, e.why)
	w.m.fields.objectsUnknown.Inc()
	return nil
}

// objectID resolves an object name through the cache. A lookup TOPdesk
// refuses (no asset management, no permission) counts as a miss; a
// retryable failure is returned.
func (w *Worker) objectID(ctx context.Context, name string) (objectEntry, error) {
	key := strings.ToLower(name)
	now := w.opts.Now()
	if e, ok := w.fields.objects.get(key); ok && now.Before(e.until) {
		return e, nil
	}
	found, err := call(ctx, w, "object", func(ctx context.Context) ([]topdesk.Option, error) { return w.api.ObjectsByName(ctx, name) })
	var e objectEntry
	var ae *topdesk.APIError
	switch {
	case err == nil && len(found) > 0:
		e = objectEntry{id: found[0].ID, until: now.Add(objectHitTTL)}
	case err == nil:
		e = objectEntry{why: "not found in TOPdesk", until: now.Add(objectMissTTL)}
	case errors.Is(err, errPermission) || topdesk.IsRejected(err):
		e = objectEntry{why: "could not be looked up in TOPdesk", until: now.Add(objectMissTTL)}
		if errors.As(err, &ae) {
			e.why += " (HTTP " + strconv.Itoa(ae.StatusCode) + ")"
		}
		w.log.Warn().Err(err).Str("object", name).Msg("object lookup refused; incidents are created without the link")
	default:
		return objectEntry{}, err
	}
	w.fields.objects.put(key, e)
	return e, nil
}
