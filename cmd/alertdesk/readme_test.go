package main

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The configuration table in README.md lists exactly the variables of the
// config struct, with the same defaults where the README gives one plainly.
func TestREADMEConfigTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(ALERTDESK_[A-Z_]+)` \\|([^|]*)\\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]] = strings.TrimSpace(m[2])
	}
	if len(documented) == 0 {
		t.Fatal("no configuration table found in README.md")
	}

	typ := reflect.TypeFor[config]()
	var inCode []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		name := envPrefix + "_" + f.Tag.Get("envconfig")
		inCode = append(inCode, name)
		doc, ok := documented[name]
		if !ok {
			t.Errorf("%s is a setting but README.md's configuration table lacks it", name)
			continue
		}
		if def, plain := strings.CutPrefix(doc, "`"); plain && strings.Count(doc, "`") == 2 && strings.HasSuffix(doc, "`") {
			if want := strings.TrimSuffix(def, "`"); want != f.Tag.Get("default") {
				t.Errorf("%s: README.md says default %q, the code %q", name, want, f.Tag.Get("default"))
			}
		}
	}
	for name := range documented {
		if !slices.Contains(inCode, name) {
			t.Errorf("README.md documents %s, which the code does not read", name)
		}
	}
}
