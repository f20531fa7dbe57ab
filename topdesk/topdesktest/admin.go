package topdesktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// adminRoutes serves the unauthenticated control endpoints under /_sim/.
func (s *Sim) adminRoutes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_sim/incidents", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Incidents())
	})
	mux.HandleFunc("POST /_sim/incidents/{key}/{verb}", s.handleOperator)
	mux.HandleFunc("GET /_sim/callback", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		cb := s.callback
		s.mu.Unlock()
		if cb.Token != "" {
			cb.Token = "<secret>"
		}
		writeJSON(w, http.StatusOK, map[string]any{"callback": cb, "calls": s.Callbacks()})
	})
	mux.HandleFunc("PUT /_sim/callback", func(w http.ResponseWriter, r *http.Request) {
		var cb Callback
		if err := decodeBody(r, &cb); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if err := cb.Check(); err != nil || cb.URL == "" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("url %q is not an http(s) URL; DELETE /_sim/callback turns the callback off", cb.URL))
			return
		}
		s.SetCallback(cb)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /_sim/callback", func(w http.ResponseWriter, _ *http.Request) {
		s.SetCallback(Callback{})
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_sim/requests", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Requests())
	})
	mux.HandleFunc("GET /_sim/faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.faultList())
	})
	mux.HandleFunc("POST /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if err := decodeBody(r, &f); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.Inject(f)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /_sim/faults", func(w http.ResponseWriter, _ *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_sim/credentials", func(w http.ResponseWriter, r *http.Request) {
		var c struct {
			Username string `json:"username"`
			Password string `json:"password"`
		}
		if err := decodeBody(r, &c); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if c.Username == "" || c.Password == "" {
			writeError(w, http.StatusBadRequest, "username and password are required")
			return
		}
		s.SetCredentials(c.Username, c.Password)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_sim/reset", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.reset(); err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/_sim/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("No simulator endpoint at %s %s.", r.Method, r.URL.Path))
	})
	return mux
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode request body: %w", err)
	}
	return nil
}

// maxPageIncidents is how many incidents the HTML page shows (the newest).
const maxPageIncidents = 200

type pageData struct {
	URL        string
	APIVersion string
	Username   string
	Total      int
	Shown      []Incident
	Faults     []Fault
	Requests   int
	Deleted    []deletedView
	Now        time.Time
}

// deletedView is an incident an operator deleted, as the page shows it.
type deletedView struct {
	Number string
	Change
}

func (s *Sim) servePage(w http.ResponseWriter, r *http.Request) {
	all := s.Incidents()
	slices.Reverse(all)
	d := pageData{
		URL:        s.URL(),
		APIVersion: s.opts.APIVersion,
		Total:      len(all),
		Shown:      all[:min(len(all), maxPageIncidents)],
		Faults:     s.faultList(),
		Now:        s.now(),
	}
	s.mu.Lock()
	d.Username = s.username
	d.Requests = len(s.requests)
	for _, del := range s.deleted {
		d.Deleted = append(d.Deleted, deletedView{Number: del.number, Change: del.snapshot()})
	}
	s.mu.Unlock()
	var buf bytes.Buffer
	if err := s.page.Execute(&buf, d); err != nil {
		http.Error(w, "render page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// A failed write means the browser is gone.
	_, _ = buf.WriteTo(w)
}

func pageFuncs() template.FuncMap {
	return template.FuncMap{
		"when": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.Format("2006-01-02 15:04:05")
		},
		"memo": memoHTML,
	}
}

// memoTag matches a start or end tag: the slash, the name and the
// attributes.
var memoTag = regexp.MustCompile(`(?s)<(/?)([A-Za-z][A-Za-z0-9]*)([^>]*)>`)

// hrefAttr matches an href attribute, its value quoted either way or bare.
var hrefAttr = regexp.MustCompile(`(?is)\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))`)

// memoTagAllowed reports whether TOPdesk shows the tag as markup in a
// request or action; other tags show as text.
func memoTagAllowed(name string) bool {
	switch name {
	case "b", "strong", "i", "em", "u", "br", "h5", "h6", "a":
		return true
	}
	return false
}

// memoHTML renders request or action text as TOPdesk shows it: the tags
// memoTagAllowed names as markup, without attributes but a link's http,
// https or mailto href; everything else, other tags included, escaped by
// html.EscapeString. Tags left open are closed at the end, so that one entry
// cannot restyle the page.
func memoHTML(s string) template.HTML {
	var b strings.Builder
	var open []string
	closeFrom := func(i int) {
		for j := len(open) - 1; j >= i; j-- {
			b.WriteString("</" + open[j] + ">")
		}
		open = open[:i]
	}
	last := 0
	for _, m := range memoTag.FindAllStringSubmatchIndex(s, -1) {
		b.WriteString(html.EscapeString(html.UnescapeString(s[last:m[0]])))
		last = m[1]
		closing, name, attrs := m[3] > m[2], strings.ToLower(s[m[4]:m[5]]), s[m[6]:m[7]]
		switch {
		case !memoTagAllowed(name):
			b.WriteString(html.EscapeString(s[m[0]:m[1]]))
		case name == "br":
			b.WriteString("<br>")
		case closing:
			for i := len(open) - 1; i >= 0; i-- {
				if open[i] == name {
					closeFrom(i)
					break
				}
			}
		case name == "a":
			open = append(open, name)
			b.WriteString("<a")
			if href := safeHref(attrs); href != "" {
				b.WriteString(` href="` + html.EscapeString(href) + `"`)
			}
			b.WriteString(">")
		default:
			open = append(open, name)
			b.WriteString("<" + name + ">")
		}
	}
	b.WriteString(html.EscapeString(html.UnescapeString(s[last:])))
	closeFrom(0)
	return template.HTML(b.String()) // every piece above is escaped or a fixed tag
}

// safeHref returns the href of a tag's attributes if it is an absolute
// http, https or mailto URL, else "".
func safeHref(attrs string) string {
	m := hrefAttr.FindStringSubmatch(attrs)
	if m == nil {
		return ""
	}
	u, err := url.Parse(strings.TrimSpace(html.UnescapeString(m[1] + m[2] + m[3])))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "mailto") {
		return ""
	}
	return u.String()
}

