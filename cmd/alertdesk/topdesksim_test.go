package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// startTopdeskSim runs topdesk-sim with args until the test ends (then it
// must exit 0) and returns a scanner of its output.
func startTopdeskSim(t *testing.T, args ...string) *bufio.Scanner {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- cmdTopdeskSim(ctx, &cli{stdin: strings.NewReader(""), stdout: pw, stderr: io.Discard}, args)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		// Drain the rest of the output; its error is the pipe closing.
		go func() { _, _ = io.Copy(io.Discard, pr) }()
		if code := <-done; code != 0 {
			t.Errorf("topdesk-sim exit = %d, want 0", code)
		}
	})
	return bufio.NewScanner(pr)
}

// TestTopdeskSimBannerURLs: every URL the banner of topdesk-sim prints
// answers 200 (it once advertised /_sim/, which is a 404).
func TestTopdeskSimBannerURLs(t *testing.T) {
	isolateEnv(t)
	sc := startTopdeskSim(t, "--addr", "127.0.0.1:0")
	var urls []string
	for sc.Scan() {
		line := sc.Text()
		urls = append(urls, regexp.MustCompile(`https?://[^\s,;)]+`).FindAllString(line, -1)...)
		if strings.Contains(line, "control:") {
			break
		}
	}
	if len(urls) < 3 {
		t.Fatalf("banner URLs = %q, want the API, the page and the control endpoints", urls)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	for _, u := range urls {
		if strings.HasSuffix(u, "/tas/api") {
			continue // the API root is not a resource; its endpoints are tested with the client
		}
		resp, err := hc.Get(u)
		if err != nil {
			t.Errorf("GET %s: %v", u, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %s, want 200", u, resp.Status)
		}
	}
}

// TestTopdeskSimCallbackFlags: with --callback-url and
// --callback-token-file an operator's change made through the admin API
// calls the URL with the token; a URL that is not http(s) stops start-up.
func TestTopdeskSimCallbackFlags(t *testing.T) {
	isolateEnv(t)
	got := make(chan string, 4)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r.Header.Get("Authorization") + " " + string(b)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(recv.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tok-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	if code := cmdTopdeskSim(t.Context(), &cli{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard},
		[]string{"--addr", "127.0.0.1:0", "--callback-url", "ftp://x"}); code != 2 {
		t.Errorf("--callback-url ftp://x: exit %d, want 2", code)
	}

	sc := startTopdeskSim(t, "--addr", "127.0.0.1:0", "--callback-url", recv.URL, "--callback-token-file", tokenFile)
	if !sc.Scan() {
		t.Fatal("no banner")
	}
	base := regexp.MustCompile(`http://\S+`).FindString(sc.Text())

	hc := &http.Client{Timeout: 10 * time.Second}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/tas/api/incidents", strings.NewReader(`{"briefDescription": "x"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(topdesktest.DefaultUsername, topdesktest.DefaultPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var inc struct {
		Number string `json:"number"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&inc); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	resp, err = hc.Post(base+"/_sim/incidents/"+url.PathEscape(inc.Number)+"/close", "application/json", strings.NewReader(`{"closureCode": "Solved"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("operator close: %s", resp.Status)
	}
	select {
	case call := <-got:
		if want := `Bearer tok-1 {"number":"` + inc.Number + `"}`; call != want {
			t.Errorf("callback %q, want %q", call, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the callback URL was not called")
	}
}
