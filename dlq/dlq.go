package dlq

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MaxErrorLen caps the Alertdesk-Error header of a dead letter, in bytes.
// Longer error texts are cut on a character boundary and end in "…".
const MaxErrorLen = 1024

// fetchBatch is how many dead letters one pull request asks for when the
// dead-letter stream is scanned.
const fetchBatch = 256

// fetchWait bounds one pull request of a scan. The scan only asks for
// messages the server counted as pending, so a pull normally returns at once.
const fetchWait = 10 * time.Second

// cleanupTimeout bounds the deletion of the scan's ephemeral consumer.
const cleanupTimeout = 5 * time.Second

// sinceSlack widens the server-side time filter of a scan, so that a
// worker clock running ahead of the server's cannot hide an entry whose
// Failed-At is inside the filter; the exact filter is applied to Failed-At.
const sinceSlack = 5 * time.Minute

// DeadLetter is one entry of the dead-letter stream.
type DeadLetter struct {
	Seq     uint64 // sequence in the dead-letter stream
	Subject string // subject in the dead-letter stream: SubjectPrefix + OriginalSubject

	OriginalSubject string // where the event was first published, and where replay sends it
	OriginalSeq     uint64 // sequence in the input stream
	Error           string // why it failed (scrubbed of secrets, at most MaxErrorLen bytes)
	Class           Class
	Deliveries      int
	FailedAt        time.Time // Alertdesk-Failed-At, else the time the dead letter was stored
	OriginalTime    time.Time // Alertdesk-Original-Time; zero when missing or malformed
	Stored          time.Time // when the dead letter was stored in the dead-letter stream
	AlertKey        string    // empty when the event could not be decoded
	ReplayOf        string    // Alertdesk-Replay-Of of the original, if it was itself a replay

	Header nats.Header // every header as stored
	Data   []byte      // the original payload
}

// Filter selects dead letters. Set fields combine with AND. Seqs names
// entries by their dead-letter sequence; with other fields set, only the
// named entries that also match them are selected.
type Filter struct {
	Subject string    // original subject; NATS wildcards (* and >) allowed
	Key     string    // alert key, exact
	Class   Class     // dead-letter class, exact
	Since   time.Time // failed at or after this time
	Seqs    []uint64  // dead-letter stream sequences
	All     bool      // every entry; may not be combined with other fields
}

// empty reports whether f selects nothing in particular.
func (f Filter) empty() bool {
	return len(f.Seqs) == 0 && !f.hasFields()
}

func (f Filter) hasFields() bool {
	return f.Subject != "" || f.Key != "" || f.Class != "" || !f.Since.IsZero()
}

func (f Filter) validate() error {
	if f.All && (f.hasFields() || len(f.Seqs) > 0) {
		return errors.New("dead-letter filter: All cannot be combined with sequences or other filters")
	}
	if slices.Contains(f.Seqs, 0) {
		return errors.New("dead-letter filter: sequence 0 does not exist")
	}
	if f.Subject != "" && !server.IsValidSubject(f.Subject) {
		return fmt.Errorf("dead-letter filter: %q is not a valid subject filter", f.Subject)
	}
	return nil
}

// match reports whether dl passes the field filters of f (not Seqs).
func (f Filter) match(dl *DeadLetter) bool {
	switch {
	case f.Subject != "" && !server.SubjectMatchesFilter(dl.OriginalSubject, f.Subject):
		return false
	case f.Key != "" && dl.AlertKey != f.Key:
		return false
	case f.Class != "" && dl.Class != f.Class:
		return false
	case !f.Since.IsZero() && dl.FailedAt.Before(f.Since):
		return false
	}
	return true
}

// Stream reads, replays and purges the dead-letter stream, and writes to it.
// It is safe for concurrent use.
type Stream struct {
	js           jetstream.JetStream
	stream       string
	replayStream string
	now          func() time.Time
}

