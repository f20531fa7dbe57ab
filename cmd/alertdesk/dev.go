package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// cmdDev is `alertdesk dev`: embedded JetStream, the TOPdesk simulator, a
// worker and open ingest on one machine, for a first look and for demos.
func cmdDev(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "dev", "usage: alertdesk dev [flags]\n\n"+
		"Runs everything on this machine: an embedded JetStream server (ALERTDESK_EMBEDDED_NATS_LISTEN,\n"+
		"a fresh temporary store unless ALERTDESK_DATA_DIR is set), the TOPdesk simulator, a worker, and the ingest endpoints\n"+
		"(no token needed on a loopback ALERTDESK_HTTP_ADDR). ALERTDESK_NATS_URL and the\n"+
		"ALERTDESK_TOPDESK_* settings are ignored.\n\nflags:")
	simAddr := fs.String("sim-addr", "127.0.0.1:8081", "listen `address` of the TOPdesk simulator (port 0 picks a free one)")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	// The simulator listens first: its address is the TOPdesk URL.
	ln, err := net.Listen("tcp", *simAddr)
	if err != nil {
		fmt.Fprintf(c.stderr, "alertdesk dev: --sim-addr: %v\n", err)
		return 1
	}
	defer ln.Close()
	password := make([]byte, 12)
	if _, err := rand.Read(password); err != nil {
		fmt.Fprintf(c.stderr, "alertdesk dev: %v\n", err)
		return 1
	}
	cfg, err := loadConfig(func(cfg *config) error {
		cfg.devSettings("http://"+ln.Addr().String(), hex.EncodeToString(password))
		return cfg.validateWorker()
	})
	if err != nil {
		printConfigError(c, err)
		return 2
	}
	// The password file for check and run, and, unless ALERTDESK_DATA_DIR
	// is set, the JetStream store. The simulator keeps its incidents next to
	// the store, so both start empty or both carry on: state about incidents
	// the simulator no longer has would only confuse a demo.
	tmp, err := os.MkdirTemp("", "alertdesk-dev-")
	if err != nil {
		fmt.Fprintf(c.stderr, "alertdesk dev: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	if !cfg.isSet("DATA_DIR") {
		cfg.DataDir = filepath.Join(tmp, "jetstream")
	}
	passwordFile := filepath.Join(tmp, "topdesk-password")
	if err := os.WriteFile(passwordFile, []byte(cfg.TopdeskPassword), 0o600); err != nil {
		fmt.Fprintf(c.stderr, "alertdesk dev: %v\n", err)
		return 1
	}
	log := newLogger(cfg, c.stderr)

	sim, err := topdesktest.Open(topdesktest.Options{Username: cfg.TopdeskUsername, Password: string(cfg.TopdeskPassword),
		StateFile: filepath.Join(cfg.DataDir, "topdesk-simulator.json")}) // kept with the JetStream store, or neither
	if err != nil {
		ln.Close()
		fmt.Fprintf(c.stderr, "alertdesk dev: %v\n", err)
		return 1
	}
	sim.SetURL(cfg.TopdeskURL)
	simSrv := newHTTPServer(sim, httpReadTimeout)
	go func() {
		if err := simSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("TOPdesk simulator stopped")
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := simSrv.Shutdown(sctx); err != nil {
			log.Warn().Err(err).Msg("TOPdesk simulator shutdown")
		}
	}()

	open := cfg.ingestOpen
	if !open && cfg.IngestToken == "" {
		log.Warn().Msg("ALERTDESK_HTTP_ADDR is not a loopback address: ingest needs ALERTDESK_INGEST_TOKEN")
	}
	self, err := os.Executable()
	if err != nil {
		self = "alertdesk"
	} else if rel, err := filepath.Rel(mustGetwd(), self); err == nil && len(rel) < len(self) {
		self = "./" + rel
	}
	err = runWorker(ctx, cfg, log, runExtras{
		ingestOpen: open,
		started: func(httpAddr, natsURL string) {
			devCallback(sim, cfg, open, httpAddr)
			nats := ""
			if natsURL != cfg.clientNATSURL() {
				nats = "ALERTDESK_NATS_URL=" + natsURL + " "
			}
			publish := nats + self + " publish"
			check := fmt.Sprintf("%sALERTDESK_TOPDESK_URL=%s ALERTDESK_TOPDESK_USERNAME=%s ALERTDESK_TOPDESK_PASSWORD_FILE=%s %s check",
				nats, cfg.TopdeskURL, cfg.TopdeskUsername, passwordFile, self)
			fmt.Fprintf(c.stdout, `
alertdesk dev is running. Ctrl-C stops it.

  NATS (embedded JetStream)  %s
  TOPdesk simulator          %s/        <- open this page in a browser
  metrics                    http://%s/metrics
  ingest                     http://%s/v1/alerts (no token in dev)
  TOPdesk events             http://%s/v1/topdesk/events (the simulator calls it when an operator changes an incident)

Fire a sample alert, watch the incident appear, then resolve it:

  %s --key demo/disk-full --severity critical --summary "Disk / at 97%% on demo-1" --label host=demo-1
  %s --key demo/disk-full --status resolved

Test the connections as 'alertdesk run' would see them (the simulator's password is
in a file that lives as long as this process):

  %s

`, natsURL, cfg.TopdeskURL, httpAddr, httpAddr, httpAddr, publish, publish, check)
		},
	})
	return exitCode(ctx, log, err)
}

// devSettings sets what dev runs with: the simulator as TOPdesk, with its
// credentials, and the embedded NATS server; on a terminal-friendly address
// and log format unless ALERTDESK_HTTP_ADDR or ALERTDESK_LOG_FORMAT is set.
func (c *config) devSettings(topdeskURL, password string) {
	if !c.isSet("HTTP_ADDR") {
		c.HTTPAddr = "127.0.0.1:8080"
	}
	host, _, _ := net.SplitHostPort(c.HTTPAddr)
	ip := net.ParseIP(host)
	c.ingestOpen = host == "localhost" || (ip != nil && ip.IsLoopback())
	if !c.isSet("LOG_FORMAT") {
		c.LogFormat = "console"
	}
	c.NATSURL = ""
	c.TopdeskURL = topdeskURL
	c.TopdeskUsername = topdesktest.DefaultUsername
	c.TopdeskPassword = secret(password)
	c.TopdeskPasswordFile = ""
}

func mustGetwd() string {
	wd, err := os.Getwd()
	if err != nil {
		return "/"
	}
	return wd
}
