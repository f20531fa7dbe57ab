// Package timer keeps durable, clustered timers in JetStream: resolve
// delays, flap quiet periods and maintenance-window ends live in a stream,
// not in a worker's memory, so a worker restart, a lost worker or a NATS
// server restart never drops one.
//
// A timer is named by a kind (e.g. "resolve") and a key (e.g. an alert's
// externalNumber) and stored on one subject per timer: setting it again
// replaces it, cancelling purges that subject. When it is due, a message
// with the body given to Set arrives on the timer stream's own durable
// consumer, which Run hands to a handler.
//
// Two modes do this (see Mode). With JetStream message schedules (NATS
// server 2.12 or later, ADR-51) the server itself publishes the body at the
// set time. Where schedules are unavailable, the timer is stored at once
// and the consumer Naks it with a delay until it is due (delayed
// redelivery). Both modes store their timers in the same stream, under
// subjects that only this package uses, so the input stream and its
// consumer need no setting for timers.
//
// A fired timer may be delivered more than once (a worker dies before it
// acks, an ack is lost, or Cancel or Set races with a delivery already under
// way), so a handler must be idempotent: it re-checks the key's state before
// acting and treats a timer that no longer applies as done.
package timer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// SubjectPrefix starts every subject of the timer stream. A pending
// schedule lives on SubjectPrefix+"set.<kind>.<key>"; a timer that is due
// (or, in redelivery mode, waiting to be due) on SubjectPrefix+"due.<kind>.<key>".
const SubjectPrefix = "alertdesk.timer."

// DefaultStream is the timer stream when Options.Stream is empty.
const DefaultStream = "ALERTDESK_TIMERS"

// HeaderAt carries the time a timer was set for (RFC 3339 with nanoseconds)
// on every timer message.
const HeaderAt = "Alertdesk-Timer-At"

// errCodeInvalidJSON is the JetStream API error a strict server returns for
// a request with a field it does not know; nats.go has no name for it.
const errCodeInvalidJSON jetstream.ErrorCode = 10025

// Mode says how a Scheduler makes timers fire.
type Mode int

const (
	// ModeSchedules uses JetStream message schedules: the server publishes
	// the timer when it is due. Needs NATS server 2.12 or later and a
	// stream with AllowMsgSchedules. Resolution is one second: a timer
	// fires in the first whole second at or after its time.
	ModeSchedules Mode = iota
	// ModeRedelivery stores the timer at once and the consumer Naks it with
	// a delay until it is due. Works on any JetStream server.
	ModeRedelivery
)

func (m Mode) String() string {
	if m == ModeSchedules {
		return "message schedules"
	}
	return "delayed redelivery"
}

// Options configure a Scheduler and the resources New creates.
type Options struct {
	Stream   string // timer stream; "" = ALERTDESK_TIMERS
	Consumer string // durable pull consumer on the due timers; "" = alertdesk-timers
	Replicas int    // replicas of stream and consumer; 0 = 1
	// AckWait is the consumer's ack wait: a fired timer not settled within
	// it is delivered again; 0 = 30 s.
	AckWait time.Duration
	// Redelivery forces ModeRedelivery even where schedules are available.
	// Every worker sharing the stream must use the same setting: a timer
	// set in one mode is not replaced by a Set in the other.
	Redelivery bool
	// Now is the clock that decides whether a timer is due; nil = time.Now.
	Now func() time.Time
}

// Scheduler sets, cancels and delivers timers.
type Scheduler struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	cons   jetstream.Consumer
	mode   Mode
	why    string
	now    func() time.Time
	warns  []string
}

