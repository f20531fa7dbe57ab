package mapping

import (
	_ "embed"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alertdesk/alertdesk/maintenance"
	"github.com/alertdesk/alertdesk/topdesk"
)

// ResolveMode says what a resolved alert does to its incident.
type ResolveMode string

// The resolve modes a mapping can choose.
const (
	// ResolveClose sets closed: true (plus the resolved status and closure
	// code when configured).
	ResolveClose ResolveMode = "close"
	// ResolveComplete sets completed: true (plus the resolved status when
	// configured) and leaves closing to an operator.
	ResolveComplete ResolveMode = "complete"
	// ResolveComment only adds an action; the incident stays open.
	ResolveComment ResolveMode = "comment"
)

// Lifecycle is the lifecycle part of a mapping (docs/mapping.md, the lifecycle keys).
// Status names are empty when not configured.
type Lifecycle struct {
	OpenStatus     string        // processingStatus set on create
	Resolve        ResolveMode   // what a resolved alert does
	ResolvedStatus string        // processingStatus set on resolve (close, complete)
	ReopenWindow   time.Duration // a firing alert within this time after resolve reopens; 0 = never reopen
	ReopenStatus   string        // processingStatus set on reopen
	ResolvedPrefix string        // prepended to the brief description on resolve
	ClosureCode    string        // closureCode set on resolve (close)
	ReorderWindow  time.Duration // an Alertmanager firing published longer than this after the applied resolve is a re-fire
	MaxClockAhead  time.Duration // an event time further than this after the publish time is clamped to it
	ResolveDelay   time.Duration // noise control (noise.go): a resolve closes only after this without a firing; 0 = at once
	// Operators (mapping/operators.go): what an operator's close means.
	OperatorClose OperatorClose // respect (default) or reopen
	WontFix       []string      // closure code names: an incident closed with one is never reopened
}

// Default lifecycle values.
const (
	DefaultReopenWindow   = 24 * time.Hour
	DefaultResolvedPrefix = "[RESOLVED] "
	DefaultReorderWindow  = time.Minute
	DefaultMaxClockAhead  = 5 * time.Minute
	// MaxBriefDescription is TOPdesk's limit for briefDescription, in
	// characters.
	MaxBriefDescription = 80
	// MaxDynamicName is TOPdesk's limit for caller.dynamicName, in characters.
	MaxDynamicName = 109
)

// Mapping turns alerts into TOPdesk incident requests. It is immutable after
// Load and safe for concurrent use.
type Mapping struct {
	keyLabels []string // sorted

	brief       executor // text/template
	request     executor // html/template
	callerName  executor // text/template; nil when callerEmail is set
	callerEmail string
	line        string // incident status: firstLine, secondLine or empty
	fields      fields

	severity        map[string]*level // by lower-cased severity
	defaultSeverity *level            // severity "default": for unlisted severities

	actions   [opCount]executor // html/template, by Op; nil = no action
	invisible bool

	lifecycle Lifecycle
	routes    []route
	status    *statusRule // nil: events carry their status
	flapping  Flapping    // noise control (noise.go); off when the file has no flapping key

	// What an update may write, and the object link (mapping/updates.go).
	updates Updates
	object  executor // text/template of incident.object; nil = none

	group *grouping // grouping: the top-level group; nil = none

	// maintenance are the mapping's maintenance windows (mapping/maintenance.go).
	maintenance maintenance.Windows
}

// statusRule gives events without a status one: resolved when the from
// template renders one of resolved (compared case-insensitively, spaces
// trimmed), else firing.
type statusRule struct {
	from     executor // text/template
	resolved []string
}

// fields are the literal searchlist names of an incident that routes can
// override.
type fields struct {
	EntryType, CallType, Category, Subcategory, OperatorGroup, Operator, Duration string
}

// level is what one severity sets: a priority, or an impact and an urgency.
type level struct {
	Priority, Impact, Urgency string
}

// route overrides fields for alerts that match all of its conditions.
type route struct {
	labels   map[string]string
	severity string // compared case-insensitively; empty = any
	source   string // exact; empty = any
	set      fields
	result   fields // the mapping's fields after apply, set once loaded

	// grouping: the route's group (nil = the top level's) and storm rule
	group *grouping
	major *MajorIncident
}

