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
	"github.com/nats-io/nats.go"
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
		"variables (docs/configuration.md lists them all).")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	cfg, err := loadConfig((*config).validateWorker)
	if err != nil {
		printConfigError(c, err)
		return 2
	}
	log := newLogger(cfg, c.stderr)
	tuneGC()
	return exitCode(ctx, log, runWorker(ctx, cfg, log, runExtras{}))
}

// exitCode is a worker's exit status: 0 after a shutdown that ctx asked for
// (SIGINT, SIGTERM), also while start-up was still waiting; 1 otherwise.
func exitCode(ctx context.Context, log zerolog.Logger, err error) int {
	switch {
	case err == nil:
		return 0
	case ctx.Err() != nil:
		if !errors.Is(err, context.Canceled) {
			log.Warn().Err(err).Msg("error during shutdown")
		}
		return 0
	}
	log.Error().Err(err).Msg("alertdesk stopped with an error")
	return 1
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
	// Not reachable yet is no error: HTTP is served first, and start-up
	// waits for the connection below, with /readyz naming the cause.
	nc, err := connectNATS(cfg, natsURL, "alertdesk worker", log, nats.RetryOnFailedConnect(true))
	if err != nil {
		return err
	}
	defer drainNATS(nc, cfg.ShutdownTimeout, log)
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	st := newStartup(log)
	var ready atomic.Pointer[func() error]
	ready.Store(&st.ready)

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(prometheus.Gatherers{reg, st.reg}, promhttp.HandlerOpts{Registry: reg}))
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
	mountTopdeskEvents(mux, js, cfg, extra.ingestOpen, log)
	if extra.mux != nil {
		extra.mux(mux)
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("%s_HTTP_ADDR: listen on %s: %w", envPrefix, cfg.HTTPAddr, err)
	}
	srv := newHTTPServer(mux, httpReadTimeout)
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

	if err := waitNATS(ctx, nc, natsURL, st); err != nil {
		return err
	}
	res, err := provision(ctx, js, cfg.topology(m), st)
	if err != nil {
		return err
	}
	td, err := topdesk.NewClient(cfg.TopdeskURL, topdesk.Options{
		Username:  cfg.TopdeskUsername,
		Password:  password,
		Timeout:   cfg.TopdeskTimeout,
		UserAgent: "alertdesk/" + version,
		RateLimit: cfg.TopdeskRateLimit,
		// Every request of the worker counts: events, the probe and the
		// reconciliation share the slots TOPdesk gives.
		Concurrency: cfg.Concurrency,
	})
	if err != nil {
		return fmt.Errorf("%s_TOPDESK_URL: %w", envPrefix, err)
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "alertdesk_topdesk_concurrency_limit",
		Help: "TOPdesk requests this worker lets be in flight now: ALERTDESK_CONCURRENCY, lowered while TOPdesk answers 429/503 or slows down.",
	}, func() float64 { return float64(td.ConcurrencyLimit()) }))
	resolver := topdesk.NewResolver(td)
	if err := waitTopdesk(ctx, td, resolver, m, st); err != nil {
		return err
	}

	windows, stopWindows, err := watchMaintenance(ctx, js, cfg, m, log)
	if err != nil {
		return err
	}
	defer stopWindows()

	st.handOver()
	opts := cfg.workerOptions(log, reg)
	opts.Maintenance = windows
	w, err := worker.New(res, td, resolver, m, opts)
	if err != nil {
		return err
	}
	wReady := w.Ready
	ready.Store(&wReady)
	return w.Run(ctx)
}

// drainNATS drains nc and waits until the connection is closed, at most
// timeout: Drain only starts the drain, and a process that exits before it
// ends can lose the acks and naks still buffered. After the timeout the
// connection is closed as it is.
func drainNATS(nc *nats.Conn, timeout time.Duration, log zerolog.Logger) {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		// Closed already, or closed now because it was reconnecting.
		log.Warn().Err(err).Msg("drain NATS connection")
		nc.Close()
		return
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-closed:
	case <-t.C:
		log.Warn().Dur("shutdown_timeout", timeout).Msg("NATS connection not drained in time; closing it")
		nc.Close()
	}
}

