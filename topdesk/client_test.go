package topdesk_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/alertdesk/alertdesk/topdesk"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

const (
	user     = "alertdesk"
	password = "s3cret-app-password"
)

// start runs a simulator that accepts user/password.
func start(t *testing.T, opts topdesktest.Options) *topdesktest.Sim {
	t.Helper()
	opts.Username, opts.Password = user, password
	return topdesktest.Start(t, opts)
}

// newClient returns a client for sim; mod may change the options.
func newClient(t *testing.T, sim *topdesktest.Sim, mod func(*topdesk.Options)) *topdesk.Client {
	t.Helper()
	opts := topdesk.Options{Username: user, Password: password, UserAgent: "alertdesk/test"}
	if mod != nil {
		mod(&opts)
	}
	c, err := topdesk.NewClient(sim.URL(), opts)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// requestLine is the part of a simulator request the tests compare.
type requestLine struct {
	Method, Path string
	Status       int
}

func requestLines(sim *topdesktest.Sim) []requestLine {
	var out []requestLine
	for _, r := range sim.Requests() {
		out = append(out, requestLine{r.Method, r.Path, r.Status})
	}
	return out
}

func query(t *testing.T, r topdesktest.Request) url.Values {
	t.Helper()
	v, err := url.ParseQuery(r.RawQuery)
	if err != nil {
		t.Fatalf("bad query %q: %v", r.RawQuery, err)
	}
	return v
}

// basicRequest is a small valid create request that uses only names the
// default tenant knows.
func basicRequest(ext string) *topdesk.IncidentRequest {
	return &topdesk.IncidentRequest{
		Caller:           &topdesk.Caller{DynamicName: "Monitoring"},
		BriefDescription: "Disk / at 97% on db-7",
		Request:          "Free space below 3%.",
		ExternalNumber:   ext,
	}
}

func TestVersion(t *testing.T) {
	tests := []struct {
		name    string
		version string
		want    string
	}{
		{"default", "", topdesktest.DefaultAPIVersion},
		{"old", "3.1.0", "3.1.0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim := start(t, topdesktest.Options{APIVersion: tc.version})
			got, err := newClient(t, sim, nil).Version(t.Context())
			if err != nil {
				t.Fatalf("Version: %v", err)
			}
			if got != tc.want {
				t.Errorf("Version = %q, want %q", got, tc.want)
			}
			reqs := sim.Requests()
			if len(reqs) != 1 || reqs[0].User != user || reqs[0].Path != "/tas/api/version" {
				t.Errorf("requests = %+v, want one GET /tas/api/version by %s", reqs, user)
			}
		})
	}
}

func TestBaseURLForms(t *testing.T) {
	sim := start(t, topdesktest.Options{})
	for _, base := range []string{sim.URL(), sim.URL() + "/", sim.URL() + "/tas/api/"} {
		t.Run(base, func(t *testing.T) {
			c, err := topdesk.NewClient(base, topdesk.Options{Username: user, Password: password})
			if err != nil {
				t.Fatalf("NewClient(%q): %v", base, err)
			}
			if _, err := c.Version(t.Context()); err != nil {
				t.Errorf("Version with base %q: %v", base, err)
			}
		})
	}
}

