package topdesk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		value  string
		want   time.Duration
		wantOK bool
	}{
		{"seconds", "2", 2 * time.Second, true},
		{"seconds with spaces", " 120 ", 2 * time.Minute, true},
		{"zero", "0", 0, true},
		{"negative", "-1", 0, false},
		{"huge", "99999999999999", time.Duration(1<<63 - 1), true},
		{"http date", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{"rfc850 date", now.Add(time.Hour).Format("Monday, 02-Jan-06 15:04:05 GMT"), time.Hour, true},
		{"past date", now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"empty", "", 0, false},
		{"garbage", "soon", 0, false},
		{"fraction", "1.5", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseRetryAfter(tc.value, now)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.value, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestParseMessages(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string
	}{
		{"incident api array", `[{"message":"Error parsing query"}]`, []string{"Error parsing query"}},
		{"array with extra keys", `[{"message":"a","field":"x"},{"message":"b"},{"other":1}]`, []string{"a", "b"}},
		{"services api", `{"errors":[{"errorCode":"E1","errorMessage":"bad"},{"errorMessage":"worse"},{"errorCode":"E3"}]}`,
			[]string{"E1: bad", "worse", "E3"}},
		{"single object", `{"message":"nope"}`, []string{"nope"}},
		{"plain text", "  Service\n\n Unavailable  ", []string{"Service Unavailable"}},
		{"html", "<html><body>Bad gateway</body></html>", []string{"<html><body>Bad gateway</body></html>"}},
		{"broken json falls back to text", `[{"message":`, []string{`[{"message":`}},
		{"empty", "  ", nil},
		{"empty array", "[]", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := parseMessages([]byte(tc.body))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parseMessages(%q) mismatch (-want +got):\n%s", tc.body, diff)
			}
		})
	}
	long := strings.Repeat("x", 2000)
	if got := parseMessages([]byte(long)); len([]rune(got[0])) != 501 {
		t.Errorf("raw text message has %d runes, want 500 plus the ellipsis", len([]rune(got[0])))
	}
}

