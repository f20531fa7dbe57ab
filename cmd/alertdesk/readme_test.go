package main

import (
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// documentedVariables reads the `ALERTDESK_…` rows of the tables in a
// Markdown file: variable name -> its default column.
func documentedVariables(t *testing.T, path string) map[string]string {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(ALERTDESK_[A-Z_]+)` \\|([^|]*)\\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = strings.TrimSpace(m[2])
	}
	if len(documented) == 0 {
		t.Fatalf("no configuration table found in %s", path)
	}
	return documented
}

// The configuration table in docs/configuration.md lists exactly the
// variables of the config struct, and README.md's table of the common ones
// only variables of it; both with the same defaults where they give one
// plainly.
func TestREADMEConfigTable(t *testing.T) {
	typ := reflect.TypeFor[config]()
	defaults := map[string]string{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		defaults[envPrefix+"_"+f.Tag.Get("envconfig")] = f.Tag.Get("default")
	}
	for _, doc := range []struct {
		path     string
		complete bool
	}{{"../../docs/configuration.md", true}, {"../../README.md", false}} {
		documented := documentedVariables(t, doc.path)
		for name, def := range defaults {
			d, ok := documented[name]
			if !ok {
				if doc.complete {
					t.Errorf("%s is a setting but %s's configuration table lacks it", name, doc.path)
				}
				continue
			}
			if want, plain := strings.CutPrefix(d, "`"); plain && strings.Count(d, "`") == 2 && strings.HasSuffix(d, "`") {
				if want = strings.TrimSuffix(want, "`"); want != def {
					t.Errorf("%s: %s says default %q, the code %q", name, doc.path, want, def)
				}
			}
		}
		for _, name := range slices.Sorted(maps.Keys(documented)) {
			if _, ok := defaults[name]; !ok {
				t.Errorf("%s documents %s, which the code does not read", doc.path, name)
			}
		}
	}
}