func TestIncidentLifecycle(t *testing.T) {
	sim := start(t, topdesktest.Options{})
	c := newClient(t, sim, nil)
	ctx := t.Context()

	groups, err := c.OperatorGroups(ctx, "Operations")
	if err != nil || len(groups) != 1 {
		t.Fatalf("OperatorGroups(Operations) = %v, %v; want one group", groups, err)
	}
	in := basicRequest("alertdesk-lifecycle")
	in.Category = &topdesk.Ref{Name: "Infrastructure"}
	in.Subcategory = &topdesk.Ref{Name: "Servers"}
	in.Priority = &topdesk.Ref{Name: "P1"}
	in.EntryType = &topdesk.Ref{Name: "Monitoring"}
	in.ProcessingStatus = &topdesk.Ref{Name: "Logged"}
	in.OperatorGroup = &topdesk.Ref{ID: groups[0].ID}

	created, err := c.CreateIncident(ctx, in)
	if err != nil {
		t.Fatalf("CreateIncident: %v", err)
	}
	if created.ID == "" || !strings.HasPrefix(created.Number, "I ") || created.ExternalNumber != "alertdesk-lifecycle" {
		t.Errorf("created incident = %+v, want an id, an I-number and the external number", created)
	}
	if created.Closed || created.CreationDate == nil {
		t.Errorf("created incident closed=%v creationDate=%v, want open with a creation date", created.Closed, created.CreationDate)
	}

	got, err := c.GetIncident(ctx, created.ID)
	if err != nil {
		t.Fatalf("GetIncident: %v", err)
	}
	if got.ID != created.ID || got.Number != created.Number {
		t.Errorf("GetIncident = %s/%s, want %s/%s", got.ID, got.Number, created.ID, created.Number)
	}
	byNumber, err := c.GetIncidentByNumber(ctx, created.Number)
	if err != nil {
		t.Fatalf("GetIncidentByNumber(%q): %v", created.Number, err)
	}
	if byNumber.ID != created.ID {
		t.Errorf("GetIncidentByNumber id = %s, want %s", byNumber.ID, created.ID)
	}

	yes := true
	updated, err := c.UpdateIncident(ctx, created.ID, &topdesk.IncidentRequest{
		Priority: &topdesk.Ref{Name: "P2"}, Action: "Severity changed to warning", ActionInvisibleForCaller: &yes,
	})
	if err != nil {
		t.Fatalf("UpdateIncident: %v", err)
	}
	if updated.ID != created.ID || updated.Priority == nil || updated.Priority.Name != "P2" {
		t.Errorf("updated incident = %+v, want priority P2", updated)
	}
	closed, err := c.UpdateIncident(ctx, created.ID, &topdesk.IncidentRequest{
		Closed: &yes, ClosureCode: &topdesk.Ref{Name: "Solved by monitoring"}, Action: "Resolved",
	})
	if err != nil {
		t.Fatalf("close: %v", err)
	}
	if !closed.Closed || closed.ClosedDate == nil {
		t.Errorf("closed incident closed=%v closedDate=%v, want closed with a date", closed.Closed, closed.ClosedDate)
	}

	simInc, ok := sim.Incident(created.ID)
	if !ok {
		t.Fatalf("simulator does not know incident %s", created.ID)
	}
	want := struct {
		Category, Subcategory, Priority, EntryType, OperatorGroup, ClosureCode, CallerName string
		Closed                                                                             bool
		Actions                                                                            []string
	}{"Infrastructure", "Servers", "P2", "Monitoring", "Operations", "Solved by monitoring", "Monitoring", true,
		[]string{"Severity changed to warning", "Resolved"}}
	gotSim := want
	gotSim.Category, gotSim.Subcategory, gotSim.Priority = simInc.Category, simInc.Subcategory, simInc.Priority
	gotSim.EntryType, gotSim.OperatorGroup, gotSim.ClosureCode = simInc.EntryType, simInc.OperatorGroup, simInc.ClosureCode
	gotSim.CallerName, gotSim.Closed = simInc.CallerName, simInc.Closed
	gotSim.Actions = nil
	for _, a := range simInc.Actions {
		gotSim.Actions = append(gotSim.Actions, a.Text)
	}
	slices.Sort(gotSim.Actions)
	slices.Sort(want.Actions)
	if diff := cmp.Diff(want, gotSim); diff != "" {
		t.Errorf("simulator incident mismatch (-want +got):\n%s", diff)
	}
	for _, r := range sim.Requests() {
		if r.Method == http.MethodPut {
			t.Errorf("unexpected PUT %s: PATCH works, so no fallback was needed", r.Path)
		}
	}
}

func TestGetIncidentNotFound(t *testing.T) {
	sim := start(t, topdesktest.Options{})
	c := newClient(t, sim, nil)
	tests := []struct {
		name string
		call func(context.Context) error
	}{
		{"by id", func(ctx context.Context) error {
			_, err := c.GetIncident(ctx, "00000000-0000-4000-8000-000000000000")
			return err
		}},
		{"by number with spaces", func(ctx context.Context) error {
			_, err := c.GetIncidentByNumber(ctx, "I 9999 999")
			return err
		}},
		{"update", func(ctx context.Context) error {
			_, err := c.UpdateIncident(ctx, "00000000-0000-4000-8000-000000000000", &topdesk.IncidentRequest{Action: "x"})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(t.Context())
			if !errors.Is(err, topdesk.ErrNotFound) || !topdesk.IsNotFound(err) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
			var ae *topdesk.APIError
			if !errors.As(err, &ae) || ae.StatusCode != http.StatusNotFound {
				t.Errorf("err = %#v, want an *APIError with status 404", err)
			}
			if topdesk.IsRetryable(err) || topdesk.IsAuth(err) || topdesk.IsOutcomeUnknown(err) {
				t.Errorf("404 classified as retryable/auth/unknown: %v", err)
			}
		})
	}
	reqs := sim.Requests()
	if len(reqs) != 3 || reqs[1].Path != "/tas/api/incidents/number/I 9999 999" {
		t.Errorf("requests = %+v, want the number path-escaped as one segment", reqs)
	}
}