func TestAPIErrorText(t *testing.T) {
	tests := []struct {
		name string
		err  *APIError
		want string
	}{
		{"messages", &APIError{StatusCode: 400, Method: "POST", Path: "/tas/api/incidents", Messages: []string{"a", "b"}},
			"topdesk: POST /tas/api/incidents: 400 Bad Request: a; b"},
		{"auth hint", &APIError{StatusCode: 401, Method: "GET", Path: "/tas/api/version"},
			"topdesk: GET /tas/api/version: 401 Unauthorized (check the operator login name and application password)"},
		{"retry after", &APIError{StatusCode: 429, Method: "GET", Path: "/p", RetryAfter: 2 * time.Second},
			"topdesk: GET /p: 429 Too Many Requests (retry after 2s)"},
		{"many messages", &APIError{StatusCode: 400, Method: "GET", Path: "/p", Messages: []string{"1", "2", "3", "4", "5"}},
			"topdesk: GET /p: 400 Bad Request: 1; 2; 3; and 2 more"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

// timeoutErr is a net.Error that timed out.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

func TestClassification(t *testing.T) {
	type want struct{ retryable, auth, notFound, rejected, unknown bool }
	post := func(sent bool, err error) error {
		return &requestError{Method: "POST", Path: "/p", Sent: sent, Err: err}
	}
	get := func(err error) error { return &requestError{Method: "GET", Path: "/p", Err: err} }
	api := func(method string, code int) error { return &APIError{StatusCode: code, Method: method, Path: "/p"} }
	tests := []struct {
		name string
		err  error
		want want
	}{
		{"nil", nil, want{}},
		{"500 on GET", api("GET", 500), want{retryable: true}},
		{"503 on POST", api("POST", 503), want{retryable: true, unknown: true}},
		{"502 on PATCH", api("PATCH", 502), want{retryable: true, unknown: true}},
		{"429", api("POST", 429), want{retryable: true}},
		{"408", api("GET", 408), want{retryable: true}},
		{"401", api("GET", 401), want{auth: true}},
		{"403", api("POST", 403), want{auth: true}},
		{"404", api("GET", 404), want{notFound: true, rejected: true}},
		{"400", api("POST", 400), want{rejected: true}},
		{"409", api("POST", 409), want{rejected: true}},
		{"wrapped 400", fmt.Errorf("create: %w", api("POST", 400)), want{rejected: true}},
		{"limit", &LimitError{Field: "briefDescription", Length: 81, Max: 80}, want{rejected: true}},
		{"validation", &ValidationError{Field: "callerLookup", Reason: "x"}, want{rejected: true}},
		{"name", &NameError{Field: FieldCategory, Value: "x"}, want{rejected: true}},
		{"conn refused", get(&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), want{retryable: true}},
		{"reset after send", post(true, syscall.ECONNRESET), want{retryable: true, unknown: true}},
		{"EOF after send", post(true, io.EOF), want{retryable: true, unknown: true}},
		{"unexpected EOF", post(true, io.ErrUnexpectedEOF), want{retryable: true, unknown: true}},
		{"timeout after send", post(true, timeoutErr{}), want{retryable: true, unknown: true}},
		{"timeout before send", post(false, timeoutErr{}), want{retryable: true}},
		{"deadline", post(true, context.DeadlineExceeded), want{retryable: true, unknown: true}},
		{"caller cancelled", post(true, context.Canceled), want{unknown: true}},
		{"cancelled GET", get(context.Canceled), want{}},
		{"decode error", post(true, errors.New("decode 201 response: invalid character")), want{unknown: true}},
		{"unrelated", errors.New("boom"), want{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := want{IsRetryable(tc.err), IsAuth(tc.err), IsNotFound(tc.err), IsRejected(tc.err), IsOutcomeUnknown(tc.err)}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("classification of %v mismatch (-want +got):\n%s", tc.err, diff)
			}
		})
	}
}

func TestRetryAfterFromError(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		want   time.Duration
		wantOK bool
	}{
		{"set", fmt.Errorf("x: %w", &APIError{StatusCode: 429, RetryAfter: 3 * time.Second}), 3 * time.Second, true},
		{"absent", &APIError{StatusCode: 503}, 0, false},
		{"not an api error", io.EOF, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := RetryAfter(tc.err)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("RetryAfter() = %v, %v; want %v, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	long := func(n int) string { return strings.Repeat("é", n) } // 2 bytes, 1 character each
	tests := []struct {
		name       string
		in         *IncidentRequest
		wantLimits []LimitError
		wantFields []string // ValidationError fields
	}{
		{"ok", &IncidentRequest{BriefDescription: long(80), ExternalNumber: long(60),
			Caller: &Caller{DynamicName: long(109), Email: long(100), PhoneNumber: long(25)}}, nil, nil},
		{"too long", &IncidentRequest{BriefDescription: long(81), ExternalNumber: long(61),
			Caller: &Caller{DynamicName: long(110), Email: long(101), PhoneNumber: long(26)}},
			[]LimitError{{"briefDescription", 81, 80}, {"externalNumber", 61, 60}, {"caller.dynamicName", 110, 109},
				{"caller.email", 101, 100}, {"caller.phoneNumber", 26, 25}}, nil},
		{"empty callerLookup", &IncidentRequest{CallerLookup: &CallerLookup{}}, nil, []string{"callerLookup"}},
		{"two keys", &IncidentRequest{CallerLookup: &CallerLookup{ID: "x", Email: "a@b"}}, nil, []string{"callerLookup"}},
		{"caller and lookup", &IncidentRequest{CallerLookup: &CallerLookup{Email: "a@b"}, Caller: &Caller{DynamicName: "x"}},
			nil, []string{"caller"}},
		{"bad status", &IncidentRequest{Status: "thirdLine"}, nil, []string{"status"}},
		{"good status", &IncidentRequest{Status: "secondLine"}, nil, nil},
		{"nil", nil, nil, []string{"request"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.in.Validate()
			var limits []LimitError
			var fields []string
			for _, e := range unjoin(err) {
				var le *LimitError
				var ve *ValidationError
				switch {
				case errors.As(e, &le):
					limits = append(limits, *le)
				case errors.As(e, &ve):
					fields = append(fields, ve.Field)
				default:
					t.Errorf("unexpected error type %T: %v", e, e)
				}
			}
			if diff := cmp.Diff(tc.wantLimits, limits); diff != "" {
				t.Errorf("limit errors mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantFields, fields); diff != "" {
				t.Errorf("validation errors mismatch (-want +got):\n%s", diff)
			}
			if (err != nil) != IsRejected(err) {
				t.Errorf("IsRejected(%v) = %v", err, IsRejected(err))
			}
		})
	}
	if err := (&IncidentRequest{Status: "firstLine"}).validateUpdate(); !IsRejected(err) {
		t.Errorf("validateUpdate with status = %v, want a rejection", err)
	}
}

func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestNearest(t *testing.T) {
	names := []string{"Infrastructure", "Inventory", "Applications", "Databases", "Network", "Hardware"}
	tests := []struct {
		value string
		want  []string
	}{
		{"Infrastucture", []string{"Infrastructure", "Inventory"}},
		{"infrastructure ", []string{"Infrastructure", "Inventory"}},
		{"Databse", []string{"Databases"}},
		{"NET", []string{"Network"}},
		{"Zzz", nil},
		{"Applicatoins", []string{"Applications"}},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, nearest(tc.value, names)); diff != "" {
				t.Errorf("nearest(%q) mismatch (-want +got):\n%s", tc.value, diff)
			}
		})
	}
	many := []string{"P1", "P2", "P3", "P4", "P5"}
	if got := nearest("P9", many); len(got) != maxNearest {
		t.Errorf("nearest returned %d names, want at most %d: %q", len(got), maxNearest, got)
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"infrastucture", "infrastructure", 1}, {"é", "e", 1},
	}
	for _, tc := range tests {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestNameErrorText(t *testing.T) {
	tests := []struct {
		name string
		err  *NameError
		want string
	}{
		{"nearest", &NameError{Field: FieldCategory, Value: "Infrastucture", Nearest: []string{"Infrastructure", "Inventory"}},
			`category "Infrastucture" not found in TOPdesk (nearest: "Infrastructure", "Inventory")`},
		{"no nearest", &NameError{Field: FieldCallerEmail, Value: "x@y"}, `callerLookup.email "x@y" not found in TOPdesk`},
		{"in category", &NameError{Field: FieldSubcategory, Value: "Srv", Category: "Databases"},
			`subcategory "Srv" not found in category "Databases" in TOPdesk`},
		{"ambiguous subcategory", &NameError{Field: FieldSubcategory, Value: "Other", Ambiguous: true, Candidates: []string{"A", "B"}},
			`subcategory "Other" is ambiguous in TOPdesk: it exists in categories "A", "B"; name the category as well`},
		{"duplicate names", &NameError{Field: FieldOperatorGroup, Value: "Ops", Ambiguous: true, Candidates: []string{"Ops (1)", "Ops (2)"}},
			`operatorGroup "Ops" is ambiguous in TOPdesk (candidates: "Ops (1)", "Ops (2)")`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	opts := []Option{{"1", "P1"}, {"2", "p2"}, {"3", "Dup"}, {"4", "Dup"}, {"5", "ops"}, {"6", "OPS"}}
	tests := []struct {
		name          string
		value         string
		want          string
		wantAmbiguous bool
		wantErr       bool
	}{
		{"exact", "P1", "1", false, false},
		{"case-insensitive", "P2", "2", false, false},
		{"duplicate", "Dup", "", true, true},
		{"exact wins over fold", "ops", "5", false, false},
		{"fold ambiguous", "Ops", "", true, true},
		{"unknown", "P9", "", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := match(NameRef{Field: FieldPriority, Name: tc.value}, opts)
			if got != tc.want {
				t.Errorf("match(%q) = %q, want %q", tc.value, got, tc.want)
			}
			var ne *NameError
			if (err != nil) != tc.wantErr || err != nil && (!errors.As(err, &ne) || ne.Ambiguous != tc.wantAmbiguous) {
				t.Errorf("match(%q) error = %v, want error %v ambiguous %v", tc.value, err, tc.wantErr, tc.wantAmbiguous)
			}
		})
	}
}

func TestFIQLQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alertdesk-0123", `'alertdesk-0123'`},
		{"a b", `'a b'`},
		{`it's`, `'it\'s'`},
		{`back\slash`, `'back\\slash'`},
		{`"dq";x==y`, `'"dq";x==y'`},
	}
	for _, tc := range tests {
		if got := fiqlQuote(tc.in); got != tc.want {
			t.Errorf("fiqlQuote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestEncodeQuery(t *testing.T) {
	got := encodeQuery([]param{{"query", "externalNumber=='a b&c+d'"}, {"all", "true"}})
	want := "query=externalNumber%3D%3D%27a%20b%26c%2Bd%27&all=true"
	if got != want {
		t.Errorf("encodeQuery = %q, want %q", got, want)
	}
}

func TestEndpointEscaping(t *testing.T) {
	tests := []struct {
		base, want string
	}{
		{"https://td.example.net", "https://td.example.net/tas/api/incidents/number/I%202611%20001"},
		{"https://td.example.net/", "https://td.example.net/tas/api/incidents/number/I%202611%20001"},
		{"https://td.example.net/tas/api/", "https://td.example.net/tas/api/incidents/number/I%202611%20001"},
		{"http://proxy:8080/topdesk", "http://proxy:8080/topdesk/tas/api/incidents/number/I%202611%20001"},
	}
	for _, tc := range tests {
		c, err := NewClient(tc.base, Options{Username: "u", Password: "p"})
		if err != nil {
			t.Fatalf("NewClient(%q): %v", tc.base, err)
		}
		if got := c.endpoint("/incidents/number", "I 2611 001").String(); got != tc.want {
			t.Errorf("endpoint with base %q = %q, want %q", tc.base, got, tc.want)
		}
	}
	c, err := NewClient("https://td.example.net", Options{Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.endpoint("/incidents/id", "a/b?c").EscapedPath(), "/tas/api/incidents/id/a%2Fb%3Fc"; got != want {
		t.Errorf("escaped path = %q, want %q", got, want)
	}
}

func TestFlightCacheSharesOneFetch(t *testing.T) {
	var c flightCache[string, int]
	var calls atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{})
	var once sync.Once
	fetch := func(context.Context) (int, error) {
		calls.Add(1)
		once.Do(func() { close(started) })
		<-release
		return 42, nil
	}
	var wg sync.WaitGroup
	results := make(chan int, 8)
	for range 8 {
		wg.Go(func() {
			v, err := c.get(t.Context(), "k", fetch)
			if err != nil {
				t.Errorf("get: %v", err)
			}
			results <- v
		})
	}
	// Release the fetch only once it is under way.
	<-started
	close(release)
	wg.Wait()
	close(results)
	for v := range results {
		if v != 42 {
			t.Errorf("get = %d, want 42", v)
		}
	}
	if v, err := c.get(t.Context(), "k", func(context.Context) (int, error) { return 0, errors.New("not cached") }); v != 42 || err != nil {
		t.Errorf("cached get = %d, %v; want 42, nil", v, err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("fetch ran %d times, want 1", n)
	}

	// Failures are not cached.
	boom := errors.New("boom")
	if _, err := c.get(t.Context(), "e", func(context.Context) (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Errorf("get = %v, want boom", err)
	}
	if v, err := c.get(t.Context(), "e", func(context.Context) (int, error) { return 7, nil }); v != 7 || err != nil {
		t.Errorf("get after failure = %d, %v; want 7, nil", v, err)
	}
}

func TestNewClientValidation(t *testing.T) {
	ok := Options{Username: "u", Password: "s3cret-app-pw"}
	tests := []struct {
		name string
		url  string
		opts Options
	}{
		{"bad scheme", "ftp://x", ok},
		{"no host", "https://", ok},
		{"user info", "https://u:s3cret-app-pw@x", ok},
		{"query", "https://x/?a=b", ok},
		{"fragment", "https://x/#f", ok},
		{"unparsable", "https://x\x7f:s3cret-app-pw", ok},
		{"no user", "https://x", Options{Password: "p"}},
		{"no password", "https://x", Options{Username: "u"}},
		{"negative timeout", "https://x", Options{Username: "u", Password: "p", Timeout: -time.Second}},
		{"negative rate", "https://x", Options{Username: "u", Password: "p", RateLimit: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewClient(tc.url, tc.opts)
			if err == nil {
				t.Fatalf("NewClient(%q) = %v, want an error", tc.url, c)
			}
			if strings.Contains(err.Error(), "s3cret-app-pw") {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}

func TestSecretsNotPrinted(t *testing.T) {
	opts := Options{Username: "alertdesk", Password: "s3cret-app-pw", RateLimit: 5}
	c, err := NewClient("https://td.example.net", opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		opts.String(), fmt.Sprintf("%v", opts), fmt.Sprintf("%+v", opts), fmt.Sprintf("%#v", opts),
		c.String(), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c),
	} {
		if strings.Contains(s, "s3cret-app-pw") || strings.Contains(s, "czNjcmV0") || strings.Contains(s, "YWxlcnRkZXNrOnMzY3JldC1hcHAtcHc") {
			t.Errorf("printed form %q contains the password", s)
		}
	}
	if !strings.Contains(opts.String(), "<redacted>") {
		t.Errorf("Options.String() = %q, want the password shown as <redacted>", opts.String())
	}
}
