package main

import (
	"os"
	"runtime/debug"
)

// The worker's garbage collector settings, unless GOGC or GOMEMLIMIT set
// the Go runtime's own (docs/sizing.md, "CPU and memory").
const (
	// gcPercent lets the heap grow to five times what is live before a
	// collection (Go's default: twice).
	gcPercent = 400
	// memoryLimit is the soft limit of the memory the Go runtime manages:
	// near it the collector runs as often as it must to stay below.
	memoryLimit = 40 << 20
)

// tuneGC makes a worker collect garbage less often while its heap is
// small. Every event allocates (decoding, templates, the NATS message) and
// little of it stays, so with Go's default a busy worker collects many
// times a second; in a duplicate storm that is a large share of its CPU
// (docs/perf-notes.md has the measurement). The soft limit keeps a worker
// with a large live heap (a backlog) near the memory it had with the
// default.
func tuneGC() {
	for _, v := range []string{"GOGC", "GOMEMLIMIT"} {
		if _, set := os.LookupEnv(v); set {
			return
		}
	}
	debug.SetGCPercent(gcPercent)
	debug.SetMemoryLimit(memoryLimit)
}