func TestUpdatePutFallback(t *testing.T) {
	sim := start(t, topdesktest.Options{DisablePatch: true})
	c := newClient(t, sim, nil)
	inc, err := c.CreateIncident(t.Context(), basicRequest("alertdesk-put"))
	if err != nil {
		t.Fatalf("CreateIncident: %v", err)
	}
	sim.ResetRequests()
	for i := range 2 {
		upd, err := c.UpdateIncident(t.Context(), inc.ID, &topdesk.IncidentRequest{Action: fmt.Sprintf("update %d", i)})
		if err != nil {
			t.Fatalf("UpdateIncident %d: %v", i, err)
		}
		if upd.ID != inc.ID {
			t.Errorf("UpdateIncident %d returned id %s, want %s", i, upd.ID, inc.ID)
		}
	}
	path := "/tas/api/incidents/id/" + inc.ID
	want := []requestLine{
		{http.MethodPatch, path, http.StatusMethodNotAllowed},
		{http.MethodPut, path, http.StatusOK},
		{http.MethodPut, path, http.StatusOK}, // PATCH is not tried again
	}
	if diff := cmp.Diff(want, requestLines(sim)); diff != "" {
		t.Errorf("requests mismatch (-want +got):\n%s", diff)
	}
	got, _ := sim.Incident(inc.ID)
	if len(got.Actions) != 2 {
		t.Errorf("incident has %d actions, want 2", len(got.Actions))
	}
}

