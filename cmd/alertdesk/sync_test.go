package main

import (
	"strings"
	"testing"
	"time"
)

func TestSyncSettings(t *testing.T) {
	isolateEnv(t)
	cfg, err := loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SyncInterval != 5*time.Minute || cfg.TopdeskEventsToken != "" {
		t.Errorf("defaults: sync interval %s, events token set %v; want 5m and none", cfg.SyncInterval, cfg.TopdeskEventsToken != "")
	}
	for _, tc := range []struct {
		interval time.Duration
		ok       bool
	}{{0, true}, {time.Second, true}, {time.Hour, true}, {500 * time.Millisecond, false}, {-time.Minute, false}} {
		err := (&config{SyncInterval: tc.interval}).validateSync()
		if (err == nil) != tc.ok || (err != nil && !strings.HasPrefix(err.Error(), "ALERTDESK_SYNC_INTERVAL: ")) {
			t.Errorf("ALERTDESK_SYNC_INTERVAL=%s: %v, want ok %v and the variable named", tc.interval, err, tc.ok)
		}
	}
	t.Setenv("ALERTDESK_TOPDESK_EVENTS_TOKEN", "never-printed")
	if cfg, err = loadConfig(nil); err != nil {
		t.Fatal(err)
	}
	if s := cfg.TopdeskEventsToken.String(); s != "<secret>" {
		t.Errorf("the events token prints as %q, want <secret>", s)
	}
}