// Option configures a Stream.
type Option func(*Stream)

// WithReplayStream makes Replay require that the original subject is bound
// by the named stream (normally the input stream, ALERTS). A replay to a
// subject that another stream captures fails for that entry and keeps it in
// the dead-letter stream.
func WithReplayStream(name string) Option {
	return func(d *Stream) { d.replayStream = name }
}

// New returns a Stream over the named dead-letter stream. The stream must
// exist when it is used; worker.Provision creates it.
func New(js jetstream.JetStream, stream string, opts ...Option) *Stream {
	d := &Stream{js: js, stream: stream, now: time.Now}
	for _, o := range opts {
		o(d)
	}
	return d
}

// Failure is what the worker knows about a message it dead-letters.
type Failure struct {
	OriginalStream  string // input stream, e.g. ALERTS
	OriginalSubject string // subject the event was published to
	OriginalSeq     uint64 // its sequence in OriginalStream
	// Published is the original message's JetStream timestamp
	// (jetstream.MsgMetadata.Timestamp). With OriginalStream and
	// OriginalSeq it names that very message, also after the stream was
	// deleted and made again.
	Published  time.Time
	Header     nats.Header // the original headers
	Data       []byte      // the original payload
	Err        string      // the failure, already scrubbed of secrets
	Class      Class
	Deliveries int
	FailedAt   time.Time // zero = now
	AlertKey   string    // empty when unknown
}

// Publish writes one dead letter: the original payload and headers plus the
// Alertdesk-* headers, to SubjectPrefix + the original subject, and
// waits for the JetStream ack. Headers of the original that are JetStream
// publish directives (Nats-*) are not copied. Alertdesk-Original-Time is
// the original's own header when it has a valid one (it is itself a
// replay), else Published. The dead letter carries Nats-Msg-Id
// "dlq:<original stream>:<original seq>:<Published in Unix nanoseconds>:
// <hash of Data>", so a message that is dead-lettered twice (a redelivery
// after a lost term) is stored once within the stream's duplicate window,
// while the message with the same sequence in a stream that was deleted and
// made again, or another alert of the same multi-alert message with a
// payload of its own, is stored as an entry of its own. The error text is
// stored as given, cut to MaxErrorLen bytes.
//
// Only after Publish returned nil may the caller terminate the original.
func (d *Stream) Publish(ctx context.Context, in Failure) error {
	switch {
	case in.OriginalStream == "":
		return errors.New("dead-letter publish: original stream is required")
	case in.OriginalSubject == "":
		return errors.New("dead-letter publish: original subject is required")
	case in.OriginalSeq == 0:
		return errors.New("dead-letter publish: original sequence is required")
	case in.Published.IsZero():
		return errors.New("dead-letter publish: original publish time is required")
	case in.Class == "":
		return errors.New("dead-letter publish: class is required")
	}
	failedAt := in.FailedAt
	if failedAt.IsZero() {
		failedAt = d.now()
	}
	h := make(nats.Header, len(in.Header)+8)
	for k, vs := range in.Header {
		if isPublishDirective(k) || isDLQHeader(k) {
			continue
		}
		h[k] = slices.Clone(vs)
	}
	h.Set(HeaderOriginalSubject, headerValue(in.OriginalSubject))
	h.Set(HeaderOriginalSeq, strconv.FormatUint(in.OriginalSeq, 10))
	h.Set(HeaderError, capText(headerValue(in.Err), MaxErrorLen))
	h.Set(HeaderErrorClass, headerValue(string(in.Class)))
	h.Set(HeaderDeliveries, strconv.Itoa(in.Deliveries))
	h.Set(HeaderFailedAt, failedAt.UTC().Format(time.RFC3339Nano))
	if in.AlertKey != "" {
		h.Set(HeaderAlertKey, headerValue(in.AlertKey))
	}
	if _, err := time.Parse(time.RFC3339Nano, in.Header.Get(HeaderOriginalTime)); err != nil {
		h.Set(HeaderOriginalTime, in.Published.UTC().Format(time.RFC3339Nano))
	}
	msg := &nats.Msg{Subject: SubjectPrefix + in.OriginalSubject, Header: h, Data: in.Data}
	// The payload is part of the id: each alert of a multi-alert message
	// that fails alone is an entry of its own.
	sum := sha256.Sum256(in.Data)
	id := msgID("dlq", in.OriginalStream, in.OriginalSeq, in.Published) + ":" + hex.EncodeToString(sum[:8])
	if _, err := d.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id), jetstream.WithExpectStream(d.stream)); err != nil {
		return fmt.Errorf("publish dead letter for %s seq %d to stream %s: %w", in.OriginalStream, in.OriginalSeq, d.stream, err)
	}
	return nil
}