const pageTemplate = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="3">
<title>TOPdesk simulator ({{.Total}} incidents)</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #ddd; vertical-align: top; }
th { background: #f3f3f3; }
tr.closed td { color: #777; }
.operator { color: #a33; }
.api { color: #357; }
.trail { margin: .2em 0 .6em 1.5em; padding: 0; list-style: none; font-size: 13px; }
.trail li { margin: .2em 0; white-space: pre-wrap; }
.meta { color: #666; font-size: 12px; }
.internal { background: #fff6d6; }
code { background: #f3f3f3; padding: 0 .2em; }
</style>
</head>
<body>
<h1>TOPdesk simulator</h1>
<p class="meta">API <code>{{.URL}}/tas/api</code> (version {{.APIVersion}}, user <code>{{.Username}}</code>) ·
{{.Total}} incidents · {{.Requests}} API requests recorded ·
<a href="/_sim/incidents">incidents JSON</a> · <a href="/_sim/requests">requests JSON</a> · <a href="/_sim/faults">faults JSON</a> ·
refreshed {{when .Now}}</p>
{{with .Faults}}<p><strong>Active faults:</strong>
{{range .}}<code>{{or .Method "any"}} {{or .Path "/"}}{{if .Status}} status {{.Status}}{{end}}{{if .Delay}} delay {{.Delay}}{{end}}{{if .Drop}} drop{{end}}{{if .LoseResponse}} lose-response{{end}}{{if .Count}} ×{{.Count}}{{end}}</code> {{end}}</p>{{end}}
{{if .Shown}}
{{if lt (len .Shown) .Total}}<p class="meta">Showing the newest {{len .Shown}} of {{.Total}} incidents.</p>{{end}}
<table>
<tr><th>Number</th><th>Brief description</th><th>Status</th><th>Priority</th><th>Operator group</th><th>External number</th><th>Created</th><th>Modified</th></tr>
{{range .Shown}}
<tr class="{{if .Closed}}closed{{end}}">
<td><strong>{{.Number}}</strong>{{if .Archived}} (archived){{end}}</td>
<td>{{.BriefDescription}}</td>
<td class="status">{{if .Closed}}closed {{when .ClosedDate}}{{else if .Completed}}completed {{when .CompletedDate}}{{else}}open{{end}}{{with .ProcessingStatus}} · {{.}}{{end}}</td>
<td>{{.Priority}}</td>
<td>{{.OperatorGroup}}</td>
<td><code>{{.ExternalNumber}}</code></td>
<td>{{when .CreationDate}}</td>
<td>{{when .ModificationDate}}</td>
</tr>
<tr><td></td><td colspan="7">
{{if .Request}}<div class="meta">Request:</div><ul class="trail"><li>{{memo .Request}}</li></ul>{{end}}
{{if .Actions}}<div class="meta">Actions ({{len .Actions}}):</div>
<ol class="trail">{{range .Actions}}<li{{if .InvisibleForCaller}} class="internal"{{end}}><span class="meta">{{when .Date}}{{with .By}} · {{.}}{{end}}{{if .InvisibleForCaller}} · internal{{end}}</span><br>{{memo .Text}}</li>{{end}}</ol>{{end}}
{{if .History}}<div class="meta">History:</div>
<ol class="trail history">{{range .History}}<li><span class="meta">{{when .At}}</span> {{if .Operator}}<strong class="operator">operator {{.By}}</strong>{{else}}<span class="api">alertdesk (API, {{.By}})</span>{{end}}: {{.What}}</li>{{end}}</ol>{{end}}
</td></tr>
{{end}}
</table>
{{else}}
<p>No incidents yet.</p>
{{end}}
{{with .Deleted}}<h2>Deleted by operators</h2>
<ul class="trail">{{range .}}<li><span class="meta">{{when .At}}</span> <strong>{{.Number}}</strong> by {{if .Operator}}operator {{.By}}{{else}}{{.By}}{{end}}</li>{{end}}</ul>{{end}}
</body>
</html>
`
