package mapping

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// parseSource parses a template as Load does: text/template for plain
// text fields, html/template (escaped) for the request and actions.
func parseSource(src string, html bool) (*tmpl, error) {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: src, Line: 1}
	if html {
		return parseHTML(n, "t")
	}
	return parseText(n, "t")
}

// checkCompiled fails when t's program and t's text/template or
// html/template disagree on d: both must succeed with the same output, or
// both fail.
func checkCompiled(t *testing.T, src string, tm *tmpl, d templateData) {
	t.Helper()
	full := d
	full.ExternalNumber = ExternalNumber(full.Key)
	var want bytes.Buffer
	wantErr := tm.exec.Execute(&want, &full)

	var got bytes.Buffer
	lazy := d // ExternalNumber computed by the program when used
	ok := tm.prog.exec(&got, &lazy)
	switch {
	case wantErr != nil && ok:
		t.Fatalf("template %q: program renders %q where the template fails: %v", src, got.String(), wantErr)
	case wantErr == nil && !ok:
		t.Fatalf("template %q: program fails where the template renders %q", src, want.String())
	case wantErr == nil && got.String() != want.String():
		t.Fatalf("template %q on %+v:\nprogram  %q\ntemplate %q", src, d, got.String(), want.String())
	}
}

// compiledSources are templates the compiler must take, in both text and
// HTML form where they parse.
var compiledSources = []string{
	``,
	`plain text & <b>markup</b>`,
	`{{ .Summary }}`,
	`{{ .Labels.instance }}`,
	`{{ $.Labels.instance }}: {{ .Key }} {{ .ExternalNumber }}`,
	`{{ .Summary | default .Key }}`,
	`{{ with index .Labels "instance" }}{{ . }}: {{ end }}{{ .Summary | default .Key }}`,
	`{{ index .Labels .Summary }}|{{ "instance" | index .Labels }}`,
	`{{ with .Labels }}{{ .team }}/{{ $.Severity }}{{ else }}none{{ end }}`,
	`{{ if .Description }}{{ .Description }}{{ else if .Summary }}{{ .Summary }}{{ else }}-{{ end }}`,
	`{{ with .URL }}<a href="{{ . }}">{{ . }}</a>{{ else with .Source }}{{ . }}{{ end }}`,
	`{{ if .Labels }}{{ kv .Labels }}{{ end }}{{ with keys .Annotations }}{{ join "," . }}{{ end }}`,
	`{{ upper .Summary }}|{{ lower .Severity }}|{{ trim .Description }}|{{ replace "a" "<" .Summary }}`,
	`{{ trunc 5 .Summary }}|{{ .Summary | trunc 3 }}|{{ trunc -1 .Summary }}|{{ trunc 'x' .Summary }}`,
	`{{ rfc3339 .StartsAt }} {{ .EndsAt | rfc3339 }} {{ rfc3339 $.Timestamp }}`,
	`{{ (.Summary) }} {{ "lit\"eral" }} {{ ("x" | upper) }} {{ default (index .Labels "team") .Source }}`,
	`<a href="{{ .URL }}" title='{{ .Summary }}'>{{ .Summary }}</a>`,
	`<a href="https://search?q={{ .Summary }}&amp;l={{ .Labels.instance }}">x</a>`,
	`<a href="{{ index .Annotations "runbook" }}">runbook</a>`,
	`<textarea>{{ .Description }}</textarea><title>{{ .Summary }}</title>`,
	`a <!-- a comment --> b {{ .Summary }} <p class="x">{{ .Key }}</p>`,
	`<b>{{ .Summary }}</b>
{{ with .Description }}
{{ . }}
{{ end }}
Severity: {{ .Severity | default "unknown" | upper }}
Source: {{ .Source | default "unknown" }}
{{- with .URL }}
Graph: <a href="{{ . }}">{{ . }}</a>
{{- end }}
{{- with index .Annotations "runbook" }}
Runbook: <a href="{{ . }}">{{ . }}</a>
{{- end }}
{{- with .Labels }}
Labels: {{ kv . }}
{{- end }}`,
}

// uncompiledSources are templates the compiler must leave to
// text/template.
var uncompiledSources = []string{
	`{{ range $k, $v := .Labels }}{{ $k }}{{ end }}`,
	`{{ $x := .Summary }}{{ $x }}`,
	`{{ printf "%s" .Summary }}`,
	`{{ .StartsAt }}`,
	`{{ .Labels }}`,
	`{{ .StartsAt.Year }}`,
	`{{ with .StartsAt }}x{{ end }}`,
	`{{ if eq .Severity "critical" }}!{{ end }}`,
	`{{ upper .Labels }}`,
	`{{ default "x" }}`,
	`{{ trunc .Summary }}`,
	`{{ trunc 1.5 .Summary }}`,
	`{{ index .Labels "a" "b" }}`,
	`{{ .Summary | .Key }}`,
	`{{ .Summary.x }}`,
	`{{ define "x" }}y{{ end }}{{ template "x" }}`,
	`<script>var s = {{ .Summary }};</script>`,
	`<a title={{ .Summary }}>x</a>`,
	`<a onclick="f({{ .Summary }})">x</a>`,
	`<p style="color: {{ .Severity }}">x</p>`,
	`<!-- {{ .Summary }} -->`,
}

