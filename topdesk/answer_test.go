package topdesk

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"

	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// readModelBody is the simulator's answer to a create: TOPdesk's whole
// incident read model, of which Incident keeps a few fields.
const readModelBody = `{"id":"8cf32ff5-a2ba-4041-b6e8-d8bbddb6cbc7","status":"firstLine","number":"I 2611 001",` +
	`"request":"Free space below 3%.\nHost: db-7\nMount: /",` +
	`"requests":"https://example.topdesk.net/tas/api/incidents/id/8cf32ff5-a2ba-4041-b6e8-d8bbddb6cbc7/requests",` +
	`"action":"https://example.topdesk.net/tas/api/incidents/id/8cf32ff5-a2ba-4041-b6e8-d8bbddb6cbc7/actions",` +
	`"caller":{"dynamicName":"Monitoring","email":"","id":null},"briefDescription":"Disk / at 97% on db-7",` +
	`"externalNumber":"alertdesk-5d41402abc4b2a76b9719d911017c592",` +
	`"category":{"id":"4ca6dcea-bd17-52bf-bc61-020bea9ace8b","name":"Databases"},` +
	`"subcategory":{"id":"22139e76-9132-5df8-aa0a-56f4859ab82d","name":"PostgreSQL"},"callType":null,` +
	`"priority":{"id":"b87f82b5-31bb-569e-8386-86ab0fca4fdc","name":"P1"},"operatorGroup":null,` +
	`"processingStatus":{"id":"0dfefde4-1fec-52a0-8479-cd5e3d62a611","name":"Logged"},"completed":false,` +
	`"completedDate":null,"closed":false,"closedDate":null,"closureCode":null,"timeSpent":0,` +
	`"creationDate":"2026-11-23T14:46:41.252+0000","modificationDate":"2026-11-23T14:46:41.252+0000",` +
	`"partialIncidents":[],"optionalFields1":null,"externalLinks":[]}`

// readModelIncident is what readModelBody decodes to.
func readModelIncident(t testing.TB) Incident {
	t.Helper()
	var created Time
	if err := created.UnmarshalJSON([]byte(`"2026-11-23T14:46:41.252+0000"`)); err != nil {
		t.Fatal(err)
	}
	modified := created
	return Incident{
		ID:               "8cf32ff5-a2ba-4041-b6e8-d8bbddb6cbc7",
		Number:           "I 2611 001",
		Status:           "firstLine",
		BriefDescription: "Disk / at 97% on db-7",
		ExternalNumber:   "alertdesk-5d41402abc4b2a76b9719d911017c592",
		CreationDate:     &created,
		ModificationDate: &modified,
		ProcessingStatus: &Ref{ID: "0dfefde4-1fec-52a0-8479-cd5e3d62a611", Name: "Logged"},
		Priority:         &Ref{ID: "b87f82b5-31bb-569e-8386-86ab0fca4fdc", Name: "P1"},
		Category:         &Ref{ID: "4ca6dcea-bd17-52bf-bc61-020bea9ace8b", Name: "Databases"},
		Subcategory:      &Ref{ID: "22139e76-9132-5df8-aa0a-56f4859ab82d", Name: "PostgreSQL"},
	}
}

// bodyTransport is a fake TOPdesk that answers every request with status
// and a body read from open().
type bodyTransport struct {
	status int
	open   func() io.Reader
}

func (b bodyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_ = req.Body.Close() // a bytes.Reader body cannot fail to close
	}
	return &http.Response{
		StatusCode:    b.status,
		Header:        http.Header{"Content-Type": []string{"application/json"}},
		Body:          io.NopCloser(b.open()),
		ContentLength: -1,
		Request:       req,
	}, nil
}

