package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// clientNATSURL is where a client command (publish, dlq, check) connects:
// ALERTDESK_NATS_URL, else the embedded server of a local `run` or `dev`.
func (c *config) clientNATSURL() string {
	if c.NATSURL != "" {
		return c.NATSURL
	}
	return "nats://" + c.EmbeddedNATSListen
}

// connectNATS connects with the configured credentials and TLS, and keeps
// reconnecting for ever: a worker outlives NATS restarts. A first connection
// that fails is an error, for the client commands; the worker passes
// nats.RetryOnFailedConnect(true) in more, and gets a connection that keeps
// trying (see waitNATS).
func connectNATS(c *config, url, name string, log zerolog.Logger, more ...nats.Option) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil on a deliberate close
				log.Warn().Err(err).Msg("disconnected from NATS")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("nats_url", nc.ConnectedUrlRedacted()).Msg("reconnected to NATS")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Warn().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("NATS async error")
		}),
	}
	if c.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(c.NATSCreds))
	}
	if c.NATSCAFile != "" {
		opts = append(opts, nats.RootCAs(c.NATSCAFile))
	}
	nc, err := nats.Connect(url, append(opts, more...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", redactURLs(url), err)
	}
	return nc, nil
}

// natsFix says what to do when connecting to NATS failed.
func natsFix(cfg *config, err error) string {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked):
		return "check ALERTDESK_NATS_CREDS: the credentials file must belong to a user of this server's account, and be current"
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &verify):
		return "check ALERTDESK_NATS_CA_FILE (the CA that signed the server's certificate) and the host name in ALERTDESK_NATS_URL"
	case cfg.NATSURL == "":
		return fmt.Sprintf("ALERTDESK_NATS_URL is empty, so alertdesk looks for the embedded NATS server of a local "+
			"`alertdesk dev` or `alertdesk run` on ALERTDESK_EMBEDDED_NATS_LISTEN (%s): start one of them first, "+
			"or set ALERTDESK_NATS_URL to your NATS servers", cfg.EmbeddedNATSListen)
	}
	return "check ALERTDESK_NATS_URL (host, port, nats:// or tls://), that the server is up and reachable from here, " +
		"and ALERTDESK_NATS_CREDS / ALERTDESK_NATS_CA_FILE"
}

// startEmbedded starts the embedded JetStream server: store in dir, clients
// on listen (host:port; port 0 picks a free one).
func startEmbedded(dir, listen string, log zerolog.Logger) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: "alertdesk-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded NATS on %s did not become ready within 30s (is the port in use?)", listen)
	}
	log.Info().Str("nats_url", ns.ClientURL()).Str("store_dir", dir).Msg("embedded JetStream server started")
	return ns, nil
}

// newLogger builds the root logger from the config.
func newLogger(c *config, w io.Writer) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(c.LogLevel)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	out := w
	if c.LogFormat == "console" {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339, NoColor: !isTerminal(w)}
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Str("service", "alertdesk").Str("version", version).Logger()
}

// isTerminal reports whether w is a terminal: colours are for people, not
// for files and pipes.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
