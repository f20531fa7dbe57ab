package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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
	waitFor(e.t, 10*time.Second, "reconciled", func() bool { return rw.w.reconciled(b.Context()) })
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
