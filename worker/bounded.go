package worker

import (
	"hash/maphash"
	"sync"
)

// shards is how many parts the worker's per-key records (bounded maps, key
// locks) are split into, each with its own mutex: the handlers of
// different keys then seldom wait for one another's lookups.
const shards = 32

var shardSeed = maphash.MakeSeed()

// shardOf is the shard that holds k.
func shardOf[K comparable](k K) int { return int(maphash.Comparable(shardSeed, k) % shards) }

// bounded is a map of at most max entries (at least one per shard), safe
// for concurrent use: putting a new key into a full shard first forgets an
// arbitrary entry of that shard. The in-memory records of the worker are
// all hints (a state that spares a read, a count of attempts, a key that
// waits), so forgetting one only costs what it spared.
type bounded[K comparable, V any] struct {
	max int
	s   [shards]boundedShard[K, V]
}

type boundedShard[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]V
}

func (b *bounded[K, V]) shard(k K) *boundedShard[K, V] { return &b.s[shardOf(k)] }

func (b *bounded[K, V]) get(k K) (V, bool) {
	s := b.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok
}

func (b *bounded[K, V]) put(k K, v V) {
	s := b.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[K]V)
	}
	if _, ok := s.m[k]; !ok && len(s.m) >= max(b.max/shards, 1) {
		for old := range s.m {
			delete(s.m, old)
			break
		}
	}
	s.m[k] = v
}

// take removes k and returns what it held.
func (b *bounded[K, V]) take(k K) (V, bool) {
	s := b.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	delete(s.m, k)
	return v, ok
}

func (b *bounded[K, V]) delete(k K) {
	s := b.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
}

func (b *bounded[K, V]) clear() {
	for i := range b.s {
		s := &b.s[i]
		s.mu.Lock()
		clear(s.m)
		s.mu.Unlock()
	}
}
