package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/user"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/maintenance"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/worker"
)

const maintenanceUsage = `usage: alertdesk maintenance <subcommand> [flags]

Ad-hoc maintenance windows. While a window covers an alert (every --match
label has that value), alertdesk creates or reopens no incident for it.
Windows are kept in the JetStream KV bucket ` + maintenance.DefaultBucket + `, seen by
every worker at once, and expire by themselves at their end.

subcommands:
  add     --match k=v... --for D [--from T] --reason R [--by NAME]
  list    [--json]
  remove  ID...

Run 'alertdesk maintenance <subcommand> -h' for its flags.`

// cmdMaintenance is `alertdesk maintenance add|list|remove`.
func cmdMaintenance(ctx context.Context, c *cli, args []string) int {
	return runSubcommand(ctx, c, "maintenance", maintenanceUsage, args, map[string]subcommand{
		"add":    maintenanceAdd,
		"list":   maintenanceList,
		"remove": maintenanceRemove,
	})
}

// subcommand runs one subcommand of a command such as maintenance.
type subcommand func(ctx context.Context, c *cli, args []string) int

// runSubcommand runs the subcommand args[0] of cmd. With no subcommand, or
// an unknown one, it prints usage and returns 2; for help, 0.
func runSubcommand(ctx context.Context, c *cli, cmd, usage string, args []string, subs map[string]subcommand) int {
	if len(args) > 0 {
		if run, ok := subs[args[0]]; ok {
			return run(ctx, c, args[1:])
		}
		if slices.Contains([]string{"-h", "--help", "help"}, args[0]) {
			fmt.Fprintln(c.stderr, usage)
			return 0
		}
		fmt.Fprintf(c.stderr, "alertdesk %s: unknown subcommand %q\n\n", cmd, args[0])
	}
	fmt.Fprintln(c.stderr, usage)
	return 2
}

// openMaintenance connects and opens the window store, creating its bucket
// when missing. closeFn must be called when done; code is non-zero on
// failure.
func openMaintenance(ctx context.Context, c *cli) (s *maintenance.Store, closeFn func(), code int) {
	js, cfg, closeFn, code := openClientJetStream(c, "alertdesk maintenance")
	if code != 0 {
		return nil, nil, code
	}
	s, err := maintenance.Open(ctx, js, maintenance.Options{Replicas: cfg.Replicas, Log: newLogger(cfg, c.stderr)})
	if err != nil {
		closeFn()
		fmt.Fprintf(c.stderr, "alertdesk maintenance: %v\n", err)
		return nil, nil, 1
	}
	return s, closeFn, 0
}

func maintenanceAdd(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "maintenance add", "usage: alertdesk maintenance add --match k=v... --for D [--from T] --reason R [--by NAME]\n\nflags:")
	match := keyValueFlag{}
	fs.Var(match, "match", "label `k=v` the alert must have (repeatable; all must hold)")
	dur := fs.Duration("for", 0, "how long the window lasts, e.g. 2h or 90m")
	from := fs.String("from", "", "start `T`, RFC 3339 (default now)")
	reason := fs.String("reason", "", "why (required); shown with suppressed events")
	by := fs.String("by", "", "who adds the window (default: your user name)")
	pos, err := parseFlagsAnywhere(fs, args)
	if err != nil {
		return cmdFlagExit(err)
	}
	var problems []string
	if len(pos) > 0 {
		problems = append(problems, fmt.Sprintf("unexpected argument %q", pos[0]))
	}
	if len(match) == 0 {
		problems = append(problems, "--match is required: at least one label k=v")
	}
	if *dur <= 0 {
		problems = append(problems, "--for is required: a positive duration such as 2h")
	}
	if strings.TrimSpace(*reason) == "" {
		problems = append(problems, "--reason is required")
	}
	start := time.Now()
	if *from != "" {
		if start, err = time.Parse(time.RFC3339, *from); err != nil {
			problems = append(problems, fmt.Sprintf("--from %q is not an RFC 3339 time (2026-12-05T22:00:00+01:00)", *from))
		}
	}
	if len(problems) > 0 {
		return usageError(fs, "%s", strings.Join(problems, "\n"))
	}
	s, closeFn, code := openMaintenance(ctx, c)
	if code != 0 {
		return code
	}
	defer closeFn()
	if *by == "" {
		*by = currentUser()
	}
	e, err := s.Add(ctx, maintenance.Entry{Match: match, From: start, To: start.Add(*dur), Reason: *reason, CreatedBy: *by})
	if err != nil {
		fmt.Fprintf(c.stderr, "alertdesk maintenance add: %v\n", err)
		return 1
	}
	fmt.Fprintf(c.stdout, "added maintenance window %s: %s from %s to %s\n", e.ID, keyValueFlag(e.Match),
		e.From.Format(time.RFC3339), e.To.Format(time.RFC3339))
	return 0
}

