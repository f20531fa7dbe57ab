package topdesk_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/alertdesk/alertdesk/topdesk"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

func TestObjectsByName(t *testing.T) {
	tenant := topdesktest.DefaultTenant()
	tenant.Objects = nil
	for i := 1; i <= 250; i++ {
		tenant.Objects = append(tenant.Objects, topdesktest.Entry{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Name: fmt.Sprintf("db-%d", i)})
	}
	sim := start(t, topdesktest.Options{Tenant: tenant})
	c := newClient(t, sim, nil)
	tests := []struct {
		name, find string
		want       []string
		wantPages  int
	}{
		// "db-1" is a fragment of 111 names (db-1, db-10..19, db-100..199): two pages.
		{"exact match among many fragments", "db-1", []string{"db-1"}, 2},
		{"case-insensitive", "DB-250", []string{"db-250"}, 1},
		{"unknown", "db-999", nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(sim.Requests())
			got, err := c.ObjectsByName(t.Context(), tc.find)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, o := range got {
				if o.ID == "" {
					t.Errorf("object %q has no id", o.Name)
				}
				names = append(names, o.Name)
			}
			if diff := cmp.Diff(tc.want, names, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
			if n := len(sim.Requests()) - before; n != tc.wantPages {
				t.Errorf("got %d requests, want %d (one per page)", n, tc.wantPages)
			}
		})
	}
}

func TestObjectsByNameErrors(t *testing.T) {
	sim := start(t, topdesktest.Options{})
	c := newClient(t, sim, nil)
	var ve *topdesk.ValidationError
	if _, err := c.ObjectsByName(t.Context(), " "); !errors.As(err, &ve) {
		t.Errorf("empty name: got %v, want a *ValidationError", err)
	}
	if n := len(sim.Requests()); n != 0 {
		t.Errorf("an empty name sent %d requests", n)
	}
	// A tenant without asset management, or without the permission.
	sim.Inject(topdesktest.Fault{Path: "/tas/api/assetmgmt", Status: http.StatusNotFound})
	_, err := c.ObjectsByName(t.Context(), "db-7")
	if !topdesk.IsRejected(err) {
		t.Errorf("404: got %v, want a rejection", err)
	}
}
