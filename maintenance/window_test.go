package maintenance

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

func mustLocation(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return loc
}

func mustCompile(t *testing.T, specs ...Spec) Windows {
	t.Helper()
	ws, err := Compile(specs)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return ws
}

func TestWindowCover(t *testing.T) {
	ams := mustLocation(t, "Europe/Amsterdam")
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	local := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, ams) }
	staging := map[string]string{"env": "staging"}
	saturdayNight := Spec{Match: staging, Schedule: "0 22 * * 6", Duration: 6 * time.Hour, Timezone: "Europe/Amsterdam"}
	nightly := Spec{Match: staging, Schedule: "30 2 * * *", Duration: time.Hour, Timezone: "Europe/Amsterdam"}
	midnight := Spec{Match: staging, Schedule: "0 23 * * *", Duration: 3 * time.Hour}
	fixed := Spec{Match: map[string]string{"host": "db-7"}, From: utc("2026-12-05T22:00:00+01:00"), To: utc("2026-12-06T02:00:00+01:00")}

	tests := []struct {
		name    string
		spec    Spec
		labels  map[string]string
		at      time.Time
		wantEnd time.Time // zero: not covered
	}{
		// Spring forward, Sunday 29 March 2026: 02:00 CET becomes 03:00 CEST.
		// The duration is elapsed time: 22:00 CET + 6h ends at 05:00 CEST.
		{"DST spring: before the change", saturdayNight, staging, local(2026, 3, 28, 23, 0), local(2026, 3, 29, 5, 0)},
		{"DST spring: after the change", saturdayNight, staging, local(2026, 3, 29, 4, 59), local(2026, 3, 29, 5, 0)},
		{"DST spring: ended", saturdayNight, staging, local(2026, 3, 29, 5, 0), time.Time{}},
		{"DST spring: a start in the skipped hour does not happen", nightly, staging, local(2026, 3, 29, 3, 45), time.Time{}},
		{"DST spring: the next night starts again", nightly, staging, local(2026, 3, 30, 2, 45), local(2026, 3, 30, 3, 30)},
		// Fall back, Sunday 25 October 2026: 03:00 CEST becomes 02:00 CET.
		// 22:00 CEST + 6h ends at 03:00 CET, one hour early by the clock.
		{"DST fall: in the repeated hour", saturdayNight, staging, utc("2026-10-25T01:30:00Z"), local(2026, 10, 25, 3, 0)},
		{"DST fall: ended at 03:00 CET", saturdayNight, staging, local(2026, 10, 25, 3, 0), time.Time{}},
		{"DST fall: first 02:30 (CEST)", nightly, staging, utc("2026-10-25T00:40:00Z"), utc("2026-10-25T01:30:00Z")},
		{"DST fall: second 02:30 (CET) starts again", nightly, staging, utc("2026-10-25T01:40:00Z"), utc("2026-10-25T02:30:00Z")},
		// 23:00 UTC for 3 hours spans midnight.
		{"midnight: start is covered", midnight, staging, utc("2026-12-04T23:00:00Z"), utc("2026-12-05T02:00:00Z")},
		{"midnight: before the start", midnight, staging, utc("2026-12-04T22:59:59Z"), time.Time{}},
		{"midnight: after midnight", midnight, staging, utc("2026-12-05T01:00:00Z"), utc("2026-12-05T02:00:00Z")},
		{"midnight: the end is not covered", midnight, staging, utc("2026-12-05T02:00:00Z"), time.Time{}},
		{"weekday schedule spans into Saturday",
			Spec{Match: staging, Schedule: "0 22 * * 5", Duration: 4 * time.Hour}, staging, utc("2026-12-05T01:00:00Z"), utc("2026-12-05T02:00:00Z")},
		{"weekday schedule: not on Thursday night",
			Spec{Match: staging, Schedule: "0 22 * * 5", Duration: 4 * time.Hour}, staging, utc("2026-12-03T23:00:00Z"), time.Time{}},
		{"descriptor @daily", Spec{Match: staging, Schedule: "@daily", Duration: time.Hour}, staging, utc("2026-12-05T00:30:00Z"), utc("2026-12-05T01:00:00Z")},
		{"self-overlapping schedule: the latest occurrence's end",
			Spec{Match: staging, Schedule: "0 * * * *", Duration: 90 * time.Minute}, staging, utc("2026-12-05T10:15:00Z"), utc("2026-12-05T11:30:00Z")},
		{"every minute for 30 days",
			Spec{Match: staging, Schedule: "* * * * *", Duration: 30 * 24 * time.Hour}, staging, utc("2026-12-05T10:15:30Z"), utc("2027-01-04T10:15:00Z")},
		{"from/to: from is covered", fixed, map[string]string{"host": "db-7"}, utc("2026-12-05T21:00:00Z"), fixed.To},
		{"from/to: inside", fixed, map[string]string{"host": "db-7", "team": "dba"}, utc("2026-12-05T23:59:00Z"), fixed.To},
		{"from/to: before", fixed, map[string]string{"host": "db-7"}, utc("2026-12-05T20:59:59Z"), time.Time{}},
		{"from/to: to is not covered", fixed, map[string]string{"host": "db-7"}, fixed.To, time.Time{}},
		{"label missing", fixed, map[string]string{"instance": "db-7"}, utc("2026-12-05T23:00:00Z"), time.Time{}},
		{"label value differs in case", fixed, map[string]string{"host": "DB-7"}, utc("2026-12-05T23:00:00Z"), time.Time{}},
		{"every matcher must hold",
			Spec{Match: map[string]string{"env": "prod", "host": "db-7"}, From: fixed.From, To: fixed.To},
			map[string]string{"host": "db-7", "env": "staging"}, utc("2026-12-05T23:00:00Z"), time.Time{}},
		{"every matcher holds",
			Spec{Match: map[string]string{"env": "prod", "host": "db-7"}, From: fixed.From, To: fixed.To},
			map[string]string{"host": "db-7", "env": "prod"}, utc("2026-12-05T23:00:00Z"), fixed.To},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cov, ok := mustCompile(t, tc.spec).Cover(tc.labels, tc.at)
			if ok != !tc.wantEnd.IsZero() {
				t.Fatalf("Cover(%v, %s) covered = %v, want %v (end %s)", tc.labels, tc.at, ok, !tc.wantEnd.IsZero(), cov.End)
			}
			if ok && !cov.End.Equal(tc.wantEnd) {
				t.Errorf("Cover(%v, %s) end = %s, want %s", tc.labels, tc.at, cov.End.UTC(), tc.wantEnd.UTC())
			}
		})
	}
}

