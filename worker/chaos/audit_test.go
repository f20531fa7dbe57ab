package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// settlements records what the NATS server says the workers did with each
// message of the input stream: the consumer's ack samples (one per acked
// message, with its delivery count) and its termination advisories (one
// per dead-lettered message). A message the stream removed for any other
// reason (max age, limits) appears in neither.
type settlements struct {
	mu     sync.Mutex
	acked  map[uint64]uint64 // stream sequence -> deliveries when acked
	termed map[uint64]uint64 // stream sequence -> deliveries when terminated
	bad    []string          // advisories that could not be decoded
}

// settlement is the part of the server's ack metric and termination
// advisory that the audit reads.
type settlement struct {
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// watchSettlements turns on the sampling of every ack on the consumer (a
// monitoring setting: the server then publishes a metric per ack) and
// subscribes to the acks and terminations. The subscriptions end with the
// test's connection.
func (e *env) watchSettlements() (*settlements, error) {
	ctx, cancel := context.WithTimeout(e.t.Context(), 10*time.Second)
	defer cancel()
	c, err := e.js.Consumer(ctx, streamName, consumerName)
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	cfg := c.CachedInfo().Config
	cfg.SampleFrequency = "100%"
	if _, err := e.js.UpdateConsumer(ctx, streamName, cfg); err != nil {
		return nil, fmt.Errorf("sample every ack of consumer %s: %w", consumerName, err)
	}
	s := &settlements{acked: map[uint64]uint64{}, termed: map[uint64]uint64{}}
	nc := e.js.Conn()
	for subj, into := range map[string]map[uint64]uint64{
		"$JS.EVENT.METRIC.CONSUMER.ACK." + streamName + "." + consumerName:              s.acked,
		"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED." + streamName + "." + consumerName: s.termed,
	} {
		sub, err := nc.Subscribe(subj, func(m *nats.Msg) { s.record(into, m.Data) })
		if err != nil {
			return nil, fmt.Errorf("subscribe %s: %w", subj, err)
		}
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			return nil, fmt.Errorf("subscribe %s: %w", subj, err)
		}
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		return nil, fmt.Errorf("subscribe to the settlements: %w", err)
	}
	return s, nil
}

func (s *settlements) record(into map[uint64]uint64, data []byte) {
	var st settlement
	err := json.Unmarshal(data, &st)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || st.StreamSeq == 0 {
		s.bad = append(s.bad, string(data))
		return
	}
	into[st.StreamSeq] = max(into[st.StreamSeq], st.Deliveries)
}

// checkSettlements waits a little for the last advisories, then returns an error
// unless every sequence 1..lastSeq was settled by a worker exactly once:
// acked, or terminated (dead-lettered) for the poison events only. The
// description gives the most deliveries an event needed, against
// MAX_DELIVER.
func (e *env) checkSettlements(s *settlements, lastSeq uint64, poison int) (string, error) {
	maxDeliver, err := strconv.Atoi(e.workers.setting("ALERTDESK_MAX_DELIVER"))
	if err != nil {
		return "", fmt.Errorf("ALERTDESK_MAX_DELIVER of the workers: %w", err)
	}
	ctx, cancel := context.WithTimeout(e.t.Context(), 10*time.Second)
	defer cancel()
	for {
		s.mu.Lock()
		n := uint64(len(s.acked) + len(s.termed))
		s.mu.Unlock()
		if n >= lastSeq || waitUntil(ctx, time.Now().Add(100*time.Millisecond)) != nil {
			break
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var missing, both []uint64
	var most uint64
	over := 0
	for seq := uint64(1); seq <= lastSeq; seq++ {
		a, acked := s.acked[seq]
		_, termed := s.termed[seq]
		switch {
		case acked && termed:
			both = append(both, seq)
		case !acked && !termed:
			missing = append(missing, seq)
		}
		most = max(most, a)
		if a > uint64(maxDeliver) {
			over++
		}
	}
	desc := fmt.Sprintf("the server saw %d acked and %d dead-lettered of the %d events, none expired; %d acked after more than MAX_DELIVER=%d deliveries (at most %d)",
		len(s.acked), len(s.termed), lastSeq, over, maxDeliver, most)
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("%d stream sequences never acked nor terminated (expired or lost), e.g. %v", len(missing), missing[:min(10, len(missing))]))
	}
	if len(both) > 0 {
		problems = append(problems, fmt.Sprintf("%d stream sequences both acked and terminated, e.g. %v", len(both), both[:min(10, len(both))]))
	}
	if len(s.termed) != poison {
		problems = append(problems, fmt.Sprintf("%d messages terminated (dead-lettered), want the %d poison events", len(s.termed), poison))
	}
	if len(s.bad) > 0 {
		problems = append(problems, fmt.Sprintf("%d advisories not understood, e.g. %s", len(s.bad), s.bad[0]))
	}
	if len(problems) > 0 {
		return desc, fmt.Errorf("settlements the server reported: %s", strings.Join(problems, "; "))
	}
	return desc, nil
}