func TestFindIncidents(t *testing.T) {
	sim := start(t, topdesktest.Options{})
	c := newClient(t, sim, nil)
	ctx := t.Context()
	create := func(ext string, n int) []string {
		var ids []string
		for range n {
			inc, err := c.CreateIncident(ctx, basicRequest(ext))
			if err != nil {
				t.Fatalf("CreateIncident(%q): %v", ext, err)
			}
			ids = append(ids, inc.ID)
		}
		return ids
	}
	one := create("alertdesk-one", 1)
	quoted := create(`it's a "key" with \ and spaces`, 1)
	create("ALERTDESK-CASE", 1)
	many := create("alertdesk-many", 205)

	tests := []struct {
		name       string
		ext        string
		want       []string
		wantStatus []int
	}{
		{"none", "alertdesk-none", nil, []int{http.StatusNoContent}},
		{"one", "alertdesk-one", one, []int{http.StatusOK}},
		{"quoting", `it's a "key" with \ and spaces`, quoted, []int{http.StatusOK}},
		{"exact case only", "alertdesk-case", nil, []int{http.StatusOK}},
		{"paged", "alertdesk-many", many, []int{http.StatusPartialContent, http.StatusPartialContent, http.StatusOK}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim.ResetRequests()
			found, err := c.FindIncidents(t.Context(), tc.ext)
			if err != nil {
				t.Fatalf("FindIncidents(%q): %v", tc.ext, err)
			}
			var ids []string
			for _, inc := range found {
				ids = append(ids, inc.ID)
				if inc.Number == "" {
					t.Errorf("incident %s has no number", inc.ID)
				}
			}
			if diff := cmp.Diff(tc.want, ids); diff != "" {
				t.Errorf("found ids mismatch (-want +got):\n%s", diff)
			}
			var statuses []int
			for i, r := range sim.Requests() {
				statuses = append(statuses, r.Status)
				q := query(t, r)
				wantQuery := "externalNumber==" + fiql(tc.ext)
				if q.Get("query") != wantQuery || q.Get("all") != "true" || q.Get("fields") == "" {
					t.Errorf("request %d query = %v, want query=%s, all=true and fields", i, q, wantQuery)
				}
				if got, want := q.Get("pageStart"), fmt.Sprint(i*100); got != want {
					t.Errorf("request %d pageStart = %s, want %s", i, got, want)
				}
			}
			if diff := cmp.Diff(tc.wantStatus, statuses); diff != "" {
				t.Errorf("response statuses mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// fiql is the expected FIQL quoting of v.
func fiql(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

func TestFindIncidentsLegacyFallback(t *testing.T) {
	sim := start(t, topdesktest.Options{DisableFIQL: true})
	c := newClient(t, sim, nil)
	inc, err := c.CreateIncident(t.Context(), basicRequest("alertdesk-legacy"))
	if err != nil {
		t.Fatalf("CreateIncident: %v", err)
	}
	for i := range 2 {
		sim.ResetRequests()
		found, err := c.FindIncidents(t.Context(), "alertdesk-legacy")
		if err != nil {
			t.Fatalf("FindIncidents %d: %v", i, err)
		}
		if len(found) != 1 || found[0].ID != inc.ID {
			t.Errorf("FindIncidents %d = %+v, want incident %s", i, found, inc.ID)
		}
		reqs := sim.Requests()
		var kinds []string
		for _, r := range reqs {
			q := query(t, r)
			switch {
			case q.Has("query"):
				kinds = append(kinds, fmt.Sprintf("fiql %d", r.Status))
			case q.Get("external_number") == "alertdesk-legacy" && q.Has("page_size") && !q.Has("pageSize"):
				kinds = append(kinds, fmt.Sprintf("legacy %d", r.Status))
			default:
				kinds = append(kinds, "other "+r.RawQuery)
			}
		}
		want := []string{"legacy 200"}
		if i == 0 {
			want = []string{"fiql 400", "legacy 200"}
		}
		if diff := cmp.Diff(want, kinds); diff != "" {
			t.Errorf("search %d requests mismatch (-want +got):\n%s", i, diff)
		}
	}
}

func TestLookups(t *testing.T) {
	sim := start(t, topdesktest.Options{})
	c := newClient(t, sim, nil)
	ctx := t.Context()
	names := func(opts []topdesk.Option) []string {
		var out []string
		for _, o := range opts {
			if o.ID == "" {
				t.Errorf("entry %q has no id", o.Name)
			}
			out = append(out, o.Name)
		}
		slices.Sort(out)
		return out
	}
	searchlists := []struct {
		field topdesk.Field
		want  []string
	}{
		{topdesk.FieldProcessingStatus, []string{"Closed", "In progress", "Logged", "Waiting for user"}},
		{topdesk.FieldPriority, []string{"P1", "P2", "P3", "P4", "P5"}},
		{topdesk.FieldImpact, []string{"Department", "Organisation", "Person"}},
		{topdesk.FieldUrgency, []string{"High", "Low", "Medium"}},
		{topdesk.FieldCategory, []string{"Applications", "Databases", "Infrastructure"}},
		{topdesk.FieldSubcategory, []string{"Batch", "MySQL", "Network", "Oracle", "Other", "Other", "PostgreSQL", "Servers", "Storage", "Web"}},
		{topdesk.FieldCallType, []string{"Complaint", "Disruption", "Question", "Request"}},
		{topdesk.FieldEntryType, []string{"E-mail", "Monitoring", "Portal", "Telephone"}},
		{topdesk.FieldClosureCode, []string{"Duplicate", "No action needed", "Solved", "Solved by monitoring"}},
		{topdesk.FieldDuration, []string{"1 day", "1 hour", "1 week", "3 days", "4 hours"}},
	}
	for _, tc := range searchlists {
		t.Run(string(tc.field), func(t *testing.T) {
			got, err := c.Searchlist(ctx, tc.field)
			if err != nil {
				t.Fatalf("Searchlist(%s): %v", tc.field, err)
			}
			if diff := cmp.Diff(tc.want, names(got)); diff != "" {
				t.Errorf("Searchlist(%s) mismatch (-want +got):\n%s", tc.field, diff)
			}
		})
	}
	for _, f := range []topdesk.Field{topdesk.FieldOperatorGroup, topdesk.FieldOperator, topdesk.FieldCallerEmail, "bogus"} {
		if _, err := c.Searchlist(ctx, f); err == nil {
			t.Errorf("Searchlist(%s) succeeded, want an error: it is not a searchlist", f)
		}
	}

	subs, err := c.Subcategories(ctx)
	if err != nil {
		t.Fatalf("Subcategories: %v", err)
	}
	var otherIn []string
	for _, s := range subs {
		if s.Category.ID == "" || s.Category.Name == "" {
			t.Errorf("subcategory %q has no category", s.Name)
		}
		if s.Name == "Other" {
			otherIn = append(otherIn, s.Category.Name)
		}
	}
	slices.Sort(otherIn)
	if diff := cmp.Diff([]string{"Applications", "Infrastructure"}, otherIn); diff != "" {
		t.Errorf("categories of subcategory Other mismatch (-want +got):\n%s", diff)
	}

	named := []struct {
		name string
		call func(context.Context, string) ([]topdesk.Option, error)
		arg  string
		want []string
	}{
		{"group", c.OperatorGroups, "DBA", []string{"DBA"}},
		{"group other case", c.OperatorGroups, "dba", []string{"DBA"}},
		{"all groups", c.OperatorGroups, "", []string{"DBA", "Network", "Operations"}},
		{"unknown group", c.OperatorGroups, "Nope", nil},
		{"operator", c.Operators, "Jansen, Eva", []string{"Jansen, Eva"}},
		{"all operators", c.Operators, "", []string{"Alertdesk, API", "Bakker, Tom", "Jansen, Eva"}},
		{"person", c.PersonsByEmail, "anna.visser@example.com", []string{"Visser, Anna"}},
		{"unknown person", c.PersonsByEmail, "nobody@example.com", nil},
	}
	for _, tc := range named {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.call(ctx, tc.arg)
			if err != nil {
				t.Fatalf("lookup %q: %v", tc.arg, err)
			}
			if diff := cmp.Diff(tc.want, names(got)); diff != "" {
				t.Errorf("lookup %q mismatch (-want +got):\n%s", tc.arg, diff)
			}
		})
	}
}

func TestOperatorGroupsPaging(t *testing.T) {
	tenant := topdesktest.DefaultTenant()
	tenant.OperatorGroups = nil
	for i := range 150 {
		tenant.OperatorGroups = append(tenant.OperatorGroups, topdesktest.Entry{Name: fmt.Sprintf("Group %03d", i)})
	}
	sim := start(t, topdesktest.Options{Tenant: tenant})
	c := newClient(t, sim, nil)
	got, err := c.OperatorGroups(t.Context(), "")
	if err != nil {
		t.Fatalf("OperatorGroups: %v", err)
	}
	if len(got) != 150 {
		t.Errorf("OperatorGroups returned %d groups, want 150", len(got))
	}
	var starts []string
	var statuses []int
	for _, r := range sim.Requests() {
		q := query(t, r)
		starts = append(starts, q.Get("start"))
		statuses = append(statuses, r.Status)
		if q.Get("page_size") != "100" {
			t.Errorf("page_size = %q, want 100", q.Get("page_size"))
		}
	}
	if diff := cmp.Diff([]string{"0", "100"}, starts); diff != "" {
		t.Errorf("start parameters mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{http.StatusPartialContent, http.StatusOK}, statuses); diff != "" {
		t.Errorf("statuses mismatch (-want +got):\n%s", diff)
	}
}

// errorClass is how the classification helpers see an error.
type errorClass struct {
	Retryable, Auth, NotFound, Rejected, OutcomeUnknown bool
}

func classify(err error) errorClass {
	return errorClass{topdesk.IsRetryable(err), topdesk.IsAuth(err), topdesk.IsNotFound(err),
		topdesk.IsRejected(err), topdesk.IsOutcomeUnknown(err)}
}

func TestFaults(t *testing.T) {
	httpDate := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		fault      topdesktest.Fault
		write      bool // create an incident instead of reading the version
		want       errorClass
		wantStatus int // of the *APIError; 0 = not an APIError
		wantRetry  [2]time.Duration
		wantCreate int // incidents the simulator holds afterwards
	}{
		{"429 retry-after seconds", topdesktest.Fault{Status: 429, RetryAfter: "2"}, false,
			errorClass{Retryable: true}, 429, [2]time.Duration{2 * time.Second, 2 * time.Second}, 0},
		{"503 retry-after date", topdesktest.Fault{Status: 503, RetryAfter: httpDate}, false,
			errorClass{Retryable: true}, 503, [2]time.Duration{20 * time.Second, 31 * time.Second}, 0},
		{"503 on create", topdesktest.Fault{Method: http.MethodPost, Status: 503}, true,
			errorClass{Retryable: true, OutcomeUnknown: true}, 503, [2]time.Duration{}, 0},
		{"500", topdesktest.Fault{Status: 500}, false, errorClass{Retryable: true}, 500, [2]time.Duration{}, 0},
		{"408", topdesktest.Fault{Status: 408}, false, errorClass{Retryable: true}, 408, [2]time.Duration{}, 0},
		{"401", topdesktest.Fault{Status: 401}, false, errorClass{Auth: true}, 401, [2]time.Duration{}, 0},
		{"403", topdesktest.Fault{Status: 403}, true, errorClass{Auth: true}, 403, [2]time.Duration{}, 0},
		{"409", topdesktest.Fault{Status: 409}, true, errorClass{Rejected: true}, 409, [2]time.Duration{}, 0},
		{"drop read", topdesktest.Fault{Drop: true}, false, errorClass{Retryable: true}, 0, [2]time.Duration{}, 0},
		{"drop create", topdesktest.Fault{Method: http.MethodPost, Drop: true}, true,
			errorClass{Retryable: true, OutcomeUnknown: true}, 0, [2]time.Duration{}, 0},
		{"lose response", topdesktest.Fault{Method: http.MethodPost, LoseResponse: true}, true,
			errorClass{Retryable: true, OutcomeUnknown: true}, 0, [2]time.Duration{}, 1},
		{"slow read", topdesktest.Fault{Delay: 5 * time.Second}, false,
			errorClass{Retryable: true}, 0, [2]time.Duration{}, 0},
		{"slow create", topdesktest.Fault{Method: http.MethodPost, Delay: 5 * time.Second}, true,
			errorClass{Retryable: true, OutcomeUnknown: true}, 0, [2]time.Duration{}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim := start(t, topdesktest.Options{})
			c := newClient(t, sim, func(o *topdesk.Options) { o.Timeout = 250 * time.Millisecond })
			tc.fault.Count = 1
			sim.Inject(tc.fault)
			var err error
			if tc.write {
				_, err = c.CreateIncident(t.Context(), basicRequest("alertdesk-fault"))
			} else {
				_, err = c.Version(t.Context())
			}
			if err == nil {
				t.Fatal("call succeeded, want an error")
			}
			t.Logf("error: %v", err)
			if diff := cmp.Diff(tc.want, classify(err)); diff != "" {
				t.Errorf("classification of %v mismatch (-want +got):\n%s", err, diff)
			}
			var ae *topdesk.APIError
			if isAPI := errors.As(err, &ae); isAPI != (tc.wantStatus != 0) || isAPI && ae.StatusCode != tc.wantStatus {
				t.Errorf("err = %v, want an *APIError with status %d: %v", err, tc.wantStatus, isAPI)
			}
			if isAPI := ae != nil; isAPI && len(ae.Messages) == 0 {
				t.Errorf("APIError has no messages; body %q", ae.Body)
			}
			d, ok := topdesk.RetryAfter(err)
			if want := tc.wantRetry; ok != (want[1] > 0) || d < want[0] || d > want[1] {
				t.Errorf("RetryAfter = %v, %v; want between %v and %v", d, ok, want[0], want[1])
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error %q contains the password", err)
			}
			if n := len(sim.Incidents()); n != tc.wantCreate {
				t.Errorf("simulator holds %d incidents, want %d", n, tc.wantCreate)
			}
			if tc.want.OutcomeUnknown && tc.wantCreate > 0 {
				// The caller's recovery: look the incident up before creating again.
				found, err := c.FindIncidents(t.Context(), "alertdesk-fault")
				if err != nil || len(found) != tc.wantCreate {
					t.Errorf("FindIncidents after a lost response = %d incidents, %v; want %d", len(found), err, tc.wantCreate)
				}
			}
			// The fault was used up: the next call succeeds (after a
			// Retry-After, once the client's pause is over:
			// TestRetryAfterPausesTheClient).
			if tc.wantRetry[1] > 0 {
				return
			}
			if _, err := c.Version(t.Context()); err != nil {
				t.Errorf("Version after the fault: %v", err)
			}
		})
	}
}

func TestTimeoutIsNetTimeout(t *testing.T) {
	sim := start(t, topdesktest.Options{})
	c := newClient(t, sim, func(o *topdesk.Options) { o.Timeout = 100 * time.Millisecond })
	sim.Inject(topdesktest.Fault{Delay: 5 * time.Second, Count: 1})
	_, err := c.Version(t.Context())
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("err = %v, want a net.Error that timed out", err)
	}
	if !topdesk.IsRetryable(err) {
		t.Errorf("timeout %v is not retryable", err)
	}
}

func TestContextErrors(t *testing.T) {
	sim := start(t, topdesktest.Options{})
	c := newClient(t, sim, nil)

	t.Run("cancelled before the call", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		sim.ResetRequests()
		_, err := c.CreateIncident(ctx, basicRequest("alertdesk-ctx"))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if topdesk.IsRetryable(err) || topdesk.IsOutcomeUnknown(err) {
			t.Errorf("cancelled call classified %+v, want neither retryable nor unknown", classify(err))
		}
		if n := len(sim.Requests()); n != 0 {
			t.Errorf("simulator saw %d requests, want 0", n)
		}
	})
	t.Run("deadline while waiting", func(t *testing.T) {
		sim.Inject(topdesktest.Fault{Delay: 5 * time.Second, Count: 1})
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, err := c.CreateIncident(ctx, basicRequest("alertdesk-ctx"))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
		if !topdesk.IsRetryable(err) || !topdesk.IsOutcomeUnknown(err) {
			t.Errorf("deadline on a sent create classified %+v, want retryable and outcome unknown", classify(err))
		}
	})
	t.Run("cause is kept", func(t *testing.T) {
		cause := errors.New("shutting down")
		ctx, cancel := context.WithCancelCause(t.Context())
		cancel(cause)
		_, err := c.Version(ctx)
		if !errors.Is(err, context.Canceled) || !errors.Is(err, cause) {
			t.Errorf("err = %v, want context.Canceled with its cause", err)
		}
	})
}

func TestAuthErrors(t *testing.T) {
	sim := start(t, topdesktest.Options{ReadOnlyUsers: map[string]string{"reader": "reader-pw"}})
	tests := []struct {
		name   string
		user   string
		pass   string
		write  bool
		status int
	}{
		{"wrong password", user, "wrong-password-123", false, http.StatusUnauthorized},
		{"unknown user", "nobody", password, false, http.StatusUnauthorized},
		{"read-only user writes", "reader", "reader-pw", true, http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := topdesk.NewClient(sim.URL(), topdesk.Options{Username: tc.user, Password: tc.pass})
			if err != nil {
				t.Fatal(err)
			}
			if tc.write {
				_, err = c.CreateIncident(t.Context(), basicRequest("alertdesk-auth"))
			} else {
				_, err = c.Version(t.Context())
			}
			var ae *topdesk.APIError
			if !errors.As(err, &ae) || ae.StatusCode != tc.status {
				t.Fatalf("err = %v, want an *APIError with status %d", err, tc.status)
			}
			if diff := cmp.Diff(errorClass{Auth: true}, classify(err)); diff != "" {
				t.Errorf("classification mismatch (-want +got):\n%s", diff)
			}
			if strings.Contains(err.Error(), tc.pass) || strings.Contains(ae.Body, tc.pass) {
				t.Errorf("error %q contains the password", err)
			}
		})
	}

	t.Run("rotated password", func(t *testing.T) {
		c := newClient(t, sim, nil)
		if _, err := c.Version(t.Context()); err != nil {
			t.Fatalf("Version: %v", err)
		}
		sim.SetCredentials(user, "rotated-password")
		t.Cleanup(func() { sim.SetCredentials(user, password) })
		if _, err := c.Version(t.Context()); !topdesk.IsAuth(err) {
			t.Errorf("after rotation err = %v, want an auth error", err)
		}
	})
}