// New creates the timer stream and its consumer when they are missing, and
// decides the mode: message schedules when the stream allows them, delayed
// redelivery otherwise. It never rewrites an existing stream; one that does
// not bind SubjectPrefix+">" or does not allow roll-ups is an error. In
// delayed-redelivery mode it creates the consumer without a limit on
// unacknowledged messages, as every timer not yet due is one; an existing
// consumer with a limit is kept, and Warnings says so.
func New(ctx context.Context, js jetstream.JetStream, o Options) (*Scheduler, error) {
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if o.Consumer == "" {
		o.Consumer = "alertdesk-timers"
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Scheduler{js: js, now: o.Now}
	stream, err := js.Stream(ctx, o.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		want := jetstream.StreamConfig{
			Name:        o.Stream,
			Description: "alertdesk: durable timers",
			Subjects:    []string{SubjectPrefix + ">"},
			// A handled timer is acked away; a pending one is kept however
			// far ahead it is due, so there is no MaxAge.
			Retention:         jetstream.WorkQueuePolicy,
			Storage:           jetstream.FileStorage,
			Replicas:          o.Replicas,
			AllowRollup:       true,
			AllowMsgSchedules: !o.Redelivery,
		}
		stream, err = js.CreateStream(ctx, want)
		if apiErr := (*jetstream.APIError)(nil); errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeInvalidJSON {
			// A strict server before 2.12 rejects the unknown setting (one
			// that is not strict drops it, which the check below sees).
			want.AllowMsgSchedules = false
			stream, err = js.CreateStream(ctx, want)
		}
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			stream, err = js.Stream(ctx, o.Stream) // another worker was faster
		}
	}
	if err != nil {
		return nil, fmt.Errorf("timer stream %s: %w", o.Stream, err)
	}
	cfg := stream.CachedInfo().Config
	if err := checkStream(cfg); err != nil {
		return nil, err
	}
	switch {
	case o.Redelivery:
		s.mode, s.why = ModeRedelivery, "forced by configuration"
	case !cfg.AllowMsgSchedules:
		// A server before 2.12 does not know the setting and drops it.
		s.mode, s.why = ModeRedelivery, fmt.Sprintf(
			"stream %s does not allow message schedules (NATS server %s; schedules need 2.12 or later)",
			o.Stream, js.Conn().ConnectedServerVersion())
	default:
		s.mode, s.why = ModeSchedules, fmt.Sprintf("stream %s allows message schedules", o.Stream)
	}
	s.stream = stream
	cc := jetstream.ConsumerConfig{
		Durable:       o.Consumer,
		Description:   "alertdesk: due timers",
		FilterSubject: SubjectPrefix + "due.>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    -1, // a redelivery-mode timer is delivered once per Nak until due
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      o.Replicas,
	}
	if s.mode == ModeRedelivery {
		// A timer not yet due stays unacknowledged until it is: with a
		// limit, that many waiting timers would stop every other one.
		cc.MaxAckPending = -1
	}
	s.cons, err = stream.CreateConsumer(ctx, cc)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		s.cons, err = stream.Consumer(ctx, o.Consumer) // kept as the operator set it
	}
	if err != nil {
		return nil, fmt.Errorf("timer consumer %s on stream %s: %w", o.Consumer, o.Stream, err)
	}
	if limit := s.cons.CachedInfo().Config.MaxAckPending; s.mode == ModeRedelivery && limit > 0 {
		s.warns = append(s.warns, fmt.Sprintf("timer consumer %s allows %d unacknowledged timers: in delayed-redelivery mode a timer waits unacknowledged until it is due, "+
			"so %d timers waiting stop every other timer from firing; set its max ack pending to -1 (no limit)",
			o.Consumer, limit, limit))
	}
	return s, nil
}

// checkStream returns why an existing timer stream cannot be used, or nil.
func checkStream(cfg jetstream.StreamConfig) error {
	switch {
	case len(cfg.Subjects) != 1 || cfg.Subjects[0] != SubjectPrefix+">":
		return fmt.Errorf("timer stream %s binds %v; it must bind exactly %s>", cfg.Name, cfg.Subjects, SubjectPrefix)
	case !cfg.AllowRollup:
		return fmt.Errorf("timer stream %s does not allow roll-ups; timers need them", cfg.Name)
	}
	return nil
}

// Check inspects the timer stream named stream ("" = DefaultStream)
// without creating or changing anything: whether it exists, how its timers
// fire, and why New would reject it (err). A missing stream is no error:
// New creates it.
func Check(ctx context.Context, js jetstream.JetStream, stream string) (exists bool, mode Mode, err error) {
	if stream == "" {
		stream = DefaultStream
	}
	s, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, ModeSchedules, nil
	}
	if err != nil {
		return false, ModeSchedules, fmt.Errorf("timer stream %s: %w", stream, err)
	}
	cfg := s.CachedInfo().Config
	if !cfg.AllowMsgSchedules {
		mode = ModeRedelivery
	}
	return true, mode, checkStream(cfg)
}

// Mode reports how timers fire, and why: the worker logs both at start-up.
func (s *Scheduler) Mode() (Mode, string) { return s.mode, s.why }

// Warnings are settings of the existing timer consumer that can hold
// timers back; New keeps such a consumer as it is, and the worker logs
// them at start-up.
func (s *Scheduler) Warnings() []string { return s.warns }

// Set makes the timer kind/key fire at at with body, replacing any earlier
// setting of it, including one that is due but not yet handled. kind is one
// subject token; key is one or more (no wildcards, no whitespace).
func (s *Scheduler) Set(ctx context.Context, kind, key string, at time.Time, body []byte) error {
	if err := checkName(kind, key); err != nil {
		return err
	}
	due := subject("due", kind, key)
	msg := &nats.Msg{Header: nats.Header{HeaderAt: {at.UTC().Format(time.RFC3339Nano)}}, Data: body}
	if s.mode == ModeRedelivery {
		// The roll-up removes the earlier setting stored on the same subject.
		msg.Subject = due
		msg.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
		if _, err := s.js.PublishMsg(ctx, msg); err != nil {
			return fmt.Errorf("set timer %s %s: %w", kind, key, err)
		}
		return nil
	}
	// The server stores a schedule as a roll-up of its subject, so this
	// replaces an earlier schedule. @at has whole seconds: round up, never
	// fire early.
	msg.Subject = subject("set", kind, key)
	ack, err := s.js.PublishMsg(ctx, msg,
		jetstream.WithScheduleAt(ceilSecond(at)), jetstream.WithScheduleTarget(due))
	if err != nil {
		return fmt.Errorf("set timer %s %s: %w", kind, key, err)
	}
	// An earlier setting may have fired already and wait unhandled: remove
	// it, but nothing the new schedule publishes after its own sequence.
	if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(due), jetstream.WithPurgeSequence(ack.Sequence)); err != nil {
		return fmt.Errorf("set timer %s %s: remove the earlier one: %w", kind, key, err)
	}
	return nil
}