// TestDecodeErrorsThroughClient checks how the client reports answers that
// do not decode: cut or empty answers are retryable, invalid ones are not,
// and either way a create's outcome is unknown.
func TestDecodeErrorsThroughClient(t *testing.T) {
	text := func(s string) func() io.Reader { return func() io.Reader { return strings.NewReader(s) } }
	tests := []struct {
		name          string
		body          func() io.Reader
		wantErr       error // matched with errors.Is; nil for none
		wantRetryable bool
		wantOffset    int64  // of the *json.SyntaxError or *json.UnmarshalTypeError; -1 for none
		wantText      string // part of the error text
	}{
		{"read model", text(readModelBody), nil, false, -1, ""},
		{"garbage after the incident", text(readModelBody + "\n<html>"), nil, false, -1, ""},
		{"empty", text(""), io.ErrUnexpectedEOF, true, -1, "read 201 response: unexpected EOF"},
		{"cut", text(readModelBody[:1000]), io.ErrUnexpectedEOF, true, -1, "decode 201 response: unexpected EOF"},
		{"connection reset", func() io.Reader {
			return io.MultiReader(strings.NewReader(readModelBody[:1000]), iotest.ErrReader(syscall.ECONNRESET))
		}, syscall.ECONNRESET, true, -1, "decode 201 response: connection reset by peer"},
		{"invalid", text(`{"id":"a",}`), nil, false, 11,
			"decode 201 response: invalid character '}' looking for beginning of object key string"},
		{"wrong type", text(`{"id":"a","closed":"yes"}`), nil, false, 24,
			"decode 201 response: json: cannot unmarshal string into Go struct field Incident.closed of type bool"},
	}
	req := &IncidentRequest{Caller: &Caller{DynamicName: "Monitoring"}, BriefDescription: "Disk full"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewClient("https://td.example.net", Options{Username: "u", Password: "p", Transport: bodyTransport{http.StatusCreated, tc.body}})
			if err != nil {
				t.Fatal(err)
			}
			inc, err := c.CreateIncident(t.Context(), req)
			if tc.wantText == "" {
				if err != nil {
					t.Fatalf("CreateIncident: %v", err)
				}
				if diff := cmp.Diff(readModelIncident(t), *inc); diff != "" {
					t.Errorf("incident mismatch (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil {
				t.Fatalf("CreateIncident succeeded, want an error with %q", tc.wantText)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want one matching %v", err, tc.wantErr)
			}
			var se *json.SyntaxError
			var te *json.UnmarshalTypeError
			offset := int64(-1)
			switch {
			case errors.As(err, &se):
				offset = se.Offset
			case errors.As(err, &te):
				offset = te.Offset
			}
			if offset != tc.wantOffset {
				t.Errorf("err = %v at offset %d, want offset %d", err, offset, tc.wantOffset)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("err = %q, want it to contain %q", err, tc.wantText)
			}
			if got := IsRetryable(err); got != tc.wantRetryable {
				t.Errorf("IsRetryable(%v) = %v, want %v", err, got, tc.wantRetryable)
			}
			if !IsOutcomeUnknown(err) {
				t.Errorf("IsOutcomeUnknown(%v) = false, want true: the create was answered", err)
			}
		})
	}
}

