package topdesk

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// cannedTransport answers every request with one fixed response, so that a
// benchmark measures the client's own work.
type cannedTransport struct {
	status int
	body   string
}

func (c cannedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		_ = req.Body.Close()
	}
	return &http.Response{
		StatusCode: c.status,
		Header:     http.Header{"Content-Type": []string{"application/json"}},
		Body:       io.NopCloser(strings.NewReader(c.body)),
		Request:    req,
	}, nil
}

const benchIncident = `{"id":"0b2c6a5e-7f60-4c1e-9c0e-3d2f1a9b8c7d","number":"I 2611 001","status":"firstLine",` +
	`"briefDescription":"Disk / at 97% on db-7","externalNumber":"alertdesk-5d41402abc4b2a76b9719d911017c592",` +
	`"closed":false,"completed":false,"creationDate":"2026-11-22T10:00:00.000+0000",` +
	`"priority":{"id":"1b2c6a5e-7f60-4c1e-9c0e-3d2f1a9b8c7d","name":"P1"}}`

func benchClient(b *testing.B, status int, body string) *Client {
	b.Helper()
	c, err := NewClient("https://td.example.net", Options{Username: "u", Password: "p", Transport: cannedTransport{status, body}})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func BenchmarkCreateIncident(b *testing.B) {
	c := benchClient(b, http.StatusCreated, benchIncident)
	in := &IncidentRequest{
		Caller:           &Caller{DynamicName: "Monitoring"},
		BriefDescription: "Disk / at 97% on db-7",
		Request:          "Free space below 3%.",
		ExternalNumber:   "alertdesk-5d41402abc4b2a76b9719d911017c592",
		Priority:         &Ref{ID: "1b2c6a5e-7f60-4c1e-9c0e-3d2f1a9b8c7d"},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.CreateIncident(b.Context(), in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFindIncidents(b *testing.B) {
	c := benchClient(b, http.StatusOK, "["+benchIncident+"]")
	b.ReportAllocs()
	for b.Loop() {
		found, err := c.FindIncidents(b.Context(), "alertdesk-5d41402abc4b2a76b9719d911017c592")
		if err != nil || len(found) != 1 {
			b.Fatal(found, err)
		}
	}
}