// httpReadTimeout bounds reading one request, body included: a client that
// sends its body a byte a second is cut off instead of holding a connection
// (and a handler) for ever. An ingest body of a few hundred KiB needs well
// under a second on any working network.
const httpReadTimeout = 15 * time.Second

// newHTTPServer is the HTTP server of every command: headers must arrive
// within 10s and the whole request within readTimeout; idle keep-alive
// connections close after a minute.
func newHTTPServer(h http.Handler, readTimeout time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(10*time.Second, readTimeout),
		ReadTimeout:       readTimeout,
		IdleTimeout:       time.Minute,
	}
}

// waitNATS waits until nc, which keeps trying to connect to the servers of
// urls, is connected. nats.go stops trying only when a server rejected the
// credentials twice in a row, and closes nc: that stops start-up.
func waitNATS(ctx context.Context, nc *nats.Conn, urls string, st *startup) error {
	cause := "NATS is not reachable at " + redactURLs(urls)
	return st.wait(ctx, time.Second, func() (string, error) {
		err := nc.LastError()
		switch {
		case nc.IsConnected():
			return "", nil
		case nc.IsClosed():
			if err == nil {
				err = nats.ErrConnectionClosed
			}
			return "", fmt.Errorf("connect to NATS at %s: %w", redactURLs(urls), err)
		case err == nil:
			// A refused or failed dial leaves no error on nc; TLS and
			// protocol errors do.
			err = nats.ErrNoServers
		}
		return cause, err
	})
}

// provision creates or checks the JetStream resources. A resource that
// exists with incompatible settings, or an account without JetStream, stops
// start-up; anything else (a NATS cluster electing leaders, a server
// restarting) is waited for.
func provision(ctx context.Context, js jetstream.JetStream, t worker.Topology, st *startup) (*worker.Resources, error) {
	var res *worker.Resources
	err := st.wait(ctx, 10*time.Second, func() (string, error) {
		var err error
		res, err = worker.Provision(ctx, js, t)
		var conflict *worker.ConflictError
		if err == nil || errors.As(err, &conflict) ||
			errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return "", err
		}
		return "JetStream is not ready", err
	})
	return res, err
}

// waitTopdesk waits until TOPdesk answers and accepts the credentials
// (GET /tas/api/version), then resolves every TOPdesk name of the mapping
// once. An unknown name stops start-up; rejected credentials and an
// unreachable TOPdesk are waited for.
func waitTopdesk(ctx context.Context, td *topdesk.Client, r *topdesk.Resolver, m *mapping.Mapping, st *startup) error {
	names := m.Names()
	err := st.wait(ctx, 30*time.Second, func() (string, error) {
		_, err := td.Version(ctx)
		if err == nil && len(names) > 0 {
			if err = r.ResolveAll(ctx, names); err == nil {
				st.log.Info().Int("names", len(names)).Msg("mapping names resolved in TOPdesk")
			}
		}
		// ResolveAll joins one error per name; they share their cause.
		var ae *topdesk.APIError
		short := err
		if errors.As(err, &ae) {
			short = ae
		}
		switch {
		case err == nil:
			return "", nil
		case topdesk.IsAuth(err):
			return causeCredentials, short
		case topdesk.IsRetryable(err):
			return "TOPdesk is not reachable", short
		}
		return "", fmt.Errorf("mapping: %w", err)
	})
	if err == nil {
		st.credentialsOK.Set(1)
	}
	return err
}

// causeCredentials is the start-up wait for accepted TOPdesk credentials.
const causeCredentials = "TOPdesk rejects the credentials"

// startup is what the process shows while it starts, before the worker
// takes over: /readyz names what start-up waits for, the credentials gauge
// exists from the first second, and each cause of waiting is logged once
// when it starts and once when it ends.
type startup struct {
	log           zerolog.Logger
	reg           *prometheus.Registry
	credentialsOK prometheus.Gauge
	cause         atomic.Pointer[string]
	ready         func() error
}

