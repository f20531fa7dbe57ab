package topdesktest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"
)

// The helpers of json.go must behave exactly like encoding/json; these
// tests compare them with it (and run as fuzz tests with -fuzz).

func jsonSeeds() []string {
	deep := func(n int) string { return `{"a":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}` }
	return []string{
		`{}`, ` { } `, "\t{\n}\r\n", `{"a":1}`, `{"a":1}x`, `{"a":1}{}`, `{"a":1,}`, `{,}`, `{"a" 1}`, `{"a":}`, `{a:1}`,
		` { "a" : 1 , "b" : [ 1 , { "c" : null } ] , "a" : "last" } `,
		`{"a":true,"b":false,"c":null}`, `{"a":tru}`, `{"a":nul}`, `{"a":truex}`, `{"a":True}`,
		`{"a":0}`, `{"a":-0.5e+10}`, `{"a":1E-2}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":+1}`, `{"a":0x1}`,
		`{"a":"\u00e9\ud83d\ude00"}`, `{"a":"\ud800"}`, `{"a":"\ud800\u0041"}`, `{"a":"\u12"}`, `{"a":"\q"}`, `{"a":"\'"}`,
		"{\"a\":\"\x01\"}", "{\"a\":\"\x7f\"}", "{\"a\":\"\xff\xfe\"}", "{\"\xff\":1}", `{"\u0061":1,"a":2}`, `{"\\u0061":1}`,
		`{"a":"x\"y\\z\/\b\f\n\r\t"}`, `{"a":"<b> & \u2028"}`, "{\"a\":\"\u2028\u2029\"}",
		`null`, `[]`, `"s"`, `1`, ``, ` `, "\ufeff{}", "{\f}", `{"a":[1,2,]}`, `{"a":[,]}`, `{"a":{"b":1,"b":2}}`,
		deep(maxJSONDepth - 1), deep(maxJSONDepth),
	}
}

func checkObjectMembers(t *testing.T, raw []byte) {
	t.Helper()
	var want map[string]json.RawMessage
	err := json.Unmarshal(raw, &want)
	wantOK := err == nil && want != nil
	ms, ok := objectMembers(nil, raw)
	if ok != wantOK {
		t.Fatalf("objectMembers(%q) ok = %v, json.Unmarshal: err %v, nil map %v", raw, ok, err, want == nil)
	}
	if !ok {
		return
	}
	got := sortMembers(ms)
	if !slices.IsSortedFunc(got, func(a, b member) int { return strings.Compare(a.key, b.key) }) || len(got) != len(want) {
		t.Fatalf("objectMembers(%q) = %q, want the members of %q sorted, each name once", raw, got, want)
	}
	for _, m := range got {
		if w, found := want[m.key]; !found || !bytes.Equal(m.val, w) {
			t.Errorf("objectMembers(%q): %q = %q, json.Unmarshal has %q (found %v)", raw, m.key, m.val, w, found)
		}
	}
}

func TestObjectMembers(t *testing.T) {
	for _, s := range jsonSeeds() {
		checkObjectMembers(t, []byte(s))
	}
}

func FuzzObjectMembers(f *testing.F) {
	for _, s := range jsonSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(checkObjectMembers)
}

func jsonStringSeeds() []string {
	return []string{
		`""`, `"plain"`, `"x\"y\\z\/\b\f\n\r\t"`, `"\u00e9"`, `"\ud83d\ude00"`, `"\ud800"`, `"\ud800\u0041"`, `"\udc00\ud800"`, `"\ud83d\ud83d\ude00"`, `"\ud83d\n"`, `"\u0000\u001F\u00E9"`,
		`"\\u0041"`, `"a\\"`, "\"\xff\"", "\"é\xe2\x80\"", `"<&>"`, "\"\u2028\"",
		`1`, `true`, `null`, `{}`, `[]`,
	}
}

func checkJSONString(t *testing.T, raw []byte) {
	t.Helper()
	if !json.Valid(raw) || len(bytes.TrimSpace(raw)) != len(raw) {
		// jsonString gets member values, which have no white space around.
		return
	}
	var want string
	wantOK := json.Unmarshal(raw, &want) == nil && raw[0] == '"'
	got, ok := jsonString(raw)
	if ok != wantOK || got != want {
		t.Errorf("jsonString(%q) = %q, %v; json.Unmarshal gives %q, %v", raw, got, ok, want, wantOK)
	}
}

