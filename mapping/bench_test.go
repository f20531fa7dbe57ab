package mapping_test

import (
	"os"
	"testing"

	"github.com/alertdesk/alertdesk/mapping"
)

func readTestdata(b *testing.B, name string) []byte {
	b.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkDecode(b *testing.B) {
	for _, name := range []string{"native-default.alert.json", "example-alertmanager.alert.json"} {
		data := readTestdata(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := mapping.Decode(data, mapping.DecodeOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkKey(b *testing.B) {
	m := mustLoad(b, "key: {labels: [alertname, instance]}")
	tests := []struct {
		name string
		m    *mapping.Mapping
	}{{"fingerprint", mapping.Default()}, {"labels", m}}
	a := mapping.Alert{Fingerprint: "5f1a2b3c4d5e6f70", Labels: map[string]string{
		"alertname": "DiskFull", "instance": "db-7:9100", "job": "node", "team": "dba", "severity": "critical"}}
	for _, tc := range tests {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tc.m.Key(&a); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRender(b *testing.B) {
	m, err := mapping.LoadFile(exampleMappingFile)
	if err != nil {
		b.Fatal(err)
	}
	alerts, err := mapping.Decode(readTestdata(b, "example-native.alert.json"), mapping.DecodeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	a := &alerts[0]
	key, err := m.Key(a)
	if err != nil {
		b.Fatal(err)
	}
	for _, op := range []mapping.Op{mapping.OpCreate, mapping.OpUpdate, mapping.OpResolve, mapping.OpReopen} {
		b.Run(op.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Render(a, key, op); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFingerprint is what every firing event costs before the worker
// can tell a duplicate: the brief description rendered and hashed.
func BenchmarkFingerprint(b *testing.B) {
	alerts, err := mapping.Decode(readTestdata(b, "native-default.alert.json"), mapping.DecodeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	m := mapping.Default()
	a := &alerts[0]
	key, err := m.Key(a)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Fingerprint(a, key); err != nil {
			b.Fatal(err)
		}
	}
}
