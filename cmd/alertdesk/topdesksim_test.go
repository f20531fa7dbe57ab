package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestTopdeskSimBannerURLs: every URL the banner of topdesk-sim prints
// answers 200 (it once advertised /_sim/, which is a 404).
func TestTopdeskSimBannerURLs(t *testing.T) {
	isolateEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- cmdTopdeskSim(ctx, &cli{stdin: strings.NewReader(""), stdout: pw, stderr: io.Discard}, []string{"--addr", "127.0.0.1:0"})
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

	var urls []string
	sc := bufio.NewScanner(pr)
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
