package mapping

import (
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"slices"
	"strings"
	texttemplate "text/template"
	"text/template/parse"
	"time"

	"gopkg.in/yaml.v3"
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

func errAt(n *yaml.Node, path, format string, args ...any) error {
	return &LoadError{Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)}
}

// load parses data; keys it omits come from base (nil: nothing).
func load(data []byte, base *Mapping) (*Mapping, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(err)
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
	if doc.Kind == 0 { // empty document
		if err := m.checkComplete(); err != nil {
			return nil, err
		}
		return m, nil
	}
	root := doc.Content[0]
	top, err := fieldsOf(root, "", "key", "incident", "severity", "actions", "lifecycle", "routes")
	if err != nil {
		return nil, err
	}
	if n := top["key"]; n != nil {
		if err := m.loadKey(n); err != nil {
			return nil, err
		}
	}
	if n := top["incident"]; n != nil {
		if err := m.loadIncident(n); err != nil {
			return nil, err
		}
	}
	if n := top["severity"]; n != nil {
		if err := m.loadSeverity(n); err != nil {
			return nil, err
		}
	}
	if n := top["actions"]; n != nil {
		if err := m.loadActions(n); err != nil {
			return nil, err
		}
	}
	if n := top["lifecycle"]; n != nil {
		if err := m.loadLifecycle(n); err != nil {
			return nil, err
		}
	}
	if n := top["routes"]; n != nil {
		if err := m.loadRoutes(n); err != nil {
			return nil, err
		}
	}
	if err := m.checkComplete(); err != nil {
		return nil, err
	}
	for i := range m.routes {
		m.routes[i].result = m.routes[i].apply(m.fields)
	}
	return m, nil
}

