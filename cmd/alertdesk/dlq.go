package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alertdesk/alertdesk/dlq"
)

// Column widths of `dlq list`, in characters, so that a row fits a
// terminal next to the fixed-width columns.
const (
	dlqListKeyWidth   = 32
	dlqListErrorWidth = 60
)

const dlqUsage = `usage: alertdesk dlq <subcommand> [flags]

subcommands:
  list    [filters] [--json]                             list dead-lettered events
  show    SEQ [--json]                                   print one entry: headers and payload
  replay  SEQ... | --all | filters [--dry-run]           republish to the original subject, then delete
  purge   SEQ... | --all | filters [--dry-run] [--yes]   delete for good

filters (combined with AND):
  --subject S     original subject; NATS wildcards * and > allowed
  --key K         alert key
  --class C       invalid, template, rejected or exhausted
  --since T       a duration back from now (90m, 24h, 7d) or an RFC 3339 time

Run 'alertdesk dlq <subcommand> -h' for its flags.`

// cmdDLQ is `alertdesk dlq list|show|replay|purge`: inspect and manage the
// dead-letter stream (ALERTDESK_DLQ_STREAM).
func cmdDLQ(ctx context.Context, c *cli, args []string) int {
	return runSubcommand(ctx, c, "dlq", dlqUsage, args, map[string]subcommand{
		"list":   dlqList,
		"show":   dlqShow,
		"replay": dlqReplay,
		"purge":  dlqPurge,
	})
}

// dlqFilterFlags are the filter flags shared by list, replay and purge.
type dlqFilterFlags struct {
	subject, key, class, since string
}

func (ff *dlqFilterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&ff.subject, "subject", "", "original `subject`; NATS wildcards * and > allowed")
	fs.StringVar(&ff.key, "key", "", "alert `key`")
	fs.StringVar(&ff.class, "class", "", "dead-letter `class`: invalid, template, rejected or exhausted")
	fs.StringVar(&ff.since, "since", "", "failed at or after `T`: a duration back from now (90m, 24h, 7d) or an RFC 3339 time")
}

func (ff *dlqFilterFlags) set() bool {
	return ff.subject != "" || ff.key != "" || ff.class != "" || ff.since != ""
}

// filter turns the flags into a dlq.Filter.
func (ff *dlqFilterFlags) filter(now time.Time) (dlq.Filter, error) {
	f := dlq.Filter{Subject: ff.subject, Key: ff.key, Class: dlq.Class(ff.class)}
	switch f.Class {
	case "", dlq.ClassInvalid, dlq.ClassTemplate, dlq.ClassRejected, dlq.ClassExhausted:
	default:
		return f, fmt.Errorf("--class %q: want one of invalid, template, rejected, exhausted", ff.class)
	}
	if ff.since != "" {
		t, err := parseDLQSince(ff.since, now)
		if err != nil {
			return f, fmt.Errorf("--since: %w", err)
		}
		f.Since = t
	}
	return f, nil
}

// parseDLQSince reads a point in time: an RFC 3339 time, or a duration back
// from now in Go syntax or whole days ("7d").
func parseDLQSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is neither a duration (90m, 24h, 7d) nor an RFC 3339 time", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return time.Time{}, fmt.Errorf("%q is neither a duration (90m, 24h, 7d) nor an RFC 3339 time", s)
		}
	}
	if d < 0 {
		return time.Time{}, fmt.Errorf("%q is negative", s)
	}
	return now.Add(-d), nil
}

// parseDLQSeqs reads dead-letter sequence numbers.
func parseDLQSeqs(args []string) ([]uint64, error) {
	seqs := make([]uint64, 0, len(args))
	for _, a := range args {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("%q is not a dead-letter sequence number", a)
		}
		seqs = append(seqs, n)
	}
	return seqs, nil
}

// newDLQFlagSet returns a flag set whose usage is the given synopsis.
func newDLQFlagSet(c *cli, name, synopsis string) *flag.FlagSet {
	return newFlagSet(c, "dlq "+name, "usage: alertdesk dlq "+name+" "+synopsis+"\n\nflags:")
}

// dlqSelection reads what replay and purge act on: sequence numbers, --all,
// or filters, exactly one of them.
func dlqSelection(c *cli, fs *flag.FlagSet, pos []string, all bool, ff *dlqFilterFlags) (dlq.Filter, int) {
	modes := 0
	for _, on := range []bool{len(pos) > 0, all, ff.set()} {
		if on {
			modes++
		}
	}
	if modes != 1 {
		return dlq.Filter{}, usageError(fs, "select dead letters with sequence numbers, --all, or filters (exactly one of them)")
	}
	if all {
		return dlq.Filter{All: true}, 0
	}
	if len(pos) > 0 {
		seqs, err := parseDLQSeqs(pos)
		if err != nil {
			return dlq.Filter{}, usageError(fs, "%v", err)
		}
		return dlq.Filter{Seqs: seqs}, 0
	}
	f, err := ff.filter(time.Now())
	if err != nil {
		return dlq.Filter{}, usageError(fs, "%v", err)
	}
	return f, 0
}

