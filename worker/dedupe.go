package worker

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/alertdesk/alertdesk/mapping"
)

// payloadSum identifies a message payload: 128 bits from two independently
// seeded hashes, so that two different payloads never share one in practice.
type payloadSum [2]uint64

// settledPayload is what an applied single-alert payload decoded to: enough
// to settle the same bytes again from memory, without decoding or
// rendering them.
type settledPayload struct {
	ext         string
	key         string
	at          time.Time
	status      mapping.Status
	fingerprint string // empty for a resolved event
}

// payloadCache remembers recently applied payloads. Alert sources resend
// the same bytes (Alertmanager's repeat_interval, HA pairs, retries), and
// each of those is settled from the seen record of its key.
type payloadCache struct {
	seed1, seed2 maphash.Seed
	mu           sync.Mutex
	m            bounded[payloadSum, settledPayload]
}

func newPayloadCache(max int) *payloadCache {
	return &payloadCache{seed1: maphash.MakeSeed(), seed2: maphash.MakeSeed(), m: bounded[payloadSum, settledPayload]{max: max}}
}

func (c *payloadCache) sum(data []byte) payloadSum {
	return payloadSum{maphash.Bytes(c.seed1, data), maphash.Bytes(c.seed2, data)}
}

func (c *payloadCache) get(s payloadSum) (settledPayload, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m.get(s)
}

func (c *payloadCache) put(s payloadSum, p settledPayload) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m.put(s, p)
}

// settledFromSeen reports whether an event of the key with this time,
// status and content changes nothing, judging by the newest applied event
// this worker saw: older is stale; the same time, status and content is a
// duplicate. Applied event times only grow, so the answer holds whatever
// other workers did since. fingerprint is called only when needed.
func (w *Worker) settledFromSeen(ext string, at time.Time, status mapping.Status, fingerprint func() (string, error)) (string, bool, error) {
	s, ok := w.seen.get(ext)
	switch {
	case !ok:
		return "", false, nil
	case at.Before(s.at):
		return outcomeStale, true, nil
	case !at.Equal(s.at) || s.status != string(status):
		return "", false, nil
	case status == mapping.StatusResolved:
		return outcomeDuplicate, true, nil
	}
	v, err := fingerprint()
	if err != nil {
		return "", false, err
	}
	return outcomeDuplicate, v == s.fingerprint && v != "", nil
}