func (m *Mapping) loadKey(n *yaml.Node) error {
	f, err := fieldsOf(n, "key", "labels")
	if err != nil {
		return err
	}
	ln := f["labels"]
	if ln == nil {
		return nil
	}
	ln = deref(ln)
	if ln.Kind != yaml.SequenceNode {
		return errAt(ln, "key.labels", "must be a list of label names")
	}
	for i, item := range ln.Content {
		path := fmt.Sprintf("key.labels[%d]", i)
		name, err := scalar(item, path)
		if err != nil {
			return err
		}
		if name == "" || strings.ContainsAny(name, "=,\"") || strings.ContainsFunc(name, isControl) {
			return errAt(item, path, "invalid label name %q", name)
		}
		if slices.Contains(m.keyLabels, name) {
			return errAt(item, path, "label %q is listed twice", name)
		}
		m.keyLabels = append(m.keyLabels, name)
	}
	slices.Sort(m.keyLabels)
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// fieldKeys are the literal searchlist keys of incident and route bodies.
var fieldKeys = [...]string{"entryType", "callType", "category", "subcategory", "operatorGroup", "operator", "duration"}

func loadFields(f map[string]*yaml.Node, path string) (fields, error) {
	var out fields
	dst := [len(fieldKeys)]*string{
		&out.EntryType, &out.CallType, &out.Category, &out.Subcategory,
		&out.OperatorGroup, &out.Operator, &out.Duration,
	}
	for i, k := range fieldKeys {
		if n := f[k]; n != nil {
			v, err := name(n, join(path, k))
			if err != nil {
				return fields{}, err
			}
			*dst[i] = v
		}
	}
	return out, nil
}

func (m *Mapping) loadIncident(n *yaml.Node) error {
	known := append([]string{"briefDescription", "request", "caller", "callerLookup", "status"}, fieldKeys[:]...)
	f, err := fieldsOf(n, "incident", known...)
	if err != nil {
		return err
	}
	if m.fields, err = loadFields(f, "incident"); err != nil {
		return err
	}
	if t := f["briefDescription"]; t != nil {
		if m.brief, err = parseText(t, "incident.briefDescription"); err != nil {
			return err
		}
	}
	if t := f["request"]; t != nil {
		if m.request, err = parseHTML(t, "incident.request"); err != nil {
			return err
		}
	}
	if s := f["status"]; s != nil {
		v, err := scalar(s, "incident.status")
		if err != nil {
			return err
		}
		if v != "firstLine" && v != "secondLine" {
			return errAt(s, "incident.status", "must be firstLine or secondLine, not %q", v)
		}
		m.line = v
	}
	caller, lookup := f["caller"], f["callerLookup"]
	if caller != nil && lookup != nil {
		return errAt(lookup, "incident.callerLookup", "give either caller or callerLookup, not both")
	}
	if caller != nil {
		cf, err := fieldsOf(caller, "incident.caller", "dynamicName")
		if err != nil {
			return err
		}
		dn := cf["dynamicName"]
		if dn == nil {
			return errAt(caller, "incident.caller.dynamicName", "is required")
		}
		if m.callerName, err = parseText(dn, "incident.caller.dynamicName"); err != nil {
			return err
		}
		m.callerEmail = ""
	}
	if lookup != nil {
		lf, err := fieldsOf(lookup, "incident.callerLookup", "email")
		if err != nil {
			return err
		}
		en := lf["email"]
		if en == nil {
			return errAt(lookup, "incident.callerLookup.email", "is required")
		}
		email, err := name(en, "incident.callerLookup.email")
		if err != nil {
			return err
		}
		if !strings.Contains(email, "@") {
			return errAt(en, "incident.callerLookup.email", "%q is not an e-mail address", email)
		}
		m.callerEmail, m.callerName = email, nil
	}
	return nil
}

// checkComplete reports templates that neither the file nor the base gave.
func (m *Mapping) checkComplete() error {
	missing := func(path string) error { return &LoadError{Path: path, Msg: "is required"} }
	switch {
	case m.brief == nil:
		return missing("incident.briefDescription")
	case m.request == nil:
		return missing("incident.request")
	case m.callerName == nil && m.callerEmail == "":
		return missing("incident.caller")
	}
	for op := OpUpdate; op < opCount; op++ {
		if m.actions[op] == nil {
			return missing(join("actions", actionKeys[op]))
		}
	}
	return nil
}

func (m *Mapping) loadSeverity(n *yaml.Node) error {
	entries, err := entriesOf(n, "severity")
	if err != nil {
		return err
	}
	for _, e := range entries {
		path := join("severity", e.key)
		f, err := fieldsOf(e.val, path, "priority", "impact", "urgency")
		if err != nil {
			return err
		}
		var l level
		for _, d := range []struct {
			key string
			dst *string
		}{{"priority", &l.Priority}, {"impact", &l.Impact}, {"urgency", &l.Urgency}} {
			if v := f[d.key]; v != nil {
				if *d.dst, err = name(v, join(path, d.key)); err != nil {
					return err
				}
			}
		}
		switch {
		case l.Priority != "" && (l.Impact != "" || l.Urgency != ""):
			return errAt(e.keyNode, path, "give priority or impact+urgency, not both")
		case l.Priority == "" && (l.Impact == "" || l.Urgency == ""):
			return errAt(e.keyNode, path, "needs priority, or both impact and urgency")
		}
		lower := strings.ToLower(e.key)
		if lower == "default" {
			m.defaultSeverity = &l
			continue
		}
		if _, dup := m.severity[lower]; dup {
			return errAt(e.keyNode, path, "severity %q is listed twice (severities match case-insensitively)", lower)
		}
		m.severity[lower] = &l
	}
	return nil
}

// actionKeys are the keys of the actions section, in Op order.
var actionKeys = [opCount]string{"create", "update", "resolve", "reopen"}

func (m *Mapping) loadActions(n *yaml.Node) error {
	f, err := fieldsOf(n, "actions", append([]string{"invisibleForCaller"}, actionKeys[:]...)...)
	if err != nil {
		return err
	}
	if b := f["invisibleForCaller"]; b != nil {
		b = deref(b)
		if b.Kind != yaml.ScalarNode || b.Tag != "!!bool" {
			return errAt(b, "actions.invisibleForCaller", "must be true or false")
		}
		if err := b.Decode(&m.invisible); err != nil {
			return errAt(b, "actions.invisibleForCaller", "must be true or false")
		}
	}
	for op, k := range actionKeys {
		t := f[k]
		if t == nil {
			continue
		}
		path := join("actions", k)
		src, err := scalar(t, path)
		if err != nil {
			return err
		}
		if strings.TrimSpace(src) == "" {
			if Op(op) != OpCreate {
				return errAt(t, path, "must not be empty: every %s adds an action", k)
			}
			m.actions[op] = nil
			continue
		}
		if m.actions[op], err = parseHTML(t, path); err != nil {
			return err
		}
	}
	return nil
}

func (m *Mapping) loadLifecycle(n *yaml.Node) error {
	f, err := fieldsOf(n, "lifecycle", "openStatus", "resolve", "resolvedStatus", "reopenWindow",
		"reopenStatus", "resolvedPrefix", "closureCode", "reorderWindow", "maxClockAhead")
	if err != nil {
		return err
	}
	lc := &m.lifecycle
	for _, d := range []struct {
		key string
		dst *string
	}{
		{"openStatus", &lc.OpenStatus}, {"resolvedStatus", &lc.ResolvedStatus},
		{"reopenStatus", &lc.ReopenStatus}, {"closureCode", &lc.ClosureCode},
	} {
		if v := f[d.key]; v != nil {
			if *d.dst, err = name(v, join("lifecycle", d.key)); err != nil {
				return err
			}
		}
	}
	if v := f["resolvedPrefix"]; v != nil {
		if lc.ResolvedPrefix, err = scalar(v, "lifecycle.resolvedPrefix"); err != nil {
			return err
		}
		if n := len([]rune(lc.ResolvedPrefix)); n > MaxBriefDescription/2 {
			return errAt(v, "lifecycle.resolvedPrefix", "is %d characters; keep it under %d", n, MaxBriefDescription/2)
		}
	}
	for _, d := range []struct {
		key, hint string
		dst       *time.Duration
	}{
		{"reopenWindow", "24h or 90m (0 = never reopen)", &lc.ReopenWindow},
		{"reorderWindow", "1m or 30s", &lc.ReorderWindow},
		{"maxClockAhead", "5m or 30s", &lc.MaxClockAhead},
	} {
		v := f[d.key]
		if v == nil {
			continue
		}
		s, err := scalar(v, join("lifecycle", d.key))
		if err != nil {
			return err
		}
		dur, err := time.ParseDuration(s)
		if err != nil || dur < 0 {
			return errAt(v, join("lifecycle", d.key), "%q is not a duration such as %s", s, d.hint)
		}
		*d.dst = dur
	}
	if v := f["resolve"]; v != nil {
		s, err := scalar(v, "lifecycle.resolve")
		if err != nil {
			return err
		}
		switch mode := ResolveMode(s); mode {
		case ResolveClose, ResolveComplete, ResolveComment:
			lc.Resolve = mode
		default:
			return errAt(v, "lifecycle.resolve", "must be close, complete or comment, not %q", s)
		}
	}
	if lc.Resolve == ResolveComment && lc.ResolvedStatus != "" {
		return errAt(f["resolvedStatus"], "lifecycle.resolvedStatus", "is not used with resolve: comment")
	}
	if lc.Resolve != ResolveClose && lc.ClosureCode != "" {
		return errAt(f["closureCode"], "lifecycle.closureCode", "is only used with resolve: close")
	}
	return nil
}

func (m *Mapping) loadRoutes(n *yaml.Node) error {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		return errAt(n, "routes", "must be a list")
	}
	for i, item := range n.Content {
		path := fmt.Sprintf("routes[%d]", i)
		f, err := fieldsOf(item, path, "match", "severity", "source", "incident")
		if err != nil {
			return err
		}
		var r route
		if mn := f["match"]; mn != nil {
			entries, err := entriesOf(mn, join(path, "match"))
			if err != nil {
				return err
			}
			r.labels = make(map[string]string, len(entries))
			for _, e := range entries {
				if r.labels[e.key], err = scalar(e.val, join(join(path, "match"), e.key)); err != nil {
					return err
				}
			}
		}
		if v := f["severity"]; v != nil {
			if r.severity, err = name(v, join(path, "severity")); err != nil {
				return err
			}
		}
		if v := f["source"]; v != nil {
			if r.source, err = name(v, join(path, "source")); err != nil {
				return err
			}
		}
		in := f["incident"]
		if in == nil {
			return errAt(item, join(path, "incident"), "is required: the fields this route sets")
		}
		inf, err := fieldsOf(in, join(path, "incident"), fieldKeys[:]...)
		if err != nil {
			return err
		}
		if r.set, err = loadFields(inf, join(path, "incident")); err != nil {
			return err
		}
		if r.set == (fields{}) {
			return errAt(in, join(path, "incident"), "sets nothing (use %s)", strings.Join(fieldKeys[:], ", "))
		}
		m.routes = append(m.routes, r)
	}
	return nil
}