// openDLQ loads the configuration and connects. The returned close
// function must be called when done; code is non-zero on failure (2 for
// a configuration problem, 1 for a connection problem).
func openDLQ(c *cli) (d *dlq.Stream, cfg *config, closeFn func(), code int) {
	js, cfg, closeFn, code := openClientJetStream(c, "alertdesk dlq")
	if code != 0 {
		return nil, nil, nil, code
	}
	return dlq.New(js, cfg.DLQStream), cfg, closeFn, 0
}

// openClientJetStream loads and checks the configuration and connects a
// client command to NATS (ALERTDESK_NATS_URL, else a local embedded server).
func openClientJetStream(c *cli, name string) (jetstream.JetStream, *config, func(), int) {
	cfg, err := loadConfig((*config).validateCommon)
	if err != nil {
		printConfigError(c, err)
		return nil, nil, nil, 2
	}
	nc, err := connectNATS(cfg, cfg.clientNATSURL(), name, newLogger(cfg, c.stderr))
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\nhint: %s\n", name, err, natsFix(cfg, err))
		return nil, nil, nil, 1
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		fmt.Fprintf(c.stderr, "%s: %v\n", name, err)
		return nil, nil, nil, 1
	}
	return js, cfg, nc.Close, 0
}

// dlqError prints err, with a hint when the dead-letter stream is missing.
func dlqError(c *cli, cmd string, cfg *config, err error) {
	fmt.Fprintf(c.stderr, "alertdesk dlq %s: %v\n", cmd, err)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		fmt.Fprintf(c.stderr, "hint: the dead-letter stream %s does not exist on this NATS; a worker (alertdesk run) creates it, and ALERTDESK_DLQ_STREAM names it\n", cfg.DLQStream)
	}
}

func dlqList(ctx context.Context, c *cli, args []string) int {
	fs := newDLQFlagSet(c, "list", "[--subject S] [--key K] [--class C] [--since T] [--json]")
	var ff dlqFilterFlags
	ff.register(fs)
	asJSON := fs.Bool("json", false, "print one JSON object per line (for scripts)")
	pos, err := parseFlagsAnywhere(fs, args)
	if err != nil {
		return cmdFlagExit(err)
	}
	if len(pos) > 0 {
		return usageError(fs, "unexpected argument %q (list takes filters only; see dlq show SEQ)", pos[0])
	}
	f, err := ff.filter(time.Now())
	if err != nil {
		return usageError(fs, "%v", err)
	}
	d, cfg, closeFn, code := openDLQ(c)
	if code != 0 {
		return code
	}
	defer closeFn()
	dls, err := d.List(ctx, f)
	if err != nil {
		dlqError(c, "list", cfg, err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		for i := range dls {
			if err := enc.Encode(newDLQRecord(&dls[i])); err != nil {
				fmt.Fprintf(c.stderr, "alertdesk dlq list: %v\n", err)
				return 1
			}
		}
		return 0
	}
	if len(dls) == 0 {
		fmt.Fprintf(c.stdout, "no dead letters in %s match\n", cfg.DLQStream)
		return 0
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tFAILED AT\tCLASS\tSUBJECT\tKEY\tDELIVERIES\tERROR")
	for _, dl := range dls {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", dl.Seq, dl.FailedAt.UTC().Format(time.RFC3339), dlqOrDash(string(dl.Class)),
			dl.OriginalSubject, dlqOrDash(dlqCell(dl.AlertKey, dlqListKeyWidth)), dl.Deliveries, dlqCell(dl.Error, dlqListErrorWidth))
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintf(c.stderr, "alertdesk dlq list: %v\n", err)
		return 1
	}
	return 0
}

func dlqShow(ctx context.Context, c *cli, args []string) int {
	fs := newDLQFlagSet(c, "show", "SEQ [--json]")
	asJSON := fs.Bool("json", false, "print the entry as one JSON object")
	pos, err := parseFlagsAnywhere(fs, args)
	if err != nil {
		return cmdFlagExit(err)
	}
	if len(pos) != 1 {
		return usageError(fs, "want exactly one sequence number, got %d", len(pos))
	}
	seqs, err := parseDLQSeqs(pos)
	if err != nil {
		return usageError(fs, "%v", err)
	}
	d, cfg, closeFn, code := openDLQ(c)
	if code != 0 {
		return code
	}
	defer closeFn()
	dl, err := d.Get(ctx, seqs[0])
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		fmt.Fprintf(c.stderr, "alertdesk dlq show: no dead letter %d in %s (replayed, purged or expired?)\n", seqs[0], cfg.DLQStream)
		return 1
	}
	if err != nil {
		dlqError(c, "show", cfg, err)
		return 1
	}
	if *asJSON {
		if err := json.NewEncoder(c.stdout).Encode(newDLQRecord(dl)); err != nil {
			fmt.Fprintf(c.stderr, "alertdesk dlq show: %v\n", err)
			return 1
		}
		return 0
	}
	printDeadLetter(c.stdout, dl)
	return 0
}

