// Package ingest serves alertdesk's HTTP ingest: POST /v1/alerts,
// POST /v1/alertmanager and POST /v1/grafana publish events to the input
// stream for sources that cannot publish to NATS themselves (docs/events.md).
package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/mapping"
)

// The subjects ingested events are published to.
const (
	SubjectAlerts       = "alerts.http"
	SubjectAlertmanager = "alerts.alertmanager"
	SubjectGrafana      = "alerts.grafana"
)

// Options configures the HTTP ingest endpoints.
type Options struct {
	// Token is the bearer token senders must present. Empty with Open
	// false means ingest is off.
	Token string
	// Open serves ingest without a token (alertdesk dev, on loopback).
	Open bool
	// Stream is the input stream the workers consume. JetStream must store
	// every event there (jetstream.WithExpectStream): an event that another
	// stream would store, or none, is refused and the request answered 503,
	// never 202 for an event the workers will not see. Empty = any stream.
	Stream string
	// MaxBytes limits a request body; 0 = 1 MiB.
	MaxBytes int64
	// PublishTimeout bounds waiting for JetStream's ack of each event; 0 =
	// 10 s. A publish unanswered by then is given up (503) and forgotten.
	PublishTimeout time.Duration
	// Mapping derives the keys: an event it finds none for is refused.
	Mapping *mapping.Mapping
	Logger  zerolog.Logger
	Now     func() time.Time
}

// Handler serves POST /v1/alerts, POST /v1/alertmanager and POST
// /v1/grafana: it checks every
// event against the limits the worker applies (400 for an invalid one, 413
// for one over mapping.DefaultMaxBytes; then nothing of the request is
// stored), publishes each event with a Nats-Msg-Id from MsgID, and answers
// 202 only once JetStream acked every one.
type Handler struct {
	js   jetstream.JetStream // ingest's own: its async publishes time out
	opts Options
	log  zerolog.Logger
}

// New returns the ingest handler, publishing on nc, or nil when ingest is
// off.
func New(nc *nats.Conn, opts Options) *Handler {
	if opts.Token == "" && !opts.Open {
		return nil
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 1 << 20
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Mapping == nil {
		opts.Mapping = mapping.Default()
	}
	// A JetStream handle of ingest's own, so that a publish never answered
	// (a stream leader lost in an election) leaves its pending ack after
	// PublishTimeout; without the option it would stay for ever, and once
	// 4000 had piled up every publish would stall. jetstream.New fails only
	// on an invalid option, and this one is always valid.
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(opts.PublishTimeout))
	return &Handler{js: js, opts: opts, log: opts.Logger.With().Str("component", "ingest").Logger()}
}

// Register mounts the endpoints on mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle("POST /v1/alerts", h.handler(SubjectAlerts, h.opts.Mapping.Decode))
	mux.Handle("POST /v1/alertmanager", h.handler(SubjectAlertmanager, decodeAlertmanager))
	mux.Handle("POST /v1/grafana", h.handler(SubjectGrafana, mapping.DecodeGrafana))
}

// decoder turns a request body into alerts; its errors are the client's.
type decoder func(body []byte, opts mapping.DecodeOptions) ([]mapping.Alert, error)

// decodeAlertmanager takes only an Alertmanager webhook: the endpoint must
// not store a plain event sent to it by mistake.
func decodeAlertmanager(body []byte, opts mapping.DecodeOptions) ([]mapping.Alert, error) {
	var probe struct {
		Version *string         `json:"version"`
		Alerts  json.RawMessage `json:"alerts"`
	}
	if err := json.Unmarshal(body, &probe); err != nil || probe.Version == nil || probe.Alerts == nil {
		return nil, errors.New("not an Alertmanager webhook payload (needs \"version\" and \"alerts\")")
	}
	return mapping.Decode(body, opts)
}

type ingestReply struct {
	Accepted   int    `json:"accepted,omitempty"`
	Duplicates int    `json:"duplicates,omitempty"`
	Error      string `json:"error,omitempty"`
}

