package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alertdesk/alertdesk/dlq"
	"github.com/alertdesk/alertdesk/worker"

	"github.com/alertdesk/alertdesk/worker/workertest"
)

// cliTestEnv is an embedded JetStream server that the client commands
// reach through ALERTDESK_NATS_URL.
type cliTestEnv struct {
	js jetstream.JetStream
}

// newCLITestEnv starts the server and points the environment at it; with
// provision it also creates the default topology.
func newCLITestEnv(t *testing.T, provision bool) *cliTestEnv {
	t.Helper()
	s := workertest.StartJetStream(t)
	t.Setenv("ALERTDESK_NATS_URL", s.ClientURL())
	_, js := workertest.Connect(t, s)
	if provision {
		if _, err := worker.Provision(t.Context(), js, worker.Topology{
			Stream: "ALERTS", Subjects: []string{"alerts.>"}, Consumer: "alertdesk",
			DLQStream: "ALERTS_DLQ", StateBucket: "alertdesk_incidents",
		}); err != nil {
			t.Fatalf("provision: %v", err)
		}
	}
	return &cliTestEnv{js: js}
}

// cliPublished is the original publish time of the dead letters that
// deadLetter stores.
var cliPublished = time.Date(2026, 11, 22, 10, 0, 1, 0, time.UTC)

// deadLetter stores one dead letter and returns its sequence.
func (e *cliTestEnv) deadLetter(t *testing.T, in dlq.Failure) uint64 {
	t.Helper()
	in.Published = cliPublished
	if err := dlq.New(e.js, "ALERTS_DLQ").Publish(t.Context(), in); err != nil {
		t.Fatalf("dead-letter: %v", err)
	}
	s, err := e.js.Stream(t.Context(), "ALERTS_DLQ")
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	return s.CachedInfo().State.LastSeq
}

// seqs returns the sequences in a stream.
func (e *cliTestEnv) seqs(t *testing.T, stream string) []uint64 {
	t.Helper()
	var out []uint64
	for _, m := range e.msgs(t, stream) {
		out = append(out, m.Sequence)
	}
	return out
}

func (e *cliTestEnv) msgs(t *testing.T, stream string) []*jetstream.RawStreamMsg {
	t.Helper()
	s, err := e.js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	st := s.CachedInfo().State
	var out []*jetstream.RawStreamMsg
	for seq := st.FirstSeq; st.Msgs > 0 && seq <= st.LastSeq; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			continue // deleted
		}
		out = append(out, m)
	}
	return out
}

// runCommand runs one command in-process and returns its exit code and output.
func runCommand(t *testing.T, cmd func(context.Context, *cli, []string) int, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cmd(t.Context(), &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut}, args)
	return code, out.String(), errOut.String()
}

// seedCLIDeadLetters stores four dead letters: 1 and 3 rejected with key a,
// 2 invalid and not JSON, 4 for a subject no stream binds.
func seedCLIDeadLetters(t *testing.T, e *cliTestEnv) []uint64 {
	t.Helper()
	at := time.Date(2026, 11, 22, 10, 0, 5, 0, time.UTC)
	return []uint64{
		e.deadLetter(t, dlq.Failure{OriginalStream: "ALERTS", OriginalSubject: "alerts.prom", OriginalSeq: 7,
			Data: []byte(`{"key":"a","status":"firing"}`), Err: "topdesk 400: unknown category \"Netwrk\"",
			Class: dlq.ClassRejected, Deliveries: 1, FailedAt: at, AlertKey: "a",
			Header: nats.Header{"X-Trace": {"t-1"}}}),
		e.deadLetter(t, dlq.Failure{OriginalStream: "ALERTS", OriginalSubject: "alerts.http", OriginalSeq: 8,
			Data: []byte("not json"), Err: "decode event: invalid character 'o' in literal null", Class: dlq.ClassInvalid,
			Deliveries: 1, FailedAt: at.Add(time.Second)}),
		e.deadLetter(t, dlq.Failure{OriginalStream: "ALERTS", OriginalSubject: "alerts.prom", OriginalSeq: 9,
			Data: []byte(`{"key":"a","status":"resolved"}`), Err: "topdesk 400: " + strings.Repeat("very long message ", 20),
			Class: dlq.ClassRejected, Deliveries: 2, FailedAt: at.Add(2 * time.Second), AlertKey: "a"}),
		e.deadLetter(t, dlq.Failure{OriginalStream: "ALERTS", OriginalSubject: "legacy.x", OriginalSeq: 10,
			Data: []byte(`{"key":"b","status":"firing"}`), Err: "topdesk 503", Class: dlq.ClassExhausted,
			Deliveries: 10, FailedAt: time.Now(), AlertKey: "b"}),
	}
}

