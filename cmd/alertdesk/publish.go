package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publishMaxFile caps what publish reads from a file or stdin. The server's
// max_payload (1 MiB by default) is checked after connecting.
const publishMaxFile = 8 << 20

const publishUsage = `usage: alertdesk publish [event flags | --file F | -] [--subject S] [--msg-id ID]

Publishes one alert to NATS and waits for the JetStream ack. The alert comes
from the event flags, or as is from a JSON file (--file F, or - for stdin)
holding a native event or an Alertmanager webhook. The default subject is
alerts.<source> (alerts.alertmanager for a webhook).

flags:`

// publishEvent is the native alert event that the flags build
// (docs/events.md).
type publishEvent struct {
	Key         string            `json:"key,omitempty"`
	Status      string            `json:"status"`
	Severity    string            `json:"severity,omitempty"`
	Summary     string            `json:"summary,omitempty"`
	Description string            `json:"description,omitempty"`
	Source      string            `json:"source"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Timestamp   string            `json:"timestamp"`
}

// keyValueFlag is a repeatable k=v flag.
type keyValueFlag map[string]string

func (f keyValueFlag) String() string {
	parts := make([]string, 0, len(f))
	for _, k := range slices.Sorted(maps.Keys(f)) {
		parts = append(parts, k+"="+f[k])
	}
	return strings.Join(parts, ",")
}

func (f keyValueFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("%q is not key=value", s)
	}
	f[k] = v
	return nil
}

// publishFlags holds the parsed flags of publish.
type publishFlags struct {
	event                publishEvent
	labels, annotations  keyValueFlag
	subject, msgID, file string
}

// cmdPublish is `alertdesk publish`: publish one alert and wait for the
// JetStream ack.
func cmdPublish(ctx context.Context, c *cli, args []string) int {
	pf := publishFlags{labels: keyValueFlag{}, annotations: keyValueFlag{}}
	fs := newFlagSet(c, "publish", publishUsage)
	fs.StringVar(&pf.event.Key, "key", "", "alert `key` (dedupe key); else the mapping derives it from the labels")
	fs.StringVar(&pf.event.Status, "status", "firing", "`status`: firing or resolved")
	fs.StringVar(&pf.event.Severity, "severity", "", "`severity`, e.g. critical or warning")
	fs.StringVar(&pf.event.Summary, "summary", "", "one-line `summary`")
	fs.StringVar(&pf.event.Description, "description", "", "longer `description`")
	fs.StringVar(&pf.event.Source, "source", "cli", "`source` of the alert; also names the default subject")
	fs.Var(pf.labels, "label", "label `k=v` (repeatable)")
	fs.Var(pf.annotations, "annotation", "annotation `k=v` (repeatable)")
	fs.StringVar(&pf.event.Timestamp, "timestamp", "", "event `time`, RFC 3339 (default now)")
	fs.StringVar(&pf.subject, "subject", "", "`subject` to publish to (default alerts.<source>, alerts.alertmanager for a webhook)")
	fs.StringVar(&pf.file, "file", "", "read the JSON payload from `F` (- for stdin) and send it as is")
	fs.StringVar(&pf.msgID, "msg-id", "", "Nats-Msg-Id `ID`: the stream stores a repeat within its duplicate window once")
	pos, err := parseFlagsAnywhere(fs, args)
	if err != nil {
		return cmdFlagExit(err)
	}
	switch {
	case len(pos) == 1 && pos[0] == "-" && pf.file == "":
		pf.file = "-"
	case len(pos) > 0:
		return usageError(fs, "unexpected argument %q", pos[0])
	}

	var subject string
	var data []byte
	if pf.file != "" {
		var set []string
		fs.Visit(func(f *flag.Flag) {
			if !slices.Contains([]string{"file", "subject", "msg-id"}, f.Name) {
				set = append(set, "--"+f.Name)
			}
		})
		if len(set) > 0 {
			return usageError(fs, "%s cannot be combined with --file: the file is sent as is", strings.Join(set, ", "))
		}
		if data, subject, err = readPublishFile(c.stdin, pf.file); err != nil {
			fmt.Fprintf(c.stderr, "alertdesk publish: %v\n", err)
			return 1
		}
	} else {
		if data, err = pf.eventJSON(time.Now()); err != nil {
			return usageError(fs, "%v", err)
		}
		subject = "alerts." + pf.event.Source
	}
	if pf.subject != "" {
		subject = pf.subject
	}
	if !validPublishSubject(subject) {
		return usageError(fs, "%q is not a subject to publish to (dot-separated tokens, no spaces or wildcards); pass --subject", subject)
	}

	js, cfg, closeFn, code := openClientJetStream(c, "alertdesk publish")
	if code != 0 {
		return code
	}
	defer closeFn()
	if maxPayload := js.Conn().MaxPayload(); int64(len(data)) > maxPayload {
		fmt.Fprintf(c.stderr, "alertdesk publish: the payload is %d bytes; the NATS server accepts at most %d\n", len(data), maxPayload)
		return 1
	}
	var opts []jetstream.PublishOpt
	if pf.msgID != "" {
		opts = append(opts, jetstream.WithMsgID(pf.msgID))
	}
	ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data}, opts...)
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		fmt.Fprintf(c.stderr, "alertdesk publish: no JetStream stream captures %s (the input stream %s binds %s; see ALERTDESK_SUBJECTS): %v\n",
			subject, cfg.Stream, strings.Join(cfg.Subjects, ","), err)
		return 1
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "alertdesk publish: publish to %s: %v\n", subject, err)
		return 1
	}
	dup := ""
	if ack.Duplicate {
		dup = " (duplicate)"
	}
	fmt.Fprintf(c.stdout, "published to %s: stream %s seq %d%s\n", subject, ack.Stream, ack.Sequence, dup)
	return 0
}

// eventJSON checks that the flags make a complete event and encodes it.
func (pf *publishFlags) eventJSON(now time.Time) ([]byte, error) {
	ev := pf.event
	if ev.Status != "firing" && ev.Status != "resolved" {
		return nil, fmt.Errorf("--status %q: want firing or resolved", ev.Status)
	}
	if ev.Key == "" && len(pf.labels) == 0 {
		return nil, errors.New("an alert needs --key or at least one --label to derive its key from")
	}
	if ev.Source == "" {
		return nil, errors.New("--source must not be empty")
	}
	if ev.Timestamp == "" {
		ev.Timestamp = now.UTC().Format(time.RFC3339)
	} else if _, err := time.Parse(time.RFC3339, ev.Timestamp); err != nil {
		return nil, fmt.Errorf("--timestamp %q is not an RFC 3339 time (2026-11-22T10:00:05Z)", ev.Timestamp)
	}
	if len(pf.labels) > 0 {
		ev.Labels = pf.labels
	}
	if len(pf.annotations) > 0 {
		ev.Annotations = pf.annotations
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	return b, nil
}

// readPublishFile reads a JSON payload from a file or stdin ("-") and
// returns it unchanged with its default subject: alerts.alertmanager for an
// Alertmanager webhook (an object with "alerts" and "version"), else
// alerts.<source> of the native event(s), else alerts.cli.
func readPublishFile(stdin io.Reader, name string) ([]byte, string, error) {
	r := stdin
	what := "stdin"
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, "", fmt.Errorf("read event: %w", err)
		}
		defer f.Close()
		r, what = f, name
	}
	data, err := io.ReadAll(io.LimitReader(r, publishMaxFile+1))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", what, err)
	}
	if len(data) > publishMaxFile {
		return nil, "", fmt.Errorf("%s is larger than %d bytes", what, publishMaxFile)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, "", fmt.Errorf("%s is empty", what)
	}
	var obj map[string]json.RawMessage
	var arr []map[string]json.RawMessage
	switch {
	case json.Unmarshal(data, &obj) == nil:
		if _, hasAlerts := obj["alerts"]; hasAlerts {
			if _, hasVersion := obj["version"]; hasVersion {
				return data, "alerts.alertmanager", nil
			}
		}
		return data, "alerts." + eventSource(obj), nil
	case json.Unmarshal(data, &arr) == nil && len(arr) > 0:
		src := eventSource(arr[0])
		for _, ev := range arr[1:] {
			if eventSource(ev) != src {
				return data, "alerts.cli", nil
			}
		}
		return data, "alerts." + src, nil
	}
	return nil, "", fmt.Errorf("%s is not a JSON object (a native event or an Alertmanager webhook) or a JSON array of events", what)
}

// eventSource is the "source" of a native event, "cli" when it has none.
func eventSource(ev map[string]json.RawMessage) string {
	var s string
	if err := json.Unmarshal(ev["source"], &s); err != nil || s == "" {
		return "cli"
	}
	return s
}

// validPublishSubject reports whether s is a literal NATS subject.
func validPublishSubject(s string) bool {
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || strings.ContainsAny(tok, " \t\r\n*>") {
			return false
		}
	}
	return true
}
