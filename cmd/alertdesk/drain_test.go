package main

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/worker/workertest"
)

// drainTestSetup connects to a new server and subscribes with a handler
// that has started on a message and blocks until release is closed.
func drainTestSetup(t *testing.T) (nc *nats.Conn, release, handled chan struct{}) {
	t.Helper()
	nc, _ = workertest.Connect(t, workertest.StartJetStream(t))
	started := make(chan struct{})
	release, handled = make(chan struct{}), make(chan struct{})
	if _, err := nc.Subscribe("drain.test", func(*nats.Msg) {
		close(started)
		<-release
		close(handled)
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("drain.test", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not get the message")
	}
	return nc, release, handled
}

// A drain lets a running handler finish and flushes; shutdown returns only
// after it ended.
func TestDrainNATSWaitsForTheDrain(t *testing.T) {
	nc, release, handled := drainTestSetup(t)
	close(release)
	drainNATS(nc, 10*time.Second, zerolog.Nop())
	if !nc.IsClosed() {
		t.Error("drainNATS returned before the drain closed the connection")
	}
	select {
	case <-handled:
	default:
		t.Error("drainNATS returned before the handler finished")
	}
}

// A drain that does not end is cut off after the timeout.
func TestDrainNATSBoundedByTimeout(t *testing.T) {
	nc, release, _ := drainTestSetup(t)
	defer close(release)
	start := time.Now()
	drainNATS(nc, 200*time.Millisecond, zerolog.Nop())
	if took := time.Since(start); took < 200*time.Millisecond || took > 5*time.Second {
		t.Errorf("drainNATS took %s with a 200ms timeout and a handler that never ends", took)
	}
	if !nc.IsClosed() {
		t.Error("the connection is not closed after the drain timed out")
	}
}
