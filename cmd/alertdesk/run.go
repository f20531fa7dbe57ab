package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
	"github.com/alertdesk/alertdesk/worker"
)

// cmdRun is `alertdesk run`: the worker.
func cmdRun(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "run", "usage: alertdesk run\n\n"+
		"Runs the worker: consumes alert events, dedupes them and keeps TOPdesk incidents\n"+
		"in line, dead-letters what cannot be handled, and serves /metrics, /healthz, /readyz\n"+
		"and the ingest endpoints. It takes no flags: settings come from ALERTDESK_*\n"+
		"variables (README.md).")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	cfg, err := loadConfig((*config).validateWorker)
	if err != nil {
		printConfigError(c, err)
		return 2
	}
	log := newLogger(cfg, c.stderr)
	if err := runWorker(ctx, cfg, log, runExtras{}); err != nil {
		log.Error().Err(err).Msg("alertdesk stopped with an error")
		return 1
	}
	return 0
}

// printConfigError prints one line per problem.
func printConfigError(c *cli, err error) {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			printConfigError(c, e)
		}
		return
	}
	fmt.Fprintf(c.stderr, "alertdesk: %v\n", err)
}

// runExtras are what `dev` adds to a worker.
type runExtras struct {
	// started is called once the HTTP server listens, with its address.
	started func(httpAddr, natsURL string)
	// mux gets extra routes (dev mounts the simulator here).
	mux func(*http.ServeMux)
	// ingestOpen serves ingest without a token (dev on loopback only).
	ingestOpen bool
}

// runWorker runs one worker until ctx is done.
func runWorker(ctx context.Context, cfg *config, log zerolog.Logger, extra runExtras) error {
	m, err := loadMapping(cfg.MappingFile)
	if err != nil {
		return err
	}
	password, err := cfg.topdeskPassword()
	if err != nil {
		return fmt.Errorf("%s_TOPDESK_PASSWORD_FILE: %w", envPrefix, err)
	}

	natsURL := cfg.NATSURL
	var ns *server.Server
	if natsURL == "" {
		if ns, err = startEmbedded(cfg.DataDir, cfg.EmbeddedNATSListen, log); err != nil {
			return err
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		natsURL = ns.ClientURL()
	}
	nc, err := connectNATS(cfg, natsURL, "alertdesk worker", log)
	if err != nil {
		return err
	}
	defer func() {
		if err := nc.Drain(); err != nil {
			log.Warn().Err(err).Msg("drain NATS connection")
		}
	}()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var ready atomic.Pointer[func() error]
	notYet := func() error { return errors.New("starting") }
	ready.Store(&notYet)

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := (*ready.Load())(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if err := mountIngest(mux, js, m, cfg, extra.ingestOpen, log); err != nil {
		return err
	}
	if extra.mux != nil {
		extra.mux(mux)
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("%s_HTTP_ADDR: listen on %s: %w", envPrefix, cfg.HTTPAddr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn().Err(err).Msg("HTTP server shutdown")
		}
		<-srvDone
	}()
	log.Info().Str("http_addr", ln.Addr().String()).Msg("serving /metrics, /healthz, /readyz")
	if extra.started != nil {
		extra.started(ln.Addr().String(), natsURL)
	}

	res, err := provision(ctx, js, cfg.topology(), log)
	if err != nil {
		return err
	}
	td, err := topdesk.NewClient(cfg.TopdeskURL, topdesk.Options{
		Username:  cfg.TopdeskUsername,
		Password:  password,
		Timeout:   cfg.TopdeskTimeout,
		UserAgent: "alertdesk/" + version,
		RateLimit: cfg.TopdeskRateLimit,
		// Handlers, plus the probe and the reconciliation.
		Concurrency: cfg.Concurrency + 2,
	})
	if err != nil {
		return fmt.Errorf("%s_TOPDESK_URL: %w", envPrefix, err)
	}
	resolver := topdesk.NewResolver(td)
	if err := resolveNames(ctx, resolver, m, log); err != nil {
		return err
	}

	w, err := worker.New(res, td, resolver, m, cfg.workerOptions(log, reg))
	if err != nil {
		return err
	}
	wReady := w.Ready
	ready.Store(&wReady)
	return w.Run(ctx)
}

// provision creates or checks the JetStream resources. A resource that
// exists with incompatible settings, or an account without JetStream, stops
// start-up; anything else (a NATS cluster electing leaders, a server
// restarting) is waited for.
func provision(ctx context.Context, js jetstream.JetStream, t worker.Topology, log zerolog.Logger) (*worker.Resources, error) {
	b := backoff.NewExponentialBackOff(backoff.WithMaxInterval(10*time.Second), backoff.WithMaxElapsedTime(0))
	for {
		res, err := worker.Provision(ctx, js, t)
		var conflict *worker.ConflictError
		if err == nil || errors.As(err, &conflict) || ctx.Err() != nil ||
			errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return res, err
		}
		wait := b.NextBackOff()
		log.Warn().Err(err).Dur("retry_in", wait).Msg("cannot provision the JetStream resources yet")
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
}

// resolveNames resolves every TOPdesk name of the mapping once. An unknown
// name stops start-up; an unreachable TOPdesk is waited for.
func resolveNames(ctx context.Context, r *topdesk.Resolver, m *mapping.Mapping, log zerolog.Logger) error {
	names := m.Names()
	if len(names) == 0 {
		return nil
	}
	b := backoff.NewExponentialBackOff(backoff.WithMaxInterval(30*time.Second), backoff.WithMaxElapsedTime(0))
	for {
		err := r.ResolveAll(ctx, names)
		if err == nil {
			log.Info().Int("names", len(names)).Msg("mapping names resolved in TOPdesk")
			return nil
		}
		if !topdesk.IsRetryable(err) && !topdesk.IsAuth(err) {
			return fmt.Errorf("mapping: %w", err)
		}
		wait := b.NextBackOff()
		log.Warn().Err(err).Dur("retry_in", wait).Msg("cannot resolve the mapping's names in TOPdesk yet")
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func loadMapping(path string) (*mapping.Mapping, error) {
	if path == "" {
		return mapping.Default(), nil
	}
	m, err := mapping.LoadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s_MAPPING_FILE: %w", envPrefix, err)
	}
	return m, nil
}

// topology is the JetStream layout from the config.
func (c *config) topology() worker.Topology {
	return worker.Topology{
		Stream:        c.Stream,
		Subjects:      c.Subjects,
		Consumer:      c.Consumer,
		DLQStream:     c.DLQStream,
		StateBucket:   c.StateBucket,
		Replicas:      c.Replicas,
		AckWait:       c.AckWait,
		MaxAckPending: max(4096, 4*c.Concurrency),
		MaxDeliver:    c.MaxDeliver,
	}
}

// workerOptions derives the worker's timing from the TOPdesk timeout: one
// delivery may spend two request timeouts retrying and four in all.
func (c *config) workerOptions(log zerolog.Logger, reg prometheus.Registerer) worker.Options {
	return worker.Options{
		Concurrency:     c.Concurrency,
		MaxDeliver:      c.MaxDeliver,
		HandleTimeout:   4 * c.TopdeskTimeout,
		RetryMaxElapsed: 2 * c.TopdeskTimeout,
		ClaimTTL:        c.ClaimTTL,
		ShutdownTimeout: c.ShutdownTimeout,
		BreakerCooldown: c.BreakerCooldown,
		AuthRetry:       c.AuthRetry,
		Logger:          log,
		Registerer:      reg,
	}
}
