package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// BenchmarkDuplicateStorm measures the duplicate path: events of keys whose
// incident exists, same content, through one worker with embedded
// JetStream. b.N events per run, over 1,000 keys.
func BenchmarkDuplicateStorm(b *testing.B) {
	benchmarkStorm(b, func(i int) event {
		return firing(fmt.Sprintf("host-%04d", i%1000), "warning", "disk", time.Unix(0, 0))
	})
}

// BenchmarkCreate measures the create path: a new key per event.
func BenchmarkCreate(b *testing.B) {
	benchmarkStorm(b, func(i int) event {
		return firing(fmt.Sprintf("new-%08d", i), "critical", "disk", time.Unix(0, 0))
	})
}

func benchmarkStorm(b *testing.B, ev func(i int) event) {
	e := newEnv(b, topdesktest.Options{MaxRequests: 1000})
	rw := e.startWorker(fastOptions())
	wait.For(e.t, 10*time.Second, "reconciled", func() bool { return rw.w.reconciled(b.Context()) })
	// Warm up: every key of the storm once.
	for i := range 1000 {
		e.publishAsync(ev(i))
	}
	e.waitSettled(60 * time.Second)
	b.ResetTimer()
	for i := range b.N {
		e.publishAsync(ev(i))
	}
	e.waitSettled(10 * time.Minute)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func (e *testEnv) publishAsync(ev event) {
	b, err := json.Marshal(ev)
	if err != nil {
		e.t.Fatal(err)
	}
	for {
		_, err := e.js.PublishAsync("alerts.bench", b)
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			// The server is slower than the publisher: let it catch up.
			<-e.js.PublishAsyncComplete()
			continue
		}
		if err != nil {
			e.t.Fatal(err)
		}
		return
	}
}

// BenchmarkTransition measures one event's state transition without I/O:
// the key's stored state decoded, the lifecycle decision (with the content
// fingerprint where the table needs it), and the states written for it
// encoded: the claim and the final state for a TOPdesk write, the final
// state alone for a newer duplicate.
func BenchmarkTransition(b *testing.B) {
	w := &Worker{mapping: mapping.Default(), opts: Options{ID: "bench-worker"}, m: newMetrics(nil)}
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	alert := func(status mapping.Status, summary string) mapping.Alert {
		return mapping.Alert{Key: "db-17/disk", Status: status, Severity: "critical", Summary: summary,
			Source: "prometheus", Labels: map[string]string{"host": "db-17", "alertname": "DiskFull"}, Timestamp: at}
	}
	same := alert(mapping.StatusFiring, "Disk full on db-17")
	fp, err := w.mapping.Fingerprint(&same, same.Key)
	if err != nil {
		b.Fatal(err)
	}
	open := incidentState{Key: same.Key, IncidentID: "3f8a0c2e-6b1d-4e7a-9c55-0d2b7e1a9f43", Number: "I 2611 0042",
		Open: true, LastEvent: at.Add(-time.Minute), LastStatus: "firing", Fingerprint: fp}
	closed := open
	closed.Open, closed.ClosedAt, closed.LastStatus = false, at.Add(-time.Minute), "resolved"
	encode := func(st incidentState) []byte {
		v, err := json.Marshal(&st)
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		name   string
		stored []byte // nil: no state
		a      mapping.Alert
		want   decision
	}{
		{"create", nil, same, doCreate},
		{"duplicate", encode(open), same, doDuplicate},
		{"update", encode(open), alert(mapping.StatusFiring, "Disk full on db-17: 99%"), doUpdate},
		{"resolve", encode(open), alert(mapping.StatusResolved, "Disk full on db-17"), doResolve},
		{"reopen", encode(closed), same, doReopen},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var st incidentState
				if c.stored != nil {
					if err := json.Unmarshal(c.stored, &st); err != nil {
						b.Fatal(err)
					}
				}
				a := c.a
				ev, err := w.newEvent(&a, at)
				if err != nil {
					b.Fatal(err)
				}
				if d := decide(&st, &ev, w.mapping.Lifecycle()); d != c.want {
					b.Fatalf("decide = %v; want %v", d, c.want)
				}
				if op, ok := decisionOp[c.want]; ok {
					claimed := st
					claimed.Claim = &claim{Owner: w.opts.ID, Op: op.String()}
					if _, err := json.Marshal(&claimed); err != nil {
						b.Fatal(err)
					}
				}
				st.LastEvent, st.LastStatus = at, string(a.Status)
				if _, err := json.Marshal(&st); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
