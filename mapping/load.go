package mapping

import (
	"bytes"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	texttemplate "text/template"
	"text/template/parse"
	"time"

	"go.yaml.in/yaml/v3"
)

// LoadError is a problem in a mapping file: the line (0 when unknown), the
// key path (e.g. "routes[1].incident.category") and what is wrong.
type LoadError struct {
	Line int
	Path string
	Msg  string
}

// Error implements error as "line N: path: message".
func (e *LoadError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// file is the YAML mapping file. Every key is optional; keys a file omits
// keep the base mapping's values.
type file struct {
	Key       keyFile              `yaml:"key"`
	Incident  incidentFile         `yaml:"incident"`
	Severity  map[string]levelFile `yaml:"severity"`
	Actions   actionsFile          `yaml:"actions"`
	Lifecycle lifecycleFile        `yaml:"lifecycle"`
	Routes    []routeFile          `yaml:"routes"`
	Status    statusFile           `yaml:"status"`
	Flapping  flappingFile         `yaml:"flapping"` // noise control (noise.go)
	// updates.fields, updates.repeat (mapping/updates.go)
	Updates updatesFile `yaml:"updates"`
	Group   groupFile   `yaml:"group"` // grouping
	// Maintenance windows (noise control; mapping/maintenance.go).
	Maintenance []maintenanceFile `yaml:"maintenance"`
}

// statusFile is the status rule, for sources whose events carry no
// firing/resolved word.
type statusFile struct {
	From     string   `yaml:"from"`
	Resolved []string `yaml:"resolved"`
}

type keyFile struct {
	Labels []string `yaml:"labels"`
}

// fieldsFile are the literal searchlist names of incident and route bodies.
type fieldsFile struct {
	EntryType     string `yaml:"entryType"`
	CallType      string `yaml:"callType"`
	Category      string `yaml:"category"`
	Subcategory   string `yaml:"subcategory"`
	OperatorGroup string `yaml:"operatorGroup"`
	Operator      string `yaml:"operator"`
	Duration      string `yaml:"duration"`
}

type incidentFile struct {
	BriefDescription string     `yaml:"briefDescription"`
	Request          string     `yaml:"request"`
	Caller           callerFile `yaml:"caller"`
	CallerLookup     lookupFile `yaml:"callerLookup"`
	Status           string     `yaml:"status"`
	fieldsFile       `yaml:",inline"`
	// Object is the object (asset) name template (mapping/updates.go).
	Object string `yaml:"object"`
}

type callerFile struct {
	DynamicName string `yaml:"dynamicName"`
}

type lookupFile struct {
	Email string `yaml:"email"`
}

type levelFile struct {
	Priority string `yaml:"priority"`
	Impact   string `yaml:"impact"`
	Urgency  string `yaml:"urgency"`
}

type actionsFile struct {
	InvisibleForCaller *bool  `yaml:"invisibleForCaller"`
	Create             string `yaml:"create"`
	Update             string `yaml:"update"`
	Resolve            string `yaml:"resolve"`
	Reopen             string `yaml:"reopen"`
}

type lifecycleFile struct {
	OpenStatus     string `yaml:"openStatus"`
	Resolve        string `yaml:"resolve"`
	ResolvedStatus string `yaml:"resolvedStatus"`
	ReopenWindow   string `yaml:"reopenWindow"`
	ReopenStatus   string `yaml:"reopenStatus"`
	ResolvedPrefix string `yaml:"resolvedPrefix"`
	ClosureCode    string `yaml:"closureCode"`
	ReorderWindow  string `yaml:"reorderWindow"`
	MaxClockAhead  string `yaml:"maxClockAhead"`
	ResolveDelay   string `yaml:"resolveDelay"` // noise control (noise.go)

	// Operators: operatorClose, wontFix (mapping/operators.go).
	operatorsFile `yaml:",inline"`
}

type routeFile struct {
	Match    map[string]string `yaml:"match"`
	Severity string            `yaml:"severity"`
	Source   string            `yaml:"source"`
	Incident fieldsFile        `yaml:"incident"`
	// grouping: the route's group and storm rule
	Group         groupFile `yaml:"group"`
	MajorIncident majorFile `yaml:"majorIncident"`
}

// load parses data; keys it omits come from base (nil: nothing). It decodes
// the YAML into a file with unknown keys rejected, then validates it and
// reports every problem at once, first problem first.
func load(data []byte, base *Mapping) (*Mapping, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(err)
	}
	pos := newPositions(&doc)
	var f file
	var problems []*LoadError
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, yamlError(err)
		}
		for _, msg := range te.Errors[:min(len(te.Errors), maxProblems)] {
			problems = append(problems, pos.typeError(msg))
		}
	}
	m := &Mapping{
		severity: map[string]*level{},
		lifecycle: Lifecycle{
			Resolve:        ResolveClose,
			ReopenWindow:   DefaultReopenWindow,
			ResolvedPrefix: DefaultResolvedPrefix,
			ReorderWindow:  DefaultReorderWindow,
			MaxClockAhead:  DefaultMaxClockAhead,
		},
		invisible: true,
	}
	if base != nil {
		m.brief, m.request = base.brief, base.request
		m.callerName, m.callerEmail = base.callerName, base.callerEmail
		m.actions = base.actions
		m.invisible = base.invisible
	}
	v := &validator{pos: pos}
	for path, n := range pos {
		if n.Tag == "!!merge" {
			problems = append(problems, &LoadError{Line: n.Line, Path: path, Msg: "merge keys are not supported"})
		}
	}
	f.Validate(v, m)
	// A value the decoder refused leaves its part of the file half decoded:
	// what Validate says about that part follows from the same problem.
	decoder := slices.Clone(problems) // Validate's own problems never hide each other
	for _, p := range v.problems {
		if !slices.ContainsFunc(decoder, func(d *LoadError) bool { return within(p.Path, scope(d)) }) {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b *LoadError) int { return a.Line - b.Line })
		errs := make([]error, len(problems))
		for i, p := range problems {
			errs[i] = p
		}
		return nil, errors.Join(errs...)
	}
	for i := range m.routes {
		m.routes[i].result = m.routes[i].apply(m.fields)
	}
	return m, nil
}