func (h *Handler) handler(subject string, decode decoder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="alertdesk"`)
			reply(w, http.StatusUnauthorized, ingestReply{Error: "missing or wrong bearer token"})
			return
		}
		body, ok := readBody(w, r, h.opts.MaxBytes)
		if !ok {
			return
		}
		msgs, err := h.messages(body, subject, decode)
		switch {
		case errors.Is(err, errEventTooLarge):
			reply(w, http.StatusRequestEntityTooLarge, ingestReply{Error: err.Error()})
			return
		case err != nil:
			reply(w, http.StatusBadRequest, ingestReply{Error: err.Error()})
			return
		}
		acked, dups, err := h.publish(r.Context(), msgs)
		if err != nil {
			h.log.Warn().Err(err).Int("events", len(msgs)).Int("acked", acked).Msg("ingest publish failed")
			w.Header().Set("Retry-After", "5")
			reply(w, http.StatusServiceUnavailable, ingestReply{Error: "NATS JetStream unavailable; retry later"})
			return
		}
		reply(w, http.StatusAccepted, ingestReply{Accepted: acked - dups, Duplicates: dups})
	})
}

func (h *Handler) authorized(r *http.Request) bool {
	return authorized(r, h.opts.Token, h.opts.Open)
}

// errEventTooLarge is wrapped by the error about an event that is larger,
// as the message ingest would publish, than the worker accepts.
var errEventTooLarge = errors.New("event over the size limit")

// messages validates the body and turns it into one message per alert. It
// refuses what the worker would dead-letter as invalid: an event the
// mapping derives no key from, or one whose message is larger than
// mapping.DefaultMaxBytes (errEventTooLarge).
func (h *Handler) messages(body []byte, subject string, decode decoder) ([]*nats.Msg, error) {
	alerts, err := decode(body, mapping.DecodeOptions{MaxBytes: int(h.opts.MaxBytes)})
	if err != nil {
		return nil, err
	}
	now := h.opts.Now()
	msgs := make([]*nats.Msg, 0, len(alerts))
	for i := range alerts {
		a := &alerts[i]
		if _, err := h.opts.Mapping.Key(a); err != nil {
			return nil, fmt.Errorf("alert %d: %w", i, err)
		}
		data, err := mapping.Encode(a)
		if err != nil {
			return nil, fmt.Errorf("alert %d: %w", i, err)
		}
		if len(data) > mapping.DefaultMaxBytes {
			return nil, fmt.Errorf("%w: event %d is %d bytes, the limit is %d", errEventTooLarge, i, len(data), mapping.DefaultMaxBytes)
		}
		m := nats.NewMsg(subject)
		m.Data = data
		var received time.Time // the zero time: the event has a time of its own
		if a.EventTime(time.Time{}).IsZero() {
			received = now
		}
		m.Header.Set(jetstream.MsgIDHeader, MsgID(data, received, i))
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// MsgID is the Nats-Msg-Id of an ingested event, given the event as
// published (mapping.Encode): a hash of its key, status, time and all its
// content. The same notification sent twice (as Alertmanager HA pairs do)
// is stored once within the input stream's duplicate window, while one
// whose content changed is stored.
//
// An event without a time of its own is published without one, and the
// worker orders it by the publish time of its message (PRODUCT.md, "Order
// of events"): the order of the events in a request and of the requests
// decides, not the clock of the instance that received them. Its bytes
// alone cannot tell two notifications apart, so for such an event pass
// received, the receive time of its request, and i, its position in the
// request (for an event with a time, pass the zero time; i is then
// ignored). They are hashed with the event, the time cut to the second:
// copies of one request received within the same second (an HA pair, a
// sender that posts twice at once) are stored once; the same event in a
// later second, or twice in one request ([firing, resolved, firing]), is
// stored each time. The trade-off: copies that straddle a second boundary
// are both stored (the worker takes the second for a duplicate), and a key
// that fires, resolves and fires again in separate requests within one
// second loses the second firing as a duplicate of the first. A source
// that flaps that fast has to send its own time.
func MsgID(event []byte, received time.Time, i int) string {
	h := sha256.New()
	h.Write(event) // a hash.Hash never returns an error
	if !received.IsZero() {
		fmt.Fprintf(h, "\n%d %d", received.Unix(), i)
	}
	return "ingest:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// publish publishes every message and waits for all acks, each for
// PublishTimeout at most (the handle's async publish timeout), or until ctx
// ends. The messages of one request go out in order on one connection, and
// JetStream stores them in that order (unless the stream answers one with
// no responders and nats.go republishes it after the next).
func (h *Handler) publish(ctx context.Context, msgs []*nats.Msg) (acked, dups int, err error) {
	if nc := h.js.Conn(); nc == nil || !nc.IsConnected() {
		return 0, 0, errors.New("not connected to NATS")
	}
	var opts []jetstream.PublishOpt
	if h.opts.Stream != "" {
		opts = append(opts, jetstream.WithExpectStream(h.opts.Stream))
	}
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := h.js.PublishMsgAsync(m, opts...)
		if err != nil {
			return acked, dups, fmt.Errorf("publish to %s: %w", m.Subject, err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			acked++
			if ack.Duplicate {
				dups++
			}
		case err := <-f.Err():
			return acked, dups, fmt.Errorf("publish to %s: %w", f.Msg().Subject, err)
		case <-ctx.Done():
			return acked, dups, fmt.Errorf("waiting for JetStream acks: %w", ctx.Err())
		}
	}
	return acked, dups, nil
}

func reply(w http.ResponseWriter, status int, body ingestReply) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The client may be gone; there is no one left to tell.
	_ = json.NewEncoder(w).Encode(body)
}
