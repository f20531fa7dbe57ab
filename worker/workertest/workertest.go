// Package workertest starts what the worker needs in tests: a real embedded
// JetStream server per test (random port, store in t.TempDir()) and a
// connection to it. Like topdesk/topdesktest it is for tests only.
package workertest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StartJetStream starts an embedded JetStream server on a random loopback
// port with its store in a temporary directory, and shuts it down when the
// test ends.
func StartJetStream(t testing.TB) *server.Server {
	t.Helper()
	return StartJetStreamIn(t, t.TempDir())
}

// StartJetStreamIn is StartJetStream with the store in dir: a server
// started again on the same dir (on a new port) restarts the first one.
func StartJetStreamIn(t testing.TB, dir string) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true,
	})
	if err != nil {
		t.Fatalf("embedded NATS: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("embedded NATS not ready within 10s")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// Connect connects to ns and returns the connection and its JetStream
// context; the connection is closed when the test ends.
func Connect(t testing.TB, ns *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return ConnectURL(t, ns.ClientURL())
}

// ConnectURL is Connect for a server known by its URL.
func ConnectURL(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect to NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}
