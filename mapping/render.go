package mapping

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/alertdesk/alertdesk/topdesk"
)

// Op is the TOPdesk operation a request is rendered for.
type Op int

// The operations of the lifecycle.
const (
	OpCreate Op = iota
	OpUpdate
	OpResolve
	OpReopen
	opCount
)

// String returns "create", "update", "resolve" or "reopen".
func (o Op) String() string {
	if o >= 0 && o < opCount {
		return actionKeys[o]
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// ErrTemplate is wrapped by every error of a template at render time, such as
// a label the template names that the alert lacks (missingkey=error), or a
// brief description that renders empty. The worker dead-letters such events
// with class "template".
var ErrTemplate = errors.New("template error")

// Rendered is the request body for one operation.
type Rendered struct {
	// Request is the body. Searchlist fields, operator and operator group
	// carry names (topdesk.Ref{Name: …}); the caller resolves them to ids.
	Request topdesk.IncidentRequest
	// Fingerprint is a hash of what an update compares: the brief description
	// of the firing form, the severity and what the severity sets. It is the
	// same for every Op of the same alert content.
	Fingerprint string
}

// templateData is what templates see as dot. ExternalNumber is filled in
// on first use (externalNumberOf): most renders do not need it. It has no
// methods, which templates could otherwise call.
type templateData struct {
	Key, Status, Severity, Summary, Description, Source, URL string
	Labels, Annotations                                      map[string]string
	StartsAt, EndsAt, Timestamp                              time.Time
	ExternalNumber                                           string
}

// Render renders the request body of op for alert a with dedupe key key
// (from Key).
//
//   - OpCreate: the full body: caller, briefDescription, request, externalNumber,
//     line status, literal fields after routes, priority or impact+urgency,
//     processingStatus = openStatus, and the create action when configured.
//   - OpUpdate: briefDescription, the severity's priority or impact+urgency,
//     and the update action.
//   - OpResolve: the briefDescription with the resolved prefix and the resolve
//     action, plus closed (close) or completed (complete) and the resolved
//     status and closure code when configured.
//   - OpReopen: closed: false, completed: false, processingStatus =
//     reopenStatus, the firing briefDescription, the severity's fields and the
//     reopen action.
//
// briefDescription and caller.dynamicName are plain text, put on one line and
// cut to TOPdesk's limits on a character boundary with a trailing "…". The
// request and action texts are html/template output: template text is
// trusted markup, alert values are escaped for their context, and newlines
// become <br>. The request always ends with the key in plain text.
//
// Template failures wrap ErrTemplate; an empty key wraps ErrInvalid.
func (m *Mapping) Render(a *Alert, key string, op Op) (*Rendered, error) {
	if op < 0 || op >= opCount {
		return nil, fmt.Errorf("mapping: unknown op %d", int(op))
	}
	if key == "" {
		return nil, invalidf("empty key")
	}
	st := m.state(a, key)
	defer m.release(st)

	brief, err := m.briefLine(st)
	if err != nil {
		return nil, err
	}
	firing := truncate(brief, MaxBriefDescription)
	lvl := m.levelFor(a.Severity)
	out := new(renderOut)
	out.Fingerprint = fingerprint(firing, a.Severity, lvl)
	r := &out.Request
	lc := &m.lifecycle

	switch op {
	case OpCreate:
		if m.callerEmail != "" {
			out.lookup.Email = m.callerEmail
			r.CallerLookup = &out.lookup
		} else {
			name, err := m.callerName.text(st)
			if err != nil {
				return nil, err
			}
			name = truncate(oneLine(name), MaxDynamicName)
			if name == "" {
				return nil, fmt.Errorf("%w: incident.caller.dynamicName rendered empty", ErrTemplate)
			}
			out.caller.DynamicName = name
			r.Caller = &out.caller
		}
		if err := m.request.write(st); err != nil {
			return nil, err
		}
		r.Request = st.requestHTML(key)
		r.Status = m.line
		r.BriefDescription = firing
		r.ExternalNumber = externalNumberOf(&st.data)
		f := m.fieldsFor(a)
		r.EntryType, r.CallType = out.ref(f.EntryType), out.ref(f.CallType)
		r.Category, r.Subcategory = out.ref(f.Category), out.ref(f.Subcategory)
		r.OperatorGroup, r.Operator = out.ref(f.OperatorGroup), out.ref(f.Operator)
		r.Duration = out.ref(f.Duration)
		out.setLevel(lvl)
		r.ProcessingStatus = out.ref(lc.OpenStatus)
	case OpUpdate:
		r.BriefDescription = firing
		out.setLevel(lvl)
	case OpResolve:
		r.BriefDescription = truncate(lc.ResolvedPrefix+brief, MaxBriefDescription)
		switch lc.Resolve {
		case ResolveClose:
			out.closed = true
			r.Closed = &out.closed
			r.ProcessingStatus = out.ref(lc.ResolvedStatus)
			r.ClosureCode = out.ref(lc.ClosureCode)
		case ResolveComplete:
			out.completed = true
			r.Completed = &out.completed
			r.ProcessingStatus = out.ref(lc.ResolvedStatus)
		}
	case OpReopen:
		r.BriefDescription = firing
		r.Closed, r.Completed = &out.closed, &out.completed // both false
		r.ProcessingStatus = out.ref(lc.ReopenStatus)
		out.setLevel(lvl)
	}

	if t := m.actions[op]; t != nil {
		if err := t.write(st); err != nil {
			return nil, err
		}
		if text := bytes.TrimSpace(st.buf.Bytes()); len(text) > 0 {
			r.Action = toHTML(string(text))
			out.invisible = m.invisible
			r.ActionInvisibleForCaller = &out.invisible
		}
	}
	return &out.Rendered, nil
}

// renderOut is a Rendered together with the values its request points to,
// so that a render allocates them at once. Every pointer of the request
// points to a value of its own, as if allocated separately.
type renderOut struct {
	Rendered
	caller                       topdesk.Caller
	lookup                       topdesk.CallerLookup
	closed, completed, invisible bool
	refs                         [maxRefs]topdesk.Ref
	nrefs                        int
}

// maxRefs is the most name references one request carries: the seven
// fields, priority, impact, urgency and processing status on create.
const maxRefs = 11

// ref returns a reference to the name, or nil for no name.
func (o *renderOut) ref(name string) *topdesk.Ref {
	if name == "" {
		return nil
	}
	if o.nrefs == len(o.refs) {
		return &topdesk.Ref{Name: name}
	}
	r := &o.refs[o.nrefs]
	o.nrefs++
	r.Name = name
	return r
}

// setLevel sets the fields of a severity level, if any.
func (o *renderOut) setLevel(l *level) {
	if l == nil {
		return
	}
	r := &o.Request
	r.Priority, r.Impact, r.Urgency = o.ref(l.Priority), o.ref(l.Impact), o.ref(l.Urgency)
}

// tmpl is a parsed template. exec, a text/template or html/template
// template, defines its output; prog, when compile could build it, renders
// the same output faster.
type tmpl struct {
	exec executor
	prog *program // nil: exec always runs
}

// executor is satisfied by both text/template and html/template templates.
type executor interface {
	Execute(w io.Writer, data any) error
}

// write runs t into st.buf (reset first). When the program fails, the
// template runs again with text/template, which reports the error.
func (t *tmpl) write(st *renderState) error {
	st.buf.Reset()
	if t.prog != nil {
		if t.prog.exec(&st.buf, &st.data) {
			return nil
		}
		st.buf.Reset()
	}
	d := &st.data
	externalNumberOf(d) // the template may read .ExternalNumber
	if err := t.exec.Execute(&st.buf, d); err != nil {
		return fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	return nil
}

// text runs t and returns its output.
func (t *tmpl) text(st *renderState) (string, error) {
	if t.prog != nil && t.prog.constant {
		return t.prog.text, nil
	}
	if err := t.write(st); err != nil {
		return "", err
	}
	return st.buf.String(), nil
}

// renderState is the scratch space of one Render or Fingerprint call: the
// template data, the buffer templates write to and a buffer for the
// request. Mapping pools them.
type renderState struct {
	data    templateData
	buf     bytes.Buffer
	scratch []byte
}

// maxPooledBuffer is the largest buffer a pooled renderState keeps; one
// that grew beyond it for a huge alert is left to the garbage collector.
const maxPooledBuffer = 64 << 10

// state returns a renderState holding the template data of a and key.
func (m *Mapping) state(a *Alert, key string) *renderState {
	st, ok := m.states.Get().(*renderState)
	if !ok {
		st = new(renderState)
	}
	st.data = templateData{
		Key: key, Status: string(a.Status), Severity: a.Severity, Summary: a.Summary,
		Description: a.Description, Source: a.Source, URL: a.URL,
		Labels: a.Labels, Annotations: a.Annotations,
		StartsAt: a.StartsAt, EndsAt: a.EndsAt, Timestamp: a.Timestamp,
	}
	return st
}

// release returns st to the pool, without the alert's data.
func (m *Mapping) release(st *renderState) {
	st.data = templateData{}
	if st.buf.Cap() > maxPooledBuffer || cap(st.scratch) > maxPooledBuffer {
		return
	}
	m.states.Put(st)
}

// externalNumberOf returns d.ExternalNumber, computing it on first use:
// most renders need it only when a template names it.
func externalNumberOf(d *templateData) string {
	if d.ExternalNumber == "" {
		d.ExternalNumber = ExternalNumber(d.Key)
	}
	return d.ExternalNumber
}

// requestHTML returns the request template's output in st.buf, trimmed,
// followed by the key line, with line breaks as <br>.
func (st *renderState) requestHTML(key string) string {
	b := appendHTMLLines(st.scratch[:0], bytes.TrimSpace(st.buf.Bytes()))
	b = append(b, "<br><br>Alert key: "...)
	b = appendHTMLLines(b, htmltemplate.HTMLEscapeString(key))
	st.scratch = b
	return string(b)
}

// Fingerprint returns the content fingerprint of the alert, the same as
// Render's for every op, without rendering a request: it executes only the
// brief description. The worker calls it for every duplicate event.
func (m *Mapping) Fingerprint(a *Alert, key string) (string, error) {
	if key == "" {
		return "", invalidf("empty key")
	}
	st := m.state(a, key)
	defer m.release(st)
	brief, err := m.briefLine(st)
	if err != nil {
		return "", err
	}
	return fingerprint(truncate(brief, MaxBriefDescription), a.Severity, m.levelFor(a.Severity)), nil
}

// briefLine renders the brief description on one line, not yet cut to
// TOPdesk's limit (the resolved form adds a prefix first).
func (m *Mapping) briefLine(st *renderState) (string, error) {
	brief, err := m.brief.text(st)
	if err != nil {
		return "", err
	}
	brief = oneLine(brief)
	if brief == "" {
		return "", fmt.Errorf("%w: incident.briefDescription rendered empty", ErrTemplate)
	}
	return brief, nil
}

// fingerprint hashes what an update compares.
func fingerprint(brief, severity string, l *level) string {
	parts := [5]string{brief, severity}
	if l != nil {
		parts[2], parts[3], parts[4] = l.Priority, l.Impact, l.Urgency
	}
	var scratch [256]byte
	b := scratch[:0]
	for _, p := range parts {
		// Length-prefixed so that no two part lists hash the same input.
		b = strconv.AppendInt(b, int64(len(p)), 10)
		b = append(b, ':')
		b = append(b, p...)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// oneLine turns control characters and runs of white space into single
// spaces and trims the ends.
func oneLine(s string) string {
	clean := true
	prevSpace := true
	for _, r := range s {
		space := unicode.IsSpace(r) || unicode.IsControl(r)
		if space && (r != ' ' || prevSpace) {
			clean = false
			break
		}
		prevSpace = space
	}
	if clean && !prevSpace {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	pending := false
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			pending = b.Len() > 0
			continue
		}
		if pending {
			b.WriteByte(' ')
			pending = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// toHTML turns line breaks (\r\n, \r or \n) into <br>.
func toHTML(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return string(appendHTMLLines(make([]byte, 0, len(s)+32), s))
}

// appendHTMLLines appends s to b with each line break (\r\n, \r or \n) as
// <br>.
func appendHTMLLines[T string | []byte](b []byte, s T) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\r':
			b = append(append(b, s[start:i]...), "<br>"...)
			if i+1 < len(s) && s[i+1] == '\n' {
				i++
			}
			start = i + 1
		case '\n':
			b = append(append(b, s[start:i]...), "<br>"...)
			start = i + 1
		}
	}
	return append(b, s[start:]...)
}

// ellipsis ends a truncated text.
const ellipsis = "…"

// truncate cuts s to at most limit characters, ending a cut text with "…".
// Characters are counted as TOPdesk (a Java application) counts them: in
// UTF-16 code units, so a character outside the Basic Multilingual Plane,
// such as most emoji, counts twice. It does not split a character from the
// combining marks, variation selectors, skin-tone modifiers or joiners that
// follow it, nor a flag's pair of regional indicators, unless the text offers
// no other place to cut.
func truncate(s string, limit int) string {
	if limit <= 0 {
		return ""
	}
	if len(s) <= limit || utf16Len(s) <= limit {
		return s
	}
	keep := limit - 1 // code units before the ellipsis (one unit)
	// Byte offsets of the runes that start within the first keep units.
	var starts []int
	units := 0
	for i, r := range s {
		if units > keep {
			break
		}
		starts = append(starts, i)
		units += utf16.RuneLen(r)
	}
	cut := len(starts) - 1 // runes whose units all fit before the ellipsis
	last := cut
	for cut > 0 && !boundary(s, starts, cut) {
		cut--
	}
	if cut == 0 {
		cut = last
	}
	head := strings.TrimRightFunc(s[:starts[cut]], unicode.IsSpace)
	return head + ellipsis
}

// utf16Len is the length of s in UTF-16 code units.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// boundary reports whether cutting before rune number i (of the rune starts
// in starts) keeps a user-perceived character whole.
func boundary(s string, starts []int, i int) bool {
	next, _ := utf8.DecodeRuneInString(s[starts[i]:])
	prev, _ := utf8.DecodeRuneInString(s[starts[i-1]:])
	if extends(next) || prev == '\u200d' {
		return false
	}
	if isRegionalIndicator(next) && isRegionalIndicator(prev) {
		n := 0 // regional indicators before the cut
		for j := i - 1; j >= 0; j-- {
			r, _ := utf8.DecodeRuneInString(s[starts[j]:])
			if !isRegionalIndicator(r) {
				break
			}
			n++
		}
		return n%2 == 0
	}
	return true
}

// extends reports whether r attaches to the character before it.
func extends(r rune) bool {
	switch {
	case r == '\u200d', r >= 0xfe00 && r <= 0xfe0f, r >= 0x1f3fb && r <= 0x1f3ff, r >= 0xe0020 && r <= 0xe007f:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Mc)
}

func isRegionalIndicator(r rune) bool { return r >= 0x1f1e6 && r <= 0x1f1ff }

// funcs are the template functions. All are pure. compile calls the same
// Go functions.
func funcs() map[string]any {
	return map[string]any{
		"upper":   strings.ToUpper,
		"lower":   strings.ToLower,
		"trim":    strings.TrimSpace,
		"replace": replaceFunc,
		"default": defaultFunc,
		"join":    joinFunc,
		"trunc":   truncFunc,
		"keys":    sortedKeys,
		"kv":      kvFunc,
		"rfc3339": rfc3339Func,
	}
}

func textFuncs() texttemplate.FuncMap { return funcs() }
func htmlFuncs() htmltemplate.FuncMap { return funcs() }

// replaceFunc is replace OLD NEW S.
func replaceFunc(old, repl, s string) string { return strings.ReplaceAll(s, old, repl) }

// defaultFunc is default DEF S: DEF when S is blank.
func defaultFunc(def, s string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}

// joinFunc is join SEP LIST.
func joinFunc(sep string, elems []string) string { return strings.Join(elems, sep) }

// truncFunc is trunc N S: S cut to N characters.
func truncFunc(n int, s string) string { return truncate(s, n) }

// kvFunc is kv MAP: k1=v1, k2=v2 sorted by key.
func kvFunc(m map[string]string) string {
	keys := sortedKeys(m)
	n := 0
	for k, v := range m {
		n += len(k) + len(v) + len(", =")
	}
	var b strings.Builder
	b.Grow(n)
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(m[k])
	}
	return b.String()
}

// rfc3339Func is rfc3339 TIME: UTC in RFC 3339, or "" for the zero time.
func rfc3339Func(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
