package ingest

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/rs/zerolog"
)

// TopdeskEventsPath is where a TOPdesk automated action reports a changed
// incident.
const TopdeskEventsPath = "/v1/topdesk/events"

// maxIncidentNumber bounds the length of an incident number in a TOPdesk
// event, in bytes; TOPdesk's numbers are a dozen characters.
const maxIncidentNumber = 64

// TopdeskEventsOptions configures POST /v1/topdesk/events.
type TopdeskEventsOptions struct {
	// Token is the bearer token TOPdesk's action presents. Empty with Open
	// false means the endpoint is off.
	Token string
	// Open serves the endpoint without a token (alertdesk dev, on loopback).
	Open bool
	// Queue stores the event durably (worker.QueueTopdeskEvent); the
	// endpoint answers 202 only after it returned nil.
	Queue func(ctx context.Context, number string) error
	// PublishTimeout bounds Queue; 0 = 10 s.
	PublishTimeout time.Duration
	Logger         zerolog.Logger
}

// TopdeskEvents serves POST /v1/topdesk/events, called by a TOPdesk
// automated action (HTTP request, on "incident changed") with
// {"number": "<incident number>"}: 202 once the event is stored in
// JetStream, after which a worker reads that incident and learns what an
// operator did; 400 for a body without a usable number, 401 without the
// token, 413 over 64 KiB, 503 when NATS is unavailable.
type TopdeskEvents struct {
	opts TopdeskEventsOptions
	log  zerolog.Logger
}

// NewTopdeskEvents returns the endpoint, or nil when it is off.
func NewTopdeskEvents(opts TopdeskEventsOptions) *TopdeskEvents {
	if (opts.Token == "" && !opts.Open) || opts.Queue == nil {
		return nil
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 10 * time.Second
	}
	return &TopdeskEvents{opts: opts, log: opts.Logger.With().Str("component", "ingest").Logger()}
}

// Register mounts the endpoint on mux.
func (h *TopdeskEvents) Register(mux *http.ServeMux) {
	mux.Handle("POST "+TopdeskEventsPath, h)
}

// ServeHTTP handles one event.
func (h *TopdeskEvents) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !authorized(r, h.opts.Token, h.opts.Open) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="alertdesk"`)
		reply(w, http.StatusUnauthorized, ingestReply{Error: "missing or wrong bearer token"})
		return
	}
	body, ok := readBody(w, r, 64<<10)
	if !ok {
		return
	}
	number, err := incidentNumber(body)
	if err != nil {
		reply(w, http.StatusBadRequest, ingestReply{Error: err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.PublishTimeout)
	defer cancel()
	if err := h.opts.Queue(ctx, number); err != nil {
		h.log.Warn().Err(err).Str("incident_number", number).Msg("TOPdesk event not queued")
		w.Header().Set("Retry-After", "5")
		reply(w, http.StatusServiceUnavailable, ingestReply{Error: "NATS JetStream unavailable; retry later"})
		return
	}
	reply(w, http.StatusAccepted, ingestReply{Accepted: 1})
}

// incidentNumber reads {"number": "…"}: a JSON object whose number is a
// non-empty string of printable characters (other members are ignored, so
// that an action may send more).
func incidentNumber(body []byte) (string, error) {
	var ev struct {
		Number *string `json:"number"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return "", fmt.Errorf("not a JSON object with the incident number: %v", err)
	}
	if ev.Number == nil {
		return "", errors.New(`missing "number": send {"number": "<incident number>"}`)
	}
	n := strings.TrimSpace(*ev.Number)
	switch {
	case n == "":
		return "", errors.New(`"number" is empty`)
	case len(n) > maxIncidentNumber:
		return "", fmt.Errorf(`"number" is %d bytes, more than an incident number (%d)`, len(n), maxIncidentNumber)
	case strings.ContainsFunc(n, func(r rune) bool { return !unicode.IsPrint(r) }):
		return "", errors.New(`"number" contains control characters`)
	}
	return n, nil
}

// readBody reads r's body up to limit bytes; when it cannot, it answers
// 413 (over the limit) or 400 and returns false.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		reply(w, http.StatusRequestEntityTooLarge, ingestReply{Error: fmt.Sprintf("body over the limit of %d bytes", tooBig.Limit)})
		return nil, false
	case err != nil:
		reply(w, http.StatusBadRequest, ingestReply{Error: "reading body: " + err.Error()})
		return nil, false
	}
	return body, true
}

// authorized reports whether r may use an endpoint: with a token, when it
// carries "Authorization: Bearer <token>" (the scheme is case-insensitive,
// RFC 9110 section 11.1); without one, when the endpoint is open.
func authorized(r *http.Request, token string, open bool) bool {
	if token == "" {
		return open
	}
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && strings.EqualFold(scheme, "Bearer") &&
		subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) == 1
}
