package worker

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/alertdesk/alertdesk/dlq"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// amWebhook is an Alertmanager webhook with one firing alert per
// fingerprint.
func amWebhook(fingerprints ...string) map[string]any {
	var alerts []map[string]any
	for _, fp := range fingerprints {
		alerts = append(alerts, map[string]any{
			"status": "firing", "labels": map[string]string{"alertname": "Down", "instance": fp, "severity": "critical"},
			"annotations": map[string]string{"summary": fp + " down"},
			"startsAt":    time.Now().UTC().Format(time.RFC3339), "fingerprint": fp,
		})
	}
	return map[string]any{"version": "4", "status": "firing", "receiver": "alertdesk", "groupKey": "g", "alerts": alerts}
}

// One alert of a multi-alert message that fails for good is dead-lettered
// alone, as a one-alert message of the same shape with the original
// headers; the others are applied, and a replay applies just it.
func TestMultiAlertDeadLettersOneAlone(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.sim.Inject(topdesktest.Fault{Method: http.MethodPost, Status: http.StatusBadRequest, Count: 1})
	rw := e.startWorker(fastOptions())
	e.waitReconciled(rw)
	b, err := json.Marshal(amWebhook("aaaa000000000001", "aaaa000000000002", "aaaa000000000003"))
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: "alerts.test", Data: b, Header: nats.Header{"X-Origin": []string{"am-1"}}}
	if _, err := e.js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	e.waitSettled(10 * time.Second)
	dl := e.dlqEntries()
	if len(dl) != 1 {
		t.Fatalf("got %d dead letters, want 1", len(dl))
	}
	d := dl[0]
	if d.Class != dlq.ClassRejected || d.Header.Get("X-Origin") != "am-1" {
		t.Fatalf("dead letter: class %s, X-Origin %q; want rejected, am-1", d.Class, d.Header.Get("X-Origin"))
	}
	alerts, err := mapping.Decode(d.Data, mapping.DecodeOptions{})
	if err != nil {
		t.Fatalf("dead-lettered payload does not decode: %v", err)
	}
	var shape map[string]any
	if err := json.Unmarshal(d.Data, &shape); err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 1 || alerts[0].Fingerprint != "aaaa000000000001" || shape["receiver"] != "alertdesk" {
		t.Fatalf("dead-lettered payload is not the failed alert alone in a webhook: %s", d.Data)
	}
	if d.AlertKey != alerts[0].Fingerprint {
		t.Errorf("dead letter alert key %q, want %q", d.AlertKey, alerts[0].Fingerprint)
	}
	for _, fp := range []string{"aaaa000000000002", "aaaa000000000003"} {
		if n := len(e.incidentsFor(fp)); n != 1 {
			t.Fatalf("%s: got %d incidents, want 1", fp, n)
		}
	}
	if n := len(e.incidentsFor("aaaa000000000001")); n != 0 {
		t.Fatalf("the rejected alert has %d incidents", n)
	}
	// A replay applies just the dead-lettered alert.
	if _, err := dlq.New(e.js, e.topo.DLQStream).Replay(t.Context(), dlq.Filter{All: true}, false); err != nil {
		t.Fatal(err)
	}
	e.waitSettled(10 * time.Second)
	for _, fp := range []string{"aaaa000000000001", "aaaa000000000002", "aaaa000000000003"} {
		if n := len(e.incidentsFor(fp)); n != 1 {
			t.Fatalf("after replay %s: got %d incidents, want 1", fp, n)
		}
	}
	if creates, _ := e.writes(); creates != 4 {
		t.Fatalf("got %d creates, want 4 (3 alerts, one rejected once)", creates)
	}
}