// Get returns the dead letter with the given sequence. An entry that does
// not exist (never did, or was replayed or purged) gives an error that
// wraps jetstream.ErrMsgNotFound.
func (d *Stream) Get(ctx context.Context, seq uint64) (*DeadLetter, error) {
	s, err := d.streamHandle(ctx)
	if err != nil {
		return nil, err
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		return nil, fmt.Errorf("get dead letter %d from stream %s: %w", seq, d.stream, err)
	}
	return newDeadLetter(m.Subject, m.Sequence, m.Time, m.Header, m.Data), nil
}

// List returns the dead letters that f selects, oldest first. An empty
// filter, like All, selects every entry. Sequences in f.Seqs that are not in
// the stream are left out.
func (d *Stream) List(ctx context.Context, f Filter) ([]DeadLetter, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	s, err := d.streamHandle(ctx)
	if err != nil {
		return nil, err
	}
	if len(f.Seqs) > 0 {
		return d.listSeqs(ctx, s, f)
	}
	return d.scan(ctx, s, f)
}

// listSeqs fetches the named entries one by one.
func (d *Stream) listSeqs(ctx context.Context, s jetstream.Stream, f Filter) ([]DeadLetter, error) {
	seqs := slices.Clone(f.Seqs)
	slices.Sort(seqs)
	seqs = slices.Compact(seqs)
	var out []DeadLetter
	for _, seq := range seqs {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get dead letter %d from stream %s: %w", seq, d.stream, err)
		}
		dl := newDeadLetter(m.Subject, m.Sequence, m.Time, m.Header, m.Data)
		if f.match(dl) {
			out = append(out, *dl)
		}
	}
	return out, nil
}

// scan reads the stream with an ephemeral, ack-less pull consumer. The
// subject and time filters are applied by the server, the key and class
// filters here. The scan ends at the stream's last sequence when it began,
// so entries dead-lettered meanwhile (for example by a replay that failed
// again) are not picked up.
func (d *Stream) scan(ctx context.Context, s jetstream.Stream, f Filter) ([]DeadLetter, error) {
	last := s.CachedInfo().State.LastSeq
	if s.CachedInfo().State.Msgs == 0 {
		return nil, nil
	}
	cfg := jetstream.ConsumerConfig{
		Description:       "alertdesk dlq scan",
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
		Replicas:          1,
	}
	if f.Subject != "" {
		cfg.FilterSubject = SubjectPrefix + f.Subject
	}
	if !f.Since.IsZero() {
		// A dead letter is stored just after it failed, so its store time is
		// at or after its Failed-At (give or take clock skew): the server's
		// time filter drops no entry that match keeps.
		since := f.Since.Add(-sinceSlack)
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &since
	}
	c, err := d.js.CreateConsumer(ctx, d.stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: create consumer: %w", d.stream, err)
	}
	defer d.deleteConsumer(ctx, c.CachedInfo().Name)

	var out []DeadLetter
	remaining := c.CachedInfo().NumPending
	for remaining > 0 {
		n, more, err := d.fetch(ctx, c, min(remaining, fetchBatch), last, func(dl *DeadLetter, pending uint64) {
			remaining = pending
			if f.match(dl) {
				out = append(out, *dl)
			}
		})
		if err != nil {
			return nil, err
		}
		if n == 0 || !more {
			break
		}
	}
	return out, nil
}

