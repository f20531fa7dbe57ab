package worker

import (
	"strings"
	"testing"
	"time"

	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

func TestLifecycle(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.startWorker(fastOptions())
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	const key = "db-7/disk-full"

	step := func(name string, ev event, wantCreates, wantUpdates int, check func(incs []topdesktest.Incident)) {
		t.Helper()
		e.publish(ev)
		e.waitSettled(10 * time.Second)
		creates, updates := e.writes()
		if creates != wantCreates || updates != wantUpdates {
			t.Fatalf("%s: got %d creates and %d updates in TOPdesk, want %d and %d", name, creates, updates, wantCreates, wantUpdates)
		}
		check(e.incidentsFor(key))
	}
	one := func(name string, wantClosed bool) func([]topdesktest.Incident) {
		return func(incs []topdesktest.Incident) {
			t.Helper()
			if len(incs) != 1 {
				t.Fatalf("%s: got %d incidents, want 1", name, len(incs))
			}
			if incs[0].Closed != wantClosed {
				t.Fatalf("%s: incident closed = %v, want %v", name, incs[0].Closed, wantClosed)
			}
		}
	}

	step("resolved without incident does nothing", resolved(key, t0.Add(-time.Hour)), 0, 0, func(incs []topdesktest.Incident) {
		if len(incs) != 0 {
			t.Fatalf("got %d incidents, want none", len(incs))
		}
	})
	step("firing creates", firing(key, "warning", "Disk / at 91% on db-7", t0), 1, 0, one("create", false))
	step("same content is a duplicate", firing(key, "warning", "Disk / at 91% on db-7", t0.Add(time.Minute)), 1, 0, one("duplicate", false))
	step("severity change updates", firing(key, "critical", "Disk / at 91% on db-7", t0.Add(2*time.Minute)), 1, 1, func(incs []topdesktest.Incident) {
		one("update", false)(incs)
		if n := len(incs[0].Actions); n < 1 {
			t.Fatalf("update added no action")
		}
	})
	step("summary change updates", firing(key, "critical", "Disk / at 97% on db-7", t0.Add(3*time.Minute)), 1, 2, func(incs []topdesktest.Incident) {
		if got := incs[0].BriefDescription; !strings.Contains(got, "97%") {
			t.Fatalf("brief description %q not updated", got)
		}
	})
	step("stale event is skipped", firing(key, "warning", "old news", t0.Add(90*time.Second)), 1, 2, one("stale", false))
	step("resolved closes", resolved(key, t0.Add(4*time.Minute)), 1, 3, func(incs []topdesktest.Incident) {
		one("close", true)(incs)
		if got := incs[0].BriefDescription; !strings.HasPrefix(got, "[RESOLVED] ") {
			t.Fatalf("brief description %q lacks the [RESOLVED] prefix", got)
		}
	})
	step("resolved again does nothing", resolved(key, t0.Add(5*time.Minute)), 1, 3, one("resolved again", true))
	step("firing within the reopen window reopens", firing(key, "critical", "Disk / at 97% on db-7", t0.Add(time.Hour)), 1, 4, func(incs []topdesktest.Incident) {
		one("reopen", false)(incs)
		if got := incs[0].BriefDescription; strings.HasPrefix(got, "[RESOLVED]") {
			t.Fatalf("reopened incident keeps the prefix: %q", got)
		}
	})
	step("resolved closes again", resolved(key, t0.Add(2*time.Hour)), 1, 5, one("close again", true))
	step("firing after the reopen window creates a new incident", firing(key, "critical", "Disk / at 97% on db-7", t0.Add(30*time.Hour)), 2, 5, func(incs []topdesktest.Incident) {
		if len(incs) != 2 {
			t.Fatalf("got %d incidents, want 2", len(incs))
		}
		if !incs[0].Closed || incs[1].Closed {
			t.Fatalf("want the old incident closed and the new one open, got closed=%v,%v", incs[0].Closed, incs[1].Closed)
		}
	})
}

// Every incident carries the externalNumber and names the key.
func TestCreateCarriesKey(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.startWorker(fastOptions())
	long := strings.Repeat("Ünïcödé summary ", 10)
	e.publish(firing("k1", "critical", long, time.Now()))
	e.waitSettled(10 * time.Second)
	incs := e.incidentsFor("k1")
	if len(incs) != 1 {
		t.Fatalf("got %d incidents, want 1", len(incs))
	}
	if n := len([]rune(incs[0].BriefDescription)); n > 80 {
		t.Fatalf("brief description has %d characters, more than 80", n)
	}
	if !strings.Contains(incs[0].Request, "k1") {
		t.Fatalf("request text %q does not name the key", incs[0].Request)
	}
}

// TestResolveKeepsIncidentBrief: a resolve keeps the incident's own brief
// description, with the resolved prefix: never "[RESOLVED] <key>" for a
// resolve without a summary, never the resolve event's own summary ("CPU at
// 12%" after "CPU at 97%"), never the description without the prefix.
func TestResolveKeepsIncidentBrief(t *testing.T) {
	e := newEnv(t, topdesktest.Options{})
	e.startWorker(fastOptions())
	t0 := time.Now().Add(-time.Minute)
	tests := []struct {
		name, key, firing string
		resolve           string // the resolve event's summary; "" = none
		want              string
	}{
		{name: "without a summary", key: "db-7/disk-full", firing: "Disk / at 97% on db-7",
			want: "[RESOLVED] Disk / at 97% on db-7"},
		{name: "with another summary", key: "web-1/cpu", firing: "CPU at 97% on web-1", resolve: "CPU at 12% on web-1",
			want: "[RESOLVED] CPU at 97% on web-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.publish(firing(tc.key, "critical", tc.firing, t0))
			e.waitSettled(10 * time.Second)
			resolve := resolved(tc.key, t0.Add(time.Second))
			resolve["summary"] = tc.resolve
			if tc.resolve == "" {
				delete(resolve, "summary")
			}
			e.publish(resolve)
			e.waitSettled(10 * time.Second)
			incs := e.incidentsFor(tc.key)
			if len(incs) != 1 || !incs[0].Closed {
				t.Fatalf("got %d incidents (%+v), want one, closed", len(incs), incs)
			}
			if got := incs[0].BriefDescription; got != tc.want {
				t.Errorf("brief description = %q, want %q", got, tc.want)
			}
		})
	}
}
