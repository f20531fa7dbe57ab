package dlq_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alertdesk/alertdesk/dlq"
	"github.com/alertdesk/alertdesk/worker"

	"github.com/alertdesk/alertdesk/worker/workertest"
)

const (
	dlqTestInput = "ALERTS"
	dlqTestDLQ   = "ALERTS_DLQ"
)

// seedPublished is the original publish time of seeded dead letters.
var seedPublished = time.Date(2026, 11, 22, 9, 59, 0, 0, time.UTC)

// dlqTestEnv is an embedded JetStream server with the alertdesk topology.
type dlqTestEnv struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	dlq *dlq.Stream
}

func newDLQTestEnv(t *testing.T) *dlqTestEnv {
	t.Helper()
	nc, js := workertest.Connect(t, workertest.StartJetStream(t))
	e := &dlqTestEnv{nc: nc, js: js, dlq: dlq.New(js, dlqTestDLQ, dlq.WithReplayStream(dlqTestInput))}
	e.provision(t)
	return e
}

// provision creates whatever of the alertdesk topology is missing.
func (e *dlqTestEnv) provision(t *testing.T) {
	t.Helper()
	if _, err := worker.Provision(t.Context(), e.js, worker.Topology{
		Stream: dlqTestInput, Subjects: []string{"alerts.>"}, Consumer: "alertdesk",
		DLQStream: dlqTestDLQ, StateBucket: "alertdesk_incidents",
	}); err != nil {
		t.Fatalf("provision: %v", err)
	}
}

// recreate deletes the named stream and provisions it anew, as an operator
// who starts over would.
func (e *dlqTestEnv) recreate(t *testing.T, name string) {
	t.Helper()
	if err := e.js.DeleteStream(t.Context(), name); err != nil {
		t.Fatalf("delete stream %s: %v", name, err)
	}
	e.provision(t)
}

// seed dead-letters one event per spec; entry i gets original seq 100+i.
// It returns the dead-letter sequences in order.
func (e *dlqTestEnv) seed(t *testing.T, specs ...dlq.Failure) []uint64 {
	t.Helper()
	for i, in := range specs {
		if in.OriginalStream == "" {
			in.OriginalStream = dlqTestInput
		}
		if in.OriginalSeq == 0 {
			in.OriginalSeq = uint64(100 + i)
		}
		if in.Published.IsZero() {
			in.Published = seedPublished
		}
		if in.Class == "" {
			in.Class = dlq.ClassRejected
		}
		if in.FailedAt.IsZero() {
			in.FailedAt = time.Now()
		}
		if in.Data == nil {
			in.Data = fmt.Appendf(nil, `{"key":%q,"status":"firing"}`, in.AlertKey)
		}
		if err := e.dlq.Publish(t.Context(), in); err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
	}
	return e.streamSeqs(t, dlqTestDLQ)
}

// streamMsgs returns every message of a stream, in order.
func (e *dlqTestEnv) streamMsgs(t *testing.T, name string) []*jetstream.RawStreamMsg {
	t.Helper()
	s, err := e.js.Stream(t.Context(), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	st := s.CachedInfo().State
	var out []*jetstream.RawStreamMsg
	for seq := st.FirstSeq; st.Msgs > 0 && seq <= st.LastSeq; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("get %s seq %d: %v", name, seq, err)
		}
		out = append(out, m)
	}
	return out
}

// payloads returns the payload of every message of a stream, in order.
func (e *dlqTestEnv) payloads(t *testing.T, name string) []string {
	t.Helper()
	var out []string
	for _, m := range e.streamMsgs(t, name) {
		out = append(out, string(m.Data))
	}
	return out
}

func (e *dlqTestEnv) streamSeqs(t *testing.T, name string) []uint64 {
	t.Helper()
	var seqs []uint64
	for _, m := range e.streamMsgs(t, name) {
		seqs = append(seqs, m.Sequence)
	}
	return seqs
}

// replayedFrom maps each message of the input stream that is a replay to
// how many times its dead letter was republished.
func (e *dlqTestEnv) replayedFrom(t *testing.T) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, m := range e.streamMsgs(t, dlqTestInput) {
		if r := m.Header.Get(dlq.HeaderReplayOf); r != "" {
			got[r]++
		}
	}
	return got
}

// payloadHash is the payload's part of a dead letter's Nats-Msg-Id.
func payloadHash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// replayMsgID is the Nats-Msg-Id that Replay gives the dead letter with
// sequence seq, stored at stored.
func replayMsgID(seq uint64, stored time.Time) string {
	return fmt.Sprintf("replay:%s:%d:%d", dlqTestDLQ, seq, stored.UnixNano())
}