// scope is the part of the file that a decoder problem leaves half
// decoded: the value of the wrong type, or the section with the unknown
// or duplicate key.
func scope(d *LoadError) string {
	if strings.HasPrefix(d.Msg, "must be") {
		return d.Path
	}
	return d.Path[:max(strings.LastIndexAny(d.Path, ".["), 0)]
}

// within reports whether path is inside (or is) the part of the file at
// parent.
func within(path, parent string) bool {
	return path == parent || strings.HasPrefix(path, parent+".") || strings.HasPrefix(path, parent+"[")
}

// validator collects the problems of a mapping file.
type validator struct {
	pos      positions
	problems []*LoadError
}

// addf records a problem at path.
func (v *validator) addf(path, format string, args ...any) {
	v.problems = append(v.problems, &LoadError{Line: v.pos.line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// has reports whether the file gives path (null included).
func (v *validator) has(path string) bool {
	_, ok := v.pos[path]
	return ok
}

// name returns the TOPdesk name at path: a non-empty literal, not a
// template. It records a problem and returns "" otherwise.
func (v *validator) name(path, s string) string {
	if !v.has(path) {
		return ""
	}
	switch {
	case strings.TrimSpace(s) == "":
		v.addf(path, "must not be empty (leave the key out instead)")
		return ""
	case strings.Contains(s, "{{"):
		v.addf(path, "is a TOPdesk name, not a template")
		return ""
	}
	return s
}

// fields returns the names of f, found under path.
func (v *validator) fields(path string, f fieldsFile) fields {
	return fields{
		EntryType:     v.name(join(path, "entryType"), f.EntryType),
		CallType:      v.name(join(path, "callType"), f.CallType),
		Category:      v.name(join(path, "category"), f.Category),
		Subcategory:   v.name(join(path, "subcategory"), f.Subcategory),
		OperatorGroup: v.name(join(path, "operatorGroup"), f.OperatorGroup),
		Operator:      v.name(join(path, "operator"), f.Operator),
		Duration:      v.name(join(path, "duration"), f.Duration),
	}
}

// template parses the template at path with parse (parseText or
// parseHTML), when the file gives it.
func (v *validator) template(path, src string, parse func(path, src string) (executor, error), dst *executor) {
	if !v.has(path) {
		return
	}
	t, err := parse(path, src)
	if err != nil {
		v.addf(path, "%s", err)
		return
	}
	*dst = t
}

// nonEmptyTemplate is template for a template that must not be empty or
// blank: it would render nothing for every event (a brief description, a
// caller name, the status rule), and every event would be dead-lettered.
func (v *validator) nonEmptyTemplate(path, src string, parse func(path, src string) (executor, error), dst *executor) {
	if v.has(path) && strings.TrimSpace(src) == "" {
		v.addf(path, "must not be empty")
		return
	}
	v.template(path, src, parse, dst)
}

// Validate checks every part of f, records each problem in v and sets what
// is valid on m.
func (f *file) Validate(v *validator, m *Mapping) {
	f.validateKey(v, m)
	f.validateIncident(v, m)
	f.validateSeverity(v, m)
	f.validateActions(v, m)
	f.validateLifecycle(v, m)
	f.validateRoutes(v, m)
	f.validateStatus(v, m)
	f.validateMaintenance(v, m)
	f.validateNoise(v, m)
	f.validateOperators(v, m)
	f.validateUpdates(v, m)
	f.validateGroup(v, m)
	switch {
	case m.brief == nil:
		v.addf("incident.briefDescription", "is required")
	case m.request == nil:
		v.addf("incident.request", "is required")
	case m.callerName == nil && m.callerEmail == "":
		v.addf("incident.caller", "is required")
	}
	for op := OpUpdate; op < opCount; op++ {
		if m.actions[op] == nil && !v.has(join("actions", actionKeys[op])) {
			v.addf(join("actions", actionKeys[op]), "is required")
		}
	}
}

func (f *file) validateKey(v *validator, m *Mapping) {
	m.keyLabels = labelList(v, "key.labels", f.Key.Labels)
}

// labelList checks a list of label names at path (each valid, none twice)
// and returns the valid ones, sorted.
func labelList(v *validator, path string, names []string) []string {
	var out []string
	for i, name := range names {
		p := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case name == "" || strings.ContainsAny(name, "=,\"") || strings.ContainsFunc(name, isControl):
			v.addf(p, "invalid label name %q", name)
		case slices.Contains(out, name):
			v.addf(p, "label %q is listed twice", name)
		default:
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func (f *file) validateIncident(v *validator, m *Mapping) {
	in := &f.Incident
	m.fields = v.fields("incident", in.fieldsFile)
	v.nonEmptyTemplate("incident.briefDescription", in.BriefDescription, parseText, &m.brief)
	v.template("incident.request", in.Request, parseHTML, &m.request)
	if v.has("incident.status") {
		if in.Status != "firstLine" && in.Status != "secondLine" {
			v.addf("incident.status", "must be firstLine or secondLine, not %q", in.Status)
		}
		m.line = in.Status
	}
	caller, lookup := v.has("incident.caller"), v.has("incident.callerLookup")
	switch {
	case caller && lookup:
		v.addf("incident.callerLookup", "give either caller or callerLookup, not both")
	case caller:
		if !v.has("incident.caller.dynamicName") {
			v.addf("incident.caller.dynamicName", "is required")
			return
		}
		v.nonEmptyTemplate("incident.caller.dynamicName", in.Caller.DynamicName, parseText, &m.callerName)
		m.callerEmail = ""
	case lookup:
		path := "incident.callerLookup.email"
		email := v.name(path, in.CallerLookup.Email)
		switch {
		case !v.has(path):
			v.addf(path, "is required")
		case email != "" && !strings.Contains(email, "@"):
			v.addf(path, "%q is not an e-mail address", email)
		case email != "":
			m.callerEmail, m.callerName = email, nil
		}
	}
}

func (f *file) validateSeverity(v *validator, m *Mapping) {
	// In file order, so that a severity listed twice is reported at its
	// second line.
	keys := slices.SortedFunc(func(yield func(string) bool) {
		for k := range f.Severity {
			if !yield(k) {
				return
			}
		}
	}, func(a, b string) int { return v.pos.line(join("severity", a)) - v.pos.line(join("severity", b)) })
	for _, k := range keys {
		path := join("severity", k)
		lf := f.Severity[k]
		l := level{
			Priority: v.name(join(path, "priority"), lf.Priority),
			Impact:   v.name(join(path, "impact"), lf.Impact),
			Urgency:  v.name(join(path, "urgency"), lf.Urgency),
		}
		switch {
		case l.Priority != "" && (l.Impact != "" || l.Urgency != ""):
			v.addf(path, "give priority or impact+urgency, not both")
			continue
		case l.Priority == "" && (l.Impact == "" || l.Urgency == ""):
			v.addf(path, "needs priority, or both impact and urgency")
			continue
		}
		lower := strings.ToLower(k)
		if lower == "default" {
			m.defaultSeverity = &l
			continue
		}
		if _, dup := m.severity[lower]; dup {
			v.addf(path, "severity %q is listed twice (severities match case-insensitively)", lower)
			continue
		}
		m.severity[lower] = &l
	}
}

// actionKeys are the keys of the actions section, in Op order.
var actionKeys = [opCount]string{"create", "update", "resolve", "reopen"}

func (f *file) validateActions(v *validator, m *Mapping) {
	a := &f.Actions
	if n := v.pos["actions.invisibleForCaller"]; n != nil && n.Tag != "!!bool" {
		v.addf("actions.invisibleForCaller", "must be true or false")
	} else if a.InvisibleForCaller != nil {
		m.invisible = *a.InvisibleForCaller
	}
	for op, src := range [opCount]string{a.Create, a.Update, a.Resolve, a.Reopen} {
		path := join("actions", actionKeys[op])
		if !v.has(path) {
			continue
		}
		if strings.TrimSpace(src) == "" {
			if Op(op) != OpCreate {
				v.addf(path, "must not be empty: every %s adds an action", actionKeys[op])
			}
			m.actions[op] = nil
			continue
		}
		v.template(path, src, parseHTML, &m.actions[op])
	}
}

func (f *file) validateLifecycle(v *validator, m *Mapping) {
	in, lc := &f.Lifecycle, &m.lifecycle
	lc.OpenStatus = v.name("lifecycle.openStatus", in.OpenStatus)
	lc.ResolvedStatus = v.name("lifecycle.resolvedStatus", in.ResolvedStatus)
	lc.ReopenStatus = v.name("lifecycle.reopenStatus", in.ReopenStatus)
	lc.ClosureCode = v.name("lifecycle.closureCode", in.ClosureCode)
	if v.has("lifecycle.resolvedPrefix") {
		lc.ResolvedPrefix = in.ResolvedPrefix
		if n := len([]rune(lc.ResolvedPrefix)); n > MaxBriefDescription/2 {
			v.addf("lifecycle.resolvedPrefix", "is %d characters; keep it under %d", n, MaxBriefDescription/2)
		}
	}
	for _, d := range []struct {
		key, in, hint string
		dst           *time.Duration
	}{
		{"lifecycle.reopenWindow", in.ReopenWindow, "24h or 90m (0 = never reopen)", &lc.ReopenWindow},
		{"lifecycle.reorderWindow", in.ReorderWindow, "1m or 30s", &lc.ReorderWindow},
		{"lifecycle.maxClockAhead", in.MaxClockAhead, "5m or 30s", &lc.MaxClockAhead},
	} {
		if !v.has(d.key) {
			continue
		}
		dur, err := time.ParseDuration(d.in)
		if err != nil || dur < 0 {
			v.addf(d.key, "%q is not a duration such as %s", d.in, d.hint)
		}
		*d.dst = dur
	}
	if v.has("lifecycle.resolve") {
		switch mode := ResolveMode(in.Resolve); mode {
		case ResolveClose, ResolveComplete, ResolveComment:
			lc.Resolve = mode
		default:
			v.addf("lifecycle.resolve", "must be close, complete or comment, not %q", in.Resolve)
		}
	}
	if lc.Resolve == ResolveComment && lc.ResolvedStatus != "" {
		v.addf("lifecycle.resolvedStatus", "is not used with resolve: comment")
	}
	if lc.Resolve != ResolveClose && lc.ClosureCode != "" {
		v.addf("lifecycle.closureCode", "is only used with resolve: close")
	}
}

func (f *file) validateRoutes(v *validator, m *Mapping) {
	for i, rf := range f.Routes {
		path := fmt.Sprintf("routes[%d]", i)
		r := route{
			labels:   rf.Match,
			severity: v.name(join(path, "severity"), rf.Severity),
			source:   v.name(join(path, "source"), rf.Source),
		}
		in := join(path, "incident")
		if r.group, r.major = v.routeGroup(path, &rf); !v.has(in) && (r.group != nil || r.major != nil) {
			m.routes = append(m.routes, r) // grouping: a route may set only group or majorIncident
			continue
		}
		if !v.has(in) {
			v.addf(in, "is required: the fields this route sets")
			continue
		}
		r.set = v.fields(in, rf.Incident)
		if rf.Incident == (fieldsFile{}) {
			v.addf(in, "sets nothing (use %s)", strings.Join(yamlKeys(reflect.TypeFor[fieldsFile]()), ", "))
			continue
		}
		m.routes = append(m.routes, r)
	}
}

func (f *file) validateStatus(v *validator, m *Mapping) {
	if !v.has("status") {
		return
	}
	var rule statusRule
	switch {
	case !v.has("status.from"):
		v.addf("status.from", "is required: the template whose value says firing or resolved")
	default:
		v.nonEmptyTemplate("status.from", f.Status.From, parseText, &rule.from)
	}
	if len(f.Status.Resolved) == 0 {
		v.addf("status.resolved", "is required: the values that mean resolved, such as [Clear, OK]")
	}
	for i, r := range f.Status.Resolved {
		if strings.TrimSpace(r) == "" {
			v.addf(fmt.Sprintf("status.resolved[%d]", i), "must not be empty")
		}
	}
	rule.resolved = f.Status.Resolved
	if rule.from != nil {
		m.status = &rule
	}
}

// join appends a key to a path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// positions maps the key path of every value of a YAML document
// ("routes[1].incident.category"; "" for the root) to its node.
type positions map[string]*yaml.Node

// newPositions indexes doc. A node of the index carries the line of the
// key and the kind and tag of the value; a merge key ("<<") has tag
// "!!merge".
func newPositions(doc *yaml.Node) positions {
	p := positions{}
	visits := 0
	var walk func(path string, key, n *yaml.Node)
	walk = func(path string, key, n *yaml.Node) {
		// Aliases of aliases can expand without bound; the decoder refuses
		// such a document, and the index needs no more of it.
		if visits++; visits > maxPositions {
			return
		}
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		if key == nil {
			key = n
		}
		if _, seen := p[path]; seen {
			return // a duplicate key: the decoder reports it
		}
		p[path] = &yaml.Node{Line: key.Line, Kind: n.Kind, Tag: n.Tag}
		if key.Tag == "!!merge" {
			p[path].Tag = key.Tag
			return
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(join(path, n.Content[i].Value), n.Content[i], n.Content[i+1])
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(fmt.Sprintf("%s[%d]", path, i), nil, c)
			}
		}
	}
	if len(doc.Content) > 0 {
		walk("", nil, doc.Content[0])
	}
	delete(p, "")
	return p
}

// maxPositions bounds the nodes newPositions visits; a mapping file has a
// few hundred.
const maxPositions = 10_000

// maxProblems bounds the decoder problems a load reports: a file with more
// is not a mapping file with typos.
const maxProblems = 20

// line returns the line of the key at path; for a path the file does not
// give, the line of the nearest part it gives; 0 for none.
func (p positions) line(path string) int {
	for path != "" {
		if n := p[path]; n != nil {
			return n.Line
		}
		path = path[:max(strings.LastIndexAny(path, ".["), 0)]
	}
	return 0
}

// The decoder's type error messages, one per problem.
var (
	unknownKeyRE = regexp.MustCompile(`^line (\d+): field (.+) not found in type mapping\.(\w+)$`)
	duplicateRE  = regexp.MustCompile(`^line (\d+): mapping key "(.+)" already defined at line (\d+)$`)
	wrongTypeRE  = regexp.MustCompile(`^line (\d+): cannot unmarshal (!!\w+)(?: .+)? into (\S+)$`)
)

// typeError turns one of the decoder's type errors into a LoadError with
// the key path.
func (p positions) typeError(msg string) *LoadError {
	if m := unknownKeyRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		known := yamlKeys(fileTypes[m[3]])
		return &LoadError{Line: line, Path: p.find(line, m[2], ""), Msg: "unknown key (known keys: " + strings.Join(known, ", ") + ")"}
	}
	if m := duplicateRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		first, _ := strconv.Atoi(m[3])
		return &LoadError{Line: line, Path: p.find(first, m[2], ""), Msg: "duplicate key (first at line " + m[3] + ")"}
	}
	if m := wrongTypeRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		want := "must be a mapping of keys to values"
		switch into := m[3]; {
		case into == "string":
			want = "must be a string"
		case into == "bool":
			want = "must be true or false"
		case strings.HasPrefix(into, "[]"):
			want = "must be a list"
		}
		got := map[string]string{"!!str": "a string", "!!seq": "a list", "!!map": "a mapping", "!!int": "a number",
			"!!float": "a number", "!!bool": "true or false"}[m[2]]
		if got == "" {
			got = m[2]
		}
		return &LoadError{Line: line, Path: p.find(line, "", m[2]), Msg: want + ", not " + got}
	}
	return &LoadError{Msg: strings.TrimPrefix(msg, "yaml: ")}
}

// find returns the path of the deepest value at line whose key is key (when
// given) or whose tag is tag (when given).
func (p positions) find(line int, key, tag string) string {
	best := ""
	for path, n := range p {
		if n.Line != line || tag != "" && n.Tag != tag {
			continue
		}
		if key != "" && !strings.HasSuffix(path, "."+key) && path != key {
			continue
		}
		if best == "" || strings.Count(path, ".")+strings.Count(path, "[") > strings.Count(best, ".")+strings.Count(best, "[") {
			best = path
		}
	}
	return best
}

// fileTypes are the types of the mapping file by name, for the known keys
// of an unknown-key error.
var fileTypes = map[string]reflect.Type{
	"file": reflect.TypeFor[file](), "keyFile": reflect.TypeFor[keyFile](), "incidentFile": reflect.TypeFor[incidentFile](),
	"levelFile": reflect.TypeFor[levelFile](), "actionsFile": reflect.TypeFor[actionsFile](),
	"lifecycleFile": reflect.TypeFor[lifecycleFile](), "routeFile": reflect.TypeFor[routeFile](),
	"fieldsFile": reflect.TypeFor[fieldsFile](), "callerFile": reflect.TypeFor[callerFile](),
	"lookupFile": reflect.TypeFor[lookupFile](), "statusFile": reflect.TypeFor[statusFile](),
	"flappingFile": reflect.TypeFor[flappingFile](), // noise control (noise.go)
	"updatesFile":  reflect.TypeFor[updatesFile](), "repeatFile": reflect.TypeFor[repeatFile](),
	"groupFile": reflect.TypeFor[groupFile](), "majorFile": reflect.TypeFor[majorFile](),
	// Maintenance windows (mapping/maintenance.go).
	"maintenanceFile": reflect.TypeFor[maintenanceFile](),
}

// yamlKeys returns the YAML keys of a struct type, inline fields included.
func yamlKeys(t reflect.Type) []string {
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for f := range t.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if opts == "inline" {
			keys = append(keys, yamlKeys(f.Type)...)
		} else if name != "" {
			keys = append(keys, name)
		}
	}
	return keys
}

