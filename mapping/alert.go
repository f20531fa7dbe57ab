// Package mapping turns alert events into TOPdesk incident requests. It is
// pure: it decodes events, derives dedupe keys and renders request bodies
// from a YAML mapping, and never performs I/O (apart from LoadFile reading
// the mapping once at start-up).
package mapping

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
	"unicode/utf8"
)

// Status is the state an alert event reports.
type Status string

// The statuses an alert event can have.
const (
	StatusFiring   Status = "firing"
	StatusResolved Status = "resolved"
)

// Alert is one alert event (docs/events.md): either a native event
// or one alert of an Alertmanager webhook.
type Alert struct {
	Key         string // explicit dedupe key; empty when the publisher gave none
	Fingerprint string // Alertmanager fingerprint; empty for most native events
	Status      Status
	Severity    string
	Summary     string
	Description string
	Source      string
	URL         string
	Labels      map[string]string
	Annotations map[string]string
	StartsAt    time.Time
	EndsAt      time.Time
	Timestamp   time.Time
}

// EventTime returns the time that orders events of one key: Timestamp when
// set; else EndsAt for a resolved alert that has one; else StartsAt; else
// fallback (typically the JetStream publish time).
func (a *Alert) EventTime(fallback time.Time) time.Time {
	switch {
	case !a.Timestamp.IsZero():
		return a.Timestamp
	case a.Status == StatusResolved && !a.EndsAt.IsZero():
		return a.EndsAt
	case !a.StartsAt.IsZero():
		return a.StartsAt
	default:
		return fallback
	}
}

// ErrInvalid is wrapped by every error about an event that can never be
// processed: it does not decode, or it has no usable key. The worker
// dead-letters such events with class "invalid".
var ErrInvalid = errors.New("invalid alert")

// DefaultMaxBytes is the event size limit that Decode applies when
// DecodeOptions.MaxBytes is 0.
const DefaultMaxBytes = 256 << 10

// DecodeOptions tunes Decode.
type DecodeOptions struct {
	// MaxBytes is the largest payload accepted; 0 means DefaultMaxBytes.
	MaxBytes int
}

// nativeFields are the keys of a native event, in the order Decode checks
// them.
var nativeFields = []string{
	"key", "fingerprint", "status", "severity", "summary", "description",
	"source", "url", "labels", "annotations", "startsAt", "endsAt", "timestamp",
}

// Decode parses a payload into alerts. It accepts one native event object, a
// JSON array of native events, or a Prometheus Alertmanager webhook (version
// "4", recognised by having both "version" and "alerts"), of which every alert
// becomes one Alert with Source "alertmanager", URL from generatorURL,
// Severity from labels.severity, Summary from annotations.summary (else
// labels.alertname) and Description from annotations.description.
//
// Native events are decoded strictly: unknown fields, wrong JSON types, a
// missing or unknown status, malformed times (RFC 3339 required), invalid
// UTF-8, trailing data, an empty array or a payload over MaxBytes all fail.
// Every error wraps ErrInvalid and names what is wrong. Empty label and
// annotation maps decode as nil.
func Decode(data []byte, opts DecodeOptions) ([]Alert, error) {
	limit := opts.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	if len(data) > limit {
		return nil, invalidf("payload is %d bytes, over the limit of %d", len(data), limit)
	}
	if !utf8.Valid(data) {
		return nil, invalidf("payload is not valid UTF-8")
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, invalidf("payload is empty")
	}
	switch trimmed[0] {
	case '{':
		if a, ok := decodeNativeFast(trimmed); ok {
			return []Alert{a}, nil
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &obj); err != nil {
			return nil, invalidf("payload: %s", jsonProblem(err))
		}
		_, hasVersion := obj["version"]
		_, hasAlerts := obj["alerts"]
		if hasVersion && hasAlerts {
			return decodeWebhook(obj)
		}
		a, err := decodeNative(obj)
		if err != nil {
			return nil, invalidf("%s", err)
		}
		return []Alert{a}, nil
	case '[':
		var list []json.RawMessage
		if err := json.Unmarshal(trimmed, &list); err != nil {
			return nil, invalidf("payload: %s", jsonProblem(err))
		}
		if len(list) == 0 {
			return nil, invalidf("payload is an empty array")
		}
		out := make([]Alert, 0, len(list))
		for i, raw := range list {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
				return nil, invalidf("event %d: not a JSON object", i)
			}
			a, err := decodeNative(obj)
			if err != nil {
				return nil, invalidf("event %d: %s", i, err)
			}
			out = append(out, a)
		}
		return out, nil
	default:
		var v any
		if err := json.Unmarshal(trimmed, &v); err != nil {
			return nil, invalidf("payload: %s", jsonProblem(err))
		}
		return nil, invalidf("payload is not a JSON object or array")
	}
}

