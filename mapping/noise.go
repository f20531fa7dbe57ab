package mapping

import (
	htmltemplate "html/template"
	"strings"
	"time"

	"github.com/alertdesk/alertdesk/topdesk"
)

// Flapping is the mapping's flap damping (PRODUCT.md "Noise control"): a
// key whose alert changed between firing and resolved Changes times within
// Window is flapping; its incident is held open until the alert was Quiet
// (no change) for that long. The zero value (Changes 0) is off.
type Flapping struct {
	Changes int
	Window  time.Duration
	Quiet   time.Duration
}

// On reports whether flap damping is configured.
func (f Flapping) On() bool { return f.Changes > 0 }

// Defaults of a flapping key that the file leaves out.
const (
	DefaultFlapChanges = 4
	DefaultFlapWindow  = time.Hour
	DefaultFlapQuiet   = 30 * time.Minute
)

// flappingFile is the top-level flapping key.
type flappingFile struct {
	Changes *int   `yaml:"changes"`
	Window  string `yaml:"window"`
	Quiet   string `yaml:"quiet"`
}

// Flapping returns the mapping's flap damping; off unless the file has a
// flapping key.
func (m *Mapping) Flapping() Flapping { return m.flapping }

// Note adds text (plain text, escaped here) to the action of r, after the
// action r already has, and makes the action as visible as the mapping's
// other actions. An empty text changes nothing.
func (m *Mapping) Note(r *topdesk.IncidentRequest, text string) {
	if text == "" {
		return
	}
	note := toHTML(htmltemplate.HTMLEscapeString(text))
	if r.Action != "" {
		note = r.Action + "<br><br>" + note
	}
	r.Action = note
	r.ActionInvisibleForCaller = new(m.invisible)
}

// validateNoise checks lifecycle.resolveDelay and flapping.
func (f *file) validateNoise(v *validator, m *Mapping) {
	duration := func(path, in, hint string, positive bool, dst *time.Duration) {
		if !v.has(path) {
			return
		}
		d, err := time.ParseDuration(strings.TrimSpace(in))
		if err != nil || d < 0 || (positive && d == 0) {
			v.addf(path, "%q is not a duration such as %s", in, hint)
			return
		}
		*dst = d
	}
	duration("lifecycle.resolveDelay", f.Lifecycle.ResolveDelay, "2m or 30s (0 = close at once)", false, &m.lifecycle.ResolveDelay)
	if !v.has("flapping") {
		return
	}
	in := &f.Flapping
	fl := Flapping{Changes: DefaultFlapChanges, Window: DefaultFlapWindow, Quiet: DefaultFlapQuiet}
	if in.Changes != nil {
		if fl.Changes = *in.Changes; fl.Changes < 2 {
			v.addf("flapping.changes", "must be 2 or more, not %d", fl.Changes)
		}
	}
	duration("flapping.window", in.Window, "1h or 30m", true, &fl.Window)
	duration("flapping.quiet", in.Quiet, "30m or 10m", true, &fl.Quiet)
	m.flapping = fl
}