func newStartup(log zerolog.Logger) *startup {
	st := &startup{
		log: log,
		reg: prometheus.NewRegistry(),
		// The worker registers the same gauge when it takes over.
		credentialsOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "alertdesk_topdesk_credentials_ok",
			Help: "0 while TOPdesk rejects the credentials (401/403), else 1.",
		}),
	}
	st.reg.MustRegister(st.credentialsOK)
	st.credentialsOK.Set(1)
	starting := "starting"
	st.cause.Store(&starting)
	st.ready = func() error { return errors.New(*st.cause.Load()) }
	return st
}

// handOver removes the start-up metrics just before the worker registers
// its own.
func (st *startup) handOver() { st.reg.Unregister(st.credentialsOK) }

// wait calls try until it returns no cause: then wait returns try's error
// (nil for success). A cause means "wait and try again"; wait logs it when
// it starts or changes, and once when it ends, and /readyz shows it with
// the latest error. ctx ends the wait with ctx's error.
func (st *startup) wait(ctx context.Context, maxInterval time.Duration, try func() (cause string, err error)) error {
	b := backoff.NewExponentialBackOff(backoff.WithMaxInterval(maxInterval), backoff.WithMaxElapsedTime(0))
	var waiting string
	var since time.Time
	for {
		cause, err := try()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if cause == "" {
			if waiting != "" && err == nil {
				st.log.Info().Dur("waited", time.Since(since)).Msgf("start-up continues; it waited because %s", waiting)
			}
			return err
		}
		if cause == causeCredentials {
			st.credentialsOK.Set(0)
		}
		if cause != waiting {
			lvl, fix := zerolog.WarnLevel, ""
			if cause == causeCredentials {
				lvl, fix = zerolog.ErrorLevel, "; check ALERTDESK_TOPDESK_USERNAME and the application password"
			}
			st.log.WithLevel(lvl).Err(err).Msgf("start-up waits (retrying until it ends): %s%s", cause, fix)
			waiting, since = cause, time.Now()
		}
		why := "starting: " + cause + ": " + err.Error()
		st.cause.Store(&why)
		wait := b.NextBackOff()
		st.log.Debug().Err(err).Dur("retry_in", wait).Msg(cause)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
	}
}

func loadMapping(path string) (*mapping.Mapping, error) {
	if path == "" {
		return mapping.Default(), nil
	}
	m, err := mapping.LoadFile(path)
	if err != nil {
		// One line per problem, each naming the variable.
		var errs []error
		for _, e := range flatten(err) {
			errs = append(errs, fmt.Errorf("%s_MAPPING_FILE: %w", envPrefix, e))
		}
		return nil, errors.Join(errs...)
	}
	return m, nil
}

// topology is the JetStream layout from the config and the mapping (nil
// when it did not load: its defaults).
func (c *config) topology(m *mapping.Mapping) worker.Topology {
	reorder := mapping.DefaultReorderWindow
	if m != nil {
		reorder = m.Lifecycle().ReorderWindow
	}
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
		Duplicates:    dedupeWindow(reorder),
	}
}

// dedupeWindow is the input stream's duplicate window for a mapping's
// lifecycle.reorderWindow: a minute, or the reorder window when shorter, so
// that an Alertmanager re-fire identical to a notification stored longer
// ago than that is stored again; at least a second, for HA copies.
func dedupeWindow(reorder time.Duration) time.Duration {
	return max(min(reorder, time.Minute), time.Second)
}

// workerOptions derives the worker's timing from the TOPdesk timeout: one
// delivery may spend two request timeouts retrying and four in all.
func (c *config) workerOptions(log zerolog.Logger, reg prometheus.Registerer) worker.Options {
	return worker.Options{
		Concurrency:     c.Concurrency,
		MaxDeliver:      c.MaxDeliver,
		HandleTimeout:   4 * c.TopdeskTimeout,
		RetryMaxElapsed: 2 * c.TopdeskTimeout,
		OutcomeWait:     3 * c.TopdeskTimeout, // the unknown-outcome rule of the README's Guarantees
		ClaimTTL:        c.ClaimTTL,
		ShutdownTimeout: c.ShutdownTimeout,
		BreakerCooldown: c.BreakerCooldown,
		AuthRetry:       c.AuthRetry,
		SyncInterval:    c.SyncInterval,
		Logger:          log,
		Registerer:      reg,
	}
}