// invalidf returns an error wrapping ErrInvalid.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// jsonProblem turns an encoding/json error into a short description.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("not valid JSON: %s (at byte %d)", se.Error(), se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("field %q: got JSON %s, want %s", te.Field, te.Value, jsonKind(te.Type.Kind().String()))
		}
		return fmt.Sprintf("got JSON %s, want %s", te.Value, jsonKind(te.Type.Kind().String()))
	}
	return err.Error()
}

// jsonKind names a Go kind the way a JSON author thinks of it.
func jsonKind(kind string) string {
	switch kind {
	case "map", "struct":
		return "object"
	case "slice", "array":
		return "array"
	default:
		return kind
	}
}

// decodeNative decodes one native event object. Its errors do not wrap
// ErrInvalid; the caller adds it with the event's position.
func decodeNative(obj map[string]json.RawMessage) (Alert, error) {
	if obj == nil {
		return Alert{}, errors.New("not a JSON object")
	}
	if hasUnknown(obj) {
		for _, name := range slices.Sorted(maps.Keys(obj)) {
			if !slices.Contains(nativeFields, name) {
				return Alert{}, fmt.Errorf("unknown field %q", name)
			}
		}
	}
	var a Alert
	strs := []struct {
		name string
		dst  *string
	}{
		{"key", &a.Key}, {"fingerprint", &a.Fingerprint}, {"severity", &a.Severity},
		{"summary", &a.Summary}, {"description", &a.Description}, {"source", &a.Source}, {"url", &a.URL},
	}
	for _, f := range strs {
		if err := stringField(obj, f.name, f.dst); err != nil {
			return Alert{}, err
		}
	}
	var status string
	if err := stringField(obj, "status", &status); err != nil {
		return Alert{}, err
	}
	st, err := parseStatus(status)
	if err != nil {
		return Alert{}, fmt.Errorf("field %q: %w", "status", err)
	}
	a.Status = st
	if a.Labels, err = mapField(obj, "labels"); err != nil {
		return Alert{}, err
	}
	if a.Annotations, err = mapField(obj, "annotations"); err != nil {
		return Alert{}, err
	}
	times := []struct {
		name string
		dst  *time.Time
	}{{"startsAt", &a.StartsAt}, {"endsAt", &a.EndsAt}, {"timestamp", &a.Timestamp}}
	for _, f := range times {
		var s string
		if err := stringField(obj, f.name, &s); err != nil {
			return Alert{}, err
		}
		if *f.dst, err = parseTime(s); err != nil {
			return Alert{}, fmt.Errorf("field %q: %w", f.name, err)
		}
	}
	return a, nil
}

// hasUnknown reports whether obj has a key that is not a native field.
func hasUnknown(obj map[string]json.RawMessage) bool {
	for name := range obj {
		if !slices.Contains(nativeFields, name) {
			return true
		}
	}
	return false
}

// stringField decodes obj[name] into dst when present and not null.
func stringField(obj map[string]json.RawMessage, name string, dst *string) error {
	raw, ok := obj[name]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("field %q: want a string, got %s", name, jsonType(raw))
	}
	return nil
}

// mapField decodes obj[name] as an object of strings; empty decodes as nil.
func mapField(obj map[string]json.RawMessage, name string) (map[string]string, error) {
	raw, ok := obj[name]
	if !ok {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		var values map[string]json.RawMessage
		if json.Unmarshal(raw, &values) == nil {
			for _, k := range slices.Sorted(maps.Keys(values)) {
				if t := jsonType(values[k]); t != "a string" && t != "null" {
					return nil, fmt.Errorf("field %q: value of %q must be a string, got %s", name, k, t)
				}
			}
		}
		return nil, fmt.Errorf("field %q: want an object of strings, got %s", name, jsonType(raw))
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// jsonType names the JSON type of a raw value.
func jsonType(raw json.RawMessage) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// parseStatus validates a status; empty means it was missing.
func parseStatus(s string) (Status, error) {
	switch Status(s) {
	case StatusFiring, StatusResolved:
		return Status(s), nil
	case "":
		return "", errors.New("is required (firing or resolved)")
	default:
		return "", fmt.Errorf("unknown value %q (want firing or resolved)", s)
	}
}

// parseTime parses an RFC 3339 time; empty is the zero time, and so is
// Alertmanager's "0001-01-01T00:00:00Z".
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", s)
	}
	if t.IsZero() {
		return time.Time{}, nil
	}
	return t, nil
}

