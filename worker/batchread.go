package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Batched state reads. A new key costs a read of its state and of the
// bucket's reconciliation mark before its claim is written. Read one by one,
// those are two JetStream round trips per create, on the same two cores as
// the NATS server; the batch reader instead asks for the newest entry of
// every waiting key and of the mark in one direct-get request (multi_last,
// NATS server 2.11 and later). While a request is out, new readers gather in
// the next one, so under load a single request serves many events; when idle,
// a read goes out at once.
//
// A batched read is as good as a read of its own for every key in it: each
// key's state and the mark are read together at one point in the stream,
// after the reader asked, and any write based on them is a compare-and-swap
// on the key's revision.

// errBatchUnavailable says that the batch could not be read; the caller
// reads the key on its own.
var errBatchUnavailable = errors.New("batched state read unavailable")

// maxBatchKeys bounds one request (the server answers at most 1,024 messages).
const maxBatchKeys = 512

// batchTimeout bounds the wait for the answers to one request.
const batchTimeout = 5 * time.Second

// kvEntry is the newest value of a key and its revision.
type kvEntry struct {
	value []byte
	rev   uint64
}

// readBatch is one request: the keys waiting for it and, once done is
// closed, what the stream holds for them.
type readBatch struct {
	keys   []string
	want   map[string]struct{}
	done   chan struct{}
	got    map[string]kvEntry
	marked bool // the reconciliation mark was in the stream
	err    error
}

// batchReader reads keys of one KV bucket in batches. It is safe for
// concurrent use.
type batchReader struct {
	nc      *nats.Conn
	api     string // direct-get subject of the bucket's stream
	prefix  string // subject prefix of the bucket's keys
	inbox   string
	sub     *nats.Subscription
	replies chan *nats.Msg

	quit    chan struct{} // closed by close
	running sync.WaitGroup
	log     zerolog.Logger

	mu       sync.Mutex
	open     *readBatch // gathering readers, not sent yet
	sending  bool       // a request is out; open goes next
	disabled bool       // closed, or the server does not know multi_last
	seq      uint64
}

// newBatchReader returns a reader for kv, or nil when its stream does not
// allow direct gets (per-key reads are then used).
func newBatchReader(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, log zerolog.Logger) (*batchReader, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("state bucket status: %w", err)
	}
	si, ok := st.(interface{ StreamInfo() *jetstream.StreamInfo })
	if !ok || si.StreamInfo() == nil || !si.StreamInfo().Config.AllowDirect {
		return nil, nil
	}
	opts := js.Options()
	api := jetstream.DefaultAPIPrefix
	switch {
	case opts.Domain != "":
		api = "$JS." + opts.Domain + ".API."
	case opts.APIPrefix != "":
		api = opts.APIPrefix
		if api[len(api)-1] != '.' {
			api += "."
		}
	}
	r := &batchReader{
		nc:      js.Conn(),
		api:     api + "DIRECT.GET." + si.StreamInfo().Config.Name,
		prefix:  "$KV." + kv.Bucket() + ".",
		inbox:   js.Conn().NewRespInbox(),
		replies: make(chan *nats.Msg, 4*maxBatchKeys),
		quit:    make(chan struct{}),
		log:     log,
	}
	if r.sub, err = r.nc.ChanSubscribe(r.inbox+".*", r.replies); err != nil {
		return nil, fmt.Errorf("subscribe for batched state reads: %w", err)
	}
	return r, nil
}

// close ends batched reads: reads in progress and later ones fail with
// errBatchUnavailable (their callers read on their own). It returns once
// no request is out.
func (r *batchReader) close() error {
	r.mu.Lock()
	r.disabled = true
	r.mu.Unlock()
	close(r.quit)
	r.running.Wait()
	if err := r.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("batched state reads: %w", err)
	}
	return nil
}

