package mapping_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/alertdesk/alertdesk/mapping"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []mapping.Alert
	}{
		{
			name: "native event from the product contract",
			input: `{"key": "db-7/disk-full", "status": "firing", "severity": "critical",
				"summary": "Disk / at 97% on db-7", "description": "Free space below 3%.",
				"source": "prometheus", "labels": {"host": "db-7", "team": "dba"},
				"annotations": {"runbook": "https://wiki/runbooks/disk"},
				"startsAt": "2026-11-22T10:00:00Z", "timestamp": "2026-11-22T10:00:05Z",
				"url": "https://prometheus/graph?x"}`,
			want: []mapping.Alert{{
				Key: "db-7/disk-full", Status: mapping.StatusFiring, Severity: "critical",
				Summary: "Disk / at 97% on db-7", Description: "Free space below 3%.", Source: "prometheus",
				URL: "https://prometheus/graph?x", Labels: map[string]string{"host": "db-7", "team": "dba"},
				Annotations: map[string]string{"runbook": "https://wiki/runbooks/disk"},
				StartsAt:    mustTime(t, "2026-11-22T10:00:00Z"), Timestamp: mustTime(t, "2026-11-22T10:00:05Z"),
			}},
		},
		{
			name:  "minimal resolved event with fingerprint, nulls and empty maps",
			input: " \n{\"status\":\"resolved\",\"fingerprint\":\"abc\",\"labels\":{},\"annotations\":null,\"summary\":null,\"endsAt\":\"2026-11-22T10:00:00.5+02:00\"}\n",
			want: []mapping.Alert{{
				Fingerprint: "abc", Status: mapping.StatusResolved,
				EndsAt: mustTime(t, "2026-11-22T08:00:00.5Z"),
			}},
		},
		{
			name:  "array of native events",
			input: `[{"key":"a","status":"firing"},{"key":"b","status":"resolved","labels":{"x":"1"}}]`,
			want: []mapping.Alert{
				{Key: "a", Status: mapping.StatusFiring},
				{Key: "b", Status: mapping.StatusResolved, Labels: map[string]string{"x": "1"}},
			},
		},
		{
			name: "alertmanager webhook",
			input: `{"version":"4","groupKey":"{}:{}","truncatedAlerts":0,"status":"firing","receiver":"r",
				"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am","futureField":1,
				"alerts":[
				 {"status":"firing","labels":{"alertname":"DiskFull","severity":"critical","instance":"db-7"},
				  "annotations":{"summary":"Disk full","description":"Only 3% left"},
				  "startsAt":"2026-11-22T10:00:00Z","endsAt":"0001-01-01T00:00:00Z",
				  "generatorURL":"http://prom/graph","fingerprint":"f1"},
				 {"status":"resolved","labels":{"alertname":"HostDown"},"annotations":{},
				  "startsAt":"2026-11-22T09:00:00Z","endsAt":"2026-11-22T09:30:00Z","fingerprint":"f2"}]}`,
			want: []mapping.Alert{
				{
					Fingerprint: "f1", Status: mapping.StatusFiring, Severity: "critical", Summary: "Disk full",
					Description: "Only 3% left", Source: "alertmanager", URL: "http://prom/graph",
					Labels:      map[string]string{"alertname": "DiskFull", "severity": "critical", "instance": "db-7"},
					Annotations: map[string]string{"summary": "Disk full", "description": "Only 3% left"},
					StartsAt:    mustTime(t, "2026-11-22T10:00:00Z"), GroupKey: "{}:{}",
				},
				{
					Fingerprint: "f2", Status: mapping.StatusResolved, Summary: "HostDown", Source: "alertmanager",
					Labels:   map[string]string{"alertname": "HostDown"},
					StartsAt: mustTime(t, "2026-11-22T09:00:00Z"), EndsAt: mustTime(t, "2026-11-22T09:30:00Z"),
					GroupKey: "{}:{}",
				},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mapping.Decode([]byte(tc.input), mapping.DecodeOptions{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Decode mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecodeInvalid checks that every malformed input fails with ErrInvalid
// and an error that says what is wrong.
func TestDecodeInvalid(t *testing.T) {
	tests := []struct {
		name     string
		input    string
		maxBytes int
		mention  string // the error names this
	}{
		{"empty", "", 0, "payload is empty"},
		{"blank", " \n\t", 0, "payload is empty"},
		{"not JSON", "{", 0, "not valid JSON"},
		{"trailing data", `{"status":"firing"} x`, 0, "not valid JSON"},
		{"two objects", `{"status":"firing"}{"status":"firing"}`, 0, "not valid JSON"},
		{"number", "42", 0, "not a JSON object or array"},
		{"string", `"firing"`, 0, "not a JSON object or array"},
		{"null", "null", 0, "not a JSON object or array"},
		{"bad literal", "nul", 0, "not valid JSON"},
		{"empty array", "[]", 0, "empty array"},
		{"array of non-objects", "[1]", 0, "event 0: not a JSON object"},
		{"array with null", `[{"status":"firing"},null]`, 0, "event 1: not a JSON object"},
		{"array with bad event", `[{"status":"firing"},{"status":"x"}]`, 0, `event 1: field "status": unknown value "x"`},
		{"missing status", `{"key":"k"}`, 0, `field "status": is required`},
		{"null status", `{"key":"k","status":null}`, 0, `field "status": is required`},
		{"unknown status", `{"status":"pending"}`, 0, `field "status": unknown value "pending"`},
		{"status wrong type", `{"status":1}`, 0, `field "status": want a string, got a number`},
		{"key wrong type", `{"status":"firing","key":{"a":1}}`, 0, `field "key": want a string, got an object`},
		{"summary wrong type", `{"status":"firing","summary":["a"]}`, 0, `field "summary": want a string, got an array`},
		{"severity wrong type", `{"status":"firing","severity":true}`, 0, `field "severity": want a string, got a boolean`},
		{"unknown field", `{"status":"firing","sevrity":"x"}`, 0, `unknown field "sevrity"`},
		{"wrong case field", `{"Status":"firing"}`, 0, `unknown field "Status"`},
		{"duplicate field", `{"status":"firing","status":"resolved"}`, 0, `duplicate field "status"`},
		{"duplicate field in an array", `[{"key":"a","status":"firing","key":"b"}]`, 0, `event 0: duplicate field "key"`},
		{"case variant of a field", `{"key":"a","Key":"b","status":"firing"}`, 0, `unknown field "Key"`},
		{"labels wrong type", `{"status":"firing","labels":["a"]}`, 0, `field "labels": want an object of strings, got an array`},
		{"label value not a string", `{"status":"firing","labels":{"a":1}}`, 0, `field "labels": value of "a" must be a string`},
		{"annotations wrong type", `{"status":"firing","annotations":"x"}`, 0, `field "annotations"`},
		{"bad time", `{"status":"firing","startsAt":"yesterday"}`, 0, `field "startsAt": "yesterday" is not an RFC 3339 time`},
		{"time without zone", `{"status":"firing","endsAt":"2026-11-22T10:00:00"}`, 0, `field "endsAt"`},
		{"time wrong type", `{"status":"firing","timestamp":1732269600}`, 0, `field "timestamp": want a string`},
		{"invalid UTF-8", "{\"status\":\"firing\",\"summary\":\"\xff\"}", 0, "not valid UTF-8"},
		{"over the size limit", `{"status":"firing","summary":"0123456789"}`, 20, "over the limit of 20"},
		{"alertmanager wrong version", `{"version":"3","alerts":[{"status":"firing"}]}`, 0, `unsupported version "3"`},
		{"alertmanager version wrong type", `{"version":4,"alerts":[{"status":"firing"}]}`, 0, `field "version"`},
		{"alertmanager no alerts", `{"version":"4","alerts":[]}`, 0, `field "alerts" is empty`},
		{"alertmanager alerts null", `{"version":"4","alerts":null}`, 0, `field "alerts" is empty`},
		{"alertmanager alerts wrong type", `{"version":"4","alerts":{}}`, 0, `field "alerts"`},
		{"alertmanager alert without status", `{"version":"4","alerts":[{"labels":{}}]}`, 0, "alerts[0].status: is required"},
		{"alertmanager alert bad status", `{"version":"4","alerts":[{"status":"firing"},{"status":"gone"}]}`, 0, `alerts[1].status: unknown value "gone"`},
		{"alertmanager label wrong type", `{"version":"4","alerts":[{"status":"firing","labels":{"a":1}}]}`, 0, `alerts.labels`},
		{"alertmanager bad startsAt", `{"version":"4","alerts":[{"status":"firing","startsAt":"now"}]}`, 0, "alerts[0].startsAt"},
		{"alertmanager bad endsAt", `{"version":"4","alerts":[{"status":"firing","endsAt":"later"}]}`, 0, "alerts[0].endsAt"},
		{"half an alertmanager webhook", `{"version":"4","status":"firing"}`, 0, `unknown field "version"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mapping.Decode([]byte(tc.input), mapping.DecodeOptions{MaxBytes: tc.maxBytes})
			checkInvalid(t, got, err, tc.mention)
		})
	}
}

// checkInvalid fails unless err wraps ErrInvalid and says mention.
func checkInvalid(t *testing.T, got []mapping.Alert, err error, mention string) {
	t.Helper()
	if !errors.Is(err, mapping.ErrInvalid) {
		t.Fatalf("Decode() = %v, %v; want an error wrapping ErrInvalid", got, err)
	}
	if !strings.Contains(err.Error(), mention) {
		t.Errorf("Decode() error %q does not say %q", err, mention)
	}
}

func TestDecodeDefaultLimit(t *testing.T) {
	big := `{"status":"firing","summary":"` + strings.Repeat("a", mapping.DefaultMaxBytes) + `"}`
	if _, err := mapping.Decode([]byte(big), mapping.DecodeOptions{}); !errors.Is(err, mapping.ErrInvalid) {
		t.Fatalf("Decode(%d bytes) = %v, want ErrInvalid", len(big), err)
	}
	ok := `{"status":"firing","summary":"` + strings.Repeat("a", mapping.DefaultMaxBytes-40) + `"}`
	if _, err := mapping.Decode([]byte(ok), mapping.DecodeOptions{}); err != nil {
		t.Fatalf("Decode(%d bytes) = %v, want success", len(ok), err)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		alert mapping.Alert
	}{
		{"minimal", mapping.Alert{Status: mapping.StatusFiring, Key: "k"}},
		{"everything", mapping.Alert{
			Key: "k", Fingerprint: "fp", Status: mapping.StatusResolved, Severity: "critical",
			Summary: "s <&>", Description: "d\nline 2", Source: "src", URL: "http://x/?a=1&b=2",
			Labels: map[string]string{"a": "1", "": "empty name"}, Annotations: map[string]string{"b": "😀"},
			StartsAt:  mustTime(t, "2026-11-22T10:00:00.123456789+05:30"),
			EndsAt:    mustTime(t, "2026-11-22T11:00:00Z"),
			Timestamp: mustTime(t, "2026-11-22T11:00:01Z"),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := mapping.Encode(&tc.alert)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := mapping.Decode(b, mapping.DecodeOptions{})
			if err != nil {
				t.Fatalf("Decode(Encode()): %v\n%s", err, b)
			}
			if diff := cmp.Diff([]mapping.Alert{tc.alert}, got); diff != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEncodeAlertmanager republishes webhook alerts one by one; each keeps
// its key.
func TestEncodeAlertmanager(t *testing.T) {
	payload, err := os.ReadFile("testdata/example-alertmanager.alert.json")
	if err != nil {
		t.Fatal(err)
	}
	alerts, err := mapping.Decode(payload, mapping.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := mapping.Default()
	for i := range alerts {
		b, err := mapping.Encode(&alerts[i])
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		back, err := mapping.Decode(b, mapping.DecodeOptions{})
		if err != nil {
			t.Fatalf("Decode(Encode()): %v", err)
		}
		if diff := cmp.Diff(alerts[i:i+1], back); diff != "" {
			t.Errorf("alert %d round trip mismatch (-want +got):\n%s", i, diff)
		}
		wantKey, err1 := m.Key(&alerts[i])
		gotKey, err2 := m.Key(&back[0])
		if err1 != nil || err2 != nil || gotKey != wantKey {
			t.Errorf("alert %d: key %q (%v) after republish, want %q (%v)", i, gotKey, err2, wantKey, err1)
		}
	}
}

func TestEncodeInvalid(t *testing.T) {
	tests := []struct {
		name  string
		alert mapping.Alert
	}{
		{"no status", mapping.Alert{Key: "k"}},
		{"unknown status", mapping.Alert{Key: "k", Status: "pending"}},
		{"invalid UTF-8", mapping.Alert{Key: "k", Status: mapping.StatusFiring, Summary: "\xff"}},
		{"invalid UTF-8 label", mapping.Alert{Key: "k", Status: mapping.StatusFiring, Labels: map[string]string{"a": "\xfe"}}},
		{"year out of range", mapping.Alert{Key: "k", Status: mapping.StatusFiring, StartsAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if b, err := mapping.Encode(&tc.alert); !errors.Is(err, mapping.ErrInvalid) {
				t.Fatalf("Encode() = %s, %v; want ErrInvalid", b, err)
			}
		})
	}
}

func TestEventTime(t *testing.T) {
	fallback := mustTime(t, "2026-01-01T00:00:00Z")
	starts, ends, ts := mustTime(t, "2026-11-22T10:00:00Z"), mustTime(t, "2026-11-22T11:00:00Z"), mustTime(t, "2026-11-22T12:00:00Z")
	tests := []struct {
		name  string
		alert mapping.Alert
		want  time.Time
	}{
		{"timestamp wins", mapping.Alert{Status: mapping.StatusResolved, StartsAt: starts, EndsAt: ends, Timestamp: ts}, ts},
		{"resolved uses endsAt", mapping.Alert{Status: mapping.StatusResolved, StartsAt: starts, EndsAt: ends}, ends},
		{"firing ignores endsAt", mapping.Alert{Status: mapping.StatusFiring, StartsAt: starts, EndsAt: ends}, starts},
		{"resolved without endsAt uses startsAt", mapping.Alert{Status: mapping.StatusResolved, StartsAt: starts}, starts},
		{"nothing uses the fallback", mapping.Alert{Status: mapping.StatusFiring, EndsAt: ends}, fallback},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.alert.EventTime(fallback); !got.Equal(tc.want) {
				t.Errorf("EventTime() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestExternalNumber(t *testing.T) {
	tests := []struct {
		key, want string
	}{
		// sha256("") = e3b0c44298fc1c149afbf4c8996fb924...
		{"", "alertdesk-e3b0c44298fc1c149afbf4c8996fb924"},
		// sha256("abc") = ba7816bf8f01cfea414140de5dae2223...
		{"abc", "alertdesk-ba7816bf8f01cfea414140de5dae2223"},
	}
	for _, tc := range tests {
		got := mapping.ExternalNumber(tc.key)
		if got != tc.want {
			t.Errorf("ExternalNumber(%q) = %q, want %q", tc.key, got, tc.want)
		}
		if len(got) > 60 {
			t.Errorf("ExternalNumber(%q) is %d characters, TOPdesk allows 60", tc.key, len(got))
		}
	}
}

// TestDecodeGrafana decodes a Grafana Alerting webhook (contact point
// "Webhook") with firing and resolved alerts: one alert each, keyed by
// fingerprint, with the links and values as annotations for templates.
func TestDecodeGrafana(t *testing.T) {
	data, err := os.ReadFile("testdata/sources-grafana.alert.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := mapping.DecodeGrafana(data, mapping.DecodeOptions{})
	if err != nil {
		t.Fatalf("DecodeGrafana: %v", err)
	}
	want := []mapping.Alert{
		{
			Fingerprint: "3b2f6a4c9d1e0f57", Status: mapping.StatusFiring, Severity: "critical",
			Summary: "Disk / at 97% on db-7", Description: "Free space below 3%.", Source: "grafana",
			URL: "https://grafana.internal/alerting/grafana/d1sk/view?orgId=1",
			Labels: map[string]string{"alertname": "Disk almost full", "grafana_folder": "Storage", "instance": "db-7",
				"severity": "critical", "team": "dba"},
			Annotations: map[string]string{
				"summary": "Disk / at 97% on db-7", "description": "Free space below 3%.",
				"runbook_url":  "https://wiki.internal/runbooks/disk",
				"dashboardURL": "https://grafana.internal/d/storage?orgId=1",
				"panelURL":     "https://grafana.internal/d/storage?orgId=1&viewPanel=4",
				"silenceURL":   "https://grafana.internal/alerting/silence/new?alertmanager=grafana&matcher=alertname%3DDisk+almost+full&matcher=instance%3Ddb-7",
				"value.B":      "97.12", "value.C": "1", "values": "B=97.12, C=1",
			},
			StartsAt: mustTime(t, "2026-11-22T09:00:00Z"),
		},
		{
			Fingerprint: "8e0c1d2b3a4f5061", Status: mapping.StatusFiring, Severity: "warning", Summary: "Web latency high",
			Source: "grafana", URL: "https://grafana.internal/alerting/grafana/l4t/view?orgId=1",
			Labels: map[string]string{"alertname": "Web latency high", "instance": "web-1", "severity": "warning"},
			Annotations: map[string]string{
				"silenceURL": "https://grafana.internal/alerting/silence/new?alertmanager=grafana&matcher=alertname%3DWeb+latency+high",
				"value.A":    "0.8321", "values": "A=0.8321",
			},
			StartsAt: mustTime(t, "2026-11-22T09:02:00Z"),
		},
		{
			Fingerprint: "c0ffee0012345678", Status: mapping.StatusResolved, Severity: "critical", Summary: "app-3 does not answer",
			Source: "grafana", URL: "https://grafana.internal/alerting/grafana/h0st/view?orgId=1",
			Labels:      map[string]string{"alertname": "Host down", "instance": "app-3", "severity": "critical"},
			Annotations: map[string]string{"summary": "app-3 does not answer"},
			StartsAt:    mustTime(t, "2026-11-22T08:00:00Z"), EndsAt: mustTime(t, "2026-11-22T08:40:00Z"),
		},
	}
	for i := range want {
		want[i].GroupKey = `{}/{}:{alertname="Disk almost full"}` // the notification's
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DecodeGrafana mismatch (-want +got):\n%s", diff)
	}
	for i := range got {
		if key, err := mapping.Default().Key(&got[i]); err != nil || key != want[i].Fingerprint {
			t.Errorf("alert %d: Key = %q, %v; want the fingerprint %q", i, key, err, want[i].Fingerprint)
		}
	}
	// The annotations survive the native encoding that ingest publishes.
	for i := range got {
		b, err := mapping.Encode(&got[i])
		if err != nil {
			t.Fatal(err)
		}
		back, err := mapping.Decode(b, mapping.DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(got[i:i+1], back); diff != "" {
			t.Errorf("alert %d after Encode and Decode (-want +got):\n%s", i, diff)
		}
	}
}

// TestDecodeGrafanaRefuses checks that DecodeGrafana takes only Grafana's
// webhook: a native event is refused even when it says "source": "grafana"
// itself, so that POST /v1/grafana never stores one.
func TestDecodeGrafanaRefuses(t *testing.T) {
	tests := []struct{ name, input, mention string }{
		{"native event", `{"key":"k","status":"firing"}`, "not a Grafana webhook"},
		{"native event with source grafana", `{"key":"k","status":"firing","source":"grafana"}`, "not a Grafana webhook"},
		{"native events with source grafana", `[{"key":"k","status":"firing","source":"grafana"}]`, "not a Grafana webhook"},
		{"alertmanager webhook", `{"version":"4","alerts":[{"status":"firing","fingerprint":"f"}]}`, "not a Grafana webhook"},
		{"no alerts", `{"version":"1","alerts":[]}`, `grafana webhook: field "alerts" is empty`},
		{"alert without status", `{"version":"1","alerts":[{"fingerprint":"f"}]}`, "grafana webhook: alerts[0].status: is required"},
		{"value not a number", `{"version":"1","alerts":[{"status":"firing","values":{"B":"x"}}]}`, `field "alerts.values": value of "B" must be a number, got a string`},
		{"values not an object", `{"version":"1","alerts":[{"status":"firing","values":[1]}]}`, `field "alerts.values": want an object of numbers, got an array`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mapping.DecodeGrafana([]byte(tc.input), mapping.DecodeOptions{})
			checkInvalid(t, got, err, tc.mention)
		})
	}
}