// join appends a key to a path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// deref follows a YAML alias.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// fieldsOf returns the values of a mapping node by key, rejecting unknown
// and duplicate keys. A null node is an empty mapping.
func fieldsOf(n *yaml.Node, path string, known ...string) (map[string]*yaml.Node, error) {
	entries, err := entriesOf(n, path)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*yaml.Node, len(entries))
	for _, e := range entries {
		if !slices.Contains(known, e.key) {
			return nil, errAt(e.keyNode, join(path, e.key), "unknown key (known keys: %s)", strings.Join(known, ", "))
		}
		out[e.key] = e.val
	}
	return out, nil
}

type entry struct {
	key     string
	keyNode *yaml.Node
	val     *yaml.Node
}

// entriesOf returns the entries of a mapping node in order, rejecting
// non-string and duplicate keys.
func entriesOf(n *yaml.Node, path string) ([]entry, error) {
	n = deref(n)
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, errAt(n, path, "must be a mapping of keys to values")
	}
	out := make([]entry, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := deref(n.Content[i])
		if k.Kind != yaml.ScalarNode {
			return nil, errAt(k, path, "keys must be strings")
		}
		if k.Tag == "!!merge" {
			return nil, errAt(k, join(path, k.Value), "merge keys are not supported")
		}
		for _, e := range out {
			if e.key == k.Value {
				return nil, errAt(k, join(path, k.Value), "duplicate key (first at line %d)", e.keyNode.Line)
			}
		}
		out = append(out, entry{key: k.Value, keyNode: k, val: n.Content[i+1]})
	}
	return out, nil
}

