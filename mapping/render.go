package mapping

import (
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

// templateData is what templates see as dot. It has no methods, which
// templates could otherwise call.
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
//   - OpResolve: the resolve action, plus closed (close) or completed
//     (complete) and the resolved status and closure code when configured.
//     briefDescription is left out: a resolve keeps the incident's own brief
//     description and adds the resolved prefix (PRODUCT.md "Incidents and
//     operators"), and only the caller knows it. The resolve event's own
//     summary often differs from the firing's ("Interface … is up", a
//     Grafana value), and one without a summary would show the key. A
//     caller that knows the incident's brief description sets it with
//     ResolvedBrief.
//   - OpReopen: closed: false, completed: false, processingStatus =
//     reopenStatus, the firing briefDescription, the severity's fields and the
//     reopen action.
//
// An update, resolve or reopen writes only the fields updates.fields lists
// (by default all of briefDescription, priority, impact and urgency); a
// create also carries the object (incident.object) by name, when the
// mapping names one and it renders non-empty.
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
	d := newTemplateData(a, key)
	brief, err := m.briefLine(d)
	if err != nil {
		return nil, err
	}
	firing := truncate(brief, MaxBriefDescription)
	lvl := m.levelFor(a.Severity)
	out := &Rendered{Fingerprint: fingerprint(firing, a.Severity, lvl)}
	r := &out.Request
	lc := &m.lifecycle
	setLevel := func() {
		if lvl != nil {
			r.Priority, r.Impact, r.Urgency = ref(lvl.Priority), ref(lvl.Impact), ref(lvl.Urgency)
		}
	}

	switch op {
	case OpCreate:
		if m.callerEmail != "" {
			r.CallerLookup = &topdesk.CallerLookup{Email: m.callerEmail}
		} else {
			name, err := execute(m.callerName, d)
			if err != nil {
				return nil, err
			}
			if name = truncate(oneLine(name), MaxDynamicName); name == "" {
				return nil, fmt.Errorf("%w: incident.caller.dynamicName rendered empty", ErrTemplate)
			}
			r.Caller = &topdesk.Caller{DynamicName: name}
		}
		req, err := execute(m.request, d)
		if err != nil {
			return nil, err
		}
		r.Request = toHTML(strings.TrimSpace(req) + "\n\nAlert key: " + htmltemplate.HTMLEscapeString(key))
		r.Status = m.line
		r.BriefDescription = firing
		r.ExternalNumber = d.ExternalNumber
		f := m.fieldsFor(a)
		r.EntryType, r.CallType = ref(f.EntryType), ref(f.CallType)
		r.Category, r.Subcategory = ref(f.Category), ref(f.Subcategory)
		r.OperatorGroup, r.Operator = ref(f.OperatorGroup), ref(f.Operator)
		r.Duration = ref(f.Duration)
		setLevel()
		r.ProcessingStatus = ref(lc.OpenStatus)
		if r.Object, err = m.objectRef(d); err != nil {
			return nil, err
		}
	case OpUpdate:
		r.BriefDescription = firing
		setLevel()
	case OpResolve:
		switch lc.Resolve {
		case ResolveClose:
			r.Closed = new(true)
			r.ProcessingStatus = ref(lc.ResolvedStatus)
			r.ClosureCode = ref(lc.ClosureCode)
		case ResolveComplete:
			r.Completed = new(true)
			r.ProcessingStatus = ref(lc.ResolvedStatus)
		}
	case OpReopen:
		r.BriefDescription = firing
		r.Closed, r.Completed = new(false), new(false)
		r.ProcessingStatus = ref(lc.ReopenStatus)
		setLevel()
	}
	if op != OpCreate {
		m.updates.filterUpdate(r) // updates.fields
	}

	if t := m.actions[op]; t != nil {
		text, err := execute(t, d)
		if err != nil {
			return nil, err
		}
		if text = strings.TrimSpace(text); text != "" {
			r.Action = toHTML(text)
			r.ActionInvisibleForCaller = new(m.invisible)
		}
	}
	return out, nil
}

// ResolvedBrief returns the brief description a resolve gives an incident
// whose brief description is current: the resolved prefix and current, cut
// to TOPdesk's limit. A current that already starts with the prefix is kept,
// so that a repeated resolve does not stack prefixes.
func (m *Mapping) ResolvedBrief(current string) string {
	if !m.updates.Writes(FieldBriefDescription) {
		return "" // updates.fields leaves the brief description alone
	}
	p := m.lifecycle.ResolvedPrefix
	if p != "" && strings.HasPrefix(current, p) {
		return truncate(current, MaxBriefDescription)
	}
	return truncate(p+current, MaxBriefDescription)
}

// ref returns a reference to the name, or nil for no name.
func ref(name string) *topdesk.Ref {
	if name == "" {
		return nil
	}
	return &topdesk.Ref{Name: name}
}

// executor is a parsed text/template or html/template template.
type executor interface {
	Execute(w io.Writer, data any) error
}

// execute runs t on d and returns its output; failures wrap ErrTemplate.
func execute(t executor, d *templateData) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	return b.String(), nil
}

// newTemplateData returns what templates see for a and key.
func newTemplateData(a *Alert, key string) *templateData {
	return &templateData{
		Key: key, Status: string(a.Status), Severity: a.Severity, Summary: a.Summary,
		Description: a.Description, Source: a.Source, URL: a.URL,
		Labels: a.Labels, Annotations: a.Annotations,
		StartsAt: a.StartsAt, EndsAt: a.EndsAt, Timestamp: a.Timestamp,
		ExternalNumber: ExternalNumber(key),
	}
}

// Fingerprint returns the content fingerprint of the alert, the same as
// Render's for every op, without rendering a request: it executes only the
// brief description.
func (m *Mapping) Fingerprint(a *Alert, key string) (string, error) {
	if key == "" {
		return "", invalidf("empty key")
	}
	brief, err := m.briefLine(newTemplateData(a, key))
	if err != nil {
		return "", err
	}
	return fingerprint(truncate(brief, MaxBriefDescription), a.Severity, m.levelFor(a.Severity)), nil
}

// briefLine renders the brief description on one line, not yet cut to
// TOPdesk's limit.
func (m *Mapping) briefLine(d *templateData) (string, error) {
	brief, err := execute(m.brief, d)
	if err != nil {
		return "", err
	}
	if brief = oneLine(brief); brief == "" {
		return "", fmt.Errorf("%w: incident.briefDescription rendered empty", ErrTemplate)
	}
	return brief, nil
}

// fingerprint hashes what an update compares. The parts are
// length-prefixed so that no two part lists hash the same input.
func fingerprint(brief, severity string, l *level) string {
	parts := []string{brief, severity, "", "", ""}
	if l != nil {
		parts[2], parts[3], parts[4] = l.Priority, l.Impact, l.Urgency
	}
	b := make([]byte, 0, 64+len(brief))
	for _, p := range parts {
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
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
}

// toHTML turns line breaks (\r\n, \r or \n) into <br>.
func toHTML(s string) string { return lineBreaks.Replace(s) }

var lineBreaks = strings.NewReplacer("\r\n", "<br>", "\r", "<br>", "\n", "<br>")

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

// funcs are the template functions. All are pure.
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
	pairs := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		pairs = append(pairs, k+"="+m[k])
	}
	return strings.Join(pairs, ", ")
}

// rfc3339Func is rfc3339 TIME: UTC in RFC 3339, or "" for the zero time.
func rfc3339Func(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
