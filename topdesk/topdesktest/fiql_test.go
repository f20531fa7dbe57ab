package topdesktest

import (
	"strings"
	"testing"
)

// TestHasPrefixFold compares =sw='s prefix test with lower-casing both sides,
// which it replaces for ASCII text.
func TestHasPrefixFold(t *testing.T) {
	words := []string{"", "a", "A", "alertdesk-", "ALERTDESK-1", "alertdesk-1", "alertdesk", "İstanbul", "i̇stanbul", "K", "\u212a", "k",
		"Straße", "STRASSE", "\xff", "é", "É"}
	for _, s := range words {
		for _, p := range words {
			if got, want := hasPrefixFold(s, p), strings.HasPrefix(strings.ToLower(s), strings.ToLower(p)); got != want {
				t.Errorf("hasPrefixFold(%q, %q) = %v, want %v", s, p, got, want)
			}
		}
	}
}
