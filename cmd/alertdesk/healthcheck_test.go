package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthcheckCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			w.Write([]byte("ok\n"))
		case "/readyz":
			http.Error(w, "not ready: TOPdesk rejects the credentials: 401", http.StatusServiceUnavailable)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"healthy", []string{"--url", srv.URL + "/healthz"}, 0, "healthy: GET " + srv.URL + "/healthz: 200 OK", ""},
		{"not ready", []string{"--url", srv.URL + "/readyz"}, 1, "", "503 Service Unavailable: not ready: TOPdesk rejects the credentials: 401"},
		{"not found", []string{"--url", srv.URL + "/nope"}, 1, "", "404 Not Found"},
		{"nothing listening", []string{"--url", closedURL + "/healthz", "--timeout", "2s"}, 1, "", "unhealthy: GET " + closedURL + "/healthz: dial tcp"},
		{"credentials in the URL are not printed", []string{"--url", "http://user:hunter2@" + strings.TrimPrefix(closedURL, "http://") + "/healthz"}, 1, "", "redacted"},
		{"not an http URL", []string{"--url", "ftp://example.com/"}, 2, "", `--url "ftp://example.com/" is not an http(s) URL`},
		{"bad timeout", []string{"--timeout", "0s"}, 2, "", "--timeout 0s must be positive"},
		{"extra argument", []string{"now"}, 2, "", `unexpected argument "now"`},
		{"help", []string{"-h"}, 0, "", "usage: alertdesk healthcheck"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCommand(t, cmdHealthcheck, "", tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d; stdout %q, stderr %q", code, tc.wantCode, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.wantStdout) {
				t.Errorf("stdout %q does not contain %q", stdout, tc.wantStdout)
			}
			if !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tc.wantStderr)
			}
			if strings.Contains(stdout+stderr, "hunter2") {
				t.Errorf("output contains the password: stdout %q, stderr %q", stdout, stderr)
			}
		})
	}
}

// TestHealthcheckDefaultURL checks that without --url the command probes
// /healthz on the port of ALERTDESK_HTTP_ADDR, as the image's HEALTHCHECK does.
func TestHealthcheckDefaultURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("ok\n"))
	}))
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("ALERTDESK_HTTP_ADDR", ":"+port)
	code, stdout, stderr := runCommand(t, cmdHealthcheck, "")
	if code != 0 {
		t.Fatalf("exit code %d, want 0; stderr %q", code, stderr)
	}
	if want := "healthy: GET http://127.0.0.1:" + port + "/healthz: 200 OK\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}

	t.Setenv("ALERTDESK_HTTP_ADDR", "no-port")
	if code, _, stderr := runCommand(t, cmdHealthcheck, ""); code != 2 || !strings.Contains(stderr, "ALERTDESK_HTTP_ADDR") {
		t.Errorf("bad ALERTDESK_HTTP_ADDR: exit code %d, stderr %q; want 2 and a line naming the variable", code, stderr)
	}
}

func TestHealthURL(t *testing.T) {
	tests := []struct {
		addr    string
		want    string
		wantErr bool
	}{
		{":8080", "http://127.0.0.1:8080/healthz", false},
		{"0.0.0.0:9090", "http://127.0.0.1:9090/healthz", false},
		{"[::]:8080", "http://127.0.0.1:8080/healthz", false},
		{"127.0.0.1:8080", "http://127.0.0.1:8080/healthz", false},
		{"[::1]:8080", "http://[::1]:8080/healthz", false},
		{"alertdesk.local:8080", "http://alertdesk.local:8080/healthz", false},
		{"8080", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			got, err := healthURL(tc.addr)
			if (err != nil) != tc.wantErr {
				t.Fatalf("healthURL(%q) error %v, want error %v", tc.addr, err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("healthURL(%q) = %q, want %q", tc.addr, got, tc.want)
			}
		})
	}
}
