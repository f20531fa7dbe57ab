package worker

import (
	"strings"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
)

// rebuild brings st in line with found, the incidents TOPdesk holds for
// the key (fromTOPdesk), when the state was lost or uncertain: a lookup
// before a write, or the reconciliation. Who closed the key's incident is
// kept when st knew it already (the same incident, closed); otherwise it
// is told from TOPdesk's answer where that can be told (closedByOperator),
// as the read-back would have recorded it (observed).
func (w *Worker) rebuild(st *incidentState, found []topdesk.Incident) {
	knew := st.IncidentID != "" && !st.Open
	before := st.IncidentID
	fromTOPdesk(st, found)
	if knew && st.IncidentID == before && !st.Open {
		return
	}
	st.ClosedBy, st.ClosureCode, st.WontFix = "", "", false
	if st.Open || st.IncidentID == "" {
		return
	}
	for i := range found {
		if inc := &found[i]; inc.ID == st.IncidentID && closedByOperator(inc, w.mapping.Lifecycle()) {
			st.ClosedBy = operatorUnknown
			if inc.Modifier != nil && inc.Modifier.Name != "" {
				st.ClosedBy = inc.Modifier.Name
			}
			if inc.ClosureCode != nil {
				st.ClosureCode = inc.ClosureCode.Name
			}
			st.WontFix = w.wontFix(inc.ClosureCode)
			return
		}
	}
}

// closedByOperator tells from a closed (or completed) incident alone
// whether someone other than alertdesk closed it: it does not look like
// alertdesk's resolve under lifecycle lc. alertdesk never closes with
// resolve: comment; it completes without a closure code with resolve:
// complete; it closes with lifecycle.closureCode (or none) with resolve:
// close. A close that looks like alertdesk's counts as alertdesk's: TOPdesk
// does not say who closed an incident, only who changed it last. An answer
// without the modifier was asked without the closing fields (closureCode,
// modifier): nothing can be told from it.
func closedByOperator(inc *topdesk.Incident, lc mapping.Lifecycle) bool {
	if inc.Modifier == nil || (!inc.Closed && !inc.Completed) {
		return false
	}
	code := ""
	if inc.ClosureCode != nil {
		code = inc.ClosureCode.Name
	}
	switch lc.Resolve {
	case mapping.ResolveComment:
		return true
	case mapping.ResolveComplete:
		return code != ""
	}
	return !strings.EqualFold(code, lc.ClosureCode)
}
