package main

import (
	"net/http"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/ingest"
	"github.com/alertdesk/alertdesk/mapping"
)

// mountIngest adds the ingest endpoints when a token is set (or open is
// true, in dev) and logs which way it went.
func mountIngest(mux *http.ServeMux, js jetstream.JetStream, m *mapping.Mapping, cfg *config, open bool, log zerolog.Logger) error {
	h := ingest.New(js.Conn(), ingest.Options{
		Token:   string(cfg.IngestToken),
		Open:    open,
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