// FireNow makes the timer kind/key due at once with body, replacing one of
// the same kind and key that is due and not yet handled, so that several
// that wait are folded into one. It needs only a JetStream handle: a
// process that runs no Scheduler (the HTTP ingest) queues work for the
// workers with it. The timer stream must exist (New creates it).
func FireNow(ctx context.Context, js jetstream.JetStream, kind, key string, body []byte) error {
	if err := checkName(kind, key); err != nil {
		return err
	}
	// The zero time is due whatever the clocks say.
	msg := &nats.Msg{
		Subject: subject("due", kind, key),
		Header: nats.Header{
			HeaderAt:            {time.Time{}.Format(time.RFC3339Nano)},
			jetstream.MsgRollup: {jetstream.MsgRollupSubject},
		},
		Data: body,
	}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("fire timer %s %s: %w", kind, key, err)
	}
	return nil
}

// Cancel removes the timer kind/key, whether pending or due and not yet
// handled. Cancelling a timer that does not exist is not an error. A
// delivery already under way cannot be recalled; the handler's state check
// covers it.
func (s *Scheduler) Cancel(ctx context.Context, kind, key string) error {
	if err := checkName(kind, key); err != nil {
		return err
	}
	if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(subject("*", kind, key))); err != nil {
		return fmt.Errorf("cancel timer %s %s: %w", kind, key, err)
	}
	return nil
}

// Pending counts the timers stored: those not yet due and those due but
// not yet handled. It is meant for a gauge.
func (s *Scheduler) Pending(ctx context.Context) (uint64, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("count timers: %w", err)
	}
	return info.State.Msgs, nil
}

// Fired is a due timer handed to a Run handler.
type Fired struct {
	Kind, Key string
	At        time.Time // the time the timer was set for
	Body      []byte
	// Msg is the stream message; the handler settles it (Ack when done,
	// Nak to have it again). Its metadata's NumDelivered above 1 shows a
	// redelivery; in ModeRedelivery it also counts the early deliveries.
	Msg jetstream.Msg
}

// Run delivers due timers to handle until ctx is done, then drains the
// consumer and returns. handle must settle f.Msg and be idempotent (see
// the package comment). A message on the consumer that is not a timer is
// terminated.
func (s *Scheduler) Run(ctx context.Context, handle func(ctx context.Context, f Fired)) error {
	cc, err := s.cons.Consume(func(m jetstream.Msg) {
		f, err := parse(m)
		if err != nil {
			// Not one of ours: nothing could ever handle it.
			// On failure it comes back after AckWait and is terminated then.
			_ = m.TermWithReason(err.Error())
			return
		}
		if wait := f.At.Sub(s.now()); wait > 0 {
			// Early: a redelivery-mode timer, or the server's clock is ahead.
			// On failure it comes back after AckWait and is checked again.
			_ = m.NakWithDelay(wait)
			return
		}
		handle(ctx, f)
	})
	if err != nil {
		return fmt.Errorf("consume timers: %w", err)
	}
	<-ctx.Done()
	cc.Drain()
	<-cc.Closed()
	return nil
}

// parse reads the timer from a message on SubjectPrefix+"due.<kind>.<key>".
func parse(m jetstream.Msg) (Fired, error) {
	rest, ok := strings.CutPrefix(m.Subject(), SubjectPrefix+"due.")
	kind, key, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return Fired{}, fmt.Errorf("subject %s is not a timer subject", m.Subject())
	}
	at, err := time.Parse(time.RFC3339Nano, m.Headers().Get(HeaderAt))
	if err != nil {
		return Fired{}, fmt.Errorf("timer %s %s: header %s: %w", kind, key, HeaderAt, err)
	}
	return Fired{Kind: kind, Key: key, At: at, Body: m.Data(), Msg: m}, nil
}

func subject(state, kind, key string) string {
	return SubjectPrefix + state + "." + kind + "." + key
}

// checkName rejects a kind or key that would not name exactly one timer.
func checkName(kind, key string) error {
	if kind == "" || strings.Contains(kind, ".") || !literal(kind) || !literal(key) {
		return fmt.Errorf("timer %q %q: kind must be one subject token and key one or more, without wildcards or whitespace", kind, key)
	}
	return nil
}

func literal(s string) bool {
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
			return false
		}
	}
	return true
}

func ceilSecond(t time.Time) time.Time {
	if r := t.Truncate(time.Second); !r.Equal(t) {
		return r.Add(time.Second)
	}
	return t
}
