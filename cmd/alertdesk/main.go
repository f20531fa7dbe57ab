// Command alertdesk turns alert events published to NATS JetStream into
// TOPdesk incidents. See README.md for the commands and their settings.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"
)

// version is stamped at build time with -ldflags "-X main.version=…".
var version = "dev"

// cli carries the standard streams so that commands can be tested in-process.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

type command struct {
	name  string
	usage string
	run   func(ctx context.Context, c *cli, args []string) int
}

func commands() []command {
	return []command{
		{"run", "run the worker (consume, dedupe, call TOPdesk, dead-letter)", cmdRun},
		{"dev", "everything on one machine: embedded NATS, TOPdesk simulator, worker, ingest", cmdDev},
		{"publish", "publish one alert to NATS and wait for the JetStream ack", cmdPublish},
		{"render", "dry run: print the TOPdesk requests the mapping produces for an alert", cmdRender},
		{"check", "test the connections to NATS and TOPdesk and the mapping's names", cmdCheck},
		{"dlq", "list, show, replay or purge dead-lettered events", cmdDLQ},
		{"maintenance", "add, list or remove ad-hoc maintenance windows", cmdMaintenance},
		{"state", "show what alertdesk knows of alert keys: incident, claim, waits", cmdState},
		{"topdesk-sim", "serve the TOPdesk simulator on its own", cmdTopdeskSim},
		{"healthcheck", "GET /healthz (or --url); exit 0 on a 2xx answer, for container health checks", cmdHealthcheck},
		{"version", "print the version", cmdVersion},
	}
}

func main() {
	// Durations in logs carry their unit ("1.5s"), not a bare number of
	// milliseconds. zerolog keeps this setting process-wide, so it is made
	// once, here.
	zerolog.DurationFieldFormat = zerolog.DurationFormatString
	os.Exit(run(os.Args[1:], &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}))
}

func run(args []string, c *cli) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(c.stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, cmd := range commands() {
		if cmd.name == args[0] {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return cmd.run(ctx, c, args[1:])
		}
	}
	fmt.Fprintf(c.stderr, "alertdesk: unknown command %q\nRun 'alertdesk -h' for the commands.\n", args[0])
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: alertdesk <command> [flags]\n\ncommands:")
	for _, cmd := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", cmd.name, cmd.usage)
	}
	fmt.Fprintln(w, "\nRun 'alertdesk <command> -h' for a command's flags. Settings come from ALERTDESK_* variables (docs/configuration.md).")
}

func cmdVersion(_ context.Context, c *cli, args []string) int {
	if code, done := parseFlags(newFlagSet(c, "version", "usage: alertdesk version"), args); done {
		return code
	}
	fmt.Fprintln(c.stdout, "alertdesk", version)
	return 0
}

// newFlagSet returns the flag set of the command name ("dlq list"). Its
// usage, printed for -h, is synopsis followed by the flags.
func newFlagSet(c *cli, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintln(c.stderr, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlagsAnywhere is how every command parses its arguments: flags may
// come before, between or after the positional arguments, which it
// returns. For -h it prints the usage and returns flag.ErrHelp; for a bad
// flag it prints the problem and one line pointing to -h, not the whole
// usage. Either way the caller returns cmdFlagExit(err).
func parseFlagsAnywhere(fs *flag.FlagSet, args []string) ([]string, error) {
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	defer func() { fs.SetOutput(out); fs.Usage = usage }()
	var pos []string
	for {
		err := fs.Parse(args)
		switch {
		case errors.Is(err, flag.ErrHelp):
			fs.SetOutput(out)
			usage()
			return nil, err
		case err != nil:
			fs.SetOutput(out)
			usageError(fs, "%v", err)
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseFlags parses the flags of a command that takes no arguments. When
// done is true the command returns code at once.
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	pos, err := parseFlagsAnywhere(fs, args)
	switch {
	case err != nil:
		return cmdFlagExit(err), true
	case len(pos) > 0:
		return usageError(fs, "unexpected argument %q; settings come from ALERTDESK_* variables", pos[0]), true
	}
	return 0, false
}

// cmdFlagExit is the exit code after parseFlagsAnywhere failed: 0 for -h,
// else 2.
func cmdFlagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// usageError prints a problem with a command's arguments and where to read
// its usage; it returns the exit code 2.
func usageError(fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(fs.Output(), "alertdesk %s: %s\nRun 'alertdesk %s -h' for its usage.\n", fs.Name(), fmt.Sprintf(format, args...), fs.Name())
	return 2
}