func dlqSeqs(dls []dlq.DeadLetter) []uint64 {
	var seqs []uint64
	for _, dl := range dls {
		seqs = append(seqs, dl.Seq)
	}
	return seqs
}

func TestDLQPublishWritesHeadersAndDedupes(t *testing.T) {
	e := newDLQTestEnv(t)
	failedAt := time.Date(2026, 11, 22, 10, 0, 5, 123000000, time.UTC)
	longErr := "topdesk 422: " + strings.Repeat("é", 700) + "\nsecond line"
	in := dlq.Failure{
		OriginalStream:  dlqTestInput,
		OriginalSubject: "alerts.prometheus",
		OriginalSeq:     42,
		Published:       time.Date(2026, 11, 22, 10, 0, 1, 5, time.UTC),
		Header: nats.Header{
			"X-Trace":              {"abc"},
			"Nats-Msg-Id":          {"publisher-id"},
			"Nats-Expected-Stream": {dlqTestInput},
			dlq.HeaderReplayOf:     {"7"},
			dlq.HeaderError:        {"stale error from an earlier dead letter"},
			dlq.HeaderErrorClass:   {"template"},
			dlq.HeaderDeliveries:   {"99"},
			dlq.HeaderOriginalSeq:  {"1"},
		},
		Data:       []byte(`{"key":"db-7/disk","status":"firing"}`),
		Err:        longErr,
		Class:      dlq.ClassRejected,
		Deliveries: 3,
		FailedAt:   failedAt,
		AlertKey:   "db-7/disk",
	}
	if err := e.dlq.Publish(t.Context(), in); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	// The same message dead-lettered again (a redelivery after a lost term)
	// is stored once.
	in.Deliveries = 4
	if err := e.dlq.Publish(t.Context(), in); err != nil {
		t.Fatalf("second Publish: %v", err)
	}

	msgs := e.streamMsgs(t, dlqTestDLQ)
	if len(msgs) != 1 {
		t.Fatalf("dead-letter stream holds %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if want := dlq.SubjectPrefix + "alerts.prometheus"; m.Subject != want {
		t.Errorf("subject = %q, want %q", m.Subject, want)
	}
	if diff := cmp.Diff(in.Data, m.Data); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
	gotErr := m.Header.Get(dlq.HeaderError)
	if len(gotErr) > dlq.MaxErrorLen || strings.ContainsAny(gotErr, "\r\n") || !strings.HasPrefix(gotErr, "topdesk 422: éé") || !strings.HasSuffix(gotErr, "é…") {
		t.Errorf("error header not capped to one line of %d bytes: %d bytes %q", dlq.MaxErrorLen, len(gotErr), gotErr)
	}
	want := nats.Header{
		"X-Trace":                 {"abc"},
		"Nats-Msg-Id":             {"dlq:ALERTS:42:" + strconv.FormatInt(in.Published.UnixNano(), 10) + ":" + payloadHash(in.Data)},
		"Nats-Expected-Stream":    {dlqTestDLQ},
		dlq.HeaderReplayOf:        {"7"},
		dlq.HeaderOriginalSubject: {"alerts.prometheus"},
		dlq.HeaderOriginalSeq:     {"42"},
		dlq.HeaderError:           {gotErr},
		dlq.HeaderErrorClass:      {"rejected"},
		dlq.HeaderDeliveries:      {"3"},
		dlq.HeaderFailedAt:        {"2026-11-22T10:00:05.123Z"},
		dlq.HeaderAlertKey:        {"db-7/disk"},
		dlq.HeaderOriginalTime:    {"2026-11-22T10:00:01.000000005Z"},
	}
	if diff := cmp.Diff(want, m.Header); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
}

// A dead letter records when the event was first published: the original
// message's publish time, or the Alertdesk-Original-Time it already carries
// because it is itself a replay.
func TestDLQPublishOriginalTime(t *testing.T) {
	published := time.Date(2026, 11, 22, 10, 0, 1, 5, time.UTC)
	for _, tc := range []struct {
		name   string
		header nats.Header
		want   string
	}{
		{name: "first dead letter", want: "2026-11-22T10:00:01.000000005Z"},
		{name: "a replay keeps the earlier time", header: nats.Header{dlq.HeaderOriginalTime: {"2026-11-20T08:00:00.25Z"}},
			want: "2026-11-20T08:00:00.25Z"},
		{name: "a malformed header is replaced", header: nats.Header{dlq.HeaderOriginalTime: {"yesterday"}},
			want: "2026-11-22T10:00:01.000000005Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDLQTestEnv(t)
			seqs := e.seed(t, dlq.Failure{OriginalSubject: "alerts.x", Published: published, Header: tc.header})
			dl, err := e.dlq.Get(t.Context(), seqs[0])
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if got := dl.Header.Values(dlq.HeaderOriginalTime); !slices.Equal(got, []string{tc.want}) {
				t.Errorf("%s = %q, want [%q]", dlq.HeaderOriginalTime, got, tc.want)
			}
			if want, _ := time.Parse(time.RFC3339Nano, tc.want); !dl.OriginalTime.Equal(want) {
				t.Errorf("OriginalTime = %v, want %v", dl.OriginalTime, want)
			}
		})
	}
}

