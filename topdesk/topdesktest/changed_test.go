package topdesktest

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestChangedSince reads back alertdesk's incidents modified since a moment,
// as the two-way sync does: FIQL on the externalNumber prefix and
// modificationDate, sorted by modificationDate ascending, paged with
// pageStart/pageSize, and then again from the last modificationDate it
// read, which must find nothing new even though the clock has sub-millisecond
// digits that TOPdesk's answers do not show.
func TestChangedSince(t *testing.T) {
	clock := time.Date(2026, 11, 5, 10, 30, 0, 123456789, time.UTC)
	s := Start(t, Options{Now: func() time.Time { return clock }})
	c := newClient(t, s)
	start := clock
	var numbers []string
	for i := range 12 {
		clock = clock.Add(time.Minute)
		inc := c.createIncident(map[string]any{"briefDescription": fmt.Sprintf("alert %02d", i), "externalNumber": fmt.Sprintf("alertdesk-%02d", i)})
		numbers = append(numbers, inc["number"].(string))
	}
	clock = clock.Add(time.Minute)
	c.createIncident(map[string]any{"briefDescription": "not ours", "externalNumber": "other-1"})
	clock = clock.Add(time.Minute)
	if _, err := s.Close("ejansen", numbers[3], "Solved"); err != nil {
		t.Fatal(err)
	}

	// readBack returns the numbers of the incidents modified after since, in
	// the order read, and the last one's modificationDate as answered.
	readBack := func(t *testing.T, since string) (got []string, last string) {
		t.Helper()
		for pageStart := 0; ; pageStart += 5 {
			q := "query=externalNumber=sw=alertdesk-;modificationDate=gt=" + since +
				"&sort=modificationDate:asc&pageSize=5&pageStart=" + fmt.Sprint(pageStart)
			status, items := c.on(t).list("/tas/api/incidents?" + encodeQuery(q))
			for _, it := range items {
				got = append(got, it["number"].(string))
				last = it["modificationDate"].(string)
			}
			switch status {
			case http.StatusPartialContent:
				continue
			case http.StatusOK, http.StatusNoContent:
				return got, last
			default:
				t.Fatalf("GET %s: %d", q, status)
			}
		}
	}

	got, last := readBack(t, start.Format(topdeskTimeLayout))
	want := append(append(append([]string(nil), numbers[:3]...), numbers[4:]...), numbers[3])
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("read back %v,\nwant %v (by modificationDate, the closed one last)", got, want)
	}
	if again, _ := readBack(t, last); len(again) != 0 {
		t.Errorf("read back after the last modificationDate %s: %v, want nothing", last, again)
	}
	// An operator's next change is found from there.
	clock = clock.Add(time.Second)
	if _, err := s.AddAction("ejansen", numbers[0], "Still on it."); err != nil {
		t.Fatal(err)
	}
	if again, _ := readBack(t, last); fmt.Sprint(again) != fmt.Sprint(numbers[:1]) {
		t.Errorf("read back after an action: %v, want %v", again, numbers[:1])
	}
	// The same in RFC 3339, as an ISO date in a FIQL query usually is.
	if got, _ := readBack(t, clock.Add(-time.Second).Format(time.RFC3339Nano)); fmt.Sprint(got) != fmt.Sprint(numbers[:1]) {
		t.Errorf("read back since an RFC 3339 time: %v, want %v", got, numbers[:1])
	}
}
