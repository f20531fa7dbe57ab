package mapping

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	htmltemplate "html/template"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/alertdesk/alertdesk/topdesk"
)

// referenceRender is Render as it was before compiled templates, pooled
// state and single-allocation output: every template runs through
// text/template or html/template, with the straightforward helpers below.
// Render must return exactly what it returns, and the same errors.
func referenceRender(m *Mapping, a *Alert, key string, op Op) (*Rendered, error) {
	if key == "" {
		return nil, invalidf("empty key")
	}
	d := &templateData{
		Key: key, Status: string(a.Status), Severity: a.Severity, Summary: a.Summary,
		Description: a.Description, Source: a.Source, URL: a.URL,
		Labels: a.Labels, Annotations: a.Annotations,
		StartsAt: a.StartsAt, EndsAt: a.EndsAt, Timestamp: a.Timestamp,
		ExternalNumber: ExternalNumber(key),
	}
	execute := func(t *tmpl) (string, error) {
		var buf bytes.Buffer
		if err := t.exec.Execute(&buf, d); err != nil {
			return "", fmt.Errorf("%w: %w", ErrTemplate, err)
		}
		return buf.String(), nil
	}
	brief, err := execute(m.brief)
	if err != nil {
		return nil, err
	}
	if brief = oneLine(brief); brief == "" {
		return nil, fmt.Errorf("%w: incident.briefDescription rendered empty", ErrTemplate)
	}
	firing := truncate(brief, MaxBriefDescription)
	var lvl *level
	if l, ok := m.severity[strings.ToLower(a.Severity)]; ok {
		lvl = l
	} else {
		lvl = m.defaultSeverity
	}
	out := &Rendered{Fingerprint: referenceFingerprint(firing, a.Severity, lvl)}
	r := &out.Request
	lc := &m.lifecycle
	ref := func(name string) *topdesk.Ref {
		if name == "" {
			return nil
		}
		return &topdesk.Ref{Name: name}
	}
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
			name, err := execute(m.callerName)
			if err != nil {
				return nil, err
			}
			if name = truncate(oneLine(name), MaxDynamicName); name == "" {
				return nil, fmt.Errorf("%w: incident.caller.dynamicName rendered empty", ErrTemplate)
			}
			r.Caller = &topdesk.Caller{DynamicName: name}
		}
		req, err := execute(m.request)
		if err != nil {
			return nil, err
		}
		r.Request = referenceHTML(strings.TrimSpace(req) + "\n\nAlert key: " + htmltemplate.HTMLEscapeString(key))
		r.Status = m.line
		r.BriefDescription = firing
		r.ExternalNumber = d.ExternalNumber
		f := m.fields
		for i := range m.routes {
			if m.routes[i].matches(a) {
				f = m.routes[i].apply(m.fields)
				break
			}
		}
		r.EntryType, r.CallType = ref(f.EntryType), ref(f.CallType)
		r.Category, r.Subcategory = ref(f.Category), ref(f.Subcategory)
		r.OperatorGroup, r.Operator = ref(f.OperatorGroup), ref(f.Operator)
		r.Duration = ref(f.Duration)
		setLevel()
		r.ProcessingStatus = ref(lc.OpenStatus)
	case OpUpdate:
		r.BriefDescription = firing
		setLevel()
	case OpResolve:
		r.BriefDescription = truncate(lc.ResolvedPrefix+brief, MaxBriefDescription)
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
	if t := m.actions[op]; t != nil {
		text, err := execute(t)
		if err != nil {
			return nil, err
		}
		if text = strings.TrimSpace(text); text != "" {
			r.Action = referenceHTML(text)
			r.ActionInvisibleForCaller = new(m.invisible)
		}
	}
	return out, nil
}

func referenceFingerprint(brief, severity string, l *level) string {
	h := sha256.New()
	parts := []string{brief, severity, "", "", ""}
	if l != nil {
		parts[2], parts[3], parts[4] = l.Priority, l.Impact, l.Urgency
	}
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func referenceHTML(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.ReplaceAll(s, "\n", "<br>")
}

// checkRender fails when Render and referenceRender disagree on any op.
func checkRender(t *testing.T, m *Mapping, a *Alert, key string) {
	t.Helper()
	for op := range opCount {
		want, wantErr := referenceRender(m, a, key, op)
		got, err := m.Render(a, key, op)
		if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
			t.Fatalf("%s of %+v: error %v, want %v", op, a, err, wantErr)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%s of %+v (-reference +Render):\n%s", op, a, diff)
		}
		if err != nil {
			continue
		}
		fp, err := m.Fingerprint(a, key)
		if err != nil || fp != want.Fingerprint {
			t.Fatalf("Fingerprint = %s, %v; want %s", fp, err, want.Fingerprint)
		}
	}
}