// compareAlerts are the data the compiled templates are compared on.
func compareAlerts() []templateData {
	at := time.Date(2026, 11, 22, 11, 0, 0, 5, time.FixedZone("CET", 3600))
	return []templateData{
		{Key: "k"},
		{Key: "db-7/disk", Status: "firing", Severity: "Critical", Summary: "Disk <b>full</b> & \"quoted\" 'x' +1",
			Description: "  line1\nline2\r\n\x00nul  ", Source: "prometheus", URL: "https://prom/graph?g0.expr=a+b&x=%41%zz%",
			Labels:      map[string]string{"instance": "db-7:9100", "team": "dba<>", "": "empty"},
			Annotations: map[string]string{"runbook": "javascript:alert(1)"},
			StartsAt:    at, EndsAt: at.Add(time.Hour), Timestamp: at},
		{Key: "ü", Summary: "数据库服务器 🔥 e\u0301 \u2028", URL: "HTTPS://x/ü ö?a=[1]#frag", Labels: map[string]string{"instance": ""},
			Annotations: map[string]string{"runbook": "/relative/path:with:colons"}},
		{Key: "k", Summary: "instance", Source: "mailto:ops@example.com", URL: "ftp://x", Labels: map[string]string{"team": "t"},
			Annotations: map[string]string{"runbook": "data:text/html,<x>"}},
		{Key: "inv\xffalid", Summary: "\xff\xfe<", Description: "%", URL: "%4", Severity: " ",
			Labels: map[string]string{"instance": "\xc3", "team": "a%2Fb"}},
	}
}

func TestCompiledMatchesTemplate(t *testing.T) {
	for _, src := range compiledSources {
		for _, html := range []bool{false, true} {
			tm, err := parseSource(src, html)
			if err != nil {
				t.Fatalf("parse %q (html %v): %v", src, html, err)
			}
			if tm.prog == nil {
				t.Errorf("template %q (html %v) is not compiled", src, html)
				continue
			}
			for _, d := range compareAlerts() {
				checkCompiled(t, src, tm, d)
			}
		}
	}
}

func TestUncompiledTemplates(t *testing.T) {
	for _, src := range uncompiledSources {
		html := strings.HasPrefix(src, "<")
		tm, err := parseSource(src, html)
		if err != nil {
			t.Fatalf("parse %q: %v", src, err)
		}
		if tm.prog != nil {
			t.Errorf("template %q (html %v) is compiled; the compiler does not implement it", src, html)
		}
	}
}

// TestShippedMappingsCompiled checks that the built-in and example
// mappings render without text/template.
func TestShippedMappingsCompiled(t *testing.T) {
	example, err := LoadFile("../deploy/mappings/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*Mapping{"default": Default(), "example": example} {
		ts := map[string]*tmpl{"brief": m.brief, "request": m.request, "caller": m.callerName}
		for op, a := range m.actions {
			if a != nil {
				ts[Op(op).String()] = a
			}
		}
		for field, tm := range ts {
			if tm != nil && tm.prog == nil {
				t.Errorf("%s mapping: %s template is not compiled", name, field)
			}
		}
	}
}

// FuzzCompiledMatchesTemplate checks, for arbitrary template sources and
// alert values, that a compiled program renders exactly what text/template
// or html/template renders, and fails exactly when they fail.
func FuzzCompiledMatchesTemplate(f *testing.F) {
	for _, src := range compiledSources {
		f.Add(src, true, "Disk <full> & 'x'", "instance", "db-7:9100", "https://x/?a=b&c=%41", true)
		f.Add(src, false, "ü\xff+", "team", "", "javascript:x", false)
	}
	f.Fuzz(func(t *testing.T, src string, html bool, summary, labelKey, labelValue, url string, withLabels bool) {
		tm, err := parseSource(src, html)
		if err != nil || tm.prog == nil {
			return
		}
		d := templateData{Key: "k" + summary, Status: "firing", Severity: labelValue, Summary: summary,
			Description: labelValue + "\n" + summary, Source: labelKey, URL: url,
			Annotations: map[string]string{"runbook": url, labelKey: summary},
			StartsAt:    time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
		if withLabels {
			d.Labels = map[string]string{labelKey: labelValue, "instance": summary}
		}
		checkCompiled(t, src, tm, d)
	})
}
