package topdesk_test

import (
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/alertdesk/alertdesk/topdesk"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// ids maps "field/name" to the id the default tenant gives it, read through
// the client's own list calls.
func tenantIDs(t *testing.T, c *topdesk.Client) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range []topdesk.Field{topdesk.FieldCategory, topdesk.FieldPriority, topdesk.FieldEntryType, topdesk.FieldProcessingStatus} {
		opts, err := c.Searchlist(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range opts {
			out[string(f)+"/"+o.Name] = o.ID
		}
	}
	subs, err := c.Subcategories(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		out["subcategory/"+s.Category.Name+"/"+s.Name] = s.ID
	}
	groups, err := c.OperatorGroups(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		out["operatorGroup/"+g.Name] = g.ID
	}
	ops, err := c.Operators(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range ops {
		out["operator/"+o.Name] = o.ID
	}
	return out
}

func TestResolve(t *testing.T) {
	sim := start(t, topdesktest.Options{})
	c := newClient(t, sim, nil)
	ids := tenantIDs(t, c)
	tests := []struct {
		name          string
		ref           topdesk.NameRef
		want          string
		wantNearest   []string
		wantAmbiguous []string // candidates
	}{
		{"category", topdesk.NameRef{Field: topdesk.FieldCategory, Name: "Infrastructure"}, ids["category/Infrastructure"], nil, nil},
		{"category other case", topdesk.NameRef{Field: topdesk.FieldCategory, Name: "databases"}, ids["category/Databases"], nil, nil},
		{"priority", topdesk.NameRef{Field: topdesk.FieldPriority, Name: "P3"}, ids["priority/P3"], nil, nil},
		{"status", topdesk.NameRef{Field: topdesk.FieldProcessingStatus, Name: "In progress"}, ids["processingStatus/In progress"], nil, nil},
		{"unique subcategory", topdesk.NameRef{Field: topdesk.FieldSubcategory, Name: "Oracle"}, ids["subcategory/Databases/Oracle"], nil, nil},
		{"subcategory in category", topdesk.NameRef{Field: topdesk.FieldSubcategory, Name: "Other", Category: "Applications"},
			ids["subcategory/Applications/Other"], nil, nil},
		{"ambiguous subcategory", topdesk.NameRef{Field: topdesk.FieldSubcategory, Name: "Other"}, "", nil,
			[]string{"Infrastructure", "Applications"}},
		{"subcategory in wrong category", topdesk.NameRef{Field: topdesk.FieldSubcategory, Name: "Oracle", Category: "Infrastructure"},
			"", nil, nil},
		{"group", topdesk.NameRef{Field: topdesk.FieldOperatorGroup, Name: "Operations"}, ids["operatorGroup/Operations"], nil, nil},
		{"operator", topdesk.NameRef{Field: topdesk.FieldOperator, Name: "Bakker, Tom"}, ids["operator/Bakker, Tom"], nil, nil},
		{"misspelt category", topdesk.NameRef{Field: topdesk.FieldCategory, Name: "Infrastucture"}, "", []string{"Infrastructure"}, nil},
		{"misspelt group", topdesk.NameRef{Field: topdesk.FieldOperatorGroup, Name: "Operation"}, "", []string{"Operations"}, nil},
		{"unknown entry type", topdesk.NameRef{Field: topdesk.FieldEntryType, Name: "Pigeon"}, "", nil, nil},
		{"unknown person", topdesk.NameRef{Field: topdesk.FieldCallerEmail, Name: "nobody@example.com"}, "", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := topdesk.NewResolver(c)
			got, err := r.Resolve(t.Context(), tc.ref)
			if got != tc.want {
				t.Errorf("Resolve(%+v) = %q, want %q", tc.ref, got, tc.want)
			}
			if tc.want != "" {
				if err != nil {
					t.Errorf("Resolve(%+v): %v", tc.ref, err)
				}
				return
			}
			var ne *topdesk.NameError
			if !errors.As(err, &ne) {
				t.Fatalf("Resolve(%+v) err = %v, want a *NameError", tc.ref, err)
			}
			if ne.Field != tc.ref.Field || ne.Value != tc.ref.Name {
				t.Errorf("NameError names %s %q, want %s %q", ne.Field, ne.Value, tc.ref.Field, tc.ref.Name)
			}
			if diff := cmp.Diff(tc.wantNearest, ne.Nearest); diff != "" {
				t.Errorf("nearest mismatch (-want +got):\n%s", diff)
			}
			if ne.Ambiguous != (tc.wantAmbiguous != nil) {
				t.Errorf("Ambiguous = %v, want %v", ne.Ambiguous, tc.wantAmbiguous != nil)
			}
			gotCands := slices.Sorted(slices.Values(ne.Candidates))
			wantCands := slices.Sorted(slices.Values(tc.wantAmbiguous))
			if diff := cmp.Diff(wantCands, gotCands); diff != "" {
				t.Errorf("candidates mismatch (-want +got):\n%s", diff)
			}
			if !topdesk.IsRejected(err) || topdesk.IsRetryable(err) {
				t.Errorf("NameError classified %+v, want rejected", classify(err))
			}
		})
	}
}

func TestResolverCaches(t *testing.T) {
	sim := start(t, topdesktest.Options{})
	c := newClient(t, sim, nil)
	r := topdesk.NewResolver(c)
	refs := []topdesk.NameRef{
		{Field: topdesk.FieldCategory, Name: "Infrastructure"},
		{Field: topdesk.FieldCategory, Name: "Databases"},
		{Field: topdesk.FieldSubcategory, Name: "Servers", Category: "Infrastructure"},
		{Field: topdesk.FieldOperatorGroup, Name: "DBA"},
		{Field: topdesk.FieldCallerEmail, Name: "anna.visser@example.com"},
	}
	if err := r.ResolveAll(t.Context(), refs); err != nil {
		t.Fatalf("ResolveAll: %v", err)
	}
	// One request per list or name; the second category comes from the
	// cached searchlist.
	if n := len(sim.Requests()); n != 4 {
		t.Errorf("warm-up made %d requests, want 4: %+v", n, requestLines(sim))
	}
	sim.ResetRequests()
	for _, ref := range refs {
		if _, err := r.Resolve(t.Context(), ref); err != nil {
			t.Errorf("Resolve(%+v): %v", ref, err)
		}
	}
	if n := len(sim.Requests()); n != 0 {
		t.Errorf("cached resolves made %d requests, want 0: %+v", n, requestLines(sim))
	}

	// A failed lookup is not cached: once TOPdesk answers, it resolves.
	cold := topdesk.NewResolver(c)
	sim.Inject(topdesktest.Fault{Path: "/tas/api/incidents/priorities", Status: http.StatusServiceUnavailable, Count: 1})
	ref := topdesk.NameRef{Field: topdesk.FieldPriority, Name: "P1"}
	if _, err := cold.Resolve(t.Context(), ref); !topdesk.IsRetryable(err) {
		t.Errorf("Resolve during an outage err = %v, want a retryable error", err)
	}
	if _, err := cold.Resolve(t.Context(), ref); err != nil {
		t.Errorf("Resolve after the outage: %v", err)
	}
}

func TestResolverConcurrentWarmUp(t *testing.T) {
	sim := start(t, topdesktest.Options{})
	c := newClient(t, sim, nil)
	r := topdesk.NewResolver(c)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			in := &topdesk.IncidentRequest{Category: &topdesk.Ref{Name: "Databases"}, Subcategory: &topdesk.Ref{Name: "Oracle"},
				Priority: &topdesk.Ref{Name: "P2"}}
			if err := r.Apply(t.Context(), in); err != nil {
				t.Errorf("Apply: %v", err)
			}
		})
	}
	wg.Wait()
	perPath := map[string]int{}
	for _, req := range sim.Requests() {
		perPath[req.Path]++
	}
	want := map[string]int{"/tas/api/incidents/categories": 1, "/tas/api/incidents/subcategories": 1, "/tas/api/incidents/priorities": 1}
	if diff := cmp.Diff(want, perPath); diff != "" {
		t.Errorf("requests per path mismatch (-want +got):\n%s", diff)
	}
}

