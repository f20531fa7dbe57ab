// Package mapping turns alert events into TOPdesk incident requests. It is
// pure: it decodes events, derives dedupe keys and renders request bodies
// from a YAML mapping, and never performs I/O (apart from LoadFile reading
// the mapping once at start-up).
package mapping

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
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
	// GroupKey is the Alertmanager (or Grafana) group key of the
	// notification the alert came in, for group: {alertmanager: true}.
	GroupKey string
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

// Decode parses a payload into alerts. It accepts one native event object, a
// JSON array of native events, or a webhook (recognised by having both
// "version" and "alerts"): a Prometheus Alertmanager webhook (version "4")
// or a Grafana Alerting webhook (version "1", see DecodeGrafana). Every
// alert of a webhook becomes one Alert with Source "alertmanager" or
// "grafana", URL from generatorURL, Severity from labels.severity, Summary
// from annotations.summary (else labels.alertname) and Description from
// annotations.description.
//
// Native events are decoded strictly: unknown or wrongly cased fields,
// duplicate fields, wrong JSON types, a missing or unknown status, malformed
// times (RFC 3339 required), invalid UTF-8, trailing data, an empty array or
// a payload over MaxBytes all fail. Every error wraps ErrInvalid and names
// what is wrong. Empty label and annotation maps decode as nil.
func Decode(data []byte, opts DecodeOptions) ([]Alert, error) {
	return decode(data, opts, false)
}

// decode is Decode; with statusOptional, native events without a status
// decode with an empty Status (Mapping.Decode fills it in).
func decode(data []byte, opts DecodeOptions, statusOptional bool) ([]Alert, error) {
	limit := opts.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	if len(data) > limit {
		return nil, invalidf("payload is %d bytes, over the limit of %d", len(data), limit)
	}
	payload := jsontext.Value(bytes.TrimSpace(data))
	if len(payload) == 0 {
		return nil, invalidf("payload is empty")
	}
	// The usual payload, one valid native event, is decoded in one pass;
	// the checks that explain a failure (UTF-8, syntax, a webhook) run only
	// when that decode fails, in the order their messages take precedence.
	var events []*wireAlert
	var err error
	switch payload.Kind() {
	case '{':
		events = []*wireAlert{nil}
		err = json.Unmarshal(payload, &events[0], strict)
	case '[':
		if err = json.Unmarshal(payload, &events, strict); err == nil && len(events) == 0 {
			return nil, invalidf("payload is an empty array")
		}
	default:
		err = errNotContainer
	}
	if err != nil {
		return decodeFailed(payload, err)
	}
	out := make([]Alert, len(events))
	for i, w := range events {
		var err error
		if w == nil {
			err = errors.New("not a JSON object")
		} else {
			out[i], err = w.alert(statusOptional)
		}
		switch {
		case err == nil:
		case payload.Kind() == '[':
			return nil, invalidf("event %d: %s", i, err)
		default:
			return nil, invalidf("%s", err)
		}
	}
	return out, nil
}

// errNotContainer is decode's error for a payload that is valid JSON but
// neither an object nor an array.
var errNotContainer = errors.New("payload is not a JSON object or array")

// decodeFailed explains why payload did not decode as native events (err):
// invalid UTF-8, then invalid JSON, then a webhook (an object with both
// "version" and "alerts", which native events never have) is decoded as
// one, else err names the field.
func decodeFailed(payload jsontext.Value, err error) ([]Alert, error) {
	if !utf8.Valid(payload) {
		return nil, invalidf("payload is not valid UTF-8")
	}
	if !payload.IsValid() {
		var v any
		return nil, invalidf("payload: %s", jsonProblem(json.Unmarshal(payload, &v)))
	}
	if errors.Is(err, errNotContainer) {
		return nil, invalidf("%s", err)
	}
	if payload.Kind() == '{' {
		var probe struct {
			Version jsontext.Value `json:"version"`
			Alerts  jsontext.Value `json:"alerts"`
		}
		if perr := json.Unmarshal(payload, &probe); perr != nil {
			return nil, invalidf("payload: %s", jsonProblem(perr))
		}
		if probe.Version != nil && probe.Alerts != nil {
			return decodeWebhook(payload)
		}
	}
	return nil, invalidf("%s", jsonProblem(err))
}

// strict are the options of native event decoding. Exact-case names, no
// duplicate names and valid UTF-8 are the library's defaults.
var strict = json.RejectUnknownMembers(true)

