package worker

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alertdesk/alertdesk/worker/workertest"
)

func TestProvision(t *testing.T) {
	topo := Topology{Stream: "ALERTS", Subjects: []string{"alerts.>"}, Consumer: "alertdesk",
		DLQStream: "ALERTS_DLQ", StateBucket: "state", MaxDeliver: 10}
	tests := []struct {
		name     string
		prepare  func(t *testing.T, js jetstream.JetStream)
		conflict string // kind of the *ConflictError wanted; "" = success
	}{
		{name: "creates everything", prepare: func(*testing.T, jetstream.JetStream) {}},
		{name: "accepts a compatible operator-made stream and consumer", prepare: func(t *testing.T, js jetstream.JetStream) {
			mustStream(t, js, jetstream.StreamConfig{Name: "ALERTS", Subjects: []string{"alerts.>", "other.>"}, MaxAge: time.Hour})
			mustConsumer(t, js, jetstream.ConsumerConfig{Durable: "alertdesk", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute})
		}},
		{name: "stream that misses the subjects", prepare: func(t *testing.T, js jetstream.JetStream) {
			mustStream(t, js, jetstream.StreamConfig{Name: "ALERTS", Subjects: []string{"alerts.prometheus"}})
		}, conflict: "stream"},
		{name: "dead-letter stream without the dlq subjects", prepare: func(t *testing.T, js jetstream.JetStream) {
			mustStream(t, js, jetstream.StreamConfig{Name: "ALERTS_DLQ", Subjects: []string{"dead.>"}})
		}, conflict: "stream"},
		{name: "consumer without explicit acks", prepare: func(t *testing.T, js jetstream.JetStream) {
			mustStream(t, js, jetstream.StreamConfig{Name: "ALERTS", Subjects: []string{"alerts.>"}})
			mustConsumer(t, js, jetstream.ConsumerConfig{Durable: "alertdesk", AckPolicy: jetstream.AckAllPolicy})
		}, conflict: "consumer"},
		{name: "consumer that gives up before the dead-letter limit", prepare: func(t *testing.T, js jetstream.JetStream) {
			mustStream(t, js, jetstream.StreamConfig{Name: "ALERTS", Subjects: []string{"alerts.>"}})
			mustConsumer(t, js, jetstream.ConsumerConfig{Durable: "alertdesk", AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: 5})
		}, conflict: "consumer"},
		{name: "push consumer", prepare: func(t *testing.T, js jetstream.JetStream) {
			mustStream(t, js, jetstream.StreamConfig{Name: "ALERTS", Subjects: []string{"alerts.>"}})
			if _, err := js.CreatePushConsumer(t.Context(), "ALERTS", jetstream.ConsumerConfig{
				Durable: "alertdesk", AckPolicy: jetstream.AckExplicitPolicy, DeliverSubject: "push.here"}); err != nil {
				t.Fatal(err)
			}
		}, conflict: "consumer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := workertest.StartJetStream(t)
			nc, err := nats.Connect(ns.ClientURL())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			tc.prepare(t, js)
			before, err := js.Stream(t.Context(), "ALERTS")
			var beforeSubjects []string
			if err == nil {
				beforeSubjects = before.CachedInfo().Config.Subjects
			}

			res, err := Provision(t.Context(), js, topo)
			var ce *ConflictError
			switch {
			case tc.conflict == "" && err != nil:
				t.Fatalf("Provision: %v", err)
			case tc.conflict != "" && !errors.As(err, &ce):
				t.Fatalf("Provision: got %v, want a %s conflict", err, tc.conflict)
			case tc.conflict != "" && ce.Kind != tc.conflict:
				t.Fatalf("Provision: got a %s conflict (%v), want a %s conflict", ce.Kind, err, tc.conflict)
			}
			if tc.conflict == "" {
				if res.Stream == nil || res.DLQ == nil || res.State == nil || res.Consumer == nil {
					t.Fatalf("Provision returned incomplete resources: %+v", res)
				}
				// Provisioning again is a no-op.
				if _, err := Provision(t.Context(), js, topo); err != nil {
					t.Fatalf("second Provision: %v", err)
				}
			}
			// Existing resources are never rewritten.
			if beforeSubjects != nil {
				after, err := js.Stream(t.Context(), "ALERTS")
				if err != nil {
					t.Fatal(err)
				}
				if got := after.CachedInfo().Config.Subjects; len(got) != len(beforeSubjects) {
					t.Fatalf("stream subjects changed from %v to %v", beforeSubjects, got)
				}
			}
		})
	}
}

func mustStream(t *testing.T, js jetstream.JetStream, cfg jetstream.StreamConfig) {
	t.Helper()
	if _, err := js.CreateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
}

func mustConsumer(t *testing.T, js jetstream.JetStream, cfg jetstream.ConsumerConfig) {
	t.Helper()
	if _, err := js.CreateConsumer(t.Context(), "ALERTS", cfg); err != nil {
		t.Fatal(err)
	}
}

func TestSubjectCovers(t *testing.T) {
	tests := []struct {
		have, want string
		covers     bool
	}{
		{"alerts.>", "alerts.>", true},
		{"alerts.>", "alerts.prometheus", true},
		{">", "alerts.>", true},
		{"alerts.*", "alerts.x", true},
		{"alerts.*", "alerts.>", false},
		{"alerts.prometheus", "alerts.>", false},
		{"alerts.x", "alerts.y", false},
		{"alerts.>", "alerts", false},
		{"alerts.*.x", "alerts.a.x", true},
	}
	for _, tc := range tests {
		if got := subjectCovers(tc.have, tc.want); got != tc.covers {
			t.Errorf("subjectCovers(%q, %q) = %v, want %v", tc.have, tc.want, got, tc.covers)
		}
	}
}