// scalar returns the text of a scalar node.
func scalar(n *yaml.Node, path string) (string, error) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || isNull(n) {
		return "", errAt(n, path, "must be a string")
	}
	return n.Value, nil
}

// name returns a TOPdesk name: a non-empty literal, not a template.
func name(n *yaml.Node, path string) (string, error) {
	v, err := scalar(n, path)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(v) == "" {
		return "", errAt(n, path, "must not be empty (leave the key out instead)")
	}
	if strings.Contains(v, "{{") {
		return "", errAt(n, path, "is a TOPdesk name, not a template")
	}
	return v, nil
}

// templateFields are the fields of the template data.
var templateFields = []string{
	"Key", "Status", "Severity", "Summary", "Description", "Source", "URL",
	"Labels", "Annotations", "StartsAt", "EndsAt", "Timestamp", "ExternalNumber",
}

func parseText(n *yaml.Node, path string) (*tmpl, error) {
	src, err := scalar(n, path)
	if err != nil {
		return nil, err
	}
	t, err := texttemplate.New(path).Option("missingkey=error").Funcs(textFuncs()).Parse(src)
	if err != nil {
		return nil, errAt(n, path, "%s", err)
	}
	if err := checkFields(t.Tree); err != nil {
		return nil, errAt(n, path, "%s", err)
	}
	return &tmpl{exec: t, prog: compile(t.Tree, false)}, nil
}

func parseHTML(n *yaml.Node, path string) (*tmpl, error) {
	src, err := scalar(n, path)
	if err != nil {
		return nil, err
	}
	t, err := htmltemplate.New(path).Option("missingkey=error").Funcs(htmlFuncs()).Parse(src)
	if err != nil {
		return nil, errAt(n, path, "%s", err)
	}
	if err := checkFields(t.Tree); err != nil {
		return nil, errAt(n, path, "%s", err)
	}
	// Escaping happens on the first execution; do it now so that markup
	// problems are load errors. Execution errors from the empty sample data
	// (missing label keys) are expected and ignored.
	err = t.Execute(io.Discard, &templateData{})
	var escErr *htmltemplate.Error
	if errors.As(err, &escErr) {
		return nil, errAt(n, path, "%s", escErr)
	}
	// Only a template that escaped (and then ran, or failed to run) has its
	// final tree; t.Tree is then the tree html/template executes.
	var execErr texttemplate.ExecError
	if err != nil && !errors.As(err, &execErr) {
		return &tmpl{exec: t}, nil
	}
	return &tmpl{exec: t, prog: compile(t.Tree, true)}, nil
}

// checkFields rejects references to fields the template data does not have
// (.Sumary instead of .Summary), which would otherwise fail on every alert.
// Only references whose dot is the template data itself are checked: those
// outside with/range bodies, and $.Field anywhere.
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