// read returns the newest entry of key (found false: none) and whether the
// bucket's reconciliation mark was there at the same point. An error other
// than ctx's means the caller must read on its own.
func (r *batchReader) read(ctx context.Context, key string) (kvEntry, bool, bool, error) {
	r.mu.Lock()
	if r.disabled {
		r.mu.Unlock()
		return kvEntry{}, false, false, errBatchUnavailable
	}
	b := r.open
	if b == nil {
		b = &readBatch{want: make(map[string]struct{}), done: make(chan struct{})}
		r.open = b
	}
	if _, ok := b.want[key]; !ok {
		if len(b.keys) >= maxBatchKeys {
			r.mu.Unlock()
			return kvEntry{}, false, false, errBatchUnavailable
		}
		b.want[key] = struct{}{}
		b.keys = append(b.keys, key)
	}
	if !r.sending {
		r.sending, r.open = true, nil
		r.running.Go(func() { r.run(b) })
	}
	r.mu.Unlock()

	select {
	case <-b.done:
	case <-ctx.Done():
		return kvEntry{}, false, false, ctx.Err()
	}
	if b.err != nil {
		return kvEntry{}, false, false, b.err
	}
	e, ok := b.got[key]
	return e, ok, b.marked, nil
}

// run sends b, then whatever gathered meanwhile, until nothing waits.
func (r *batchReader) run(b *readBatch) {
	for b != nil {
		r.fetch(b)
		close(b.done)
		r.mu.Lock()
		b, r.open = r.open, nil
		if b == nil {
			r.sending = false
		}
		r.mu.Unlock()
	}
}

// directGetRequest is the body of a multi_last direct get.
type directGetRequest struct {
	MultiLast []string `json:"multi_last"`
}

// fetch sends one request and collects its answers into b.
func (r *batchReader) fetch(b *readBatch) {
	r.seq++
	reply := r.inbox + "." + strconv.FormatUint(r.seq, 10)
	subjects := make([]string, 0, len(b.keys)+1)
	subjects = append(subjects, r.prefix+reconciledKey)
	for _, k := range b.keys {
		subjects = append(subjects, r.prefix+k)
	}
	body, err := json.Marshal(directGetRequest{MultiLast: subjects})
	if err != nil {
		b.err = fmt.Errorf("%w: %w", errBatchUnavailable, err)
		return
	}
	if err := r.nc.PublishRequest(r.api, reply, body); err != nil {
		b.err = fmt.Errorf("%w: %w", errBatchUnavailable, err)
		return
	}
	b.got = make(map[string]kvEntry, len(b.keys))
	timeout := time.NewTimer(batchTimeout)
	defer timeout.Stop()
	for {
		var m *nats.Msg
		select {
		case m = <-r.replies:
		case <-timeout.C:
			b.err = fmt.Errorf("%w: no answer within %s", errBatchUnavailable, batchTimeout)
			return
		case <-r.quit:
			b.err = fmt.Errorf("%w: closed", errBatchUnavailable)
			return
		}
		if m.Subject != reply {
			continue // a late answer to a request that timed out
		}
		if status := m.Header.Get("Status"); status != "" {
			switch status {
			case "204": // end of batch
			case "404": // none of the subjects has a message
			case "408":
				// A server before 2.11 reads the request as empty.
				r.mu.Lock()
				r.disabled = true
				r.mu.Unlock()
				b.err = fmt.Errorf("%w: the server does not support multi_last: %s", errBatchUnavailable, m.Header.Get("Description"))
				r.log.Warn().Err(b.err).Msg("state reads go one by one (NATS server 2.11 or later reads them in batches)")
			default:
				b.err = fmt.Errorf("%w: status %s %s", errBatchUnavailable, status, m.Header.Get("Description"))
			}
			return
		}
		subj := m.Header.Get(jetstream.SubjectHeader)
		if len(subj) <= len(r.prefix) || subj[:len(r.prefix)] != r.prefix {
			b.err = fmt.Errorf("%w: answer for unexpected subject %q", errBatchUnavailable, subj)
			return
		}
		key := subj[len(r.prefix):]
		if deleted(m.Header) {
			continue
		}
		if key == reconciledKey {
			b.marked = true
			continue
		}
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			b.err = fmt.Errorf("%w: answer without a sequence: %w", errBatchUnavailable, err)
			return
		}
		b.got[key] = kvEntry{value: m.Data, rev: seq}
	}
}

// deleted reports whether a KV message is a delete or purge marker (the key
// has no value).
func deleted(h nats.Header) bool {
	if len(h) == 0 {
		return false
	}
	switch h.Get("KV-Operation") {
	case "DEL", "PURGE":
		return true
	}
	return h.Get(jetstream.MarkerReasonHeader) != ""
}