func TestJSONString(t *testing.T) {
	for _, s := range jsonStringSeeds() {
		checkJSONString(t, []byte(s))
	}
}

func FuzzJSONString(f *testing.F) {
	for _, s := range jsonStringSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkJSONString(t, raw)
		// Also as the inside of a string, which mutations keep valid more
		// often.
		checkJSONString(t, append(append([]byte{'"'}, raw...), '"'))
	})
}

func stringSeeds() []string {
	return []string{"", "plain ASCII", `"quoted" \back\`, "<b>&amp;</b>", "\x00\x01\b\f\n\r\t\x1f\x7f", "é😀", "\u2028\u2029",
		"\xff", "a\xe2\x80", "\xed\xa0\x80", "I 2611 001"}
}

func checkAppendString(t *testing.T, s string) {
	t.Helper()
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := appendString([]byte("prefix"), s); string(got) != "prefix"+string(want) {
		t.Errorf("appendString(%q) = %s, json.Marshal gives %s", s, got, want)
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range stringSeeds() {
		checkAppendString(t, s)
	}
	for b := range 256 {
		checkAppendString(t, string([]byte{byte(b)}))
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range stringSeeds() {
		f.Add(s)
	}
	f.Fuzz(checkAppendString)
}

func checkAppendCompact(t *testing.T, raw []byte) {
	t.Helper()
	if !json.Valid(raw) {
		return
	}
	want, err := json.Marshal(json.RawMessage(raw))
	if err != nil {
		t.Fatal(err)
	}
	if got := appendCompact([]byte("prefix"), raw); string(got) != "prefix"+string(want) {
		t.Errorf("appendCompact(%q) = %s, json.Marshal gives %s", raw, got, want)
	}
}

func TestAppendCompact(t *testing.T) {
	for _, s := range jsonSeeds() {
		checkAppendCompact(t, []byte(s))
	}
}

func FuzzAppendCompact(f *testing.F) {
	for _, s := range jsonSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(checkAppendCompact)
}

// regexpPlainText is how plainText used to be written, with regular
// expressions; it is the oracle for the hand-written one.
func regexpPlainText(s string) string {
	s = regexp.MustCompile(`(?i)<br\s*/?>`).ReplaceAllString(s, "\n")
	s = regexp.MustCompile(`<[^>]*>`).ReplaceAllString(s, "")
	return html.UnescapeString(s)
}

func plainTextSeeds() []string {
	return []string{"", "no tags", "a<br>b<BR/>c<Br \t\n\f\r/>d<br\v>e", "<br", "<br /", "<br//>", "<bR>>", "<a<br>>",
		"<b>bold</b> &amp; &lt;x&gt; &#43;", "x > y < z", "<<>>", "<a href=\"x\">link</a>", "a<", "a>", "<\xff>", "<br\xff>",
		"Free space <b>below</b> 3%.<br>Key: db-7/disk-full", "<p>one\n\ntwo</p>"}
}

func checkPlainText(t *testing.T, s string) {
	t.Helper()
	if got, want := plainText(s), regexpPlainText(s); got != want {
		t.Errorf("plainText(%q) = %q, the regular expressions give %q", s, got, want)
	}
}

func TestPlainText(t *testing.T) {
	for _, s := range plainTextSeeds() {
		checkPlainText(t, s)
	}
}

func FuzzPlainText(f *testing.F) {
	for _, s := range plainTextSeeds() {
		f.Add(s)
	}
	f.Fuzz(checkPlainText)
}

func TestUTF16Len(t *testing.T) {
	for _, s := range append(stringSeeds(), strings.Repeat("😀", 80), "\U0010ffff", "\xf4\x90\x80\x80") {
		if got, want := utf16Len(s), len(utf16.Encode([]rune(s))); got != want {
			t.Errorf("utf16Len(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestFormatUUID(t *testing.T) {
	for range 100 {
		var b [16]byte
		// crypto/rand.Read never returns an error.
		_, _ = rand.Read(b[:])
		if got, want := formatUUID(b[:]), fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]); got != want {
			t.Errorf("formatUUID(%x) = %s, want %s", b, got, want)
		}
	}
}