func TestDLQListCommand(t *testing.T) {
	e := newCLITestEnv(t, true)
	seqs := seedCLIDeadLetters(t, e)

	code, out, errOut := runCommand(t, cmdDLQ, "", "list")
	if code != 0 {
		t.Fatalf("dlq list = %d, stderr %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("dlq list printed %d lines, want a header and 4 rows:\n%s", len(lines), out)
	}
	if got := strings.Fields(lines[0]); !slices.Equal(got, []string{"SEQ", "FAILED", "AT", "CLASS", "SUBJECT", "KEY", "DELIVERIES", "ERROR"}) {
		t.Errorf("header = %q", lines[0])
	}
	wantRow1 := []string{"1", "2026-11-22T10:00:05Z", "rejected", "alerts.prom", "a", "1", "topdesk", "400:", "unknown", "category", `"Netwrk"`}
	if got := strings.Fields(lines[1]); !slices.Equal(got, wantRow1) {
		t.Errorf("row 1 = %q, want fields %q", lines[1], wantRow1)
	}
	if got := strings.Fields(lines[2]); got[4] != "-" || got[2] != "invalid" {
		t.Errorf("row 2 = %q, want class invalid and key -", lines[2])
	}
	errCol := strings.Index(lines[0], "ERROR")
	if long := lines[3][errCol:]; utf8.RuneCountInString(long) != dlqListErrorWidth || !strings.HasSuffix(long, "…") {
		t.Errorf("long error cell = %q, want %d characters ending in …", long, dlqListErrorWidth)
	}
	// Columns line up.
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l[strings.Index(lines[0], "CLASS"):], strings.Fields(l)[2]) {
			t.Errorf("row %q is not aligned with the header %q", l, lines[0])
		}
	}

	tests := []struct {
		name string
		args []string
		want []uint64
	}{
		{"class", []string{"--class", "rejected"}, []uint64{seqs[0], seqs[2]}},
		{"key", []string{"--key", "b"}, []uint64{seqs[3]}},
		{"subject wildcard", []string{"--subject", "alerts.*"}, seqs[:3]},
		{"since duration", []string{"--since", "1h"}, []uint64{seqs[3]}},
		{"since time", []string{"--since", "2026-11-22T10:00:06Z"}, seqs[1:]},
		{"since days", []string{"--since", "3650d"}, seqs},
		{"nothing", []string{"--key", "zzz"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCommand(t, cmdDLQ, "", append([]string{"list", "--json"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("dlq list = %d, stderr %q", code, errOut)
			}
			var got []uint64
			dec := json.NewDecoder(strings.NewReader(out))
			for dec.More() {
				var r dlqRecord
				if err := dec.Decode(&r); err != nil {
					t.Fatalf("decode %q: %v", out, err)
				}
				got = append(got, r.Seq)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("listed (-want +got):\n%s", diff)
			}
		})
	}

	code, out, _ = runCommand(t, cmdDLQ, "", "list", "--key", "zzz")
	if code != 0 || out != "no dead letters in ALERTS_DLQ match\n" {
		t.Errorf("dlq list with no match = %d %q", code, out)
	}
}

func TestDLQListJSONRecord(t *testing.T) {
	e := newCLITestEnv(t, true)
	seqs := seedCLIDeadLetters(t, e)
	code, out, errOut := runCommand(t, cmdDLQ, "", "list", "--json", "--subject", "alerts.http")
	if code != 0 {
		t.Fatalf("dlq list = %d, stderr %q", code, errOut)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	delete(got, "headers")
	want := map[string]any{
		"seq": float64(seqs[1]), "subject": "alertdesk.dlq.alerts.http", "original_subject": "alerts.http",
		"original_seq": float64(8), "original_time": "2026-11-22T10:00:01Z", "failed_at": "2026-11-22T10:00:06Z",
		"class": "invalid", "deliveries": float64(1),
		"error": "decode event: invalid character 'o' in literal null", "payload_text": "not json",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
}

func TestDLQShowCommand(t *testing.T) {
	e := newCLITestEnv(t, true)
	seqs := seedCLIDeadLetters(t, e)
	code, out, errOut := runCommand(t, cmdDLQ, "", "show", strconv.FormatUint(seqs[0], 10))
	if code != 0 {
		t.Fatalf("dlq show = %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		"original subject:  alerts.prom\n",
		"original time:     2026-11-22T10:00:01Z\n",
		"class:             rejected\n",
		"error:             topdesk 400: unknown category \"Netwrk\"\n",
		"  Alertdesk-Error-Class: rejected\n",
		"  Nats-Msg-Id: dlq:ALERTS:7:" + strconv.FormatInt(cliPublished.UnixNano(), 10) + ":",
		"  X-Trace: t-1\n",
		"payload (29 bytes):\n{\n  \"key\": \"a\",\n  \"status\": \"firing\"\n}\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dlq show output lacks %q:\n%s", want, out)
		}
	}
	if _, out, _ := runCommand(t, cmdDLQ, "", "show", strconv.FormatUint(seqs[1], 10)); !strings.HasSuffix(out, "payload (8 bytes):\nnot json\n") {
		t.Errorf("dlq show of a non-JSON payload:\n%s", out)
	}

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"missing", []string{"show", "999"}, 1, "no dead letter 999 in ALERTS_DLQ"},
		{"no seq", []string{"show"}, 2, "want exactly one sequence number"},
		{"not a number", []string{"show", "x"}, 2, `"x" is not a dead-letter sequence number`},
		{"unknown subcommand", []string{"frobnicate"}, 2, `unknown subcommand "frobnicate"`},
		{"no subcommand", nil, 2, "usage: alertdesk dlq"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCommand(t, cmdDLQ, "", tc.args...)
			if code != tc.wantCode || !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("dlq %v = %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.wantCode, tc.wantErr)
			}
		})
	}
}