// referenceMappings are the mappings the reference comparison covers: the
// built-in and example ones, the golden cases' and some whose templates
// are left to text/template or fail on missing labels.
func referenceMappings(t testing.TB) []*Mapping {
	t.Helper()
	srcs := []string{
		"",
		`incident: {briefDescription: '{{ .Labels.instance }}: {{ .Summary }}', caller: {dynamicName: '{{ .Labels.team }}'}}`,
		`incident: {briefDescription: '{{ range $k, $v := .Labels }}{{ $k }}={{ $v }} {{ end }}{{ .Summary }}',
  request: '{{ printf "%s|%s" .Summary .ExternalNumber }}<script>var x = {{ .Summary }};</script>'}
actions: {create: 'created {{ .Labels.team }}', update: '{{ .Summary }}{{ "\n\r\n" }}x', resolve: '{{ " " }}', reopen: '{{ .ExternalNumber }}'}
lifecycle: {resolve: complete, resolvedStatus: Done, resolvedPrefix: '✅ '}
severity: {CRITICAL: {impact: High, urgency: Now}, default: {priority: P4}}`,
		`incident: {callerLookup: {email: ops@example.com}, request: '<a href="{{ .URL }}?q={{ .Summary }}">{{ .Labels.team }}</a>', status: secondLine,
  entryType: Monitoring, callType: Incident, category: Infra, subcategory: Servers, operatorGroup: Ops, operator: Ann, duration: 1 day}
severity: {critical: {priority: P1}}
lifecycle: {openStatus: Logged, reopenStatus: Again, resolve: close, resolvedStatus: Closed, closureCode: Fixed}
routes: [{match: {team: dba}, incident: {category: Databases}}, {severity: CRITICAL, source: prom, incident: {operator: Bob}}]`,
	}
	var out []*Mapping
	for _, src := range srcs {
		m, err := Load([]byte(src))
		if err != nil {
			t.Fatalf("Load(%q): %v", src, err)
		}
		out = append(out, m)
	}
	files, err := filepath.Glob("testdata/*.mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files, "../deploy/mappings/example.yaml") {
		m, err := LoadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// TestRenderMatchesReference renders every golden input and a set of
// awkward alerts with every reference mapping and compares with the
// reference implementation.
func TestRenderMatchesReference(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	alerts := []Alert{
		{Key: "k", Status: StatusFiring},
		{Key: "k", Status: StatusFiring, Summary: " \n "},
		{Status: StatusResolved, Severity: "CRITICAL", Summary: "Disk <b>full</b> & 'x' +1\r\nnext", Source: "prom",
			Description: "a\rb\r\r\nc", URL: "javascript:alert(1)", StartsAt: at, EndsAt: at,
			Labels: map[string]string{"instance": "db-7", "team": "dba"}, Annotations: map[string]string{"runbook": "x"}},
		{Status: StatusFiring, Severity: "warning", Summary: strings.Repeat("🔥e\u0301", 40), Source: strings.Repeat("s", 200),
			URL: "https://x/?a=%41&b=ü", Labels: map[string]string{"instance": "\xff", "team": "<t>"}},
	}
	inputs, err := filepath.Glob("testdata/*.alert.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		decoded, err := Decode(data, DecodeOptions{})
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		alerts = append(alerts, decoded...)
	}
	for _, m := range referenceMappings(t) {
		for i := range alerts {
			for _, key := range []string{"k", "db-7/disk <&>\n", "\xff"} {
				checkRender(t, m, &alerts[i], key)
			}
		}
	}
}

// FuzzRenderMatchesReference compares Render with the reference
// implementation on arbitrary alerts and keys.
func FuzzRenderMatchesReference(f *testing.F) {
	f.Add("k", "Disk <full> & 'x'", "critical", "db-7:9100", "dba", "https://x/?a=b", "line\r\nnext", true)
	f.Add("\xff", "", "CRITICAL", "", "<t>", "javascript:x", "", false)
	f.Add("key", strings.Repeat("数", 90), "warning", "🔥\u200d", "web", "%zz", " ", true)
	ms := referenceMappings(f)
	f.Fuzz(func(t *testing.T, key, summary, severity, instance, team, url, description string, resolved bool) {
		a := Alert{Status: StatusFiring, Summary: summary, Severity: severity, URL: url, Description: description,
			Source: team, Labels: map[string]string{"instance": instance, "team": team},
			Annotations: map[string]string{"runbook": url}}
		if resolved {
			a.Status = StatusResolved
			a.Labels = nil
		}
		for _, m := range ms {
			checkRender(t, m, &a, key)
		}
	})
}