// fetch pulls up to batch messages and hands each one with at most sequence
// last to yield, together with the server's count of messages still pending.
// It returns how many messages arrived and whether the scan should go on.
func (d *Stream) fetch(ctx context.Context, c jetstream.Consumer, batch uint64, last uint64, yield func(*DeadLetter, uint64)) (int, bool, error) {
	fctx, cancel := context.WithTimeout(ctx, fetchWait)
	defer cancel()
	mb, err := c.Fetch(int(batch), jetstream.FetchContext(fctx))
	if err != nil {
		return 0, false, fmt.Errorf("read stream %s: %w", d.stream, err)
	}
	n, more := 0, true
	for m := range mb.Messages() {
		n++
		md, err := m.Metadata()
		if err != nil {
			return n, false, fmt.Errorf("read stream %s: %w", d.stream, err)
		}
		if md.Sequence.Stream > last {
			more = false
			continue
		}
		yield(newDeadLetter(m.Subject(), md.Sequence.Stream, md.Timestamp, m.Headers(), m.Data()), md.NumPending)
		if md.Sequence.Stream == last {
			more = false
		}
	}
	if err := mb.Error(); err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return n, false, fmt.Errorf("read stream %s: %w", d.stream, err)
	}
	return n, more, nil
}

// deleteConsumer removes the scan's consumer. It runs after the scan, also
// when ctx was cancelled, so it has a context of its own.
func (d *Stream) deleteConsumer(ctx context.Context, name string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	// A consumer that cannot be deleted now is removed by the server after
	// its InactiveThreshold; nothing depends on it any more.
	_ = d.js.DeleteConsumer(cctx, d.stream, name)
}

// ReplayResult is the outcome of replaying one dead letter.
type ReplayResult struct {
	Seq       uint64 // dead-letter sequence
	Subject   string // original subject the event was republished to
	NewSeq    uint64 // sequence of the republished event in its stream; 0 on a dry run or failure
	Duplicate bool   // the republish was already stored (an earlier, interrupted replay)
	Err       error  // nil when republished and removed from the dead-letter stream
}

