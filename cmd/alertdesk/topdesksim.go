package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// simShutdownTimeout bounds the graceful shutdown of topdesk-sim.
const simShutdownTimeout = 10 * time.Second

// cmdTopdeskSim is `alertdesk topdesk-sim`: the TOPdesk simulator on its own,
// serving the incident API under /tas/api, the admin endpoints under /_sim/
// and an HTML page at /, until ctx is done.
func cmdTopdeskSim(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "topdesk-sim", "usage: alertdesk topdesk-sim [flags]\n\n"+
		"Serves a simulated TOPdesk: the incident API under /tas/api (Basic auth), control\n"+
		"endpoints under /_sim/ (faults, credentials, reset, incidents and requests as JSON)\n"+
		"and a page listing the incidents and their actions at /.\n\nflags:")
	addr := fs.String("addr", "127.0.0.1:8081", "listen `address` (port 0 picks a free port)")
	username := fs.String("username", "", "accepted operator login (default $ALERTDESK_SIM_USERNAME, else "+topdesktest.DefaultUsername+")")
	password := fs.String("password", "", "accepted application password (default $ALERTDESK_SIM_PASSWORD or the contents of $ALERTDESK_SIM_PASSWORD_FILE, else the built-in one)")
	tenantFile := fs.String("tenant", "", "tenant `file` (YAML or JSON: statuses, priorities, categories, operator groups, …; default the built-in tenant)")
	apiVersion := fs.String("api-version", topdesktest.DefaultAPIVersion, "`version` reported by GET /tas/api/version")
	disableFIQL := fs.Bool("disable-fiql", false, "answer 400 to query= on incidents, like a TOPdesk without FIQL (external_number= still works)")
	disablePatch := fs.Bool("disable-patch", false, "answer 405 to PATCH, like old on-premises TOPdesk (PUT still works)")
	latency := fs.Duration("latency", 0, "delay every API request by this `duration`, like a real tenant (e.g. 50ms)")
	var jitter float64
	fs.Func("jitter", "vary -latency uniformly by this `fraction` either way, e.g. 20% or 0.2 (default 0)", func(v string) error {
		f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
		if strings.HasSuffix(v, "%") {
			f /= 100
		}
		if err != nil || f < 0 || f > 1 {
			return errors.New("want a fraction between 0 and 1, or a percentage")
		}
		jitter = f
		return nil
	})
	maxInFlight := fs.Int("max-in-flight", 0, "answer 429 with Retry-After: 1 to API requests beyond this `many` in progress, like a tenant's limit (0 = none)")
	callbackURL := fs.String("callback-url", "", "call this `URL` like a TOPdesk automated action on \"incident changed\": POST {\"number\": …} after each operator change")
	callbackTokenFile := fs.String("callback-token-file", "", "send the token in this `file` as Authorization: Bearer with -callback-url")
	callbackAPIChanges := fs.Bool("callback-api-changes", false, "also call -callback-url after changes made through the API (by alertdesk)")
	maxRequests := fs.Int("max-requests", 0, "keep this `many` recent API requests for /_sim/requests (default 100000)")
	if code, done := parseFlags(fs, args); done {
		return code
	}

	var env simConfig
	if err := processEnv(envPrefix+"_SIM", &env); err != nil {
		fmt.Fprintf(c.stderr, "alertdesk topdesk-sim: %v\n", envError(err))
		return 2
	}
	opts := topdesktest.Options{
		Username:     cmp.Or(*username, env.Username, topdesktest.DefaultUsername),
		APIVersion:   *apiVersion,
		DisableFIQL:  *disableFIQL,
		DisablePatch: *disablePatch,
		Latency:      *latency,
		Jitter:       jitter,
		MaxInFlight:  *maxInFlight,
		MaxRequests:  *maxRequests,
		Callback:     topdesktest.Callback{URL: *callbackURL, APIChanges: *callbackAPIChanges},
	}
	if *callbackTokenFile != "" {
		b, err := os.ReadFile(*callbackTokenFile)
		if err != nil {
			fmt.Fprintf(c.stderr, "alertdesk topdesk-sim: --callback-token-file: %v\n", err)
			return 2
		}
		opts.Callback.Token = strings.TrimSpace(string(b))
	}
	if err := opts.Callback.Check(); err != nil {
		fmt.Fprintf(c.stderr, "alertdesk topdesk-sim: --callback-url: %v\n", err)
		return 2
	}
	var source string
	var err error
	if opts.Password, source, err = env.password(*password); err != nil {
		fmt.Fprintf(c.stderr, "alertdesk topdesk-sim: %v\n", err)
		return 2
	}
	if *tenantFile != "" {
		data, err := os.ReadFile(*tenantFile)
		if err != nil {
			fmt.Fprintf(c.stderr, "alertdesk topdesk-sim: --tenant: %v\n", err)
			return 2
		}
		if opts.Tenant, err = topdesktest.LoadTenant(data); err != nil {
			fmt.Fprintf(c.stderr, "alertdesk topdesk-sim: --tenant %s: %v\n", *tenantFile, err)
			return 2
		}
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(c.stderr, "alertdesk topdesk-sim: %v\n", err)
		return 1
	}
	sim := topdesktest.New(opts)
	url := "http://" + ln.Addr().String()
	sim.SetURL(url)

	// Requests waiting on a Delay fault end when the server shuts down.
	baseCtx, cancelRequests := context.WithCancel(ctx)
	defer cancelRequests()
	srv := newHTTPServer(sim, httpReadTimeout)
	srv.BaseContext = func(net.Listener) context.Context { return baseCtx }

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	fmt.Fprintf(c.stdout, "TOPdesk simulator listening on %s\n", url)
	fmt.Fprintf(c.stdout, "  API:         %s/tas/api (Basic auth, username %q, password from %s)\n", url, opts.Username, source)
	fmt.Fprintf(c.stdout, "  incidents:   %s/\n", url)
	fmt.Fprintf(c.stdout, "  control:     GET %[1]s/_sim/incidents, %[1]s/_sim/requests, %[1]s/_sim/faults\n", url)
	fmt.Fprintf(c.stdout, "               POST /_sim/faults, /_sim/credentials, /_sim/reset; DELETE /_sim/faults\n")
	fmt.Fprintf(c.stdout, "  operators:   POST /_sim/incidents/{number}/{edit|close|reopen|action|archive|unarchive|delete}; PUT /_sim/callback\n")

	select {
	case err := <-served:
		fmt.Fprintf(c.stderr, "alertdesk topdesk-sim: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	cancelRequests()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), simShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		fmt.Fprintf(c.stderr, "alertdesk topdesk-sim: shutdown: %v\n", err)
		return 1
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(c.stderr, "alertdesk topdesk-sim: %v\n", err)
		return 1
	}
	fmt.Fprintln(c.stdout, "TOPdesk simulator stopped")
	return 0
}

// password picks the simulator's application password: the flag, else
// ALERTDESK_SIM_PASSWORD, else the file named by ALERTDESK_SIM_PASSWORD_FILE,
// else the built-in default. source names where it came from, for printing
// instead of the password.
func (s *simConfig) password(flagValue string) (password, source string, err error) {
	env, file := string(s.Password), s.PasswordFile
	switch {
	case flagValue != "":
		return flagValue, "--password", nil
	case env != "" && file != "":
		return "", "", errors.New("set ALERTDESK_SIM_PASSWORD or ALERTDESK_SIM_PASSWORD_FILE, not both")
	case env != "":
		return env, "ALERTDESK_SIM_PASSWORD", nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", "", fmt.Errorf("ALERTDESK_SIM_PASSWORD_FILE: %w", err)
		}
		p := strings.TrimRight(string(b), "\r\n")
		if p == "" {
			return "", "", fmt.Errorf("ALERTDESK_SIM_PASSWORD_FILE: %s is empty", file)
		}
		return p, "ALERTDESK_SIM_PASSWORD_FILE", nil
	}
	return topdesktest.DefaultPassword, "the built-in default", nil
}
