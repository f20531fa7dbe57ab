package worker

// bounded is a map of at most max entries (at least one): putting a new key
// into a full map first forgets an arbitrary entry. The in-memory records of
// the worker are all hints that spare a read, so forgetting one only costs
// that read. Not safe for concurrent use: its owner locks.
type bounded[K comparable, V any] struct {
	m   map[K]V
	max int
}

func (b *bounded[K, V]) get(k K) (V, bool) {
	v, ok := b.m[k]
	return v, ok
}

func (b *bounded[K, V]) put(k K, v V) {
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

func (b *bounded[K, V]) delete(k K) { delete(b.m, k) }

func (b *bounded[K, V]) clear() { clear(b.m) }