// currentUser names the user running the command, for --by.
func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "unknown"
}

func maintenanceList(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "maintenance list", "usage: alertdesk maintenance list [--json]\n\nflags:")
	asJSON := fs.Bool("json", false, "print one JSON object per line (for scripts)")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	s, closeFn, code := openMaintenance(ctx, c)
	if code != 0 {
		return code
	}
	defer closeFn()
	entries, err := s.List(ctx)
	if err != nil {
		fmt.Fprintf(c.stderr, "alertdesk maintenance list: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		for _, e := range entries {
			if err := enc.Encode(e); err != nil {
				fmt.Fprintf(c.stderr, "alertdesk maintenance list: %v\n", err)
				return 1
			}
		}
		return 0
	}
	if len(entries) == 0 {
		fmt.Fprintln(c.stdout, "no ad-hoc maintenance windows")
		return 0
	}
	now := time.Now()
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tFROM\tTO\tMATCH\tBY\tREASON")
	for _, e := range entries {
		state := "active"
		if e.From.After(now) {
			state = "upcoming"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, state, e.From.Format(time.RFC3339), e.To.Format(time.RFC3339),
			keyValueFlag(e.Match), dlqOrDash(e.CreatedBy), dlqCell(e.Reason, dlqListErrorWidth))
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintf(c.stderr, "alertdesk maintenance list: %v\n", err)
		return 1
	}
	return 0
}

func maintenanceRemove(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "maintenance remove", "usage: alertdesk maintenance remove ID...\n\nflags:")
	ids, err := parseFlagsAnywhere(fs, args)
	if err != nil {
		return cmdFlagExit(err)
	}
	if len(ids) == 0 {
		return usageError(fs, "name the windows to remove by ID (see maintenance list)")
	}
	s, closeFn, code := openMaintenance(ctx, c)
	if code != 0 {
		return code
	}
	defer closeFn()
	code = 0
	for _, id := range ids {
		err := s.Remove(ctx, id)
		switch {
		case errors.Is(err, maintenance.ErrNotFound):
			fmt.Fprintf(c.stderr, "alertdesk maintenance remove: no window %s (removed, expired, or never added)\n", id)
			code = 1
		case err != nil:
			fmt.Fprintf(c.stderr, "alertdesk maintenance remove: %v\n", err)
			code = 1
		default:
			fmt.Fprintf(c.stdout, "removed maintenance window %s\n", id)
		}
	}
	return code
}

// watchMaintenance returns the maintenance windows a worker applies: the
// mapping's and the ad-hoc ones of the store, kept current, and a func that
// stops following the store. On a NATS server without per-key TTLs (before
// 2.11) the store cannot exist: it says so and returns the mapping's windows
// alone.
func watchMaintenance(ctx context.Context, js jetstream.JetStream, cfg *config, m *mapping.Mapping, log zerolog.Logger) (worker.MaintenanceWindows, func(), error) {
	s, err := maintenance.Open(ctx, js, maintenance.Options{Replicas: cfg.Replicas, Log: log})
	if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
		log.Warn().Err(err).Msg("ad-hoc maintenance windows are off; only the mapping's windows apply")
		return m.Maintenance(), func() {}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	set, err := s.Watch(ctx, m.Maintenance())
	if err != nil {
		return nil, nil, err
	}
	log.Info().Int("mapping", len(m.Maintenance())).Int("windows", len(set.Windows())).Msg("maintenance windows followed")
	return set, set.Stop, nil
}
