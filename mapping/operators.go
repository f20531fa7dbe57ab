package mapping

import "fmt"

// OperatorClose says what alertdesk does with an incident that an operator
// closed while its alert still fired (docs/operators.md, "Policies"). The
// zero value is OperatorCloseRespect.
type OperatorClose string

// The operatorClose policies.
const (
	// OperatorCloseRespect (the default) leaves it closed while the alert
	// keeps firing: changes of the alert are added as actions. The next
	// firing after a resolve reopens it or creates a new one as usual.
	OperatorCloseRespect OperatorClose = "respect"
	// OperatorCloseReopen treats it like an incident alertdesk closed: the
	// next firing reopens it within the reopen window.
	OperatorCloseReopen OperatorClose = "reopen"
)

// RespectsOperatorClose reports whether an incident an operator closed
// stays closed while its alert keeps firing (operatorClose: respect, the
// default).
func (lc *Lifecycle) RespectsOperatorClose() bool { return lc.OperatorClose != OperatorCloseReopen }

// operatorsFile is the part of the lifecycle keys about operators' closes.
type operatorsFile struct {
	OperatorClose string   `yaml:"operatorClose"`
	WontFix       []string `yaml:"wontFix"`
}

// validateOperators checks lifecycle.operatorClose and lifecycle.wontFix
// and sets them on m.
func (f *file) validateOperators(v *validator, m *Mapping) {
	in, lc := &f.Lifecycle.operatorsFile, &m.lifecycle
	if v.has("lifecycle.operatorClose") {
		switch p := OperatorClose(in.OperatorClose); p {
		case OperatorCloseRespect, OperatorCloseReopen:
			lc.OperatorClose = p
		default:
			v.addf("lifecycle.operatorClose", "must be respect or reopen, not %q", in.OperatorClose)
		}
	}
	seen := map[string]bool{}
	for i, code := range in.WontFix {
		path := fmt.Sprintf("lifecycle.wontFix[%d]", i)
		name := v.name(path, code)
		switch {
		case name == "":
		case seen[name]:
			v.addf(path, "%q is listed twice", name)
		default:
			seen[name] = true
			lc.WontFix = append(lc.WontFix, name)
		}
	}
}