func TestWindowsCoverLatestEnd(t *testing.T) {
	at := time.Date(2026, 12, 5, 23, 0, 0, 0, time.UTC)
	db7 := map[string]string{"host": "db-7"}
	ws := mustCompile(t,
		Spec{Match: db7, From: at.Add(-time.Hour), To: at.Add(time.Hour), Reason: "short"},
		Spec{Match: db7, From: at.Add(-time.Hour), To: at.Add(3 * time.Hour), Reason: "long"},
		Spec{Match: map[string]string{"host": "db-8"}, From: at, To: at.Add(9 * time.Hour), Reason: "other host"},
		Spec{Match: db7, Schedule: "0 22 * * *", Duration: 2 * time.Hour, Reason: "nightly"},
	)
	cov, ok := ws.Cover(db7, at)
	if !ok {
		t.Fatal("not covered")
	}
	if cov.Window.ID != "maintenance[1]" || cov.Window.Reason != "long" || !cov.End.Equal(at.Add(3*time.Hour)) {
		t.Errorf("Cover = %s (%s) until %s, want maintenance[1] (long) until %s", cov.Window.ID, cov.Window.Reason, cov.End, at.Add(3*time.Hour))
	}
	if _, ok := ws.Cover(map[string]string{"host": "db-9"}, at); ok {
		t.Error("db-9 covered, want not")
	}
	if _, ok := Windows(nil).Cover(db7, at); ok {
		t.Error("no windows cover, want not")
	}
}