// matches reports whether a satisfies every condition of r.
func (r *route) matches(a *Alert) bool {
	if r.severity != "" && !strings.EqualFold(r.severity, a.Severity) {
		return false
	}
	if r.source != "" && r.source != a.Source {
		return false
	}
	for k, v := range r.labels {
		got, ok := a.Labels[k]
		if !ok || got != v {
			return false
		}
	}
	return true
}

// apply overrides f with the fields r sets. A route that sets a category
// also sets the subcategory (to none when it names none), so that a
// subcategory never ends up under a category it does not belong to.
func (r *route) apply(f fields) fields {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&f.EntryType, r.set.EntryType)
	set(&f.CallType, r.set.CallType)
	set(&f.OperatorGroup, r.set.OperatorGroup)
	set(&f.Operator, r.set.Operator)
	set(&f.Duration, r.set.Duration)
	if r.set.Category != "" {
		f.Category, f.Subcategory = r.set.Category, r.set.Subcategory
	} else {
		set(&f.Subcategory, r.set.Subcategory)
	}
	return f
}

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the source of the built-in default mapping.
func DefaultYAML() []byte { return slices.Clone(defaultYAML) }

var defaultMapping = sync.OnceValue(func() *Mapping {
	m, err := load(defaultYAML, nil)
	if err != nil {
		panic(fmt.Sprintf("mapping: built-in default does not load: %v", err))
	}
	return m
})

// Default returns the built-in mapping. It uses no tenant-specific names:
// caller dynamicName "alertdesk", resolve by closed: true, no processing
// statuses, categories or priorities, so it works against any tenant. Its
// source is DefaultYAML (and deploy/mappings/default.yaml).
func Default() *Mapping { return defaultMapping() }

// Load parses a YAML mapping. Keys it omits keep the built-in default's
// values (templates, caller, actions, lifecycle). Templates are parsed once,
// with missingkey=error. It validates everything and reports every problem
// at once: the error joins one *LoadError per problem, sorted by line, each
// naming the line and key path (errors.As finds the first): an unknown key,
// a template that does not parse or uses an unknown field, a severity entry
// without exactly one of priority or impact+urgency, a bad reopenWindow or
// resolve mode, an invalid route or status rule.
func Load(data []byte) (*Mapping, error) {
	return load(data, Default())
}

// LoadFile reads and parses a YAML mapping file; see Load.
func LoadFile(path string) (*Mapping, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read mapping: %w", err)
	}
	m, err := Load(data)
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	return m, nil
}

// Decode is the package's Decode for sources that the mapping's status rule
// serves (PRODUCT.md "Mapping file", status): a native event may then carry
// no status, and gets it from the rule — resolved when the rule's from
// template renders one of its resolved values (case-insensitively, spaces
// trimmed), else firing. An event's own status always wins, so events of
// sources that send one are unchanged. Without a status rule it is exactly
// Decode. A from template that fails, or renders nothing, makes the event
// invalid: the error wraps ErrInvalid.
func (m *Mapping) Decode(data []byte, opts DecodeOptions) ([]Alert, error) {
	if m.status == nil {
		return Decode(data, opts)
	}
	alerts, err := decode(data, opts, true)
	if err != nil {
		return nil, err
	}
	for i := range alerts {
		a := &alerts[i]
		if a.Status != "" {
			continue
		}
		v, err := execute(m.status.from, newTemplateData(a, a.Key))
		if err != nil {
			return nil, invalidf("status rule: %s", err)
		}
		v = strings.TrimSpace(v)
		if v == "" {
			return nil, invalidf("status rule: status.from rendered empty and the event has no status")
		}
		a.Status = StatusFiring
		if slices.ContainsFunc(m.status.resolved, func(r string) bool { return strings.EqualFold(strings.TrimSpace(r), v) }) {
			a.Status = StatusResolved
		}
	}
	return alerts, nil
}

// Lifecycle returns the mapping's lifecycle settings.
func (m *Mapping) Lifecycle() Lifecycle { return m.lifecycle }

// KeyLabels returns the label names that make up a derived key, sorted;
// empty when the mapping names none.
func (m *Mapping) KeyLabels() []string { return slices.Clone(m.keyLabels) }

