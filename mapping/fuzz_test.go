package mapping_test

import (
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/alertdesk/alertdesk/mapping"
)

// FuzzDecode checks that Decode never panics, fails only with ErrInvalid,
// accepts only valid UTF-8 JSON, and that every alert it returns survives
// Encode and Decode unchanged and renders with the default mapping within
// TOPdesk's limits. Seeds are in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"key":"k","status":"firing","summary":"s","labels":{"a":"b"}}`))
	f.Add([]byte(`{"version":"4","alerts":[{"status":"resolved","fingerprint":"f","endsAt":"2026-11-22T10:00:00Z"}]}`))
	m := mapping.Default()
	f.Fuzz(func(t *testing.T, data []byte) {
		alerts, err := mapping.Decode(data, mapping.DecodeOptions{})
		if err != nil {
			if !errors.Is(err, mapping.ErrInvalid) {
				t.Fatalf("Decode error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if len(alerts) == 0 {
			t.Fatal("Decode returned no alerts and no error")
		}
		if !utf8.Valid(data) || !json.Valid(data) {
			t.Fatalf("Decode accepted a payload that is not valid UTF-8 JSON: %q", data)
		}
		for i := range alerts {
			a := &alerts[i]
			b, err := mapping.Encode(a)
			if err != nil {
				t.Fatalf("Encode(%+v): %v", a, err)
			}
			back, err := mapping.Decode(b, mapping.DecodeOptions{MaxBytes: len(b)})
			if err != nil {
				t.Fatalf("Decode(Encode(%+v)): %v\n%s", a, err, b)
			}
			if diff := cmp.Diff([]mapping.Alert{*a}, back); diff != "" {
				t.Fatalf("round trip mismatch (-want +got):\n%s", diff)
			}
			key, err := m.Key(a)
			if err != nil {
				if !errors.Is(err, mapping.ErrInvalid) {
					t.Fatalf("Key error %v does not wrap ErrInvalid", err)
				}
				continue
			}
			for _, op := range []mapping.Op{mapping.OpCreate, mapping.OpUpdate, mapping.OpResolve, mapping.OpReopen} {
				r, err := m.Render(a, key, op)
				if err != nil {
					if !errors.Is(err, mapping.ErrTemplate) {
						t.Fatalf("Render(%s) error %v does not wrap ErrTemplate", op, err)
					}
					continue
				}
				// A resolve keeps the incident's own brief description: it
				// sends none.
				keeps := op == mapping.OpResolve
				if n := len(utf16.Encode([]rune(r.Request.BriefDescription))); n == 0 && !keeps || n > 0 && keeps || n > mapping.MaxBriefDescription {
					t.Fatalf("Render(%s): briefDescription of %d characters", op, n)
				}
				if !utf8.ValidString(r.Request.BriefDescription) || !utf8.ValidString(r.Request.Request) {
					t.Fatalf("Render(%s): invalid UTF-8", op)
				}
			}
		}
	})
}

// FuzzKey checks that keys derived from labels never panic, are stable, and
// differ whenever the key labels differ. Seeds are in testdata/fuzz/FuzzKey.
func FuzzKey(f *testing.F) {
	f.Add("x,b", "", "x", ",b", true)
	f.Add(`1",b="2`, "3", "1", `2",b="3`, true)
	f.Add("a", "b", "a", "b", false)
	m, err := mapping.Load([]byte("key: {labels: [a, b]}"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, a1, b1, a2, b2 string, withB bool) {
		x := mapping.Alert{Labels: map[string]string{"a": a1, "other": b2}}
		y := mapping.Alert{Labels: map[string]string{"a": a2, "b": b2}}
		if withB {
			x.Labels["b"] = b1
		}
		kx, err := m.Key(&x)
		if !withB {
			if !errors.Is(err, mapping.ErrInvalid) {
				t.Fatalf("Key without label b = %q, %v; want ErrInvalid", kx, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Key: %v", err)
		}
		again, err := m.Key(&mapping.Alert{Labels: map[string]string{"b": b1, "a": a1}})
		if err != nil || again != kx {
			t.Fatalf("Key not stable: %q then %q (%v)", kx, again, err)
		}
		ky, err := m.Key(&y)
		if err != nil {
			t.Fatalf("Key: %v", err)
		}
		if same := a1 == a2 && b1 == b2; same != (kx == ky) {
			t.Fatalf("labels (%q,%q) vs (%q,%q): keys %q and %q", a1, b1, a2, b2, kx, ky)
		}
		if n := len(mapping.ExternalNumber(kx)); n != 42 {
			t.Fatalf("ExternalNumber has %d characters", n)
		}
		x.Status = mapping.StatusFiring
		if _, err := m.Render(&x, kx, mapping.OpCreate); err != nil && !errors.Is(err, mapping.ErrTemplate) {
			t.Fatalf("Render: %v", err)
		}
	})
}
