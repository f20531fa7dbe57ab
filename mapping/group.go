package mapping

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// groupFile is `group:` at the top level or in a route: the alerts that
// share one incident.
type groupFile struct {
	By           []string `yaml:"by"`
	Alertmanager bool     `yaml:"alertmanager"`
}

// majorFile is `majorIncident:` of a route.
type majorFile struct {
	Threshold int    `yaml:"threshold"`
	Window    string `yaml:"window"`
}

// grouping says which alerts share one incident: those with the same
// values of labels by, or (alertmanager) the same Alertmanager group key.
type grouping struct {
	by           []string // sorted
	alertmanager bool
}

// MajorIncident is a route's storm rule (`majorIncident:`): when more than
// Threshold new incidents of the route are created within Window, one
// major call is created and every further new incident of the route is
// linked to it.
type MajorIncident struct {
	Threshold int
	Window    time.Duration
	// Route names the route for operators ("routes[2]"); ID identifies it
	// by its conditions, so that workers whose mappings list the routes
	// in another order still count one storm.
	Route, ID string
}

// GroupPrefix starts every group key, so that a group never shares an
// incident with an alert key of the same text.
const GroupPrefix = "group:"

// Group returns the group key of a: the incident key that a shares with
// the other alerts of its group, by the grouping of the first route that
// matches a (else the top level). It is "" when a is not grouped: no
// grouping applies, or grouping by Alertmanager's group key and a carries
// none. A label that a lacks counts as empty, as Alertmanager groups.
func (m *Mapping) Group(a *Alert) string {
	g := m.group
	if r := m.routeFor(a); r != nil && r.group != nil {
		g = r.group
	}
	switch {
	case g == nil:
		return ""
	case g.alertmanager && a.GroupKey == "":
		return ""
	case g.alertmanager:
		return GroupPrefix + a.GroupKey
	}
	return string(appendLabels([]byte(GroupPrefix), g.by, a.Labels))
}

// MajorIncidentFor returns the storm rule of the first route that matches
// a, if that route has one.
func (m *Mapping) MajorIncidentFor(a *Alert) (MajorIncident, bool) {
	if r := m.routeFor(a); r != nil && r.major != nil {
		return *r.major, true
	}
	return MajorIncident{}, false
}

// routeFor returns the first route that matches a, or nil.
func (m *Mapping) routeFor(a *Alert) *route {
	for i := range m.routes {
		if m.routes[i].matches(a) {
			return &m.routes[i]
		}
	}
	return nil
}

// validateGroup checks the top-level group.
func (f *file) validateGroup(v *validator, m *Mapping) {
	m.group = v.group("group", &f.Group)
}

// routeGroup checks the group and majorIncident of the route at path.
func (v *validator) routeGroup(path string, rf *routeFile) (*grouping, *MajorIncident) {
	g := v.group(join(path, "group"), &rf.Group)
	mpath := join(path, "majorIncident")
	if !v.has(mpath) {
		return g, nil
	}
	mi := &MajorIncident{Threshold: rf.MajorIncident.Threshold, Route: path, ID: routeID(rf)}
	if rf.MajorIncident.Threshold < 1 {
		v.addf(join(mpath, "threshold"), "must be a number of incidents, at least 1")
	}
	w, err := time.ParseDuration(rf.MajorIncident.Window)
	if !v.has(join(mpath, "window")) || err != nil || w <= 0 {
		v.addf(join(mpath, "window"), "%q is not a duration such as 5m or 1h", rf.MajorIncident.Window)
	}
	mi.Window = w
	return g, mi
}

// group checks the group at path; nil when the file gives none.
func (v *validator) group(path string, gf *groupFile) *grouping {
	if !v.has(path) {
		return nil
	}
	g := &grouping{alertmanager: gf.Alertmanager}
	switch {
	case gf.Alertmanager && len(gf.By) > 0:
		v.addf(path, "give by or alertmanager: true, not both")
	case !gf.Alertmanager && len(gf.By) == 0:
		v.addf(path, "needs by: [labels…] or alertmanager: true")
	}
	g.by = labelList(v, path+".by", gf.By)
	return g
}

// routeID identifies a route by its conditions.
func routeID(rf *routeFile) string {
	h := sha256.New()
	for _, k := range sortedKeys(rf.Match) {
		fmt.Fprintf(h, "%d:%s%d:%s", len(k), k, len(rf.Match[k]), rf.Match[k])
	}
	fmt.Fprintf(h, "|%d:%s|%d:%s", len(rf.Severity), rf.Severity, len(rf.Source), rf.Source)
	return hex.EncodeToString(h.Sum(nil)[:8])
}
