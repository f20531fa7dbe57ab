package topdesk_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/alertdesk/alertdesk/topdesk"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// TestListModifiedSince reads back, across pages, the incidents with the
// prefix modified at or after a time, oldest change first, with who closed
// them and how; archived ones are included, others' incidents are not.
func TestListModifiedSince(t *testing.T) {
	clock := time.Date(2026, 11, 5, 10, 30, 0, 0, time.UTC)
	sim := start(t, topdesktest.Options{Now: func() time.Time { return clock }})
	c := newClient(t, sim, nil)
	var numbers []string
	for i := range 1003 {
		clock = clock.Add(time.Second)
		inc, err := c.CreateIncident(t.Context(), &topdesk.IncidentRequest{
			BriefDescription: fmt.Sprintf("alert %d", i), ExternalNumber: fmt.Sprintf("alertdesk-%04d", i),
			Caller: &topdesk.Caller{DynamicName: "test"},
		})
		if err != nil {
			t.Fatal(err)
		}
		numbers = append(numbers, inc.Number)
	}
	if _, err := c.CreateIncident(t.Context(), &topdesk.IncidentRequest{
		BriefDescription: "not ours", ExternalNumber: "other-1", Caller: &topdesk.Caller{DynamicName: "test"},
	}); err != nil {
		t.Fatal(err)
	}
	since := clock.Add(time.Second)
	clock = since
	if _, err := sim.Close("ejansen", numbers[5], "Duplicate"); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(time.Second)
	if _, err := sim.Archive("tbakker", numbers[7], ""); err != nil {
		t.Fatal(err)
	}

	got, err := c.ListModifiedSince(t.Context(), "alertdesk-", since)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Number != numbers[5] || got[1].Number != numbers[7] {
		t.Fatalf("modified since %s: %d incidents %v, want %s then %s", since, len(got), got, numbers[5], numbers[7])
	}
	closed := got[0]
	if !closed.Closed || closed.ClosureCode == nil || closed.ClosureCode.Name != "Duplicate" || closed.ClosureCode.ID == "" {
		t.Errorf("closed incident: closed %v, closure code %+v; want closed with Duplicate and its id", closed.Closed, closed.ClosureCode)
	}
	if closed.Modifier == nil || closed.Modifier.Name == "" {
		t.Errorf("closed incident: modifier %+v, want the operator", closed.Modifier)
	}
	if got[1].Status != "firstLineArchived" {
		t.Errorf("archived incident: status %q, want firstLineArchived", got[1].Status)
	}

	all, err := c.ListModifiedSince(t.Context(), "alertdesk-", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(numbers) {
		t.Errorf("modified at any time: %d incidents, want %d across pages", len(all), len(numbers))
	}
	for i := 1; i < len(all); i++ {
		if all[i].ModificationDate.Before(all[i-1].ModificationDate.Time) {
			t.Fatalf("incident %d modified %s before the one ahead of it (%s)", i, all[i].ModificationDate, all[i-1].ModificationDate)
		}
	}
}