func TestCompileNamesEveryProblem(t *testing.T) {
	from := time.Date(2026, 12, 5, 22, 0, 0, 0, time.UTC)
	_, err := Compile([]Spec{
		{Match: map[string]string{"env": "staging"}, Schedule: "0 22 * * 6", Duration: time.Hour}, // valid
		{Schedule: "61 * * * *", Timezone: "Mars/Olympus"},
		{Match: map[string]string{"host": ""}, From: from, To: from.Add(-time.Hour), Duration: time.Hour, Timezone: "UTC"},
		{Match: map[string]string{"host": "a"}, Schedule: "@every 1h", Duration: time.Hour},
		{Match: map[string]string{"host": "a"}, Schedule: "0 0 30 2 *", Duration: time.Hour},
		{Match: map[string]string{"host": "a"}, Schedule: "CRON_TZ=Europe/Amsterdam 0 1 * * *", Duration: time.Hour},
		{Match: map[string]string{"host": "a"}, Schedule: "0 1 * * *", From: from, To: from.Add(time.Hour)},
		{Match: map[string]string{"host": "a"}, To: from},
		{Match: map[string]string{"host": "a"}},
		{Match: map[string]string{"host": "a"}, Schedule: "0 1 * * *", Duration: time.Hour, Timezone: "Local"},
	})
	if err == nil {
		t.Fatal("Compile succeeded, want errors")
	}
	want := []string{
		"maintenance[1].match: at least one label is required",
		"maintenance[1].duration: a scheduled window needs a positive duration",
		`maintenance[1].timezone: "Mars/Olympus" is not a known time zone`,
		`maintenance[1].schedule: "61 * * * *": `,
		"maintenance[2].match.host: the value is empty",
		"maintenance[2].to: 2026-12-05T21:00:00Z is not after from 2026-12-05T22:00:00Z",
		"maintenance[2].duration: only a scheduled window has a duration",
		"maintenance[2].timezone: only a scheduled window has a time zone",
		`maintenance[3].schedule: "@every 1h" has no fixed start times`,
		`maintenance[4].schedule: "0 0 30 2 *" never occurs`,
		"maintenance[5].schedule: give the time zone in timezone",
		"maintenance[6].schedule: a window has either schedule and duration or from and to, not both",
		"maintenance[7].from: missing",
		"maintenance[8].schedule: missing: a window needs schedule and duration, or from and to",
		`maintenance[9].timezone: "Local" is not a known time zone`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(lines), len(want), err)
	}
	for i := range min(len(lines), len(want)) {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("problem %d = %q, want it to start with %q", i, lines[i], want[i])
		}
	}
}

// TestSpecYAML decodes the mapping's form of windows, as the mapping will
// when it embeds `Maintenance []maintenance.Spec`.
func TestSpecYAML(t *testing.T) {
	src := `
maintenance:
  - {match: {env: staging}, schedule: "0 22 * * 6", duration: 6h, timezone: Europe/Amsterdam}
  - match: {host: db-7}
    from: 2026-12-05T22:00:00+01:00
    to: "2026-12-06T02:00:00+01:00"
    reason: disk swap
`
	var got struct {
		Maintenance []Spec `yaml:"maintenance"`
	}
	if err := yaml.Unmarshal([]byte(src), &got); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	cet := time.FixedZone("", 3600)
	want := []Spec{
		{Match: map[string]string{"env": "staging"}, Schedule: "0 22 * * 6", Duration: 6 * time.Hour, Timezone: "Europe/Amsterdam"},
		{Match: map[string]string{"host": "db-7"}, From: time.Date(2026, 12, 5, 22, 0, 0, 0, cet), To: time.Date(2026, 12, 6, 2, 0, 0, 0, cet), Reason: "disk swap"},
	}
	if diff := cmp.Diff(want, got.Maintenance, cmp.Comparer(time.Time.Equal)); diff != "" {
		t.Errorf("decoded specs (-want +got):\n%s", diff)
	}
	if _, err := Compile(got.Maintenance); err != nil {
		t.Errorf("Compile: %v", err)
	}
}