func TestRejectedBySimulator(t *testing.T) {
	sim := start(t, topdesktest.Options{})
	c := newClient(t, sim, nil)
	in := basicRequest("alertdesk-rejected")
	in.Category = &topdesk.Ref{Name: "No such category"}
	_, err := c.CreateIncident(t.Context(), in)
	var ae *topdesk.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest {
		t.Fatalf("err = %v, want a 400 *APIError", err)
	}
	if len(ae.Messages) == 0 || !strings.Contains(err.Error(), ae.Messages[0]) {
		t.Errorf("APIError messages %q not parsed or not in %q", ae.Messages, err)
	}
	if ae.Method != http.MethodPost || ae.Path != "/tas/api/incidents" {
		t.Errorf("APIError method/path = %s %s, want POST /tas/api/incidents", ae.Method, ae.Path)
	}
	if diff := cmp.Diff(errorClass{Rejected: true}, classify(err)); diff != "" {
		t.Errorf("classification mismatch (-want +got):\n%s", diff)
	}
}

func TestValidationBeforeAnyRequest(t *testing.T) {
	sim := start(t, topdesktest.Options{})
	c := newClient(t, sim, nil)
	tests := []struct {
		name      string
		in        *topdesk.IncidentRequest
		wantLimit *topdesk.LimitError
	}{
		{"brief description", &topdesk.IncidentRequest{BriefDescription: strings.Repeat("ü", 81)},
			&topdesk.LimitError{Field: "briefDescription", Length: 81, Max: 80}},
		{"external number", &topdesk.IncidentRequest{ExternalNumber: strings.Repeat("x", 61)},
			&topdesk.LimitError{Field: "externalNumber", Length: 61, Max: 60}},
		{"caller name", &topdesk.IncidentRequest{Caller: &topdesk.Caller{DynamicName: strings.Repeat("x", 110)}},
			&topdesk.LimitError{Field: "caller.dynamicName", Length: 110, Max: 109}},
		{"caller lookup with two keys", &topdesk.IncidentRequest{CallerLookup: &topdesk.CallerLookup{ID: "x", Email: "y@z"}}, nil},
		{"caller and caller lookup", &topdesk.IncidentRequest{
			CallerLookup: &topdesk.CallerLookup{Email: "y@z"}, Caller: &topdesk.Caller{DynamicName: "x"}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim.ResetRequests()
			_, createErr := c.CreateIncident(t.Context(), tc.in)
			_, updateErr := c.UpdateIncident(t.Context(), "00000000-0000-4000-8000-000000000000", tc.in)
			for _, err := range []error{createErr, updateErr} {
				if !topdesk.IsRejected(err) || topdesk.IsRetryable(err) {
					t.Errorf("err = %v, want a rejection", err)
				}
				var le *topdesk.LimitError
				var ve *topdesk.ValidationError
				switch {
				case tc.wantLimit != nil && errors.As(err, &le):
					if diff := cmp.Diff(tc.wantLimit, le); diff != "" {
						t.Errorf("LimitError mismatch (-want +got):\n%s", diff)
					}
				case tc.wantLimit == nil && errors.As(err, &ve):
				default:
					t.Errorf("err = %#v, want a *LimitError (%v) or *ValidationError", err, tc.wantLimit)
				}
			}
			if n := len(sim.Requests()); n != 0 {
				t.Errorf("simulator saw %d requests, want none", n)
			}
		})
	}
	sim.ResetRequests()
	if _, err := c.UpdateIncident(t.Context(), "x", &topdesk.IncidentRequest{Status: "secondLine"}); !topdesk.IsRejected(err) {
		t.Errorf("update with status: err = %v, want a rejection", err)
	}
	if n := len(sim.Requests()); n != 0 {
		t.Errorf("simulator saw %d requests, want none", n)
	}
}

