package worker

import "time"

// Retention of the storm entries (storm.go), as of incident states: the
// bucket removes them by per-key TTL (NATS.md §8), set on every write, so
// nothing has to sweep the bucket. A bucket without per-key TTLs (a NATS
// server before 2.11) keeps them, as it keeps the states of closed keys.
//
//   - A storm entry ("storm-<route id>") is stale a window after its last
//     write: every new incident it counts and the last link of its major
//     call are at most that old. Its TTL is the window (whole seconds,
//     rounded up, as the server counts them). One that claims a major call
//     not yet recorded is kept: the claim decides whether that call exists.
//   - A major call's entry ("major-<ext>") is done once alertdesk closed
//     the major call: every linked incident was closed by then, and their
//     states, which point at it, expire within the reopen window plus
//     margin. It is kept that long (the TTL of a closed incident's state);
//     a linked incident that reopens and closes again later finds it gone,
//     which changes nothing: the major call is not reopened.

// entryTTL is the per-key TTL of a storm or major-call entry v written now
// (0: kept).
func (w *Worker) entryTTL(v any) time.Duration {
	if w.state.closedTTL.total == 0 {
		return 0 // the bucket has no per-key TTLs
	}
	switch e := v.(type) {
	case *storm:
		if e.Window <= 0 || (e.Major != nil && e.Major.ID == "") {
			return 0
		}
		return max(time.Second, (e.Window + time.Second - 1).Truncate(time.Second))
	case *majorState:
		if e.Closed && e.Claim == "" {
			return w.state.closedTTL.total
		}
	}
	return 0
}