func TestResolveAllJoinsErrors(t *testing.T) {
	sim := start(t, topdesktest.Options{})
	r := topdesk.NewResolver(newClient(t, sim, nil))
	err := r.ResolveAll(t.Context(), []topdesk.NameRef{
		{Field: topdesk.FieldCategory, Name: "Infrastructure"},
		{Field: topdesk.FieldCategory, Name: "Infrastucture"},
		{Field: topdesk.FieldPriority, Name: "P9"},
		{Field: topdesk.FieldSubcategory, Name: "Other"},
	})
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("ResolveAll err = %v, want joined errors", err)
	}
	var got []string
	for _, e := range joined.Unwrap() {
		var ne *topdesk.NameError
		if !errors.As(e, &ne) {
			t.Errorf("error %v is not a *NameError", e)
			continue
		}
		got = append(got, ne.Error())
	}
	want := []string{
		`category "Infrastucture" not found in TOPdesk (nearest: "Infrastructure")`,
		`priority "P9" not found in TOPdesk (nearest: "P1", "P2", "P3")`,
		`subcategory "Other" is ambiguous in TOPdesk: it exists in categories "Infrastructure", "Applications"; name the category as well`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors mismatch (-want +got):\n%s", diff)
	}
}

func TestApply(t *testing.T) {
	sim := start(t, topdesktest.Options{})
	c := newClient(t, sim, nil)
	ids := tenantIDs(t, c)
	r := topdesk.NewResolver(c)

	shared := &topdesk.Ref{Name: "Applications"} // as a mapping might reuse it
	in := &topdesk.IncidentRequest{
		CallerLookup:     &topdesk.CallerLookup{Email: "anna.visser@example.com"},
		BriefDescription: "Web shop down",
		ExternalNumber:   "alertdesk-apply",
		Category:         shared,
		Subcategory:      &topdesk.Ref{Name: "Other"}, // ambiguous alone, unique within Applications
		Priority:         &topdesk.Ref{Name: "P1"},
		EntryType:        &topdesk.Ref{Name: "Monitoring"},
		ProcessingStatus: &topdesk.Ref{Name: "Logged"},
		OperatorGroup:    &topdesk.Ref{Name: "Operations"},
		Operator:         &topdesk.Ref{Name: "Jansen, Eva"},
	}
	if err := r.Apply(t.Context(), in); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	got := map[string]string{
		"category": in.Category.ID, "subcategory": in.Subcategory.ID, "priority": in.Priority.ID,
		"entryType": in.EntryType.ID, "processingStatus": in.ProcessingStatus.ID,
		"operatorGroup": in.OperatorGroup.ID, "operator": in.Operator.ID, "callerLookup.email": in.CallerLookup.Email,
	}
	want := map[string]string{
		"category": ids["category/Applications"], "subcategory": ids["subcategory/Applications/Other"],
		"priority": ids["priority/P1"], "entryType": ids["entryType/Monitoring"],
		"processingStatus": ids["processingStatus/Logged"], "operatorGroup": ids["operatorGroup/Operations"],
		"operator": ids["operator/Jansen, Eva"], "callerLookup.email": "anna.visser@example.com",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("applied ids mismatch (-want +got):\n%s", diff)
	}
	if shared.ID != "" {
		t.Errorf("Apply modified the caller's Ref: %+v", shared)
	}

	// The resolved request is accepted by TOPdesk (operator and group need ids).
	inc, err := c.CreateIncident(t.Context(), in)
	if err != nil {
		t.Fatalf("CreateIncident: %v", err)
	}
	simInc, _ := sim.Incident(inc.ID)
	gotNames := []string{simInc.Category, simInc.Subcategory, simInc.OperatorGroup, simInc.Operator, simInc.CallerName}
	if diff := cmp.Diff([]string{"Applications", "Other", "Operations", "Jansen, Eva", "Visser, Anna"}, gotNames); diff != "" {
		t.Errorf("simulator incident mismatch (-want +got):\n%s", diff)
	}

	t.Run("category by id", func(t *testing.T) {
		in := &topdesk.IncidentRequest{Category: &topdesk.Ref{ID: ids["category/Infrastructure"]}, Subcategory: &topdesk.Ref{Name: "Other"}}
		if err := r.Apply(t.Context(), in); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		if in.Subcategory.ID != ids["subcategory/Infrastructure/Other"] {
			t.Errorf("subcategory id = %q, want Infrastructure/Other's", in.Subcategory.ID)
		}
	})

	t.Run("errors leave the request unchanged", func(t *testing.T) {
		in := &topdesk.IncidentRequest{
			CallerLookup:  &topdesk.CallerLookup{Email: "nobody@example.com"},
			Category:      &topdesk.Ref{Name: "Databases"},
			OperatorGroup: &topdesk.Ref{Name: "Nope"},
		}
		err := r.Apply(t.Context(), in)
		var fields []topdesk.Field
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			var ne *topdesk.NameError
			if errors.As(e, &ne) {
				fields = append(fields, ne.Field)
			}
		}
		if diff := cmp.Diff([]topdesk.Field{topdesk.FieldOperatorGroup, topdesk.FieldCallerEmail}, fields); diff != "" {
			t.Errorf("failed fields mismatch (-want +got):\n%s", diff)
		}
		if in.Category.ID != "" || in.OperatorGroup.ID != "" {
			t.Errorf("request changed despite errors: %+v %+v", in.Category, in.OperatorGroup)
		}
	})
}
