package mapping

import (
	"strings"
	"testing"
)

func TestTruncate(t *testing.T) {
	family := "\U0001F468\u200d\U0001F469\u200d\U0001F467" // 5 runes, one picture
	tests := []struct {
		name  string
		in    string
		limit int
		want  string
	}{
		{"short", "Disk full", 80, "Disk full"},
		{"exactly at the limit", strings.Repeat("é", 10), 10, strings.Repeat("é", 10)},
		{"ascii", "abcdefghij", 5, "abcd…"},
		{"trailing space dropped", "abc defgh", 5, "abc…"},
		{"cjk", "数据库服务器磁盘", 5, "数据库服…"},
		{"emoji count twice", "🔥🔥🔥🔥🔥🔥", 6, "🔥🔥…"},
		{"joiner sequence kept whole", "ab" + family + "cd", 5, "ab…"},
		{"combining mark kept with its letter", "ae\u0301e\u0301e\u0301", 4, "ae\u0301…"},
		{"variation selector kept", "a\u2764\ufe0fbcdef", 3, "a…"},
		{"skin tone kept", "ab\U0001F44D\U0001F3FDcdef", 4, "ab…"},
		{"flag pairs kept", "X\U0001F1F3\U0001F1F1\U0001F1E9\U0001F1EA\U0001F1EB\U0001F1F7", 7, "X\U0001F1F3\U0001F1F1…"},
		{"nothing but marks is cut anyway", "\u0301\u0301\u0301\u0301\u0301", 3, "\u0301\u0301…"},
		{"limit 1", "abc", 1, "…"},
		{"limit 0", "abc", 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := truncate(tc.in, tc.limit)
			if got != tc.want {
				t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.limit, got, tc.want)
			}
			if n := utf16Len(got); n > tc.limit {
				t.Errorf("truncate(%q, %d) has %d UTF-16 code units", tc.in, tc.limit, n)
			}
		})
	}
}

func TestOneLine(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"Disk full", "Disk full"},
		{"  Disk\tfull\r\non  db-7 \n", "Disk full on db-7"},
		{"a\u0000b\u2028c", "a b c"},
		{" \n\t", ""},
		{"", ""},
	}
	for _, tc := range tests {
		if got := oneLine(tc.in); got != tc.want {
			t.Errorf("oneLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestToHTML(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"a\nb", "a<br>b"},
		{"a\r\nb\rc", "a<br>b<br>c"},
		{"plain", "plain"},
	}
	for _, tc := range tests {
		if got := toHTML(tc.in); got != tc.want {
			t.Errorf("toHTML(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFuncs(t *testing.T) {
	m, err := Load([]byte(`incident:
  briefDescription: >-
    {{ upper .Summary }}|{{ lower .Severity }}|{{ trim "  x  " }}|{{ .Source | default "none" }}|{{ trunc 4 .Description }}|{{ join "+" (keys .Labels) }}|{{ kv .Labels }}|{{ replace "a" "o" "banana" }}|{{ rfc3339 .StartsAt }}|{{ rfc3339 .EndsAt }}
`))
	if err != nil {
		t.Fatal(err)
	}
	a := &Alert{Key: "k", Status: StatusFiring, Summary: "disk", Severity: "CRIT", Description: "abcdef",
		Labels: map[string]string{"b": "2", "a": "1"}}
	a.StartsAt, _ = parseTime("2026-11-22T11:00:00+01:00")
	r, err := m.Render(a, "k", OpUpdate)
	if err != nil {
		t.Fatal(err)
	}
	want := "DISK|crit|x|none|abc…|a+b|a=1, b=2|bonono|2026-11-22T10:00:00Z|"
	if r.Request.BriefDescription != want {
		t.Errorf("briefDescription = %q, want %q", r.Request.BriefDescription, want)
	}
}