// Replay republishes the selected dead letters to their original subjects,
// oldest first. f must select something: sequences, at least one filter
// field, or All. Each entry is published with its original payload and
// headers (without the Alertdesk-* dead-letter headers and Nats-* publish
// directives, but with Alertdesk-Original-Time), with Alertdesk-Replay-Of
// set to its dead-letter sequence and with Nats-Msg-Id
// "replay:<dlq stream>:<dlq seq>:<Stored in Unix nanoseconds>", so a replay
// that is rerun within the input stream's duplicate window stores each
// event once, while an entry of a dead-letter stream that was deleted and
// made again is never taken for an earlier one. The entry is deleted from
// the dead-letter stream only after the republish was acked.
//
// A failure on one entry is recorded in its result and the others go on.
// When f selects by sequence only, a sequence that is not in the stream
// gives a result whose Err wraps jetstream.ErrMsgNotFound. When ctx ends,
// Replay stops and returns the results so far (sorted by sequence) with
// ctx's error; rerunning it completes the work without duplicates. A dry
// run returns what would be replayed and changes nothing.
func (d *Stream) Replay(ctx context.Context, f Filter, dryRun bool) ([]ReplayResult, error) {
	if f.empty() && !f.All {
		return nil, errors.New("replay: select dead letters by sequence, by filter, or all")
	}
	entries, err := d.List(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	var res []ReplayResult
	if !f.hasFields() {
		res = missingSeqs(f.Seqs, entries, d.stream)
	}
	s, err := d.streamHandle(ctx)
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	done := 0
	for i := range entries {
		dl := &entries[i]
		r := ReplayResult{Seq: dl.Seq, Subject: dl.OriginalSubject}
		if !dryRun {
			if ctx.Err() != nil {
				break
			}
			r.NewSeq, r.Duplicate, r.Err = d.replayOne(ctx, s, dl)
		}
		res = append(res, r)
		done++
	}
	slices.SortFunc(res, func(a, b ReplayResult) int { return cmp.Compare(a.Seq, b.Seq) })
	if done < len(entries) {
		return res, fmt.Errorf("replay interrupted after %d of %d dead letters: %w", done, len(entries), context.Cause(ctx))
	}
	return res, nil
}

// replayOne republishes dl, waits for the ack and then deletes dl.
func (d *Stream) replayOne(ctx context.Context, s jetstream.Stream, dl *DeadLetter) (uint64, bool, error) {
	h := make(nats.Header, len(dl.Header))
	for k, vs := range dl.Header {
		if isPublishDirective(k) || isDLQHeader(k) || strings.EqualFold(k, HeaderReplayOf) {
			continue
		}
		h[k] = slices.Clone(vs)
	}
	seq := strconv.FormatUint(dl.Seq, 10)
	h.Set(HeaderReplayOf, seq)
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(msgID("replay", d.stream, dl.Seq, dl.Stored))}
	if d.replayStream != "" {
		opts = append(opts, jetstream.WithExpectStream(d.replayStream))
	}
	ack, err := d.js.PublishMsg(ctx, &nats.Msg{Subject: dl.OriginalSubject, Header: h, Data: dl.Data}, opts...)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoStreamResponse) {
			return 0, false, fmt.Errorf("republish to %s: no stream binds this subject: %w", dl.OriginalSubject, err)
		}
		return 0, false, fmt.Errorf("republish to %s: %w", dl.OriginalSubject, err)
	}
	if err := s.DeleteMsg(ctx, dl.Seq); err != nil {
		return ack.Sequence, ack.Duplicate, fmt.Errorf("republished to %s as %s seq %d, but could not delete the dead letter (a rerun stores no duplicate): %w",
			dl.OriginalSubject, ack.Stream, ack.Sequence, err)
	}
	return ack.Sequence, ack.Duplicate, nil
}

// Purge deletes the selected dead letters and returns their sequences.
// f must select something: sequences, at least one filter field, or All.
// Sequences in f.Seqs that are not in the stream are left out of the
// result. A dry run returns what would be deleted and changes nothing. On
// an error, the sequences deleted so far are returned with it.
func (d *Stream) Purge(ctx context.Context, f Filter, dryRun bool) ([]uint64, error) {
	if f.empty() && !f.All {
		return nil, errors.New("purge: select dead letters by sequence, by filter, or all")
	}
	entries, err := d.List(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("purge: %w", err)
	}
	seqs := make([]uint64, 0, len(entries))
	for _, dl := range entries {
		seqs = append(seqs, dl.Seq)
	}
	if dryRun || len(seqs) == 0 {
		return seqs, nil
	}
	s, err := d.streamHandle(ctx)
	if err != nil {
		return nil, fmt.Errorf("purge: %w", err)
	}
	if f.All {
		// Every entry up to the last listed one was listed: remove them in
		// one request. Entries stored since then have higher sequences.
		if err := s.Purge(ctx, jetstream.WithPurgeSequence(seqs[len(seqs)-1]+1)); err != nil {
			return nil, fmt.Errorf("purge stream %s: %w", d.stream, err)
		}
		return seqs, nil
	}
	deleted := make([]uint64, 0, len(seqs))
	for _, seq := range seqs {
		if err := s.DeleteMsg(ctx, seq); err != nil {
			return deleted, fmt.Errorf("purge dead letter %d from stream %s: %w", seq, d.stream, err)
		}
		deleted = append(deleted, seq)
	}
	return deleted, nil
}

