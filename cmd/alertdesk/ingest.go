package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/ingest"
	"github.com/alertdesk/alertdesk/mapping"
)

// validateIngest checks that, with ingest on (a token, or dev on loopback),
// the input stream binds every subject ingest publishes to: ingest requires
// JetStream to store its events there and answers 503 for ever otherwise.
func (c *config) validateIngest() error {
	if c.IngestToken == "" && !c.ingestOpen {
		return nil
	}
	var missing []string
	for _, subject := range []string{ingest.SubjectAlerts, ingest.SubjectAlertmanager, ingest.SubjectGrafana} {
		if !slices.ContainsFunc(c.Subjects, func(filter string) bool { return server.SubjectMatchesFilter(subject, filter) }) {
			missing = append(missing, subject)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%s_SUBJECTS: %s does not cover %s, where HTTP ingest publishes; add them (or alerts.>), or turn ingest off",
		envPrefix, strings.Join(c.Subjects, ","), strings.Join(missing, ", "))
}

// mountIngest adds the ingest endpoints when a token is set (or open is
// true, in dev) and logs which way it went.
func mountIngest(mux *http.ServeMux, js jetstream.JetStream, m *mapping.Mapping, cfg *config, open bool, log zerolog.Logger) error {
	h := ingest.New(js.Conn(), ingest.Options{
		Token:   string(cfg.IngestToken),
		Open:    open,
		Stream:  cfg.Stream,
		Mapping: m,
		Logger:  log,
	})
	if h == nil {
		log.Info().Msg("HTTP ingest off (set ALERTDESK_INGEST_TOKEN to enable POST /v1/alerts and /v1/alertmanager)")
		return nil
	}
	h.Register(mux)
	log.Info().Bool("token_required", cfg.IngestToken != "").Msg("HTTP ingest on: POST /v1/alerts, POST /v1/alertmanager, POST /v1/grafana")
	return nil
}
