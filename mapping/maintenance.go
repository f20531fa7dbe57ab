package mapping

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/alertdesk/alertdesk/maintenance"
)

// maintenanceFile is one entry of the mapping's `maintenance:` list: a
// maintenance.Spec as written. Durations and times are read as strings here
// and parsed below, so that a bad value is reported with its line and path
// like every other problem (the YAML decoder reports a bad time without
// either, and stops at it).
type maintenanceFile struct {
	Match    map[string]string `yaml:"match"`
	Schedule string            `yaml:"schedule"`
	Duration string            `yaml:"duration"`
	Timezone string            `yaml:"timezone"`
	From     string            `yaml:"from"`
	To       string            `yaml:"to"`
	Reason   string            `yaml:"reason"`
}

// validateMaintenance compiles the mapping's maintenance windows. Every
// problem is recorded at its own path ("maintenance[1].schedule").
func (f *file) validateMaintenance(v *validator, m *Mapping) {
	for i, mf := range f.Maintenance {
		path := fmt.Sprintf("maintenance[%d]", i)
		spec := maintenance.Spec{Match: mf.Match, Schedule: mf.Schedule, Timezone: mf.Timezone, Reason: mf.Reason}
		ok := true
		if v.has(join(path, "duration")) {
			d, err := time.ParseDuration(mf.Duration)
			if err != nil {
				v.addf(join(path, "duration"), "%q is not a duration such as 6h or 90m", mf.Duration)
				ok = false
			}
			spec.Duration = d
		}
		for _, t := range []struct {
			key string
			in  string
			dst *time.Time
		}{{"from", mf.From, &spec.From}, {"to", mf.To, &spec.To}} {
			if !v.has(join(path, t.key)) {
				continue
			}
			at, err := time.Parse(time.RFC3339, t.in)
			if err != nil {
				v.addf(join(path, t.key), "%q is not an RFC 3339 time such as 2026-12-05T22:00:00+01:00", t.in)
				ok = false
			}
			*t.dst = at
		}
		w, err := spec.Compile(path)
		if err != nil {
			for _, p := range splitJoined(err) {
				// Spec.Compile names the field first: "schedule: …".
				field, msg, _ := strings.Cut(p.Error(), ": ")
				if !ok && (field == "duration" || field == "from" || field == "to") {
					continue // follows from the value reported above
				}
				v.addf(join(path, field), "%s", msg)
			}
			continue
		}
		if ok {
			m.maintenance = append(m.maintenance, w)
		}
	}
}

// splitJoined returns the errors that errors.Join joined in err, or err.
func splitJoined(err error) []error {
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		return j.Unwrap()
	}
	return []error{err}
}

// Maintenance returns the mapping's maintenance windows (the
// `maintenance:` key), named "maintenance[i]"; nil when it has none. The
// worker adds the ad-hoc windows of `alertdesk maintenance` to them.
func (m *Mapping) Maintenance() maintenance.Windows { return m.maintenance }