// printDeadLetter writes the summary fields, every header and the payload
// (indented when it is JSON).
func printDeadLetter(w io.Writer, dl *dlq.DeadLetter) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "seq:\t%d\n", dl.Seq)
	fmt.Fprintf(tw, "subject:\t%s\n", dl.Subject)
	fmt.Fprintf(tw, "original subject:\t%s\n", dl.OriginalSubject)
	fmt.Fprintf(tw, "original seq:\t%d\n", dl.OriginalSeq)
	if !dl.OriginalTime.IsZero() {
		fmt.Fprintf(tw, "original time:\t%s\n", dl.OriginalTime.UTC().Format(time.RFC3339Nano))
	}
	fmt.Fprintf(tw, "failed at:\t%s\n", dl.FailedAt.UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(tw, "class:\t%s\n", dlqOrDash(string(dl.Class)))
	fmt.Fprintf(tw, "deliveries:\t%d\n", dl.Deliveries)
	fmt.Fprintf(tw, "alert key:\t%s\n", dlqOrDash(dl.AlertKey))
	if dl.ReplayOf != "" {
		fmt.Fprintf(tw, "replay of:\t%s\n", dl.ReplayOf)
	}
	fmt.Fprintf(tw, "error:\t%s\n", dl.Error)
	// Flush fails only when w does; like the writes below, that is not
	// reported (show's output is best effort once the entry was read).
	_ = tw.Flush()

	fmt.Fprintln(w, "\nheaders:")
	keys := make([]string, 0, len(dl.Header))
	for k := range dl.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range dl.Header[k] {
			fmt.Fprintf(w, "  %s: %s\n", k, v)
		}
	}
	fmt.Fprintf(w, "\npayload (%d bytes):\n", len(dl.Data))
	var buf bytes.Buffer
	switch {
	case json.Indent(&buf, dl.Data, "", "  ") == nil:
		fmt.Fprintln(w, buf.String())
	case utf8.Valid(dl.Data):
		fmt.Fprintln(w, string(dl.Data))
	default:
		fmt.Fprintln(w, strconv.Quote(string(dl.Data)))
	}
}

// dlqRecord is the JSON form of a dead letter (list --json, show --json).
type dlqRecord struct {
	Seq             uint64          `json:"seq"`
	Subject         string          `json:"subject"`
	OriginalSubject string          `json:"original_subject"`
	OriginalSeq     uint64          `json:"original_seq"`
	OriginalTime    time.Time       `json:"original_time,omitzero"`
	FailedAt        time.Time       `json:"failed_at"`
	Class           dlq.Class       `json:"class"`
	Deliveries      int             `json:"deliveries"`
	AlertKey        string          `json:"alert_key,omitempty"`
	Error           string          `json:"error"`
	ReplayOf        string          `json:"replay_of,omitempty"`
	Headers         nats.Header     `json:"headers"`
	Payload         json.RawMessage `json:"payload,omitempty"`      // when the payload is JSON
	PayloadText     *string         `json:"payload_text,omitempty"` // otherwise
}

func newDLQRecord(dl *dlq.DeadLetter) dlqRecord {
	r := dlqRecord{
		Seq: dl.Seq, Subject: dl.Subject, OriginalSubject: dl.OriginalSubject, OriginalSeq: dl.OriginalSeq, OriginalTime: dl.OriginalTime,
		FailedAt: dl.FailedAt, Class: dl.Class, Deliveries: dl.Deliveries, AlertKey: dl.AlertKey,
		Error: dl.Error, ReplayOf: dl.ReplayOf, Headers: dl.Header,
	}
	if json.Valid(dl.Data) {
		r.Payload = dl.Data
	} else {
		s := string(dl.Data)
		r.PayloadText = &s
	}
	return r
}