// yamlError turns a YAML syntax error ("yaml: line 3: did not find …")
// into a LoadError with the line.
func yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr == nil {
		_, rest, _ := strings.Cut(msg, ": ")
		return &LoadError{Line: line, Msg: "invalid YAML: " + rest}
	}
	return &LoadError{Msg: "invalid YAML: " + msg}
}

// templateFields are the fields of the template data.
var templateFields = []string{
	"Key", "Status", "Severity", "Summary", "Description", "Source", "URL",
	"Labels", "Annotations", "StartsAt", "EndsAt", "Timestamp", "ExternalNumber",
}

// parseText parses a text/template; its errors name no line.
func parseText(path, src string) (executor, error) {
	t, err := texttemplate.New(path).Option("missingkey=error").Funcs(textFuncs()).Parse(src)
	if err != nil {
		return nil, err
	}
	if err := checkFields(t.Tree); err != nil {
		return nil, err
	}
	return t, nil
}

// parseHTML parses an html/template and escapes it; its errors name no
// line.
func parseHTML(path, src string) (executor, error) {
	t, err := htmltemplate.New(path).Option("missingkey=error").Funcs(htmlFuncs()).Parse(src)
	if err != nil {
		return nil, err
	}
	if err := checkFields(t.Tree); err != nil {
		return nil, err
	}
	// Escaping happens on the first execution; do it now so that markup
	// problems are load errors. Execution errors from the empty sample data
	// (missing label keys) are expected and ignored.
	err = t.Execute(io.Discard, &templateData{})
	var escErr *htmltemplate.Error
	if errors.As(err, &escErr) {
		return nil, escErr
	}
	return t, nil
}

