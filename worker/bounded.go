package worker

import "sync"

// bounded is a map of at most max entries (at least one), safe for
// concurrent use: putting a new key into a full map first forgets an
// arbitrary entry. The in-memory records of the worker are all hints (a
// state that spares a read, a count of attempts, a key that waits), so
// forgetting one only costs what it spared.
type bounded[K comparable, V any] struct {
	mu  sync.Mutex
	m   map[K]V
	max int
}

func (b *bounded[K, V]) get(k K) (V, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[k]
	return v, ok
}

func (b *bounded[K, V]) put(k K, v V) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = make(map[K]V)
	}
	if _, ok := b.m[k]; !ok && len(b.m) >= max(b.max, 1) {
		for old := range b.m {
			delete(b.m, old)
			break
		}
	}
	b.m[k] = v
}

// take removes k and returns what it held.
func (b *bounded[K, V]) take(k K) (V, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[k]
	delete(b.m, k)
	return v, ok
}

func (b *bounded[K, V]) delete(k K) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, k)
}

func (b *bounded[K, V]) clear() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.m)
}
