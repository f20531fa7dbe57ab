package mapping

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// slowNative is the field-by-field path that decodeNativeFast must agree with.
func slowNative(data []byte) (Alert, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return Alert{}, err
	}
	return decodeNative(obj)
}

// checkFastPath fails when the fast path accepts an event differently from
// the field-by-field path.
func checkFastPath(t *testing.T, data []byte) {
	t.Helper()
	fast, ok := decodeNativeFast(data)
	if !ok {
		return
	}
	slow, err := slowNative(data)
	if err != nil {
		t.Fatalf("fast path accepted %q, the field-by-field path rejects it: %v", data, err)
	}
	if diff := cmp.Diff(slow, fast); diff != "" {
		t.Fatalf("fast path decodes %q differently (-slow +fast):\n%s", data, diff)
	}
}

func TestDecodeFastPathAgrees(t *testing.T) {
	cases := []string{
		`{"key":"k","status":"firing"}`,
		`{"key":"k","status":"firing","labels":{},"annotations":{"a":"b"}}`,
		`{"key":"k","status":"firing","labels":{"a":null}}`,
		`{"key":null,"status":"resolved","endsAt":"2026-11-22T10:00:00Z"}`,
		`{"key":"k","status":"firing","startsAt":"0001-01-01T00:00:00Z"}`,
		`{"Key":"k","status":"firing"}`,                                       // case differs: slow path rejects
		`{"key":"k","status":"firing","labels":{"a":"b"},"labels":{"c":"d"}}`, // duplicate key
		`{"key":"k","status":"firing","extra":1}`,
		`{"key":"k","status":"firing","summary":"a \"quoted\" \\ text {]"}`,
		`{"k\u0065y":"k","status":"firing"}`,
		`{"key":"k","status":"firing","labels":{"a":1}}`,
		`{"key":"k","status":"burning"}`,
		`{"key":"k","status":"firing","timestamp":"yesterday"}`,
		`{"key":"k","status":"firing"} trailing`,
		`{"key":"k","status":"firing",}`,
		`{"version":"4","alerts":[]}`,
		` { "key" : "k" , "status" : "firing" } `,
		`{}`,
		`{"key":"k\u0041\u00e9\u20AC\u0000\/\b\f\n\r\t\"\\","status":"firing"}`,
		`{"key":"\ud83d\ude00","status":"firing"}`,     // surrogate pair
		`{"key":"\ud83d","status":"firing"}`,           // lone surrogate
		`{"key":"\u12","status":"firing"}`,             // short escape
		`{"key":"\x41","status":"firing"}`,             // unknown escape
		`{"key":"a` + "\x01" + `b","status":"firing"}`, // control character
		`{"key":"k","status":"firing","labels":{"a":"1","a":"2","b":null,"\u0063":"3"}}`,
		`{"key":"k","status":"firing","labels":{"a":"1",}}`,
		`{"key":"k","status":"firing","labels":{"a" "1"}}`,
		`{"key":"k","status":"firing","labels":{null:"1"}}`,
		`{"key":"k","status":"firing","labels":null,"annotations":{ }}`,
		`{"key":"k","status":null}`,
		`{"key":nul,"status":"firing"}`,
		`{"key":"k","status":"firing"`,
		`{"key":"k","status":"firing"}}`,
		`{"key":"k","status":"firing","summary":"` + "\xff" + `"}`,
		`{"key":"k","status":"firing","summary":["x"]}`,
		`{"key":"k","status":"firing","summary":1}`,
		`{"key":"k","status":"firing","summary":true}`,
	}
	for _, c := range cases {
		checkFastPath(t, []byte(c))
	}
	for _, plain := range []string{
		`{"key":"k","status":"firing","summary":"x"}`,
		`{"key":"k","status":"firing","summary":"\"quoted\"\nnext line \u00e9","labels":{"a":"b","c":null},"annotations":null}`,
		`{"key":null,"status":"resolved","labels":{},"endsAt":"2026-11-22T10:00:00Z"}`,
		`{"key":"k\u0041\u00e9\u20AC\u0000\/\b\f\n\r\t\"\\","status":"firing"}`,
	} {
		checkFastPath(t, []byte(plain))
		if _, ok := decodeNativeFast([]byte(plain)); !ok {
			t.Errorf("the fast path does not take the plain native event %s", plain)
		}
	}
	files, _ := filepath.Glob("testdata/*.alert.json")
	seeds, _ := filepath.Glob("testdata/fuzz/FuzzDecode/*")
	for _, f := range append(files, seeds...) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checkFastPath(t, data)
	}
}

// FuzzDecodeFastPath checks that the single-pass decoder never accepts an
// event differently from the field-by-field one.
func FuzzDecodeFastPath(f *testing.F) {
	f.Add([]byte(`{"key":"k","status":"firing","labels":{"a":"b"}}`))
	f.Add([]byte(`{"key":"k","status":"resolved","summary":"a \"b\"","timestamp":"2026-11-22T10:00:05Z"}`))
	f.Add([]byte(`{"key":"k\u00e9\n\/","status":"firing","labels":{"a":null,"b\"":"c\td"},"annotations":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastPath(t, data)
	})
}
