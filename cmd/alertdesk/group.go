package main

import (
	"fmt"

	"github.com/alertdesk/alertdesk/mapping"
)

// groupLines says, for render, whether a would join a group (its incident
// is the group's: another key and externalNumber) and whether its route
// counts storms. Empty when neither applies.
func groupLines(m *mapping.Mapping, a *mapping.Alert) string {
	var s string
	if g := m.Group(a); g != "" {
		s += fmt.Sprintf("group:          %s (externalNumber %s; this alert is a member of its incident)\n", g, mapping.ExternalNumber(g))
	}
	if mi, ok := m.MajorIncidentFor(a); ok {
		s += fmt.Sprintf("storm:          %s: over %d new incidents within %s make one major call and are linked to it\n",
			mi.Route, mi.Threshold, mi.Window)
	}
	return s
}
