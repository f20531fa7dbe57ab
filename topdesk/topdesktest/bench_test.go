//go:build unix

// The benchmarks report the process's CPU time per request (cpu-ns/op) next
// to the wall time, because on a shared machine the wall time mostly shows
// the other load; reading the CPU time needs getrusage, hence unix only.

package topdesktest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

// benchIncidents is how many incidents the update, get and find benchmarks
// cycle through.
const benchIncidents = 1000

// benchCreateBody is a create request like the ones alertdesk sends (the
// alertmanager example of mapping/testdata, with the operator group
// resolved to its id as the client does), with externalNumber n.
func benchCreateBody(n int) string {
	return `{"caller":{"dynamicName":"Monitoring (alertmanager)"},` +
		`"briefDescription":"sw-core-1:161: Port Gi1/0/24 down on sw-core-1",` +
		`"request":"<b>Port Gi1/0/24 down on sw-core-1</b><br><br>ifOperStatus is down since 5 minutes.<br><br>Severity: WARNING<br>Source: alertmanager<br>Graph: <a href=\"http://prometheus:9090/graph?g0.expr=ifOperStatus&#43;%3D%3D&#43;2\">http://prometheus:9090/graph?g0.expr=ifOperStatus&#43;%3D%3D&#43;2</a><br>Labels: alertname=SwitchPortDown, instance=sw-core-1:161, severity=warning, team=network<br><br>Alert key: 5f1a2b3c4d5e6f70",` +
		`"entryType":{"name":"Monitoring"},"category":{"name":"Infrastructure"},"subcategory":{"name":"Network"},` +
		fmt.Sprintf(`"externalNumber":"alertdesk-%032x",`, n) +
		`"priority":{"name":"P3"},"operatorGroup":{"id":"` + stableUUID("operatorGroups//Network") + `"},"processingStatus":{"name":"Logged"}}`
}

// benchUpdateBody is an update like the one alertdesk sends when an alert
// changes.
const benchUpdateBody = `{"briefDescription":"sw-core-1:161: Port Gi1/0/24 down on sw-core-1",` +
	`"action":"Alert changed: Port Gi1/0/24 down on sw-core-1 (severity warning)","actionInvisibleForCaller":true,"priority":{"name":"P3"}}`

// benchFindPath is the search FindIncidents sends for externalNumber n.
func benchFindPath(n int) string {
	q := url.Values{}
	q.Set("query", fmt.Sprintf("externalNumber=='alertdesk-%032x'", n))
	q.Set("all", "true")
	q.Set("fields", "id,number,status,briefDescription,externalNumber,closed,closedDate,completed,completedDate,"+
		"creationDate,modificationDate,processingStatus,priority,category,subcategory,operatorGroup")
	return "/tas/api/incidents?" + q.Encode()
}

// benchTarget sends requests to a Sim: over real HTTP to Start's server, or
// straight to its ServeHTTP, which leaves out net/http and shows the
// simulator's own cost.
type benchTarget struct {
	name string
	do   func(b *testing.B, s *Sim, method, path, body string) int
}

func benchTargets(tr *http.Transport) []benchTarget {
	return []benchTarget{
		{"http", func(b *testing.B, s *Sim, method, path, body string) int {
			req, err := http.NewRequestWithContext(b.Context(), method, s.URL()+path, strings.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			req.SetBasicAuth(DefaultUsername, DefaultPassword)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			defer resp.Body.Close()
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				b.Fatal(err)
			}
			return resp.StatusCode
		}},
		{"handler", func(b *testing.B, s *Sim, method, path, body string) int {
			req := httptest.NewRequestWithContext(b.Context(), method, path, strings.NewReader(body))
			req.SetBasicAuth(DefaultUsername, DefaultPassword)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			return rec.Code
		}},
	}
}

// benchSim starts a Sim with n incidents created by benchCreateBody(0..n-1).
func benchSim(b *testing.B, tg benchTarget, n int) *Sim {
	b.Helper()
	s := Start(b, Options{MaxRequests: 1000, Now: func() time.Time { return time.Date(2026, 11, 5, 10, 30, 0, 0, time.UTC) }})
	for i := range n {
		if st := tg.do(b, s, http.MethodPost, "/tas/api/incidents", benchCreateBody(i)); st != http.StatusCreated {
			b.Fatalf("create %d: status %d", i, st)
		}
	}
	return s
}

// runBench runs req(i) for each iteration against each target and checks
// the status.
func runBench(b *testing.B, setup int, want int, req func(i int) (method, path, body string)) {
	tr := &http.Transport{}
	b.Cleanup(tr.CloseIdleConnections)
	for _, tg := range benchTargets(tr) {
		b.Run(tg.name, func(b *testing.B) {
			s := benchSim(b, tg, setup)
			b.ReportAllocs()
			start := processCPU(b)
			n := 0
			for ; b.Loop(); n++ {
				method, path, body := req(n)
				if st := tg.do(b, s, method, path, body); st != want {
					b.Fatalf("%s %s: status %d, want %d", method, path, st, want)
				}
			}
			b.ReportMetric(float64(processCPU(b)-start)/float64(n), "cpu-ns/op")
		})
	}
}

// processCPU is the user and system CPU time the process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSimCreate measures POST /tas/api/incidents with a typical
// alertdesk body.
func BenchmarkSimCreate(b *testing.B) {
	runBench(b, 0, http.StatusCreated, func(i int) (string, string, string) {
		return http.MethodPost, "/tas/api/incidents", benchCreateBody(benchIncidents + i)
	})
}

// BenchmarkSimUpdate measures PATCH /tas/api/incidents/number/{number}
// with a typical alertdesk update, over benchIncidents incidents.
func BenchmarkSimUpdate(b *testing.B) {
	runBench(b, benchIncidents, http.StatusOK, func(i int) (string, string, string) {
		return http.MethodPatch, "/tas/api/incidents/number/" + url.PathEscape(fmt.Sprintf("I 2611 %03d", 1+i%benchIncidents)), benchUpdateBody
	})
}

// BenchmarkSimGet measures GET /tas/api/incidents/number/{number} (the
// full read model).
func BenchmarkSimGet(b *testing.B) {
	runBench(b, benchIncidents, http.StatusOK, func(i int) (string, string, string) {
		return http.MethodGet, "/tas/api/incidents/number/" + url.PathEscape(fmt.Sprintf("I 2611 %03d", 1+i%benchIncidents)), ""
	})
}

// BenchmarkSimFind measures the FIQL search by externalNumber that
// FindIncidents sends (query, all=true and fields).
func BenchmarkSimFind(b *testing.B) {
	runBench(b, benchIncidents, http.StatusOK, func(i int) (string, string, string) {
		return http.MethodGet, benchFindPath(i % benchIncidents), ""
	})
}
