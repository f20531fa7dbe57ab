package mapping_test

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/alertdesk/alertdesk/mapping"
)

func ExampleMapping_Render() {
	m, err := mapping.Load([]byte(`
incident:
  briefDescription: '{{ .Labels.host }}: {{ .Summary }}'
  entryType: Monitoring
  operatorGroup: Operations
severity:
  critical: {priority: P1}
lifecycle:
  resolve: close
  resolvedStatus: Closed
routes:
  - match: {team: dba}
    incident: {operatorGroup: DBA}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	alerts, err := mapping.Decode([]byte(`{"key": "db-7/disk-full", "status": "resolved",
		"severity": "critical", "summary": "Disk / at 97%", "labels": {"host": "db-7", "team": "dba"}}`),
		mapping.DecodeOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	a := &alerts[0]
	key, err := m.Key(a)
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := m.Render(a, key, mapping.OpResolve)
	if err != nil {
		fmt.Println(err)
		return
	}
	// A resolve keeps the incident's own brief description, which only the
	// caller knows (the worker remembers what it last wrote).
	r.Request.BriefDescription = m.ResolvedBrief("db-7: Disk / at 97%")
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r.Request); err != nil {
		fmt.Println(err)
	}
	// Output:
	// {
	//   "briefDescription": "[RESOLVED] db-7: Disk / at 97%",
	//   "action": "Alert resolved: Disk / at 97%",
	//   "actionInvisibleForCaller": true,
	//   "processingStatus": {
	//     "name": "Closed"
	//   },
	//   "closed": true
	// }
}

func ExampleDecode() {
	alerts, err := mapping.Decode([]byte(`{"version": "4", "status": "firing", "alerts": [
		{"status": "firing", "labels": {"alertname": "HostDown", "severity": "critical"},
		 "annotations": {"summary": "db-7 is down"}, "fingerprint": "5f1a2b3c4d5e6f70",
		 "startsAt": "2026-11-22T10:00:00Z"}]}`), mapping.DecodeOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	key, err := mapping.Default().Key(&alerts[0])
	if err != nil {
		fmt.Println(err)
		return
	}
	a := alerts[0]
	fmt.Println(a.Status, a.Severity, a.Summary, a.Source)
	fmt.Println(key, mapping.ExternalNumber(key))
	// Output:
	// firing critical db-7 is down alertmanager
	// 5f1a2b3c4d5e6f70 alertdesk-499692df8749be7d8424b72b55c80160
}

func ExampleMapping_Key() {
	m, err := mapping.Load([]byte(`key: {labels: [alertname, instance]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	key, err := m.Key(&mapping.Alert{Status: mapping.StatusFiring,
		Labels: map[string]string{"instance": "db-7:9100", "alertname": "DiskFull", "job": "node"}})
	fmt.Println(key, err)
	_, err = m.Key(&mapping.Alert{Status: mapping.StatusFiring, Labels: map[string]string{"alertname": "DiskFull"}})
	fmt.Println(err)
	// Output:
	// alertname="DiskFull",instance="db-7:9100" <nil>
	// invalid alert: key label "instance" is missing
}

func ExampleLoad() {
	_, err := mapping.Load([]byte("incident:\n  entryType: Monitoring\n  categroy: Servers\n"))
	fmt.Println(err)
	// Output:
	// line 3: incident.categroy: unknown key (known keys: briefDescription, request, caller, callerLookup, status, entryType, callType, category, subcategory, operatorGroup, operator, duration, object)
}

func ExampleMapping_Decode() {
	m, err := mapping.Load([]byte("status: {from: '{{ .Severity }}', resolved: [Clear]}"))
	if err != nil {
		fmt.Println(err)
		return
	}
	alerts, err := m.Decode([]byte(`[{"key": "opmanager/sw-1", "severity": "Critical"},
		{"key": "opmanager/sw-1", "severity": "Clear"}]`), mapping.DecodeOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, a := range alerts {
		fmt.Println(a.Key, a.Severity, a.Status)
	}
	// Output:
	// opmanager/sw-1 Critical firing
	// opmanager/sw-1 Clear resolved
}

func ExampleDecodeGrafana() {
	alerts, err := mapping.DecodeGrafana([]byte(`{"version": "1", "status": "firing", "orgId": 1, "alerts": [
		{"status": "firing", "labels": {"alertname": "High memory", "severity": "warning"},
		 "annotations": {}, "fingerprint": "c6eadffa33fcdf37", "startsAt": "2026-11-22T10:00:00Z",
		 "panelURL": "https://grafana.internal/d/mem?viewPanel=2", "values": {"B": 93.5}}]}`), mapping.DecodeOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	a := alerts[0]
	fmt.Println(a.Source, a.Fingerprint, a.Status, a.Summary)
	fmt.Println(a.Annotations["panelURL"], a.Annotations["value.B"])
	// Output:
	// grafana c6eadffa33fcdf37 firing High memory
	// https://grafana.internal/d/mem?viewPanel=2 93.5
}

func ExampleMapping_ResolvedBrief() {
	fmt.Println(mapping.Default().ResolvedBrief("Disk / at 97% on db-7"))
	// Output:
	// [RESOLVED] Disk / at 97% on db-7
}
