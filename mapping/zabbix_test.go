package mapping_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dop251/goja"
	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/alertdesk/alertdesk/mapping"
)

// zabbixMediaType is the part of deploy/sources/zabbix/alertdesk.yaml that
// Zabbix runs: the parameters (with macros) and the script.
type zabbixMediaType struct {
	Name       string `yaml:"name"`
	Type       string `yaml:"type"`
	Parameters []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"parameters"`
	Script string `yaml:"script"`
}

func loadZabbixMediaType(t *testing.T) zabbixMediaType {
	t.Helper()
	data, err := os.ReadFile("../deploy/sources/zabbix/alertdesk.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var export struct {
		ZabbixExport struct {
			Version    string            `yaml:"version"`
			MediaTypes []zabbixMediaType `yaml:"media_types"`
		} `yaml:"zabbix_export"`
	}
	if err := yaml.Unmarshal(data, &export); err != nil {
		t.Fatal(err)
	}
	if v := export.ZabbixExport.Version; v != "7.0" {
		t.Fatalf("export version %q, want 7.0", v)
	}
	if len(export.ZabbixExport.MediaTypes) != 1 || export.ZabbixExport.MediaTypes[0].Type != "WEBHOOK" {
		t.Fatalf("want one WEBHOOK media type, got %+v", export.ZabbixExport.MediaTypes)
	}
	return export.ZabbixExport.MediaTypes[0]
}

// runZabbixScript runs the media type's script as Zabbix does: as the body
// of a function of value, the parameters as a JSON object after macro
// expansion, with a stand-in for Zabbix's HttpRequest that sends real
// requests.
func runZabbixScript(t *testing.T, client *http.Client, mt zabbixMediaType, macros map[string]string) (goja.Value, error) {
	t.Helper()
	params := map[string]string{}
	for _, p := range mt.Parameters {
		v := p.Value
		for macro, val := range macros {
			v = strings.ReplaceAll(v, macro, val)
		}
		params[p.Name] = v
	}
	value, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	vm := goja.New()
	if err := vm.Set("value", string(value)); err != nil {
		t.Fatal(err)
	}
	err = vm.Set("HttpRequest", func(call goja.ConstructorCall) *goja.Object {
		header := http.Header{}
		status := 0
		set := func(name string, fn any) {
			if err := call.This.Set(name, fn); err != nil {
				panic(vm.NewGoError(err))
			}
		}
		set("addHeader", func(h string) {
			name, v, _ := strings.Cut(h, ":")
			header.Add(strings.TrimSpace(name), strings.TrimSpace(v))
		})
		set("post", func(url, body string) string {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
			if err != nil {
				panic(vm.NewGoError(err))
			}
			req.Header = header
			resp, err := client.Do(req)
			if err != nil {
				panic(vm.NewGoError(err))
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body) // a short read shows in the test's comparison
			status = resp.StatusCode
			return string(b)
		})
		set("getStatus", func() int { return status })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := vm.Set("Zabbix", map[string]any{"log": func(int, string) {}}); err != nil {
		t.Fatal(err)
	}
	return vm.RunString("(function (value) {\n" + mt.Script + "\n})(value)")
}

// postZabbix runs the script for one notification and returns what the
// ingest stand-in received from it.
func postZabbix(t *testing.T, client *http.Client, mt zabbixMediaType, macros map[string]string, got <-chan []mapping.Alert) []mapping.Alert {
	t.Helper()
	v, err := runZabbixScript(t, client, mt, macros)
	if err != nil {
		t.Fatalf("script: %v", err)
	}
	if v.String() != "OK" {
		t.Errorf("script returned %q, want OK", v)
	}
	return <-got
}

// zabbixIngest is a stand-in for alertdesk's /v1/alerts: it checks the
// token, decodes strictly with mapping.Decode and answers as ingest does.
func zabbixIngest(t *testing.T, token string, got chan<- []mapping.Alert) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/alerts" || r.Method != http.MethodPost {
			http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read body: %v", err)
			return
		}
		alerts, err := mapping.Decode(body, mapping.DecodeOptions{})
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			if err := json.NewEncoder(w).Encode(map[string]string{"error": err.Error()}); err != nil {
				t.Errorf("write answer: %v", err)
			}
			return
		}
		got <- alerts
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestZabbixMediaType runs the shipped media type's script for a problem,
// an update and a recovery of one problem against an ingest stand-in: each
// posts one event that the strict decoder accepts, keyed by the event id.
func TestZabbixMediaType(t *testing.T) {
	mt := loadZabbixMediaType(t)
	got := make(chan []mapping.Alert, 1)
	srv := zabbixIngest(t, "s3cret", got)
	problem := map[string]string{
		"<PLACE ALERTDESK URL, e.g. https://alertdesk.internal:8080>": srv.URL + "/",
		"<PLACE ALERTDESK_INGEST_TOKEN>":                              "s3cret",
		"{EVENT.ID}":                                                  "4711",
		"{EVENT.VALUE}":                                               "1",
		"{EVENT.UPDATE.STATUS}":                                       "0",
		"{EVENT.UPDATE.ACTION}":                                       "",
		"{EVENT.SEVERITY}":                                            "Average",
		"{EVENT.NAME}":                                                "Free disk space is less than 5% on /var",
		"{EVENT.TAGSJSON}":                                            `[{"tag":"scope","value":"capacity"},{"tag":"component","value":"storage"}]`,
		"{HOST.NAME}":                                                 "db-7",
		"{TRIGGER.ID}":                                                "23456",
		"{TRIGGER.DESCRIPTION}":                                       "Only 4% left on /var.",
		"{$ZABBIX.URL}":                                               "https://zabbix.internal/",
	}
	with := func(changes map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range problem {
			m[k] = v
		}
		for k, v := range changes {
			m[k] = v
		}
		return m
	}
	base := mapping.Alert{
		Key: "zabbix/4711", Status: mapping.StatusFiring, Severity: "Average",
		Summary: "Free disk space is less than 5% on /var", Description: "Only 4% left on /var.", Source: "zabbix",
		URL:    "https://zabbix.internal/tr_events.php?triggerid=23456&eventid=4711",
		Labels: map[string]string{"host": "db-7", "scope": "capacity", "component": "storage"},
	}
	tests := []struct {
		name   string
		macros map[string]string
		want   func(a mapping.Alert) mapping.Alert
	}{
		{"problem", problem, func(a mapping.Alert) mapping.Alert { return a }},
		{"update", with(map[string]string{"{EVENT.UPDATE.STATUS}": "1", "{EVENT.UPDATE.ACTION}": "changed severity", "{EVENT.SEVERITY}": "High"}),
			func(a mapping.Alert) mapping.Alert {
				a.Severity, a.Annotations = "High", map[string]string{"update": "changed severity"}
				return a
			}},
		{"recovery", with(map[string]string{"{EVENT.VALUE}": "0"}), func(a mapping.Alert) mapping.Alert {
			a.Status = mapping.StatusResolved
			return a
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			alerts := postZabbix(t, srv.Client(), mt, tc.macros, got)
			if diff := cmp.Diff([]mapping.Alert{tc.want(base)}, alerts); diff != "" {
				t.Errorf("posted event (-want +got):\n%s", diff)
			}
			if key, err := mapping.Default().Key(&alerts[0]); err != nil || key != "zabbix/4711" {
				t.Errorf("Key = %q, %v; want zabbix/4711", key, err)
			}
		})
	}

	t.Run("refused event fails the alert", func(t *testing.T) {
		_, err := runZabbixScript(t, srv.Client(), mt, with(map[string]string{"<PLACE ALERTDESK_INGEST_TOKEN>": "wrong"}))
		if err == nil || !strings.Contains(err.Error(), "alertdesk answered 401") {
			t.Errorf("script error = %v, want alertdesk answered 401", err)
		}
	})
	t.Run("unset URL is named", func(t *testing.T) {
		macros := with(nil)
		delete(macros, "<PLACE ALERTDESK URL, e.g. https://alertdesk.internal:8080>")
		_, err := runZabbixScript(t, srv.Client(), mt, macros)
		if err == nil || !strings.Contains(err.Error(), "set the alertdesk_url parameter") {
			t.Errorf("script error = %v, want one naming alertdesk_url", err)
		}
	})
}

// TestZabbixEventTime runs the shipped script with Zabbix's event
// timestamps (UNIX seconds) and checks that every posted event carries its
// own time, so that alertdesk orders a retried problem before the recovery
// that overtook it. A timestamp macro that Zabbix left unresolved (its
// literal text) gives an event without that time, which still posts.
func TestZabbixEventTime(t *testing.T) {
	mt := loadZabbixMediaType(t)
	got := make(chan []mapping.Alert, 1)
	srv := zabbixIngest(t, "s3cret", got)
	const (
		problemAt = "1796378400" // 2026-12-04T10:00:00Z
		recoverAt = "1796378405" // 5 s later, inside Zabbix's 10 s retry interval
		updateAt  = "1796378460"
		closeAt   = "1796378470" // an operator's manual close: its update and its recovery
	)
	at := func(unix string) time.Time {
		t.Helper()
		s, err := strconv.ParseInt(unix, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return time.Unix(s, 0).UTC()
	}
	macros := func(changes map[string]string) map[string]string {
		m := map[string]string{
			"<PLACE ALERTDESK URL, e.g. https://alertdesk.internal:8080>": srv.URL,
			"<PLACE ALERTDESK_INGEST_TOKEN>":                              "s3cret",
			"{EVENT.ID}":                                                  "4711",
			"{EVENT.VALUE}":                                               "1",
			"{EVENT.UPDATE.STATUS}":                                       "0",
			"{EVENT.SEVERITY}":                                            "High",
			"{EVENT.NAME}":                                                "Free disk space is less than 5% on /var",
			"{EVENT.TAGSJSON}":                                            "[]",
			"{HOST.NAME}":                                                 "db-7",
			"{EVENT.TIMESTAMP}":                                           problemAt,
		}
		for k, v := range changes {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name          string
		macros        map[string]string // a macro left out stays unresolved
		wantStatus    mapping.Status
		wantStartsAt  time.Time
		wantEventTime time.Time
	}{
		{"problem", macros(nil), mapping.StatusFiring, at(problemAt), at(problemAt)},
		{"recovery", macros(map[string]string{"{EVENT.VALUE}": "0", "{EVENT.RECOVERY.TIMESTAMP}": recoverAt}),
			mapping.StatusResolved, at(problemAt), at(recoverAt)},
		{"update", macros(map[string]string{"{EVENT.UPDATE.STATUS}": "1", "{EVENT.UPDATE.ACTION}": "commented",
			"{EVENT.UPDATE.TIMESTAMP}": updateAt}),
			mapping.StatusFiring, at(problemAt), at(updateAt)},
		{"update of a recovered problem is not newer than its recovery", macros(map[string]string{"{EVENT.UPDATE.STATUS}": "1",
			"{EVENT.UPDATE.ACTION}": "commented", "{EVENT.UPDATE.TIMESTAMP}": updateAt, "{EVENT.RECOVERY.TIMESTAMP}": recoverAt}),
			mapping.StatusFiring, at(problemAt), at(recoverAt)},
		// A manual close: the update and the recovery share a second, and
		// at equal times alertdesk applies the resolve last.
		{"manual close: update", macros(map[string]string{"{EVENT.UPDATE.STATUS}": "1",
			"{EVENT.UPDATE.ACTION}": "closed", "{EVENT.UPDATE.TIMESTAMP}": closeAt, "{EVENT.RECOVERY.TIMESTAMP}": closeAt}),
			mapping.StatusFiring, at(problemAt), at(closeAt)},
		{"manual close: recovery", macros(map[string]string{"{EVENT.VALUE}": "0", "{EVENT.RECOVERY.TIMESTAMP}": closeAt}),
			mapping.StatusResolved, at(problemAt), at(closeAt)},
		{"unresolved problem time", macros(map[string]string{"{EVENT.TIMESTAMP}": "{EVENT.TIMESTAMP}"}),
			mapping.StatusFiring, time.Time{}, time.Time{}},
		{"unresolved recovery time", macros(map[string]string{"{EVENT.VALUE}": "0"}),
			mapping.StatusResolved, time.Time{}, time.Time{}},
		{"unresolved update time", macros(map[string]string{"{EVENT.UPDATE.STATUS}": "1", "{EVENT.UPDATE.ACTION}": "commented"}),
			mapping.StatusFiring, time.Time{}, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			alerts := postZabbix(t, srv.Client(), mt, tc.macros, got)
			if len(alerts) != 1 {
				t.Fatalf("posted %d events, want 1", len(alerts))
			}
			a := alerts[0]
			if a.Status != tc.wantStatus {
				t.Errorf("status %s, want %s", a.Status, tc.wantStatus)
			}
			if !a.StartsAt.Equal(tc.wantStartsAt) {
				t.Errorf("startsAt %v, want %v", a.StartsAt, tc.wantStartsAt)
			}
			if got := a.EventTime(time.Time{}); !got.Equal(tc.wantEventTime) {
				t.Errorf("event time %v, want %v", got, tc.wantEventTime)
			}
		})
	}
}