// invalidf returns an error wrapping ErrInvalid.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// jsonProblem turns a decoding error into a short description that names
// the field: 'field "labels": value of "a" must be a string, got a number'.
// An error inside an array of events starts with "event N: ", one inside
// an alert of a webhook with "alerts[N]: ".
func jsonProblem(err error) string {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		if errors.Is(se.Err, jsontext.ErrDuplicateName) {
			at, names := splitPointer(se.JSONPointer)
			return fmt.Sprintf("%sduplicate field %q", at, strings.Join(names, "."))
		}
		return fmt.Sprintf("not valid JSON: %s (at byte %d)", se.Err, se.ByteOffset)
	}
	var me *json.SemanticError
	if !errors.As(err, &me) {
		return err.Error()
	}
	at, names := splitPointer(me.JSONPointer)
	field, got := strings.Join(names, "."), kindName(me.JSONKind)
	var kind, elem reflect.Kind
	if me.GoType != nil {
		kind = me.GoType.Kind()
		if kind == reflect.Map {
			elem = me.GoType.Elem().Kind()
		}
	}
	switch {
	case errors.Is(me.Err, json.ErrUnknownName):
		return fmt.Sprintf("%sunknown field %q", at, field)
	case field == "":
		return fmt.Sprintf("%snot a JSON object", at)
	case len(names) > 1 && isMap(names[len(names)-2]):
		parent := strings.Join(names[:len(names)-1], ".")
		return fmt.Sprintf("%sfield %q: value of %q must be %s, got %s", at, parent, names[len(names)-1], want(kind), got)
	case kind == reflect.Map:
		return fmt.Sprintf("%sfield %q: want an object of %ss, got %s", at, field, strings.TrimPrefix(want(elem), "a "), got)
	default:
		return fmt.Sprintf("%sfield %q: want %s, got %s", at, field, want(kind), got)
	}
}

// isMap reports whether name is a field whose value is an object.
func isMap(name string) bool { return name == "labels" || name == "annotations" || name == "values" }

// want names what a Go kind takes in JSON.
func want(k reflect.Kind) string {
	switch k {
	case reflect.Slice:
		return "an array"
	case reflect.Float64:
		return "a number"
	default:
		return "a string"
	}
}

// splitPointer splits a JSON pointer into where the event is ("event N: "
// in an array of events, "alerts[N]: " in a webhook, else empty) and the
// member names that lead to the value.
func splitPointer(ptr jsontext.Pointer) (at string, names []string) {
	prev := ""
	for tok := range ptr.Tokens() {
		_, numErr := strconv.Atoi(tok)
		switch {
		case numErr == nil && prev == "" && names == nil:
			at = "event " + tok + ": "
		case numErr == nil && prev == "alerts" && len(names) == 1:
			at = "alerts[" + tok + "]: "
		default:
			names = append(names, tok)
		}
		prev = tok
	}
	return at, names
}