// The input stream deleted and made again numbers its messages from 1 once
// more: a message dead-lettered from the new stream is a new dead letter,
// not a duplicate of the old stream's message with the same sequence.
func TestDLQPublishUniqueAfterStreamRecreated(t *testing.T) {
	e := newDLQTestEnv(t)
	deadLetterSeq1 := func(payload string) {
		t.Helper()
		ack, err := e.js.Publish(t.Context(), "alerts.x", []byte(payload))
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		s, err := e.js.Stream(t.Context(), dlqTestInput)
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.GetMsg(t.Context(), ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		if m.Sequence != 1 {
			t.Fatalf("input message has seq %d, want 1", m.Sequence)
		}
		if err := e.dlq.Publish(t.Context(), dlq.Failure{OriginalStream: dlqTestInput, OriginalSubject: m.Subject,
			OriginalSeq: m.Sequence, Published: m.Time, Data: m.Data, Class: dlq.ClassInvalid}); err != nil {
			t.Fatalf("dead-letter: %v", err)
		}
	}
	deadLetterSeq1("first")
	e.recreate(t, dlqTestInput)
	deadLetterSeq1("second")
	if diff := cmp.Diff([]string{"first", "second"}, e.payloads(t, dlqTestDLQ)); diff != "" {
		t.Errorf("dead letters (-want +got):\n%s", diff)
	}
}

// The dead-letter stream deleted and made again numbers its entries from 1
// once more: replaying the new entry 1 republishes it, although the old
// entry 1 was replayed moments before.
func TestDLQReplayUniqueAfterStreamRecreated(t *testing.T) {
	e := newDLQTestEnv(t)
	replaySeq1 := func(payload string) {
		t.Helper()
		seqs := e.seed(t, dlq.Failure{OriginalSubject: "alerts.x", Data: []byte(payload)})
		if !slices.Equal(seqs, []uint64{1}) {
			t.Fatalf("dead-letter sequences %v, want [1]", seqs)
		}
		res, err := e.dlq.Replay(t.Context(), dlq.Filter{Seqs: seqs}, false)
		if err != nil || len(res) != 1 || res[0].Err != nil || res[0].Duplicate {
			t.Fatalf("replay of %q: %+v, %v; want one republished, not a duplicate", payload, res, err)
		}
	}
	replaySeq1("first")
	e.recreate(t, dlqTestDLQ)
	replaySeq1("second")
	if diff := cmp.Diff([]string{"first", "second"}, e.payloads(t, dlqTestInput)); diff != "" {
		t.Errorf("input stream (-want +got):\n%s", diff)
	}
}

// Each alert of a multi-alert message that fails alone is dead-lettered as
// an entry of its own, whose payload is that alert; dead-lettering one of
// them again (a redelivery after a lost term) stores nothing new.
func TestDLQPublishOneEntryPerPayload(t *testing.T) {
	e := newDLQTestEnv(t)
	for _, payload := range []string{"alert 0", "alert 2", "alert 0"} {
		if err := e.dlq.Publish(t.Context(), dlq.Failure{OriginalStream: dlqTestInput, OriginalSubject: "alerts.x",
			OriginalSeq: 7, Published: seedPublished, Data: []byte(payload), Class: dlq.ClassRejected}); err != nil {
			t.Fatalf("dead-letter %q: %v", payload, err)
		}
	}
	if diff := cmp.Diff([]string{"alert 0", "alert 2"}, e.payloads(t, dlqTestDLQ)); diff != "" {
		t.Errorf("dead letters (-want +got):\n%s", diff)
	}
}

func TestDLQPublishRejectsIncompleteInfo(t *testing.T) {
	e := newDLQTestEnv(t)
	ok := dlq.Failure{OriginalStream: dlqTestInput, OriginalSubject: "alerts.x", OriginalSeq: 1, Published: seedPublished, Class: dlq.ClassInvalid}
	tests := []struct {
		name   string
		change func(*dlq.Failure)
	}{
		{"no stream", func(in *dlq.Failure) { in.OriginalStream = "" }},
		{"no subject", func(in *dlq.Failure) { in.OriginalSubject = "" }},
		{"no seq", func(in *dlq.Failure) { in.OriginalSeq = 0 }},
		{"no publish time", func(in *dlq.Failure) { in.Published = time.Time{} }},
		{"no class", func(in *dlq.Failure) { in.Class = "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := ok
			tc.change(&in)
			if err := e.dlq.Publish(t.Context(), in); err == nil {
				t.Error("Publish succeeded, want an error")
			}
		})
	}
	if n := len(e.streamMsgs(t, dlqTestDLQ)); n != 0 {
		t.Errorf("dead-letter stream holds %d messages, want 0", n)
	}
}

func TestDLQPublishFailsWithoutStream(t *testing.T) {
	e := newDLQTestEnv(t)
	if err := e.js.DeleteStream(t.Context(), dlqTestDLQ); err != nil {
		t.Fatalf("delete stream: %v", err)
	}
	err := e.dlq.Publish(t.Context(), dlq.Failure{OriginalStream: dlqTestInput, OriginalSubject: "alerts.x", OriginalSeq: 1, Published: seedPublished, Class: dlq.ClassInvalid})
	if !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Errorf("Publish error = %v, want %v", err, jetstream.ErrNoStreamResponse)
	}
}

