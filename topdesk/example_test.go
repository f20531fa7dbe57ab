package topdesk_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/alertdesk/alertdesk/topdesk"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

func ExampleClient_CreateIncident() {
	// A simulated TOPdesk; in production the URL is your tenant's, e.g.
	// https://example.topdesk.net, and the password an application password.
	sim := topdesktest.New(topdesktest.Options{
		Username: "alertdesk",
		Password: "app-password",
		Now:      func() time.Time { return time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC) },
	})
	srv := httptest.NewServer(sim)
	defer srv.Close()

	c, err := topdesk.NewClient(srv.URL, topdesk.Options{
		Username:  "alertdesk",
		Password:  "app-password",
		UserAgent: "alertdesk/1.0",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()

	// Resolve the names a mapping uses to ids once; later calls hit the cache.
	in := &topdesk.IncidentRequest{
		Caller:           &topdesk.Caller{DynamicName: "Monitoring"},
		BriefDescription: "Disk / at 97% on db-7",
		Request:          "Free space below 3%.",
		ExternalNumber:   "alertdesk-5d41402abc4b2a76b9719d911017c592",
		Category:         &topdesk.Ref{Name: "Databases"},
		Subcategory:      &topdesk.Ref{Name: "PostgreSQL"},
		OperatorGroup:    &topdesk.Ref{Name: "DBA"},
		Priority:         &topdesk.Ref{Name: "P1"},
	}
	if err := topdesk.NewResolver(c).Apply(ctx, in); err != nil {
		fmt.Println(err)
		return
	}

	inc, err := c.CreateIncident(ctx, in)
	switch {
	case topdesk.IsOutcomeUnknown(err):
		// The incident may exist: FindIncidents(ctx, in.ExternalNumber) before retrying.
		fmt.Println("outcome unknown:", err)
	case err != nil:
		fmt.Println("create failed:", err)
	default:
		fmt.Println("created", inc.Number, "priority", inc.Priority.Name)
	}
	// Output: created I 2611 001 priority P1
}
