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
		{"topdesk-sim", "serve the TOPdesk simulator on its own", cmdTopdeskSim},
		{"healthcheck", "GET /healthz (or --url); exit 0 on a 2xx answer, for container health checks", cmdHealthcheck},
		{"version", "print the version", cmdVersion},
	}
}

func main() { os.Exit(run(os.Args[1:], &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})) }

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
	fmt.Fprintf(c.stderr, "alertdesk: unknown command %q\n\n", args[0])
	usage(c.stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: alertdesk <command> [flags]\n\ncommands:")
	for _, cmd := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", cmd.name, cmd.usage)
	}
	fmt.Fprintln(w, "\nRun 'alertdesk <command> -h' for a command's flags. Settings come from ALERTDESK_* variables (README.md).")
}

func cmdVersion(_ context.Context, c *cli, _ []string) int {
	fmt.Fprintln(c.stdout, "alertdesk", version)
	return 0
}

// cmdFlagExit is the exit code for a flag parsing error: 0 for -h, else 2
// (the flag package has printed the problem and the usage).
func cmdFlagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// parseFlags parses the flags of a command that takes no arguments. When
// done is true the command returns code at once.
func parseFlags(c *cli, fs *flag.FlagSet, args []string) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		return cmdFlagExit(err), true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "alertdesk %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2, true
	}
	return 0, false
}
