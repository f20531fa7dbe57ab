package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/ingest"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
	"github.com/alertdesk/alertdesk/worker"
)

// validateSync checks the two-way sync's settings.
func (c *config) validateSync() error {
	if c.SyncInterval != 0 && c.SyncInterval < time.Second {
		return fmt.Errorf("%s_SYNC_INTERVAL: %s is shorter than 1s (0 turns the read-back off)", envPrefix, c.SyncInterval)
	}
	return nil
}

// mountTopdeskEvents adds POST /v1/topdesk/events when its token is set
// (or open is true, in dev) and logs which way it went.
func mountTopdeskEvents(mux *http.ServeMux, js jetstream.JetStream, cfg *config, open bool, log zerolog.Logger) {
	h := ingest.NewTopdeskEvents(ingest.TopdeskEventsOptions{
		Token:  string(cfg.TopdeskEventsToken),
		Open:   open,
		Queue:  func(ctx context.Context, number string) error { return worker.QueueTopdeskEvent(ctx, js, number) },
		Logger: log,
	})
	if h == nil {
		log.Info().Msg("TOPdesk events off (set ALERTDESK_TOPDESK_EVENTS_TOKEN to enable POST " + ingest.TopdeskEventsPath + ")")
		return
	}
	h.Register(mux)
	log.Info().Bool("token_required", cfg.TopdeskEventsToken != "").Msg("TOPdesk events on: POST " + ingest.TopdeskEventsPath)
}

// devCallback points the simulator's automated action at the events
// endpoint, when that is on, as a TOPdesk action would be set up.
func devCallback(sim *topdesktest.Sim, cfg *config, open bool, httpAddr string) {
	if open || cfg.TopdeskEventsToken != "" {
		sim.SetCallback(topdesktest.Callback{URL: "http://" + httpAddr + ingest.TopdeskEventsPath, Token: string(cfg.TopdeskEventsToken)})
	}
}