// webhookAlert is one alert of an Alertmanager webhook (version 4), the
// part alertdesk reads; unknown fields are ignored so that newer
// Alertmanagers keep working.
type webhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     string            `json:"startsAt"`
	EndsAt       string            `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// SourceAlertmanager is the Source of alerts decoded from an Alertmanager
// webhook.
const SourceAlertmanager = "alertmanager"

func decodeWebhook(obj map[string]json.RawMessage) ([]Alert, error) {
	var version string
	if err := json.Unmarshal(obj["version"], &version); err != nil {
		return nil, invalidf("alertmanager webhook: field %q: want a string, got %s", "version", jsonType(obj["version"]))
	}
	if version != "4" {
		return nil, invalidf("alertmanager webhook: unsupported version %q (want \"4\")", version)
	}
	var alerts []webhookAlert
	if err := json.Unmarshal(obj["alerts"], &alerts); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, invalidf("alertmanager webhook: field \"alerts.%s\": got JSON %s, want %s", te.Field, te.Value, jsonKind(te.Type.Kind().String()))
		}
		return nil, invalidf("alertmanager webhook: field %q: want an array of alerts, got %s", "alerts", jsonType(obj["alerts"]))
	}
	if len(alerts) == 0 {
		return nil, invalidf("alertmanager webhook: field %q is empty", "alerts")
	}
	out := make([]Alert, 0, len(alerts))
	for i, w := range alerts {
		st, err := parseStatus(w.Status)
		if err != nil {
			return nil, invalidf("alertmanager webhook: alerts[%d].status: %s", i, err)
		}
		a := Alert{
			Fingerprint: w.Fingerprint,
			Status:      st,
			Source:      SourceAlertmanager,
			URL:         w.GeneratorURL,
			Severity:    w.Labels["severity"],
			Summary:     w.Annotations["summary"],
			Description: w.Annotations["description"],
		}
		if a.Summary == "" {
			a.Summary = w.Labels["alertname"]
		}
		if len(w.Labels) > 0 {
			a.Labels = w.Labels
		}
		if len(w.Annotations) > 0 {
			a.Annotations = w.Annotations
		}
		if a.StartsAt, err = parseTime(w.StartsAt); err != nil {
			return nil, invalidf("alertmanager webhook: alerts[%d].startsAt: %s", i, err)
		}
		if a.EndsAt, err = parseTime(w.EndsAt); err != nil {
			return nil, invalidf("alertmanager webhook: alerts[%d].endsAt: %s", i, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// wireAlert is the native event schema: Encode writes it, and the one-pass
// decoder reads it.
type wireAlert struct {
	Key         string            `json:"key,omitempty"`
	Fingerprint string            `json:"fingerprint,omitempty"`
	Status      Status            `json:"status"`
	Severity    string            `json:"severity,omitempty"`
	Summary     string            `json:"summary,omitempty"`
	Description string            `json:"description,omitempty"`
	Source      string            `json:"source,omitempty"`
	URL         string            `json:"url,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	StartsAt    string            `json:"startsAt,omitempty"`
	EndsAt      string            `json:"endsAt,omitempty"`
	Timestamp   string            `json:"timestamp,omitempty"`
}

// Encode writes a as one native event. An Alertmanager alert keeps its
// fingerprint in the "fingerprint" field, so its key does not change when it
// is republished. Decode(Encode(a)) returns an equal Alert (times compare
// equal with time.Time.Equal, and empty maps come back as nil). It fails, wrapping ErrInvalid, when a has an
// unknown status or a string that is not valid UTF-8.
func Encode(a *Alert) ([]byte, error) {
	if _, err := parseStatus(string(a.Status)); err != nil {
		return nil, invalidf("status %s", err)
	}
	for _, t := range []time.Time{a.StartsAt, a.EndsAt, a.Timestamp} {
		if y := t.Year(); !t.IsZero() && (y < 0 || y > 9999) {
			return nil, invalidf("time %s is outside the years 0-9999", t)
		}
	}
	for _, s := range []string{a.Key, a.Fingerprint, a.Severity, a.Summary, a.Description, a.Source, a.URL} {
		if !utf8.ValidString(s) {
			return nil, invalidf("text is not valid UTF-8")
		}
	}
	for _, m := range []map[string]string{a.Labels, a.Annotations} {
		for k, v := range m {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, invalidf("label or annotation is not valid UTF-8")
			}
		}
	}
	w := wireAlert{
		Key: a.Key, Fingerprint: a.Fingerprint, Status: a.Status, Severity: a.Severity,
		Summary: a.Summary, Description: a.Description, Source: a.Source, URL: a.URL,
		Labels: a.Labels, Annotations: a.Annotations,
		StartsAt: formatTime(a.StartsAt), EndsAt: formatTime(a.EndsAt), Timestamp: formatTime(a.Timestamp),
	}
	b, err := json.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("encode alert: %w", err)
	}
	return b, nil
}

// formatTime writes t as RFC 3339 with nanoseconds; the zero time is empty.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}

// ExternalNumber returns the TOPdesk externalNumber for an alert key:
// "alertdesk-" followed by the first 32 hex digits of SHA-256(key).
func ExternalNumber(key string) string {
	sum := sha256.Sum256([]byte(key))
	var buf [10 + 32]byte
	copy(buf[:], "alertdesk-")
	hex.Encode(buf[10:], sum[:16])
	return string(buf[:])
}