// seedMixed dead-letters five events of different subjects, keys, classes
// and failure times.
func seedMixed(t *testing.T, e *dlqTestEnv) []uint64 {
	t.Helper()
	now := time.Now()
	return e.seed(t,
		dlq.Failure{OriginalSubject: "alerts.prom.eu", AlertKey: "a", Class: dlq.ClassRejected, FailedAt: now.Add(-48 * time.Hour)},
		dlq.Failure{OriginalSubject: "alerts.prom.us", AlertKey: "b", Class: dlq.ClassExhausted, FailedAt: now},
		dlq.Failure{OriginalSubject: "alerts.http", AlertKey: "a", Class: dlq.ClassTemplate, FailedAt: now},
		dlq.Failure{OriginalSubject: "alerts.alertmanager", Class: dlq.ClassInvalid, Data: []byte("not json"), FailedAt: now},
		dlq.Failure{OriginalSubject: "alerts.prom.eu.db", AlertKey: "c", Class: dlq.ClassRejected, FailedAt: now},
	)
}

func TestDLQList(t *testing.T) {
	e := newDLQTestEnv(t)
	seqs := seedMixed(t, e)
	if len(seqs) != 5 {
		t.Fatalf("seeded %d dead letters, want 5", len(seqs))
	}
	tests := []struct {
		name    string
		f       dlq.Filter
		want    []int // indexes into seqs
		wantErr bool
	}{
		{name: "empty filter lists everything", want: []int{0, 1, 2, 3, 4}},
		{name: "all", f: dlq.Filter{All: true}, want: []int{0, 1, 2, 3, 4}},
		{name: "subject literal", f: dlq.Filter{Subject: "alerts.http"}, want: []int{2}},
		{name: "subject star", f: dlq.Filter{Subject: "alerts.prom.*"}, want: []int{0, 1}},
		{name: "subject tail", f: dlq.Filter{Subject: "alerts.prom.>"}, want: []int{0, 1, 4}},
		{name: "subject no match", f: dlq.Filter{Subject: "alerts.nothing"}},
		{name: "key", f: dlq.Filter{Key: "a"}, want: []int{0, 2}},
		{name: "class", f: dlq.Filter{Class: dlq.ClassRejected}, want: []int{0, 4}},
		{name: "since", f: dlq.Filter{Since: time.Now().Add(-time.Hour)}, want: []int{1, 2, 3, 4}},
		{name: "since in the future", f: dlq.Filter{Since: time.Now().Add(time.Hour)}},
		{name: "subject and key", f: dlq.Filter{Subject: "alerts.prom.>", Key: "a"}, want: []int{0}},
		{name: "seqs skip missing", f: dlq.Filter{Seqs: []uint64{seqs[3], seqs[1], 999, seqs[1]}}, want: []int{1, 3}},
		{name: "seqs and class", f: dlq.Filter{Seqs: []uint64{seqs[0], seqs[1]}, Class: dlq.ClassExhausted}, want: []int{1}},
		{name: "all with a filter", f: dlq.Filter{All: true, Key: "a"}, wantErr: true},
		{name: "bad subject", f: dlq.Filter{Subject: "alerts..x"}, wantErr: true},
		{name: "seq zero", f: dlq.Filter{Seqs: []uint64{0}}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.dlq.List(t.Context(), tc.f)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("List = %v, want an error", dlqSeqs(got))
				}
				return
			}
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			var want []uint64
			for _, i := range tc.want {
				want = append(want, seqs[i])
			}
			if diff := cmp.Diff(want, dlqSeqs(got)); diff != "" {
				t.Errorf("sequences (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDLQListManyEntries(t *testing.T) {
	e := newDLQTestEnv(t)
	const n = 700 // several pull batches
	specs := make([]dlq.Failure, n)
	for i := range specs {
		specs[i] = dlq.Failure{OriginalSubject: "alerts.bulk." + strconv.Itoa(i%3), AlertKey: "k" + strconv.Itoa(i)}
	}
	seqs := e.seed(t, specs...)
	all, err := e.dlq.List(t.Context(), dlq.Filter{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if diff := cmp.Diff(seqs, dlqSeqs(all)); diff != "" {
		t.Errorf("sequences (-want +got):\n%s", diff)
	}
	some, err := e.dlq.List(t.Context(), dlq.Filter{Subject: "alerts.bulk.1"})
	if err != nil {
		t.Fatalf("List by subject: %v", err)
	}
	if len(some) != n/3 {
		t.Errorf("List by subject gave %d entries, want %d", len(some), n/3)
	}
	// The scans leave no consumer behind.
	s, err := e.js.Stream(t.Context(), dlqTestDLQ)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	if n := s.CachedInfo().State.Consumers; n != 0 {
		t.Errorf("dead-letter stream has %d consumers after the scans, want 0", n)
	}
}

func TestDLQGet(t *testing.T) {
	e := newDLQTestEnv(t)
	failedAt := time.Date(2026, 11, 22, 10, 0, 5, 0, time.UTC)
	seqs := e.seed(t, dlq.Failure{
		OriginalSubject: "alerts.prom", OriginalSeq: 9, Header: nats.Header{dlq.HeaderReplayOf: {"3"}},
		Data: []byte(`{"status":"firing"}`), Err: "topdesk 400: unknown category", Class: dlq.ClassRejected,
		Deliveries: 2, FailedAt: failedAt, AlertKey: "k1",
	})
	got, err := e.dlq.Get(t.Context(), seqs[0])
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	want := &dlq.DeadLetter{
		Seq: seqs[0], Subject: "alertdesk.dlq.alerts.prom", OriginalSubject: "alerts.prom", OriginalSeq: 9,
		Error: "topdesk 400: unknown category", Class: dlq.ClassRejected, Deliveries: 2, FailedAt: failedAt,
		AlertKey: "k1", ReplayOf: "3", OriginalTime: seedPublished, Stored: got.Stored, Header: got.Header, Data: []byte(`{"status":"firing"}`),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}
	if got.Stored.IsZero() {
		t.Error("Get: Stored is zero, want the store time")
	}
	if _, err := e.dlq.Get(t.Context(), seqs[0]+1); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("Get of a missing entry: error = %v, want %v", err, jetstream.ErrMsgNotFound)
	}
}

func TestDLQReplay(t *testing.T) {
	tests := []struct {
		name     string
		filter   func(seqs []uint64) dlq.Filter
		dryRun   bool
		replayed []int // indexes into the seeded sequences
	}{
		{name: "by seq", filter: func(s []uint64) dlq.Filter { return dlq.Filter{Seqs: []uint64{s[3], s[1]}} }, replayed: []int{1, 3}},
		{name: "by filter", filter: func(s []uint64) dlq.Filter { return dlq.Filter{Class: dlq.ClassRejected} }, replayed: []int{0, 4}},
		{name: "by subject", filter: func(s []uint64) dlq.Filter { return dlq.Filter{Subject: "alerts.prom.>"} }, replayed: []int{0, 1, 4}},
		{name: "all", filter: func(s []uint64) dlq.Filter { return dlq.Filter{All: true} }, replayed: []int{0, 1, 2, 3, 4}},
		{name: "dry run", filter: func(s []uint64) dlq.Filter { return dlq.Filter{All: true} }, dryRun: true, replayed: []int{0, 1, 2, 3, 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newDLQTestEnv(t)
			seqs := seedMixed(t, e)
			before := e.streamMsgs(t, dlqTestDLQ)

			res, err := e.dlq.Replay(t.Context(), tc.filter(seqs), tc.dryRun)
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			var wantSeqs, gotSeqs []uint64
			for _, i := range tc.replayed {
				wantSeqs = append(wantSeqs, seqs[i])
			}
			for _, r := range res {
				gotSeqs = append(gotSeqs, r.Seq)
				if r.Err != nil {
					t.Errorf("result for %d: %v", r.Seq, r.Err)
				}
				if tc.dryRun != (r.NewSeq == 0) || r.Duplicate {
					t.Errorf("result for %d: NewSeq %d Duplicate %v, dry run %v", r.Seq, r.NewSeq, r.Duplicate, tc.dryRun)
				}
			}
			if diff := cmp.Diff(wantSeqs, gotSeqs); diff != "" {
				t.Fatalf("replayed (-want +got):\n%s", diff)
			}

			input := e.streamMsgs(t, dlqTestInput)
			if tc.dryRun {
				if len(input) != 0 {
					t.Errorf("dry run published %d messages", len(input))
				}
				if diff := cmp.Diff(seqs, e.streamSeqs(t, dlqTestDLQ)); diff != "" {
					t.Errorf("dry run changed the dead-letter stream (-want +got):\n%s", diff)
				}
				return
			}
			var remaining []uint64
			for _, s := range seqs {
				if !slices.Contains(wantSeqs, s) {
					remaining = append(remaining, s)
				}
			}
			if diff := cmp.Diff(remaining, e.streamSeqs(t, dlqTestDLQ)); diff != "" {
				t.Errorf("dead letters left (-want +got):\n%s", diff)
			}
			// Each republished event is the original payload on the original
			// subject, with the original headers and the replay marks only.
			if len(input) != len(wantSeqs) {
				t.Fatalf("input stream holds %d messages, want %d", len(input), len(wantSeqs))
			}
			for i, m := range input {
				r := res[i]
				orig := before[slices.IndexFunc(before, func(b *jetstream.RawStreamMsg) bool { return b.Sequence == r.Seq })]
				if m.Sequence != r.NewSeq || m.Subject != r.Subject || m.Subject != orig.Header.Get(dlq.HeaderOriginalSubject) {
					t.Errorf("input seq %d on %s, want seq %d on %s", m.Sequence, m.Subject, r.NewSeq, r.Subject)
				}
				if diff := cmp.Diff(orig.Data, m.Data); diff != "" {
					t.Errorf("payload of replay of %d (-want +got):\n%s", r.Seq, diff)
				}
				want := nats.Header{
					"Nats-Msg-Id":          {replayMsgID(orig.Sequence, orig.Time)},
					"Nats-Expected-Stream": {dlqTestInput},
					dlq.HeaderReplayOf:     {strconv.FormatUint(r.Seq, 10)},
					dlq.HeaderOriginalTime: {seedPublished.Format(time.RFC3339Nano)},
				}
				if diff := cmp.Diff(want, m.Header); diff != "" {
					t.Errorf("headers of replay of %d (-want +got):\n%s", r.Seq, diff)
				}
			}
		})
	}
}

func TestDLQReplayNeedsSelection(t *testing.T) {
	e := newDLQTestEnv(t)
	e.seed(t, dlq.Failure{OriginalSubject: "alerts.x"})
	if _, err := e.dlq.Replay(t.Context(), dlq.Filter{}, false); err == nil {
		t.Error("Replay without a selection succeeded")
	}
	if _, err := e.dlq.Purge(t.Context(), dlq.Filter{}, false); err == nil {
		t.Error("Purge without a selection succeeded")
	}
	if n := len(e.streamMsgs(t, dlqTestDLQ)); n != 1 {
		t.Errorf("dead-letter stream holds %d messages, want 1", n)
	}
}

func TestDLQReplayKeepsEntryWhenRepublishFails(t *testing.T) {
	e := newDLQTestEnv(t)
	if _, err := e.js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"other.>"}}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	seqs := e.seed(t,
		dlq.Failure{OriginalSubject: "nowhere.bound"},
		dlq.Failure{OriginalSubject: "alerts.ok", Header: nats.Header{"X-Trace": {"t1"}}},
		dlq.Failure{OriginalSubject: "other.stream"},
	)
	res, err := e.dlq.Replay(t.Context(), dlq.Filter{All: true}, false)
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if len(res) != 3 {
		t.Fatalf("got %d results, want 3", len(res))
	}
	if !errors.Is(res[0].Err, jetstream.ErrNoStreamResponse) {
		t.Errorf("replay to an unbound subject: error = %v, want %v", res[0].Err, jetstream.ErrNoStreamResponse)
	}
	if res[1].Err != nil || res[1].NewSeq != 1 {
		t.Errorf("replay to alerts.ok = %+v, want success as seq 1", res[1])
	}
	// 10060: "expected stream does not match".
	var apiErr *jetstream.APIError
	if !errors.As(res[2].Err, &apiErr) || apiErr.ErrorCode != 10060 {
		t.Errorf("replay to a subject of another stream: error = %v, want the server's expected-stream rejection", res[2].Err)
	}
	if diff := cmp.Diff([]uint64{seqs[0], seqs[2]}, e.streamSeqs(t, dlqTestDLQ)); diff != "" {
		t.Errorf("dead letters left (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{strconv.FormatUint(seqs[1], 10): 1}, e.replayedFrom(t)); diff != "" {
		t.Errorf("replays in the input stream (-want +got):\n%s", diff)
	}
	other := e.streamMsgs(t, "OTHER")
	if len(other) != 0 {
		t.Errorf("stream OTHER received %d messages", len(other))
	}
}

func TestDLQReplayTwice(t *testing.T) {
	tests := []struct {
		name        string
		filter      func(seqs []uint64) dlq.Filter
		wantMissing bool
	}{
		{name: "by filter", filter: func([]uint64) dlq.Filter { return dlq.Filter{Subject: "alerts.>"} }},
		{name: "all", filter: func([]uint64) dlq.Filter { return dlq.Filter{All: true} }},
		{name: "by seq", filter: func(s []uint64) dlq.Filter { return dlq.Filter{Seqs: s} }, wantMissing: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newDLQTestEnv(t)
			seqs := seedMixed(t, e)
			f := tc.filter(seqs)
			first, err := e.dlq.Replay(t.Context(), f, false)
			if err != nil || len(first) != len(seqs) {
				t.Fatalf("first Replay = %d results, %v; want %d", len(first), err, len(seqs))
			}
			second, err := e.dlq.Replay(t.Context(), f, false)
			if err != nil {
				t.Fatalf("second Replay: %v", err)
			}
			if !tc.wantMissing && len(second) != 0 {
				t.Errorf("second Replay did %d replays, want none", len(second))
			}
			if tc.wantMissing {
				if len(second) != len(seqs) {
					t.Fatalf("second Replay gave %d results, want %d", len(second), len(seqs))
				}
				for _, r := range second {
					if !errors.Is(r.Err, jetstream.ErrMsgNotFound) || r.NewSeq != 0 {
						t.Errorf("second replay of %d = %+v, want not found", r.Seq, r)
					}
				}
			}
			if n := len(e.streamMsgs(t, dlqTestInput)); n != len(seqs) {
				t.Errorf("input stream holds %d messages, want %d", n, len(seqs))
			}
		})
	}
}

// TestDLQReplayAfterCrash covers a replay that died after the republish was
// acked and before the dead letter was deleted: the rerun stores no second
// copy and removes the entry.
func TestDLQReplayAfterCrash(t *testing.T) {
	e := newDLQTestEnv(t)
	seqs := seedMixed(t, e)
	// What the crashed run managed: entries 0 and 1 republished, not deleted.
	for _, seq := range seqs[:2] {
		dl, err := e.dlq.Get(t.Context(), seq)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		s := strconv.FormatUint(seq, 10)
		msg := &nats.Msg{Subject: dl.OriginalSubject, Data: dl.Data, Header: nats.Header{dlq.HeaderReplayOf: {s}}}
		if _, err := e.js.PublishMsg(t.Context(), msg, jetstream.WithMsgID(replayMsgID(seq, dl.Stored))); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	res, err := e.dlq.Replay(t.Context(), dlq.Filter{All: true}, false)
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	var dups []uint64
	for _, r := range res {
		if r.Err != nil {
			t.Errorf("replay of %d: %v", r.Seq, r.Err)
		}
		if r.Duplicate {
			dups = append(dups, r.Seq)
		}
	}
	if diff := cmp.Diff(seqs[:2], dups); diff != "" {
		t.Errorf("duplicates (-want +got):\n%s", diff)
	}
	want := map[string]int{}
	for _, s := range seqs {
		want[strconv.FormatUint(s, 10)] = 1
	}
	if diff := cmp.Diff(want, e.replayedFrom(t)); diff != "" {
		t.Errorf("replays in the input stream (-want +got):\n%s", diff)
	}
	if left := e.streamSeqs(t, dlqTestDLQ); len(left) != 0 {
		t.Errorf("dead letters left: %v", left)
	}
}

// TestDLQReplayInterrupted cancels a replay while it runs, then reruns it.
func TestDLQReplayInterrupted(t *testing.T) {
	e := newDLQTestEnv(t)
	const n, cancelAt = 300, 20
	specs := make([]dlq.Failure, n)
	for i := range specs {
		specs[i] = dlq.Failure{OriginalSubject: "alerts.bulk", AlertKey: "k" + strconv.Itoa(i)}
	}
	seqs := e.seed(t, specs...)

	// Cancel when the 20th republished event reaches the input subject: by
	// then the first 19 dead letters are deleted, and the replay is still
	// busy with the rest.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var seen atomic.Int32
	sub, err := e.nc.Subscribe("alerts.bulk", func(*nats.Msg) {
		if seen.Add(1) == cancelAt {
			cancel()
		}
	})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	t.Cleanup(func() {
		if err := sub.Unsubscribe(); err != nil {
			t.Errorf("unsubscribe: %v", err)
		}
	})

	first, err := e.dlq.Replay(ctx, dlq.Filter{Subject: "alerts.bulk"}, false)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Replay error = %v, want %v", err, context.Canceled)
	}
	if len(first) >= n {
		t.Fatalf("interrupted Replay handled all %d entries", len(first))
	}
	left := e.streamSeqs(t, dlqTestDLQ)
	if len(left) == 0 || len(left) > n-cancelAt+1 {
		t.Fatalf("%d of %d dead letters left after the interrupted run, want 1..%d", len(left), n, n-cancelAt+1)
	}

	second, err := e.dlq.Replay(t.Context(), dlq.Filter{Subject: "alerts.bulk"}, false)
	if err != nil {
		t.Fatalf("rerun Replay: %v", err)
	}
	for _, r := range second {
		if r.Err != nil {
			t.Errorf("rerun replay of %d: %v", r.Seq, r.Err)
		}
	}
	if diff := cmp.Diff(left, dlqSeqsOfResults(second)); diff != "" {
		t.Errorf("rerun replayed (-want +got):\n%s", diff)
	}
	want := map[string]int{}
	for _, s := range seqs {
		want[strconv.FormatUint(s, 10)] = 1
	}
	if diff := cmp.Diff(want, e.replayedFrom(t)); diff != "" {
		t.Errorf("replays in the input stream (-want +got):\n%s", diff)
	}
	if rest := e.streamSeqs(t, dlqTestDLQ); len(rest) != 0 {
		t.Errorf("dead letters left after the rerun: %v", rest)
	}
}

func dlqSeqsOfResults(res []dlq.ReplayResult) []uint64 {
	var seqs []uint64
	for _, r := range res {
		seqs = append(seqs, r.Seq)
	}
	return seqs
}

func TestDLQPurge(t *testing.T) {
	tests := []struct {
		name   string
		filter func(seqs []uint64) dlq.Filter
		dryRun bool
		purged []int // indexes into the seeded sequences
	}{
		{name: "dry run", filter: func([]uint64) dlq.Filter { return dlq.Filter{All: true} }, dryRun: true, purged: []int{0, 1, 2, 3, 4}},
		{name: "dry run by class", filter: func([]uint64) dlq.Filter { return dlq.Filter{Class: dlq.ClassRejected} }, dryRun: true, purged: []int{0, 4}},
		{name: "by class", filter: func([]uint64) dlq.Filter { return dlq.Filter{Class: dlq.ClassRejected} }, purged: []int{0, 4}},
		{name: "by key", filter: func([]uint64) dlq.Filter { return dlq.Filter{Key: "a"} }, purged: []int{0, 2}},
		{name: "by seq skips missing", filter: func(s []uint64) dlq.Filter { return dlq.Filter{Seqs: []uint64{s[2], 999}} }, purged: []int{2}},
		{name: "all", filter: func([]uint64) dlq.Filter { return dlq.Filter{All: true} }, purged: []int{0, 1, 2, 3, 4}},
		{name: "nothing matches", filter: func([]uint64) dlq.Filter { return dlq.Filter{Key: "zzz"} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newDLQTestEnv(t)
			seqs := seedMixed(t, e)
			got, err := e.dlq.Purge(t.Context(), tc.filter(seqs), tc.dryRun)
			if err != nil {
				t.Fatalf("Purge: %v", err)
			}
			want := []uint64{}
			for _, i := range tc.purged {
				want = append(want, seqs[i])
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("purged (-want +got):\n%s", diff)
			}
			wantLeft := seqs
			if !tc.dryRun {
				wantLeft = slices.DeleteFunc(slices.Clone(seqs), func(s uint64) bool { return slices.Contains(want, s) })
			}
			if diff := cmp.Diff(wantLeft, e.streamSeqs(t, dlqTestDLQ), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("dead letters left (-want +got):\n%s", diff)
			}
			if n := len(e.streamMsgs(t, dlqTestInput)); n != 0 {
				t.Errorf("Purge published %d messages to the input stream", n)
			}
		})
	}
}
