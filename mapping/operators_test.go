package mapping_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
)

func TestOperatorPolicies(t *testing.T) {
	tests := []struct {
		name        string
		yaml        string
		wantPolicy  mapping.OperatorClose
		wantWontFix []string
		wantPath    string // of the problem; "" = none
	}{
		{"default", "lifecycle: {}\n", "", nil, ""},
		{"reopen", "lifecycle:\n  operatorClose: reopen\n", mapping.OperatorCloseReopen, nil, ""},
		{"wontFix", "lifecycle:\n  operatorClose: respect\n  wontFix: [Duplicate, No action needed]\n", mapping.OperatorCloseRespect, []string{"Duplicate", "No action needed"}, ""},
		{"unknown policy", "lifecycle:\n  operatorClose: ignore\n", "", nil, "lifecycle.operatorClose"},
		{"empty code", "lifecycle:\n  wontFix: [Duplicate, '']\n", "", nil, "lifecycle.wontFix[1]"},
		{"code twice", "lifecycle:\n  wontFix: [Duplicate, Duplicate]\n", "", nil, "lifecycle.wontFix[1]"},
		{"code is a template", "lifecycle:\n  wontFix: ['{{ .Summary }}']\n", "", nil, "lifecycle.wontFix[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := mapping.Load([]byte(tc.yaml))
			if tc.wantPath != "" {
				var le *mapping.LoadError
				if !errors.As(err, &le) || le.Path != tc.wantPath {
					t.Fatalf("Load: %v; want a problem at %s", err, tc.wantPath)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lc := m.Lifecycle()
			if lc.OperatorClose != tc.wantPolicy || !slices.Equal(lc.WontFix, tc.wantWontFix) {
				t.Errorf("operatorClose %q, wontFix %q; want %q, %q", lc.OperatorClose, lc.WontFix, tc.wantPolicy, tc.wantWontFix)
			}
			for _, code := range tc.wantWontFix {
				if !slices.Contains(m.Names(), topdesk.NameRef{Field: topdesk.FieldClosureCode, Name: code}) {
					t.Errorf("Names() lacks closure code %q: it must be resolved at start-up", code)
				}
			}
		})
	}
	if lc := mapping.Default().Lifecycle(); !lc.RespectsOperatorClose() {
		t.Errorf("default mapping: operatorClose %q, want respect", lc.OperatorClose)
	}
}
