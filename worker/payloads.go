package worker

import (
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/alertdesk/alertdesk/mapping"
)

// Repeated payloads. A source re-sends the same bytes while an alert keeps
// firing (Alertmanager's repeat_interval, a retried webhook, a script in a
// loop), and in a duplicate storm nearly every event is such a repeat.
// Decoding the payload and rendering each alert's key and fingerprint
// (the brief description's template) was about a quarter of the worker's
// CPU per duplicate, and on two shared cores that CPU is what bounds a
// storm: the worker remembers what recent payloads decoded to.
//
// Measured reason: `bin/alertdesk-bench -scenarios storm -runs 3`
// (TOPdesk at 50 ms), this build against the one without it, alternating,
// three times on 2 cores: worker CPU per event 22-23 -> 17-19 µs, and
// 39,700-40,800 -> 44,800-45,400 events/s (docs/perf-notes.md,
// "2026-12-04, night").
//
// The cache is exact: it is keyed by the whole payload, and decoding,
// keys and fingerprints depend on nothing else (the mapping is fixed for a
// worker's life and its template functions are pure). Only a payload whose
// every alert has a key and a fingerprint is remembered, so every error is
// met by the normal path.

// The cache holds at most payloadEntries payloads and payloadBudget bytes
// of them: a storm of up to about 2,000 distinct
// payloads is settled from memory, and the heap holds at most about 3 MiB
// for it (what a payload decodes to takes two to four times its size). A
// payload larger than a shard's share of the budget is never remembered.
const (
	payloadEntries = 2048
	payloadBudget  = 1 << 20
)

// decodedPayload is what a payload decoded to: its alerts and, for each,
// its key and the fingerprint of a firing one.
type decodedPayload struct {
	alerts       []mapping.Alert
	keys         []string
	fingerprints []string
}

// payloadCache maps payloads to what they decoded to; a new payload in a
// full shard forgets arbitrary others.
type payloadCache struct {
	s [shards]struct {
		mu    sync.Mutex
		m     map[string]*decodedPayload
		bytes int
	}
}

var payloadSeed = maphash.MakeSeed()

func (c *payloadCache) get(data []byte) (*decodedPayload, bool) {
	s := &c.s[maphash.Bytes(payloadSeed, data)%shards]
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.m[string(data)]
	return p, ok
}

func (c *payloadCache) put(data []byte, p *decodedPayload) {
	const share = payloadBudget / shards
	if len(data) > share {
		return
	}
	s := &c.s[maphash.Bytes(payloadSeed, data)%shards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]*decodedPayload)
	}
	if _, ok := s.m[string(data)]; ok {
		return
	}
	for old := range s.m {
		if len(s.m) < payloadEntries/shards && s.bytes+len(data) <= share {
			break
		}
		s.bytes -= len(old)
		delete(s.m, old)
	}
	s.m[string(data)] = p
	s.bytes += len(data)
}

// alertEvent is the event of one alert of a message, or why it could not
// be prepared (its key is then set if known).
type alertEvent struct {
	ev  keyEvent
	err error
}

// events decodes a message's payload, published at published, into the
// events of its alerts.
func (w *Worker) events(data []byte, published time.Time) ([]alertEvent, error) {
	alerts, known, err := w.decode(data)
	if err != nil {
		return nil, err
	}
	events := make([]alertEvent, len(alerts))
	for i := range alerts {
		if known != nil {
			events[i].ev = w.keyEvent(&alerts[i], published, known.keys[i], known.fingerprints[i])
			continue
		}
		events[i].ev, events[i].err = w.newEvent(&alerts[i], published)
	}
	return events, nil
}

// decode decodes a message's payload into its alerts and, unless an alert
// has no key or fingerprint, what newEvent would compute for each: from
// the cache for a payload seen recently. The alerts are the caller's own
// copies (their maps are shared, and only read after decoding).
func (w *Worker) decode(data []byte) ([]mapping.Alert, *decodedPayload, error) {
	if p, ok := w.payloads.get(data); ok {
		return slices.Clone(p.alerts), p, nil
	}
	alerts, err := w.mapping.Decode(data, w.opts.Decode)
	if err != nil {
		return nil, nil, err
	}
	p := &decodedPayload{alerts: slices.Clone(alerts), keys: make([]string, len(alerts)), fingerprints: make([]string, len(alerts))}
	for i := range alerts {
		if p.keys[i], p.fingerprints[i], err = w.identify(&alerts[i]); err != nil {
			return alerts, nil, nil // newEvent reports it
		}
	}
	w.payloads.put(data, p)
	return alerts, p, nil
}
