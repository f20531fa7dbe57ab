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
	// Friendlier defaults for a terminal; explicit settings win.
	for name, value := range map[string]string{"HTTP_ADDR": "127.0.0.1:8080", "LOG_FORMAT": "console"} {
		if _, set := os.LookupEnv(envPrefix + "_" + name); !set {
			os.Setenv(envPrefix+"_"+name, value) // dev runs as its own process; nothing else reads these
		}
	}
	// The simulator starts empty every time, so the JetStream store does
	// too unless ALERTDESK_DATA_DIR asks otherwise: state about incidents
	// of an earlier simulator would only confuse a demo.
	if _, set := os.LookupEnv(envPrefix + "_DATA_DIR"); !set {
		dir, err := os.MkdirTemp("", "alertdesk-dev-")
		if err != nil {
			fmt.Fprintf(c.stderr, "alertdesk dev: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		os.Setenv(envPrefix+"_DATA_DIR", dir) // dev runs as its own process; nothing else reads it
	}
	cfg, err := loadConfig()
	if err != nil {
		printConfigError(c, err)
		return 2
	}
	cfg.NATSURL = ""
	password := make([]byte, 12)
	if _, err := rand.Read(password); err != nil {
		fmt.Fprintf(c.stderr, "alertdesk dev: %v\n", err)
		return 1
	}
	cfg.TopdeskUsername = topdesktest.DefaultUsername
	cfg.TopdeskPassword = secret(hex.EncodeToString(password))
	cfg.TopdeskPasswordFile = ""

	ln, err := net.Listen("tcp", *simAddr)
	if err != nil {
		fmt.Fprintf(c.stderr, "alertdesk dev: --sim-addr: %v\n", err)
		return 1
	}
	cfg.TopdeskURL = "http://" + ln.Addr().String()
	if err := cfg.validateWorker(); err != nil {
		ln.Close()
		printConfigError(c, err)
		return 2
	}
	log := newLogger(cfg, c.stderr)

	sim := topdesktest.New(topdesktest.Options{Username: cfg.TopdeskUsername, Password: string(cfg.TopdeskPassword)})
	sim.SetURL(cfg.TopdeskURL)
	simSrv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
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

	host, _, _ := net.SplitHostPort(cfg.HTTPAddr)
	ip := net.ParseIP(host)
	open := host == "localhost" || (ip != nil && ip.IsLoopback())
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
			publish := self + " publish"
			if natsURL != cfg.clientNATSURL() {
				publish = "ALERTDESK_NATS_URL=" + natsURL + " " + publish
			}
			fmt.Fprintf(c.stdout, `
alertdesk dev is running. Ctrl-C stops it.

  NATS (embedded JetStream)  %s
  TOPdesk simulator          %s/        <- open this page in a browser
  metrics                    http://%s/metrics
  ingest                     http://%s/v1/alerts (no token in dev)

Fire a sample alert, watch the incident appear, then resolve it:

  %s --key demo/disk-full --severity critical --summary "Disk / at 97%% on demo-1" --label host=demo-1
  %s --key demo/disk-full --status resolved

`, natsURL, cfg.TopdeskURL, httpAddr, httpAddr, publish, publish)
		},
	})
	if err != nil && ctx.Err() == nil {
		log.Error().Err(err).Msg("alertdesk dev stopped with an error")
		return 1
	}
	return 0
}

func mustGetwd() string {
	wd, err := os.Getwd()
	if err != nil {
		return "/"
	}
	return wd
}