// kindName names a JSON kind the way an error message does.
func kindName(k jsontext.Kind) string {
	switch k {
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
	case '0':
		return "a number"
	default:
		return "something else"
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

// webhookAlert is one alert of an Alertmanager webhook (version 4) or a
// Grafana Alerting webhook (version 1, which adds the URLs and values), the
// part alertdesk reads; unknown fields are ignored so that newer senders keep
// working.
type webhookAlert struct {
	Status       string             `json:"status"`
	Labels       map[string]string  `json:"labels"`
	Annotations  map[string]string  `json:"annotations"`
	StartsAt     string             `json:"startsAt"`
	EndsAt       string             `json:"endsAt"`
	GeneratorURL string             `json:"generatorURL"`
	Fingerprint  string             `json:"fingerprint"`
	DashboardURL string             `json:"dashboardURL"`
	PanelURL     string             `json:"panelURL"`
	SilenceURL   string             `json:"silenceURL"`
	Values       map[string]float64 `json:"values"`
}

// The sources of alerts decoded from webhooks.
const (
	// SourceAlertmanager is the Source of alerts decoded from an
	// Alertmanager webhook.
	SourceAlertmanager = "alertmanager"
	// SourceGrafana is the Source of alerts decoded from a Grafana Alerting
	// webhook.
	SourceGrafana = "grafana"
)

// webhookSources are the webhook versions Decode accepts and the source
// each is.
var webhookSources = map[string]string{"4": SourceAlertmanager, "1": SourceGrafana}

// DecodeGrafana parses a Grafana Alerting webhook (contact point "Webhook",
// "version": "1") into alerts, one per alert of the payload, as Decode does
// (it accepts the same payload), and refuses anything else. Every alert
// has Source "grafana" and its fingerprint as Fingerprint (the key, unless
// the mapping names key labels); Severity, Summary, Description and URL are
// read as from an Alertmanager webhook. The alert's dashboardURL, panelURL
// and silenceURL become annotations of those names, each entry of its values
// an annotation "value.<refID>" (e.g. "value.B") and all of them the
// annotation "values" ("B=44.2, C=1"), so that templates can use them; an
// annotation the alert already has is kept. A native event is refused, also
// one that says "source": "grafana" itself. Errors wrap ErrInvalid.
func DecodeGrafana(data []byte, opts DecodeOptions) ([]Alert, error) {
	alerts, err := Decode(data, opts)
	if err != nil {
		return nil, err
	}
	// The payload decoded, so it is valid JSON; only the webhook's own shape
	// tells Grafana's from a native event, whose source is anyone's to set.
	var hook struct {
		Version string         `json:"version"`
		Alerts  jsontext.Value `json:"alerts"`
	}
	if json.Unmarshal(bytes.TrimSpace(data), &hook) != nil || webhookSources[hook.Version] != SourceGrafana || hook.Alerts == nil {
		return nil, invalidf(`not a Grafana webhook (want an object with "version": "1" and "alerts")`)
	}
	return alerts, nil
}

// decodeWebhook decodes an Alertmanager or Grafana webhook; fields it does
// not read are ignored.
func decodeWebhook(payload jsontext.Value) ([]Alert, error) {
	var hook struct {
		Version  string         `json:"version"`
		Alerts   []webhookAlert `json:"alerts"`
		GroupKey string         `json:"groupKey"`
	}
	if err := json.Unmarshal(payload, &hook); err != nil {
		return nil, invalidf("webhook: %s", jsonProblem(err))
	}
	source, ok := webhookSources[hook.Version]
	if !ok {
		return nil, invalidf(`webhook: unsupported version %q (want "4" for Alertmanager or "1" for Grafana)`, hook.Version)
	}
	if len(hook.Alerts) == 0 {
		return nil, invalidf("%s webhook: field %q is empty", source, "alerts")
	}
	out := make([]Alert, 0, len(hook.Alerts))
	for i, w := range hook.Alerts {
		a, err := w.alert(source)
		if err != nil {
			return nil, invalidf("%s webhook: alerts[%d].%s", source, i, err)
		}
		a.GroupKey = hook.GroupKey
		out = append(out, a)
	}
	return out, nil
}

// alert returns w as an Alert from source. Its errors start with the field
// name and do not wrap ErrInvalid.
func (w *webhookAlert) alert(source string) (Alert, error) {
	st, err := parseStatus(w.Status)
	if err != nil {
		return Alert{}, fmt.Errorf("status: %w", err)
	}
	a := Alert{
		Fingerprint: w.Fingerprint,
		Status:      st,
		Source:      source,
		URL:         w.GeneratorURL,
		Severity:    w.Labels["severity"],
		Summary:     w.Annotations["summary"],
		Description: w.Annotations["description"],
	}
	if a.Summary == "" {
		a.Summary = w.Labels["alertname"]
	}
	if a.StartsAt, err = parseTime(w.StartsAt); err != nil {
		return Alert{}, fmt.Errorf("startsAt: %w", err)
	}
	if a.EndsAt, err = parseTime(w.EndsAt); err != nil {
		return Alert{}, fmt.Errorf("endsAt: %w", err)
	}
	extra := map[string]string{"dashboardURL": w.DashboardURL, "panelURL": w.PanelURL, "silenceURL": w.SilenceURL}
	values := make([]string, 0, len(w.Values))
	for _, ref := range slices.Sorted(maps.Keys(w.Values)) {
		v := strconv.FormatFloat(w.Values[ref], 'g', -1, 64)
		extra["value."+ref] = v
		values = append(values, ref+"="+v)
	}
	extra["values"] = strings.Join(values, ", ")
	for k, v := range extra {
		if _, has := w.Annotations[k]; v != "" && !has {
			if w.Annotations == nil {
				w.Annotations = make(map[string]string, len(extra))
			}
			w.Annotations[k] = v
		}
	}
	if len(w.Labels) > 0 {
		a.Labels = w.Labels
	}
	if len(w.Annotations) > 0 {
		a.Annotations = w.Annotations
	}
	return a, nil
}

// wireAlert is the native event schema: Encode writes it, and Decode reads
// it.
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
	GroupKey    string            `json:"groupKey,omitempty"`
}

// alert checks w and returns it as an Alert. Its errors name the field and
// do not wrap ErrInvalid.
func (w *wireAlert) alert(statusOptional bool) (Alert, error) {
	a := Alert{
		Key: w.Key, Fingerprint: w.Fingerprint, Status: w.Status, Severity: w.Severity,
		Summary: w.Summary, Description: w.Description, Source: w.Source, URL: w.URL,
		GroupKey: w.GroupKey,
	}
	if w.Status != "" || !statusOptional {
		if _, err := parseStatus(string(w.Status)); err != nil {
			return Alert{}, fmt.Errorf("field %q: %w", "status", err)
		}
	}
	if len(w.Labels) > 0 {
		a.Labels = w.Labels
	}
	if len(w.Annotations) > 0 {
		a.Annotations = w.Annotations
	}
	times := []struct {
		name string
		src  string
		dst  *time.Time
	}{{"startsAt", w.StartsAt, &a.StartsAt}, {"endsAt", w.EndsAt, &a.EndsAt}, {"timestamp", w.Timestamp, &a.Timestamp}}
	for _, f := range times {
		var err error
		if *f.dst, err = parseTime(f.src); err != nil {
			return Alert{}, fmt.Errorf("field %q: %w", f.name, err)
		}
	}
	return a, nil
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
	for _, s := range []string{a.Key, a.Fingerprint, a.Severity, a.Summary, a.Description, a.Source, a.URL, a.GroupKey} {
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
		GroupKey: a.GroupKey,
	}
	b, err := json.Marshal(&w, json.Deterministic(true))
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
