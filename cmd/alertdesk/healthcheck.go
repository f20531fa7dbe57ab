package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxHealthBody bounds how much of an unhealthy answer is printed.
const maxHealthBody = 512

// cmdHealthcheck is `alertdesk healthcheck`: GET a health endpoint and exit
// 0 on a 2xx answer, 1 otherwise. Container images without a shell or curl
// (the distroless image of deploy/Dockerfile) use it as their HEALTHCHECK.
func cmdHealthcheck(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "healthcheck", "usage: alertdesk healthcheck [flags]\n\n"+
		"GETs the worker's /healthz (or --url) and exits 0 on a 2xx answer, 1 otherwise:\n"+
		"a health check for container images that have no curl.\n\nflags:")
	target := fs.String("url", "", "`URL` to GET (default http://127.0.0.1:<port of ALERTDESK_HTTP_ADDR>/healthz)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this `duration`")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *timeout <= 0 {
		fmt.Fprintf(c.stderr, "alertdesk healthcheck: --timeout %s must be positive\n", *timeout)
		return 2
	}
	u := *target
	if u == "" {
		cfg, err := loadConfig(nil)
		if err != nil {
			printConfigError(c, err)
			return 2
		}
		if u, err = healthURL(cfg.HTTPAddr); err != nil {
			fmt.Fprintf(c.stderr, "alertdesk healthcheck: %s_HTTP_ADDR: %v\n", envPrefix, err)
			return 2
		}
	} else if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		fmt.Fprintf(c.stderr, "alertdesk healthcheck: --url %q is not an http(s) URL\n", redactURL(u))
		return 2
	}

	status, err := probeHealth(ctx, u, *timeout)
	if err != nil {
		fmt.Fprintf(c.stderr, "unhealthy: %v\n", err)
		return 1
	}
	fmt.Fprintf(c.stdout, "healthy: GET %s: %s\n", redactURL(u), status)
	return 0
}

// probeHealth GETs u and returns the status line of a 2xx answer, or an error that
// carries the status and the start of the body of any other answer.
func probeHealth(ctx context.Context, u string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", redactURL(u), err)
	}
	// A health probe of the local process never goes through a proxy.
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := hc.Do(req)
	if err != nil {
		// Do's *url.Error repeats the method and URL; keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("GET %s: %w", redactURL(u), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHealthBody))
	if err != nil {
		return "", fmt.Errorf("GET %s: read answer: %w", redactURL(u), err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := strings.Join(strings.Fields(string(body)), " ")
		return "", fmt.Errorf("GET %s: %s: %s", redactURL(u), resp.Status, msg)
	}
	return resp.Status, nil
}

// healthURL is the /healthz URL of a worker listening on addr ([host]:port),
// as seen from inside its own container: an unspecified host is 127.0.0.1.
func healthURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%q is not [host]:port", addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}