// streamHandle looks the dead-letter stream up; its cached info is fresh.
func (d *Stream) streamHandle(ctx context.Context) (jetstream.Stream, error) {
	s, err := d.js.Stream(ctx, d.stream)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream %s: %w", d.stream, err)
	}
	return s, nil
}

// msgID is the Nats-Msg-Id of a dead letter or a replay: the message it
// comes from is named by stream, sequence and store time, since a sequence
// alone repeats when a stream is deleted and made again.
func msgID(kind, stream string, seq uint64, stored time.Time) string {
	return kind + ":" + stream + ":" + strconv.FormatUint(seq, 10) + ":" + strconv.FormatInt(stored.UnixNano(), 10)
}

// missingSeqs returns a failed result for each requested sequence that is
// not among the entries found.
func missingSeqs(want []uint64, found []DeadLetter, stream string) []ReplayResult {
	var res []ReplayResult
	seqs := slices.Clone(want)
	slices.Sort(seqs)
	for _, seq := range slices.Compact(seqs) {
		if !slices.ContainsFunc(found, func(dl DeadLetter) bool { return dl.Seq == seq }) {
			res = append(res, ReplayResult{Seq: seq, Err: fmt.Errorf("dead letter %d in stream %s: %w", seq, stream, jetstream.ErrMsgNotFound)})
		}
	}
	return res
}

// newDeadLetter decodes a stored dead letter. It is lenient: a header that
// is missing or malformed leaves its field at the zero value (FailedAt falls
// back to the store time), so that a damaged entry can still be listed.
func newDeadLetter(subject string, seq uint64, stored time.Time, h nats.Header, data []byte) *DeadLetter {
	dl := &DeadLetter{
		Seq:             seq,
		Subject:         subject,
		OriginalSubject: h.Get(HeaderOriginalSubject),
		Error:           h.Get(HeaderError),
		Class:           Class(h.Get(HeaderErrorClass)),
		AlertKey:        h.Get(HeaderAlertKey),
		ReplayOf:        h.Get(HeaderReplayOf),
		Stored:          stored,
		Header:          h,
		Data:            data,
	}
	if dl.OriginalSubject == "" {
		dl.OriginalSubject = strings.TrimPrefix(subject, SubjectPrefix)
	}
	if v, err := strconv.ParseUint(h.Get(HeaderOriginalSeq), 10, 64); err == nil {
		dl.OriginalSeq = v
	}
	if v, err := strconv.Atoi(h.Get(HeaderDeliveries)); err == nil {
		dl.Deliveries = v
	}
	if t, err := time.Parse(time.RFC3339Nano, h.Get(HeaderOriginalTime)); err == nil {
		dl.OriginalTime = t
	}
	if t, err := time.Parse(time.RFC3339Nano, h.Get(HeaderFailedAt)); err == nil {
		dl.FailedAt = t
	} else {
		dl.FailedAt = stored
	}
	return dl
}

// isDLQHeader reports whether k is one of the headers Publish adds.
func isDLQHeader(k string) bool {
	for _, h := range []string{HeaderOriginalSubject, HeaderOriginalSeq, HeaderError, HeaderErrorClass,
		HeaderDeliveries, HeaderFailedAt, HeaderAlertKey} {
		if strings.EqualFold(k, h) {
			return true
		}
	}
	return false
}

// isPublishDirective reports whether k is a header JetStream acts on when a
// message is published (Nats-Msg-Id, Nats-Expected-*, Nats-Rollup, Nats-TTL,
// …). Copied onto a dead letter or a replay they would misdirect it.
func isPublishDirective(k string) bool {
	return len(k) >= 5 && strings.EqualFold(k[:5], "Nats-")
}

// headerValue makes s safe as a header value: valid UTF-8 on one line.
func headerValue(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

// capText cuts s to at most n bytes on a character boundary, ending in "…"
// when it was cut.
func capText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := n - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