// TestLargeAnswerBounded checks that the client decodes no more than
// maxResponseBody bytes of an answer: a longer one is cut, and retryable.
func TestLargeAnswerBounded(t *testing.T) {
	pad := strings.Repeat(" ", maxResponseBody)
	c, err := NewClient("https://td.example.net", Options{Username: "u", Password: "p",
		Transport: bodyTransport{http.StatusCreated, func() io.Reader { return strings.NewReader(pad + readModelBody) }}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateIncident(t.Context(), &IncidentRequest{Caller: &Caller{DynamicName: "Monitoring"}, BriefDescription: "Disk full"})
	if !errors.Is(err, io.ErrUnexpectedEOF) || !IsRetryable(err) {
		t.Errorf("err = %v, want a retryable unexpected EOF", err)
	}
}

// FuzzClientAnswer points the client at a fake TOPdesk that answers every
// request with the fuzz bytes (201 to a create, 200 to a search), and checks that the
// client returns what encoding/json makes of them, or an error classified
// by what went wrong: a cut or empty answer is retryable, an invalid one is
// not, and a create's outcome is unknown either way. The seeds are the
// simulator's real answers and a few malformed ones.
func FuzzClientAnswer(f *testing.F) {
	for _, b := range simulatorAnswers(f) {
		f.Add(b)
	}
	for _, s := range []string{readModelBody, `{"id":"a",}`, `{"id":"a","closed":"yes"}`, `{"id":"a"`, ``, `null`,
		`[]`, `[null,{"id":"b","externalNumber":"alertdesk-1"}]`, `[{"id":"a"},]`, `[1]`, `{"closedDate":"yesterday"}`,
		"\xef\xbb\xbf{}", `{"id":"\ud83d|\ude00"}`, `[` + strings.Repeat(`[`, 10001)} {
		f.Add([]byte(s))
	}
	// The fake TOPdesk is a RoundTripper rather than an httptest server: the
	// client handles the answer the same way, and each input costs
	// microseconds instead of a round trip over loopback.
	var answer []byte
	open := func() io.Reader { return bytes.NewReader(answer) }
	newClient := func(status int) *Client {
		c, err := NewClient("https://td.example.net", Options{Username: "u", Password: "p", Transport: bodyTransport{status, open}})
		if err != nil {
			f.Fatal(err)
		}
		return c
	}
	creates, searches := newClient(http.StatusCreated), newClient(http.StatusOK)
	req := &IncidentRequest{Caller: &Caller{DynamicName: "Monitoring"}, BriefDescription: "Disk full"}

	f.Fuzz(func(t *testing.T, body []byte) {
		answer = body
		var want Incident
		wantErr := json.NewDecoder(bytes.NewReader(body)).Decode(&want)
		inc, err := creates.CreateIncident(t.Context(), req)
		switch {
		case wantErr == nil && want.ID != "":
			if err != nil {
				t.Fatalf("create answered %q: %v, want the incident", body, err)
			}
			if diff := cmp.Diff(want, *inc); diff != "" {
				t.Errorf("create answered %q (-encoding/json +client):\n%s", body, diff)
			}
		case err == nil:
			t.Fatalf("create answered %q: got %+v, want an error", body, inc)
		default:
			checkAnswerError(t, "create", body, err, wantErr)
		}

		var wantList []Incident
		wantErr = json.NewDecoder(bytes.NewReader(body)).Decode(&wantList)
		list, err := searches.ListIncidentsByPrefix(t.Context(), "alertdesk-")
		if wantErr != nil {
			if err == nil {
				t.Fatalf("search answered %q: got %d incidents, want an error", body, len(list))
			}
			checkAnswerError(t, "search", body, err, wantErr)
			return
		}
		if err != nil {
			t.Fatalf("search answered %q: %v", body, err)
		}
		for _, inc := range list {
			if !strings.HasPrefix(inc.ExternalNumber, "alertdesk-") {
				t.Errorf("search answered %q: kept %+v", body, inc)
			}
		}
	})
}

// checkAnswerError checks the classification of an error for an answer that
// did not decode; wantErr is what encoding/json said about the body.
func checkAnswerError(t *testing.T, op string, body []byte, err, wantErr error) {
	t.Helper()
	cut := wantErr == io.EOF || errors.Is(wantErr, io.ErrUnexpectedEOF)
	if got := IsRetryable(err); got != cut {
		t.Errorf("%s answered %q: IsRetryable(%v) = %v, want %v", op, body, err, got, cut)
	}
	if IsRejected(err) || IsAuth(err) {
		t.Errorf("%s answered %q: %v classified as a rejection", op, body, err)
	}
	if got, want := IsOutcomeUnknown(err), op == "create"; got != want {
		t.Errorf("%s answered %q: IsOutcomeUnknown(%v) = %v, want %v", op, body, err, got, want)
	}
}

// recordingTransport keeps a copy of every response body. It is used from
// one goroutine at a time.
type recordingTransport struct {
	rt     http.RoundTripper
	bodies [][]byte
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	r.bodies = append(r.bodies, b)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

// simulatorAnswers returns the simulator's answers to a create, an update,
// a get, a search and a list.
func simulatorAnswers(tb testing.TB) [][]byte {
	tb.Helper()
	sim := topdesktest.Start(tb, topdesktest.Options{})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	rec := &recordingTransport{rt: tr}
	c, err := NewClient(sim.URL(), Options{Username: topdesktest.DefaultUsername, Password: topdesktest.DefaultPassword, Transport: rec})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := tb.Context()
	inc, err := c.CreateIncident(ctx, &IncidentRequest{
		Caller:           &Caller{DynamicName: "Monitoring"},
		BriefDescription: "Disk / at 97% on db-7",
		Request:          "Free space below 3%.\nHost: db-7 — “prod”",
		ExternalNumber:   "alertdesk-5d41402abc4b2a76b9719d911017c592",
		Priority:         &Ref{Name: "P1"},
		Category:         &Ref{Name: "Databases"},
		Subcategory:      &Ref{Name: "PostgreSQL"},
	})
	if err != nil {
		tb.Fatalf("create: %v", err)
	}
	done := true
	if _, err := c.UpdateIncident(ctx, inc.ID, &IncidentRequest{Action: "Resolved by monitoring.", Completed: &done, Closed: &done}); err != nil {
		tb.Fatalf("update: %v", err)
	}
	if _, err := c.GetIncident(ctx, inc.ID); err != nil {
		tb.Fatalf("get: %v", err)
	}
	if _, err := c.FindIncidents(ctx, inc.ExternalNumber); err != nil {
		tb.Fatalf("find: %v", err)
	}
	if _, err := c.ListIncidentsByPrefix(ctx, "alertdesk-"); err != nil {
		tb.Fatalf("list: %v", err)
	}
	return rec.bodies
}