func TestRateLimit(t *testing.T) {
	sim := start(t, topdesktest.Options{})
	const rps = 20
	c := newClient(t, sim, func(o *topdesk.Options) { o.RateLimit = rps })
	began := time.Now()
	const calls = rps + 6 // the burst (20) is free; 6 more take 6/20 s
	for range calls {
		if _, err := c.Version(t.Context()); err != nil {
			t.Fatalf("Version: %v", err)
		}
	}
	if elapsed, minimum := time.Since(began), 250*time.Millisecond; elapsed < minimum {
		t.Errorf("%d calls at %d/s took %v, want at least %v", calls, rps, elapsed, minimum)
	}

	slow := newClient(t, sim, func(o *topdesk.Options) { o.RateLimit = 0.1 })
	if _, err := slow.Version(t.Context()); err != nil {
		t.Fatalf("first call: %v", err)
	}
	sim.ResetRequests()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, err := slow.Version(ctx) // the next token is 10 s away
	if !errors.Is(err, context.DeadlineExceeded) || !topdesk.IsRetryable(err) {
		t.Errorf("err = %v, want a retryable deadline error", err)
	}
	if n := len(sim.Requests()); n != 0 {
		t.Errorf("simulator saw %d requests, want none", n)
	}
}

func TestConcurrentCreates(t *testing.T) {
	sim := start(t, topdesktest.Options{})
	c := newClient(t, sim, nil)
	var wg sync.WaitGroup
	const n = 32
	for i := range n {
		wg.Go(func() {
			if _, err := c.CreateIncident(t.Context(), basicRequest(fmt.Sprintf("alertdesk-conc-%d", i))); err != nil {
				t.Errorf("CreateIncident %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if got := len(sim.Incidents()); got != n {
		t.Errorf("simulator holds %d incidents, want %d", got, n)
	}
}

func TestListIncidentsByPrefix(t *testing.T) {
	sim := start(t, topdesktest.Options{})
	c := newClient(t, sim, nil)
	for _, ext := range []string{"alertdesk-aaa", "alertdesk-bbb", "other-ccc"} {
		if _, err := c.CreateIncident(t.Context(), &topdesk.IncidentRequest{
			Caller: &topdesk.Caller{DynamicName: "test"}, BriefDescription: ext, ExternalNumber: ext,
		}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.ListIncidentsByPrefix(t.Context(), "alertdesk-")
	if err != nil {
		t.Fatal(err)
	}
	var exts []string
	for _, inc := range got {
		exts = append(exts, inc.ExternalNumber)
	}
	slices.Sort(exts)
	if want := []string{"alertdesk-aaa", "alertdesk-bbb"}; !slices.Equal(exts, want) {
		t.Fatalf("got %v, want %v", exts, want)
	}

	old := start(t, topdesktest.Options{DisableFIQL: true})
	if _, err := newClient(t, old, nil).ListIncidentsByPrefix(t.Context(), "alertdesk-"); !topdesk.IsRejected(err) {
		t.Fatalf("without FIQL: got %v, want a rejected error", err)
	}
}

// A client with more requests in flight than the default pool keeps its
// connections: a second wave of as many concurrent requests dials nothing.
func TestConnectionsFollowConcurrency(t *testing.T) {
	const n = 100
	var mu sync.Mutex
	dials := 0
	arrived := make(chan struct{}, n)
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"id":"b7a2c1f0-0000-4000-8000-000000000001","number":"I 2611 001"}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			dials++
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := topdesk.NewClient(srv.URL, topdesk.Options{Username: user, Password: password, Concurrency: n})
	if err != nil {
		t.Fatal(err)
	}
	for wave := range 2 {
		release = make(chan struct{})
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				if _, err := c.CreateIncident(t.Context(), &topdesk.IncidentRequest{BriefDescription: "x"}); err != nil {
					t.Errorf("wave %d: %v", wave, err)
				}
			})
		}
		for range n { // all n in flight at once
			<-arrived
		}
		close(release)
		wg.Wait()
	}
	mu.Lock()
	defer mu.Unlock()
	if dials != n {
		t.Fatalf("%d connections for two waves of %d concurrent requests, want %d", dials, n, n)
	}
}