// Key returns the dedupe key of a: its explicit Key; else, when the mapping
// names key labels, those labels as name="value" pairs sorted by name and
// joined with commas (values quoted as Go strings, so distinct label sets
// never share a key); else its Alertmanager fingerprint. The error wraps
// ErrInvalid when a key label is missing or there is no key at all.
func (m *Mapping) Key(a *Alert) (string, error) {
	if a.Key != "" {
		return a.Key, nil
	}
	if len(m.keyLabels) > 0 {
		n := 0
		for _, name := range m.keyLabels {
			v, ok := a.Labels[name]
			if !ok {
				return "", invalidf("key label %q is missing", name)
			}
			n += len(name) + len(v) + 4
		}
		return string(appendLabels(make([]byte, 0, n), m.keyLabels, a.Labels)), nil
	}
	if a.Fingerprint != "" {
		return a.Fingerprint, nil
	}
	return "", invalidf("no key and no key labels (the event has no \"key\", and the mapping names no key.labels)")
}

// appendLabels appends the labels named names to b as keys and group
// keys spell them: name="value" pairs, comma-separated, values quoted (a
// missing label is empty).
func appendLabels(b []byte, names []string, labels map[string]string) []byte {
	for i, name := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, name...)
		b = append(b, '=')
		b = strconv.AppendQuote(b, labels[name])
	}
	return b
}

// Names returns every TOPdesk name the mapping uses — incident fields,
// severities, lifecycle statuses and closure code, routes, caller e-mail —
// deduplicated and sorted by field, name and category. A subcategory carries
// the category it is used with. Start-up and `alertdesk check` resolve them.
func (m *Mapping) Names() []topdesk.NameRef {
	seen := make(map[topdesk.NameRef]bool)
	add := func(f topdesk.Field, name, category string) {
		if name != "" {
			seen[topdesk.NameRef{Field: f, Name: name, Category: category}] = true
		}
	}
	addFields := func(f fields) {
		add(topdesk.FieldEntryType, f.EntryType, "")
		add(topdesk.FieldCallType, f.CallType, "")
		add(topdesk.FieldCategory, f.Category, "")
		add(topdesk.FieldSubcategory, f.Subcategory, f.Category)
		add(topdesk.FieldOperatorGroup, f.OperatorGroup, "")
		add(topdesk.FieldOperator, f.Operator, "")
		add(topdesk.FieldDuration, f.Duration, "")
	}
	addLevel := func(l level) {
		add(topdesk.FieldPriority, l.Priority, "")
		add(topdesk.FieldImpact, l.Impact, "")
		add(topdesk.FieldUrgency, l.Urgency, "")
	}
	add(topdesk.FieldCallerEmail, m.callerEmail, "")
	addFields(m.fields)
	for _, r := range m.routes {
		addFields(r.apply(m.fields))
	}
	for _, l := range m.severity {
		addLevel(*l)
	}
	if m.defaultSeverity != nil {
		addLevel(*m.defaultSeverity)
	}
	lc := m.lifecycle
	add(topdesk.FieldProcessingStatus, lc.OpenStatus, "")
	add(topdesk.FieldProcessingStatus, lc.ResolvedStatus, "")
	add(topdesk.FieldProcessingStatus, lc.ReopenStatus, "")
	add(topdesk.FieldClosureCode, lc.ClosureCode, "")
	for _, code := range lc.WontFix {
		add(topdesk.FieldClosureCode, code, "")
	}

	out := make([]topdesk.NameRef, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b topdesk.NameRef) int {
		if c := strings.Compare(string(a.Field), string(b.Field)); c != 0 {
			return c
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Category, b.Category)
	})
	return out
}

// levelFor returns what severity sets, or nil.
func (m *Mapping) levelFor(severity string) *level {
	if l, ok := m.severity[strings.ToLower(severity)]; ok {
		return l
	}
	return m.defaultSeverity
}

// fieldsFor returns the incident fields for a after the first matching
// route.
func (m *Mapping) fieldsFor(a *Alert) fields {
	for i := range m.routes {
		if m.routes[i].matches(a) {
			return m.routes[i].result
		}
	}
	return m.fields
}