// checkFields rejects references to fields the template data does not have
// (.Sumary instead of .Summary), which would otherwise fail on every alert.
// Only references whose dot is the template data itself are checked: those
// outside with/range bodies, and $.Field anywhere. It also rejects range
// over a number ({{ range 1000000000 }}), which would hold every render.
func checkFields(tree *parse.Tree) error {
	if tree == nil || tree.Root == nil {
		return nil
	}
	var walk func(n parse.Node, root bool) error
	var pipe func(p *parse.PipeNode, root bool) error
	arg := func(a parse.Node, root bool) error {
		switch a := a.(type) {
		case *parse.FieldNode:
			if root && !slices.Contains(templateFields, a.Ident[0]) {
				return unknownField(tree, a, a.Ident[0])
			}
		case *parse.VariableNode:
			if a.Ident[0] == "$" && len(a.Ident) > 1 && !slices.Contains(templateFields, a.Ident[1]) {
				return unknownField(tree, a, a.Ident[1])
			}
		case *parse.PipeNode:
			return pipe(a, root)
		case *parse.ChainNode:
			if p, ok := a.Node.(*parse.PipeNode); ok {
				return pipe(p, root)
			}
		}
		return nil
	}
	pipe = func(p *parse.PipeNode, root bool) error {
		if p == nil {
			return nil
		}
		for _, c := range p.Cmds {
			for _, a := range c.Args {
				if err := arg(a, root); err != nil {
					return err
				}
			}
		}
		return nil
	}
	walk = func(n parse.Node, root bool) error {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return nil
			}
			for _, c := range n.Nodes {
				if err := walk(c, root); err != nil {
					return err
				}
			}
		case *parse.ActionNode:
			return pipe(n.Pipe, root)
		case *parse.TemplateNode:
			return pipe(n.Pipe, root)
		case *parse.IfNode:
			return branch(walk, pipe, &n.BranchNode, root, root)
		case *parse.WithNode:
			return branch(walk, pipe, &n.BranchNode, false, root)
		case *parse.RangeNode:
			for _, c := range n.Pipe.Cmds {
				if len(c.Args) == 1 && c.Args[0].Type() == parse.NodeNumber {
					loc, _ := tree.ErrorContext(n)
					return fmt.Errorf("%s: range over a number is not supported (it runs at every render)", loc)
				}
			}
			return branch(walk, pipe, &n.BranchNode, false, root)
		}
		return nil
	}
	return walk(tree.Root, true)
}

func branch(walk func(parse.Node, bool) error, pipe func(*parse.PipeNode, bool) error, b *parse.BranchNode, bodyRoot, root bool) error {
	if err := pipe(b.Pipe, root); err != nil {
		return err
	}
	if b.List != nil {
		if err := walk(b.List, bodyRoot); err != nil {
			return err
		}
	}
	if b.ElseList != nil {
		return walk(b.ElseList, root)
	}
	return nil
}

func unknownField(tree *parse.Tree, n parse.Node, field string) error {
	loc, _ := tree.ErrorContext(n)
	return fmt.Errorf("%s: unknown field .%s (fields: %s)", loc, field, strings.Join(slices.Sorted(slices.Values(templateFields)), ", "))
}

// sortedKeys returns the keys of m in order; nil when there are none.
func sortedKeys(m map[string]string) []string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