func dlqReplay(ctx context.Context, c *cli, args []string) int {
	fs := newDLQFlagSet(c, "replay", "SEQ... | --all | [--subject S] [--key K] [--class C] [--since T]  [--dry-run]")
	var ff dlqFilterFlags
	ff.register(fs)
	all := fs.Bool("all", false, "replay every dead letter")
	dryRun := fs.Bool("dry-run", false, "print what would be replayed; change nothing")
	pos, err := parseFlagsAnywhere(fs, args)
	if err != nil {
		return cmdFlagExit(err)
	}
	f, code := dlqSelection(c, fs, pos, *all, &ff)
	if code != 0 {
		return code
	}
	js, cfg, closeFn, code := openClientJetStream(c, "alertdesk dlq")
	if code != 0 {
		return code
	}
	defer closeFn()
	// Replay only into the input stream, never into another stream that
	// happens to bind the original subject.
	d := dlq.New(js, cfg.DLQStream, dlq.WithReplayStream(cfg.Stream))

	res, err := d.Replay(ctx, f, *dryRun)
	replayed, failed := 0, 0
	for _, r := range res {
		switch {
		case errors.Is(r.Err, jetstream.ErrMsgNotFound):
			failed++
			fmt.Fprintf(c.stdout, "failed    %d: no such dead letter in %s (already replayed, purged or expired)\n", r.Seq, cfg.DLQStream)
		case r.Err != nil:
			failed++
			fmt.Fprintf(c.stdout, "failed    %d: %v\n", r.Seq, r.Err)
		case *dryRun:
			replayed++
			fmt.Fprintf(c.stdout, "would replay %d -> %s\n", r.Seq, r.Subject)
		default:
			replayed++
			dup := ""
			if r.Duplicate {
				dup = ", duplicate: an earlier interrupted replay stored it"
			}
			fmt.Fprintf(c.stdout, "replayed  %d -> %s (%s seq %d%s)\n", r.Seq, r.Subject, cfg.Stream, r.NewSeq, dup)
		}
	}
	if err != nil {
		dlqError(c, "replay", cfg, err)
		failed++
	}
	if *dryRun {
		fmt.Fprintf(c.stdout, "would replay %d, failed %d (dry run: nothing changed)\n", replayed, failed)
	} else {
		fmt.Fprintf(c.stdout, "replayed %d, failed %d\n", replayed, failed)
	}
	if failed > 0 {
		return 1
	}
	return 0
}

func dlqPurge(ctx context.Context, c *cli, args []string) int {
	fs := newDLQFlagSet(c, "purge", "SEQ... | --all | [--subject S] [--key K] [--class C] [--since T]  [--dry-run] [--yes]")
	var ff dlqFilterFlags
	ff.register(fs)
	all := fs.Bool("all", false, "purge every dead letter")
	dryRun := fs.Bool("dry-run", false, "print what would be deleted; change nothing")
	yes := fs.Bool("yes", false, "really delete (required unless --dry-run)")
	pos, err := parseFlagsAnywhere(fs, args)
	if err != nil {
		return cmdFlagExit(err)
	}
	f, code := dlqSelection(c, fs, pos, *all, &ff)
	if code != 0 {
		return code
	}
	if !*dryRun && !*yes {
		fmt.Fprintln(c.stderr, "alertdesk dlq purge: refusing to delete dead letters without --yes; run with --dry-run first to see what would be deleted")
		return 2
	}
	d, cfg, closeFn, code := openDLQ(c)
	if code != 0 {
		return code
	}
	defer closeFn()

	seqs, err := d.Purge(ctx, f, *dryRun)
	verb := "purged"
	if *dryRun {
		verb = "would purge"
	}
	for _, s := range seqs {
		fmt.Fprintf(c.stdout, "%s %d\n", verb, s)
	}
	failed := 0
	asked := slices.Clone(f.Seqs)
	slices.Sort(asked)
	for _, s := range slices.Compact(asked) {
		if !slices.Contains(seqs, s) && err == nil {
			failed++
			fmt.Fprintf(c.stderr, "alertdesk dlq purge: no dead letter %d in %s\n", s, cfg.DLQStream)
		}
	}
	if err != nil {
		dlqError(c, "purge", cfg, err)
		failed++
	}
	suffix := ""
	if *dryRun {
		suffix = " (dry run: nothing changed)"
	}
	noun := "dead letters"
	if len(seqs) == 1 {
		noun = "dead letter"
	}
	fmt.Fprintf(c.stdout, "%s %d %s%s\n", verb, len(seqs), noun, suffix)
	if failed > 0 {
		return 1
	}
	return 0
}

// dlqCell makes s one table cell of at most width characters.
func dlqCell(s string, width int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	return string(r[:width-1]) + "…"
}

func dlqOrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
