package worker

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alertdesk/alertdesk/mapping"
)

// A repeated payload gives the same events as its first sighting, from
// the cache, with alerts of its own; a payload whose alert has no
// fingerprint is not remembered and fails alike every time.
func TestRepeatedPayloadGivesTheSameEvents(t *testing.T) {
	m, err := mapping.Load([]byte("incident:\n  briefDescription: '{{ .Labels.host }} is down'\n"))
	if err != nil {
		t.Fatal(err)
	}
	w := &Worker{mapping: m, m: newMetrics(nil)}
	at := time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	webhook := []byte(`{"version":"4","status":"firing","alerts":[
		{"status":"firing","labels":{"alertname":"Down","host":"db-1"},"startsAt":"2026-12-04T19:59:00Z","fingerprint":"a1"},
		{"status":"resolved","labels":{"alertname":"Down","host":"db-2"},"startsAt":"2026-12-04T19:50:00Z","endsAt":"2026-12-04T19:58:00Z","fingerprint":"a2"}]}`)

	first, err := w.events(webhook, at)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := w.payloads.get(webhook); !ok {
		t.Fatal("a payload that decoded without errors was not remembered")
	}
	again, err := w.events(append([]byte(nil), webhook...), at)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 || len(again) != 2 {
		t.Fatalf("events: %d then %d; want 2", len(first), len(again))
	}
	for i := range first {
		a, b := first[i], again[i]
		if a.err != nil || b.err != nil {
			t.Fatalf("alert %d: errors %v, %v", i, a.err, b.err)
		}
		if a.ev.alert == b.ev.alert {
			t.Errorf("alert %d: both events share one alert", i)
		}
		if !reflect.DeepEqual(*a.ev.alert, *b.ev.alert) {
			t.Errorf("alert %d: %+v, then %+v", i, *a.ev.alert, *b.ev.alert)
		}
		a.ev.alert, b.ev.alert = nil, nil
		if a.ev != b.ev {
			t.Errorf("alert %d: event %+v, then %+v", i, a.ev, b.ev)
		}
	}
	if first[0].ev.fingerprint == "" || first[1].ev.fingerprint != "" {
		t.Errorf("fingerprints %q, %q; want one for the firing alert only", first[0].ev.fingerprint, first[1].ev.fingerprint)
	}

	// The second alert has no host label: its brief description fails.
	broken := []byte(strings.Replace(string(webhook), `"host":"db-2"`, `"instance":"db-2"`, 1))
	broken = []byte(strings.Replace(string(broken), `"status":"resolved","labels"`, `"status":"firing","labels"`, 1))
	for range 2 {
		evs, err := w.events(broken, at)
		if err != nil {
			t.Fatal(err)
		}
		if evs[0].err != nil || evs[1].err == nil || !strings.Contains(evs[1].err.Error(), "host") {
			t.Fatalf("errors %v, %v; want the second alert's missing host", evs[0].err, evs[1].err)
		}
		if _, ok := w.payloads.get(broken); ok {
			t.Fatal("a payload with an alert that failed was remembered")
		}
	}
}

// The cache holds at most payloadEntries payloads and payloadBudget bytes
// of them, and never one larger than a shard's share.
func TestPayloadCacheStaysWithinItsBudget(t *testing.T) {
	var c payloadCache
	p := &decodedPayload{}
	fill := func(size int) (entries, bytes int) {
		for i := range 20_000 {
			c.put(fmt.Appendf(nil, "%0*d", size, i), p)
		}
		for i := range c.s {
			n := 0
			for k := range c.s[i].m {
				n += len(k)
			}
			if n != c.s[i].bytes {
				t.Fatalf("shard %d counts %d bytes, holds %d", i, c.s[i].bytes, n)
			}
			entries, bytes = entries+len(c.s[i].m), bytes+n
		}
		if _, ok := c.get(fmt.Appendf(nil, "%0*d", size, 19_999)); !ok {
			t.Fatalf("%d-byte payloads: the newest was forgotten", size)
		}
		return entries, bytes
	}
	// Small payloads fill the entries, large ones the bytes.
	if n, _ := fill(100); n > payloadEntries || n < payloadEntries*3/4 {
		t.Fatalf("100-byte payloads: %d remembered; want at most %d, and most of that", n, payloadEntries)
	}
	if _, b := fill(4000); b > payloadBudget || b < payloadBudget*3/4 {
		t.Fatalf("4,000-byte payloads: %d bytes remembered; want at most %d, and most of that", b, payloadBudget)
	}
	big := make([]byte, payloadBudget/shards+1)
	c.put(big, p)
	if _, ok := c.get(big); ok {
		t.Fatal("a payload larger than a shard's share was remembered")
	}
}

// FuzzRepeatedPayload: whatever a payload is, handling it again (from the
// cache when it was remembered) prepares the same events and errors as
// the first time.
func FuzzRepeatedPayload(f *testing.F) {
	for _, name := range []string{"example-alertmanager", "example-native", "sources-grafana", "native-default", "routes"} {
		b, err := os.ReadFile(filepath.Join("..", "mapping", "testdata", name+".alert.json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"key":"host-0001/dup","status":"firing","severity":"warning","summary":"Disk full","timestamp":"2026-12-04T19:00:00Z"}`))
	f.Add([]byte(`[{"key":"a","status":"firing"},{"status":"firing"}]`))
	f.Add([]byte(`{"key":"a","status":"resolved","summary":"x","labels":{"host":"h"}}`))
	f.Add([]byte(`{"key":"a","status":"firing","Key":"b"}`))
	m, err := mapping.Load([]byte("incident:\n  briefDescription: '{{ .Labels.host }} {{ .Summary }}'\n"))
	if err != nil {
		f.Fatal(err)
	}
	at := time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, payload []byte) {
		for _, m := range []*mapping.Mapping{mapping.Default(), m} {
			w := &Worker{mapping: m, m: newMetrics(nil)}
			first, err1 := w.events(payload, at)
			again, err2 := w.events(payload, at)
			if fmt.Sprint(err1) != fmt.Sprint(err2) || len(first) != len(again) {
				t.Fatalf("first %d events, %v; again %d events, %v", len(first), err1, len(again), err2)
			}
			for i := range first {
				a, b := first[i], again[i]
				if fmt.Sprint(a.err) != fmt.Sprint(b.err) {
					t.Fatalf("alert %d: error %v, then %v", i, a.err, b.err)
				}
				if (a.ev.alert == nil) != (b.ev.alert == nil) || a.ev.alert != nil && !reflect.DeepEqual(*a.ev.alert, *b.ev.alert) {
					t.Fatalf("alert %d: %+v, then %+v", i, a.ev.alert, b.ev.alert)
				}
				a.ev.alert, b.ev.alert = nil, nil
				if a.ev != b.ev {
					t.Fatalf("alert %d: event %+v, then %+v", i, a.ev, b.ev)
				}
			}
		}
	})
}