func TestDLQReplayCommand(t *testing.T) {
	tests := []struct {
		name      string
		args      func(seqs []uint64) []string
		wantCode  int
		wantOut   []string
		replayed  []int // indexes of the seeded dead letters now in ALERTS
		remaining []int // indexes still in ALERTS_DLQ
	}{
		{
			name:     "by seq",
			args:     func(s []uint64) []string { return []string{strconv.FormatUint(s[2], 10), strconv.FormatUint(s[0], 10)} },
			wantOut:  []string{"replayed  1 -> alerts.prom (ALERTS seq 1)\n", "replayed  3 -> alerts.prom (ALERTS seq 2)\n", "replayed 2, failed 0\n"},
			replayed: []int{0, 2}, remaining: []int{1, 3},
		},
		{
			name:     "by filter",
			args:     func([]uint64) []string { return []string{"--class", "invalid"} },
			wantOut:  []string{"replayed  2 -> alerts.http (ALERTS seq 1)\n", "replayed 1, failed 0\n"},
			replayed: []int{1}, remaining: []int{0, 2, 3},
		},
		{
			name:     "all with a failure",
			args:     func([]uint64) []string { return []string{"--all"} },
			wantCode: 1,
			wantOut:  []string{"replayed  3 -> alerts.prom (ALERTS seq 3)\n", "failed    4: republish to legacy.x: no stream binds this subject", "replayed 3, failed 1\n"},
			replayed: []int{0, 1, 2}, remaining: []int{3},
		},
		{
			name:      "dry run",
			args:      func([]uint64) []string { return []string{"--all", "--dry-run"} },
			wantOut:   []string{"would replay 1 -> alerts.prom\n", "would replay 4 -> legacy.x\n", "would replay 4, failed 0 (dry run: nothing changed)\n"},
			remaining: []int{0, 1, 2, 3},
		},
		{
			name:      "missing seq",
			args:      func([]uint64) []string { return []string{"99"} },
			wantCode:  1,
			wantOut:   []string{"failed    99: no such dead letter in ALERTS_DLQ (already replayed, purged or expired)\n", "replayed 0, failed 1\n"},
			remaining: []int{0, 1, 2, 3},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newCLITestEnv(t, true)
			seqs := seedCLIDeadLetters(t, e)
			code, out, errOut := runCommand(t, cmdDLQ, "", append([]string{"replay"}, tc.args(seqs)...)...)
			if code != tc.wantCode {
				t.Errorf("dlq replay = %d, want %d; stderr %q", code, tc.wantCode, errOut)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			var wantLeft, wantReplayOf, gotReplayOf []uint64
			for _, i := range tc.remaining {
				wantLeft = append(wantLeft, seqs[i])
			}
			for _, i := range tc.replayed {
				wantReplayOf = append(wantReplayOf, seqs[i])
			}
			if diff := cmp.Diff(wantLeft, e.seqs(t, "ALERTS_DLQ")); diff != "" {
				t.Errorf("left in ALERTS_DLQ (-want +got):\n%s", diff)
			}
			for _, m := range e.msgs(t, "ALERTS") {
				n, err := strconv.ParseUint(m.Header.Get(dlq.HeaderReplayOf), 10, 64)
				if err != nil {
					t.Fatalf("ALERTS seq %d has no %s header: %v", m.Sequence, dlq.HeaderReplayOf, err)
				}
				gotReplayOf = append(gotReplayOf, n)
			}
			if diff := cmp.Diff(wantReplayOf, gotReplayOf); diff != "" {
				t.Errorf("replays in ALERTS (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDLQReplayCommandTwice(t *testing.T) {
	e := newCLITestEnv(t, true)
	seedCLIDeadLetters(t, e)
	if code, out, errOut := runCommand(t, cmdDLQ, "", "replay", "--subject", "alerts.>"); code != 0 || !strings.HasSuffix(out, "replayed 3, failed 0\n") {
		t.Fatalf("first replay = %d %q %q", code, out, errOut)
	}
	if code, out, errOut := runCommand(t, cmdDLQ, "", "replay", "--subject", "alerts.>"); code != 0 || out != "replayed 0, failed 0\n" {
		t.Errorf("second replay = %d %q %q, want nothing to do", code, out, errOut)
	}
	if n := len(e.msgs(t, "ALERTS")); n != 3 {
		t.Errorf("ALERTS holds %d messages, want 3", n)
	}
}

func TestDLQPurgeCommand(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantCode  int
		wantOut   string
		wantErr   string
		remaining []int
	}{
		{name: "refused without --yes", args: []string{"--all"}, wantCode: 2, wantErr: "refusing to delete dead letters without --yes", remaining: []int{0, 1, 2, 3}},
		{name: "dry run needs no --yes", args: []string{"--class", "rejected", "--dry-run"}, wantOut: "would purge 1\nwould purge 3\nwould purge 2 dead letters (dry run: nothing changed)\n", remaining: []int{0, 1, 2, 3}},
		{name: "by filter", args: []string{"--class", "rejected", "--yes"}, wantOut: "purged 1\npurged 3\npurged 2 dead letters\n", remaining: []int{1, 3}},
		{name: "by seq", args: []string{"2", "--yes"}, wantOut: "purged 2\npurged 1 dead letter\n", remaining: []int{0, 2, 3}},
		{name: "missing seq", args: []string{"2", "99", "--yes"}, wantCode: 1, wantOut: "purged 2\npurged 1 dead letter\n", wantErr: "no dead letter 99 in ALERTS_DLQ", remaining: []int{0, 2, 3}},
		{name: "all", args: []string{"--all", "--yes"}, wantOut: "purged 1\npurged 2\npurged 3\npurged 4\npurged 4 dead letters\n"},
		{name: "no selection", args: []string{"--yes"}, wantCode: 2, wantErr: "select dead letters with sequence numbers, --all, or filters", remaining: []int{0, 1, 2, 3}},
		{name: "seq and --all", args: []string{"1", "--all", "--yes"}, wantCode: 2, wantErr: "exactly one of them", remaining: []int{0, 1, 2, 3}},
		{name: "bad class", args: []string{"--class", "nope", "--yes"}, wantCode: 2, wantErr: `--class "nope"`, remaining: []int{0, 1, 2, 3}},
		{name: "bad since", args: []string{"--since", "yesterday", "--yes"}, wantCode: 2, wantErr: `--since: "yesterday" is neither`, remaining: []int{0, 1, 2, 3}},
		{name: "unknown flag", args: []string{"--force"}, wantCode: 2, wantErr: "flag provided but not defined: -force", remaining: []int{0, 1, 2, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newCLITestEnv(t, true)
			seqs := seedCLIDeadLetters(t, e)
			code, out, errOut := runCommand(t, cmdDLQ, "", append([]string{"purge"}, tc.args...)...)
			if code != tc.wantCode {
				t.Errorf("dlq purge = %d, want %d; stderr %q", code, tc.wantCode, errOut)
			}
			if out != tc.wantOut {
				t.Errorf("stdout = %q, want %q", out, tc.wantOut)
			}
			if !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("stderr = %q, want it to contain %q", errOut, tc.wantErr)
			}
			var want []uint64
			for _, i := range tc.remaining {
				want = append(want, seqs[i])
			}
			if diff := cmp.Diff(want, e.seqs(t, "ALERTS_DLQ")); diff != "" {
				t.Errorf("left in ALERTS_DLQ (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDLQCommandEnvironment(t *testing.T) {
	t.Run("bad setting", func(t *testing.T) {
		newCLITestEnv(t, true)
		t.Setenv("ALERTDESK_DLQ_STREAM", "bad name")
		code, _, errOut := runCommand(t, cmdDLQ, "", "list")
		if code != 2 || !strings.Contains(errOut, "ALERTDESK_DLQ_STREAM") {
			t.Errorf("dlq list = %d, stderr %q; want 2 naming ALERTDESK_DLQ_STREAM", code, errOut)
		}
	})
	t.Run("no dead-letter stream", func(t *testing.T) {
		newCLITestEnv(t, false)
		code, _, errOut := runCommand(t, cmdDLQ, "", "list")
		if code != 1 || !strings.Contains(errOut, "hint: the dead-letter stream ALERTS_DLQ does not exist") {
			t.Errorf("dlq list = %d, stderr %q; want 1 and a hint", code, errOut)
		}
	})
	t.Run("NATS unreachable", func(t *testing.T) {
		newCLITestEnv(t, false)
		t.Setenv("ALERTDESK_NATS_URL", "nats://127.0.0.1:1")
		code, _, errOut := runCommand(t, cmdDLQ, "", "list")
		if code != 1 || !strings.Contains(errOut, "connect to NATS at nats://127.0.0.1:1") {
			t.Errorf("dlq list = %d, stderr %q; want 1 and the connect error", code, errOut)
		}
	})
}

func TestParseDLQSince(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "90m", want: now.Add(-90 * time.Minute)},
		{in: "2d", want: now.Add(-48 * time.Hour)},
		{in: "2026-11-20T08:00:00+01:00", want: time.Date(2026, 11, 20, 7, 0, 0, 0, time.UTC)},
		{in: "-1h", wantErr: true},
		{in: "xd", wantErr: true},
		{in: "soon", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseDLQSince(tc.in, now)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseDLQSince(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			}
			if !tc.wantErr && !got.Equal(tc.want) {
				t.Errorf("parseDLQSince(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestDLQCell(t *testing.T) {
	tests := []struct{ in, want string }{
		{"short", "short"},
		{"two\nlines", "two lines"},
		{strings.Repeat("é", 12), strings.Repeat("é", 9) + "…"},
	}
	for _, tc := range tests {
		if got := dlqCell(tc.in, 10); got != tc.want {
			t.Errorf("dlqCell(%q, 10) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
