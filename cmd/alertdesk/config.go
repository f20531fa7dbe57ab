package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/agnivade/levenshtein"
	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/dlq"
	"github.com/alertdesk/alertdesk/timer"
	"github.com/alertdesk/alertdesk/worker"
)

// envPrefix is the prefix of every setting: ALERTDESK_NATS_URL, …
const envPrefix = "ALERTDESK"

// secret is a string that never prints itself.
type secret string

func (s secret) String() string {
	if s == "" {
		return ""
	}
	return "<secret>"
}

// GoString keeps %#v from printing the value too.
func (s secret) GoString() string { return s.String() }

// config is every ALERTDESK_* setting (docs/configuration.md). It is
// loaded once by envconfig and then split into per-package options.
type config struct {
	NATSURL             string        `envconfig:"NATS_URL" desc:"NATS URLs, comma-separated (tls:// for TLS); empty = embedded server"`
	NATSCreds           string        `envconfig:"NATS_CREDS" desc:"NATS credentials file (JWT + nkey)"`
	NATSCAFile          string        `envconfig:"NATS_CA_FILE" desc:"CA bundle for TLS to NATS"`
	DataDir             string        `envconfig:"DATA_DIR" default:"./data" desc:"embedded JetStream store"`
	EmbeddedNATSListen  string        `envconfig:"EMBEDDED_NATS_LISTEN" default:"127.0.0.1:4222" desc:"client listen address of the embedded server"`
	Stream              string        `envconfig:"STREAM" default:"ALERTS" desc:"input stream"`
	Subjects            []string      `envconfig:"SUBJECTS" default:"alerts.>" desc:"subjects the input stream binds, comma-separated"`
	Consumer            string        `envconfig:"CONSUMER" default:"alertdesk" desc:"durable pull consumer shared by all workers"`
	DLQStream           string        `envconfig:"DLQ_STREAM" default:"ALERTS_DLQ" desc:"dead-letter stream (subjects alertdesk.dlq.>)"`
	StateBucket         string        `envconfig:"STATE_BUCKET" default:"alertdesk_incidents" desc:"KV bucket: alert key -> incident state"`
	Replicas            int           `envconfig:"REPLICAS" default:"1" desc:"replicas for the streams and bucket alertdesk creates"`
	TopdeskURL          string        `envconfig:"TOPDESK_URL" desc:"TOPdesk base URL, e.g. https://example.topdesk.net"`
	TopdeskUsername     string        `envconfig:"TOPDESK_USERNAME" desc:"TOPdesk operator login name"`
	TopdeskPassword     secret        `envconfig:"TOPDESK_PASSWORD" desc:"TOPdesk application password"`
	TopdeskPasswordFile string        `envconfig:"TOPDESK_PASSWORD_FILE" desc:"file holding the TOPdesk application password"`
	MappingFile         string        `envconfig:"MAPPING_FILE" desc:"YAML mapping; empty = built-in default"`
	Concurrency         int           `envconfig:"CONCURRENCY" default:"16" desc:"alerts in flight per worker"`
	MaxDeliver          int           `envconfig:"MAX_DELIVER" default:"10" desc:"deliveries of a retryable failure before it is dead-lettered"`
	TopdeskTimeout      time.Duration `envconfig:"TOPDESK_TIMEOUT" default:"15s" desc:"per-request timeout to TOPdesk"`
	TopdeskRateLimit    float64       `envconfig:"TOPDESK_RATE_LIMIT" default:"0" desc:"requests per second to TOPdesk per worker; 0 = off"`
	HTTPAddr            string        `envconfig:"HTTP_ADDR" default:":8080" desc:"address for /metrics, /healthz, /readyz and ingest"`
	IngestToken         secret        `envconfig:"INGEST_TOKEN" desc:"bearer token for the ingest endpoints; empty = ingest off"`
	AckWait             time.Duration `envconfig:"ACK_WAIT" default:"30s" desc:"advanced: ack wait of the consumer alertdesk creates; in-flight events are kept alive with heartbeats"`
	ClaimTTL            time.Duration `envconfig:"CLAIM_TTL" default:"0s" desc:"advanced: how long a worker's claim on an alert key holds if the worker dies; 0 = 4 x TOPDESK_TIMEOUT + 15s"`
	ShutdownTimeout     time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"20s" desc:"advanced: how long in-flight events may finish after SIGTERM"`
	BreakerCooldown     time.Duration `envconfig:"BREAKER_COOLDOWN" default:"5s" desc:"advanced: TOPdesk probe interval while the circuit breaker is open"`
	AuthRetry           time.Duration `envconfig:"AUTH_RETRY" default:"30s" desc:"advanced: TOPdesk probe interval while the credentials are rejected"`
	LogLevel            string        `envconfig:"LOG_LEVEL" default:"info" desc:"trace, debug, info, warn or error"`
	LogFormat           string        `envconfig:"LOG_FORMAT" default:"json" desc:"json or console"`
	// Two-way sync with TOPdesk (cmd/alertdesk/sync.go).
	SyncInterval       time.Duration `envconfig:"SYNC_INTERVAL" default:"5m" desc:"how often one worker reads back alertdesk's incidents changed in TOPdesk; 0 = off"`
	TopdeskEventsToken secret        `envconfig:"TOPDESK_EVENTS_TOKEN" desc:"bearer token for POST /v1/topdesk/events, called by a TOPdesk automated action; empty = off"`

	set      map[string]bool // names (without ALERTDESK_) of the variables set in the environment
	unparsed map[string]bool // names (without ALERTDESK_) of the variables whose value does not parse
	// ingestOpen serves ingest without a token: dev with HTTP_ADDR on
	// loopback (devSettings).
	ingestOpen bool
}

// simConfig is the ALERTDESK_SIM_* settings of topdesk-sim, which flags
// override.
type simConfig struct {
	Username     string `envconfig:"USERNAME" desc:"accepted operator login"`
	Password     secret `envconfig:"PASSWORD" desc:"accepted application password"`
	PasswordFile string `envconfig:"PASSWORD_FILE" desc:"file holding the accepted application password"`
}

// loadConfig reads the settings with processEnv and checks them with
// validate (nil checks the syntax only). The error joins every problem, one
// line each: the values that do not parse, each ALERTDESK_* variable
// alertdesk does not know (an error, so that a misspelling cannot pass
// silently), and what validate finds. A value that does not parse leaves
// its field at the default, which validate accepts, so that it still
// reports everything else; cfg is nil then, as it does not hold what was set.
func loadConfig(validate func(*config) error) (*config, error) {
	var c config
	var errs []error
	err := processEnv(envPrefix, &c)
	if err != nil {
		// envconfig stops at the first value that does not parse.
		var unparsed []string
		unparsed, errs = parseErrors()
		c = config{unparsed: map[string]bool{}}
		for _, name := range unparsed {
			c.unparsed[strings.TrimPrefix(name, envPrefix+"_")] = true
		}
		if err := processEnv(envPrefix, &c, unparsed...); err != nil {
			errs = append(errs, envError(err)) // not expected: every value left parses
		}
	}
	errs = append(errs, c.readSet()...)
	if validate != nil {
		errs = append(errs, validate(&c))
	}
	if err != nil {
		return nil, errors.Join(errs...)
	}
	return &c, errors.Join(errs...)
}

// parseErrors lists every variable whose value does not parse, and why.
// envconfig.Process stops at the first; after it did, this runs Process on
// each field of config alone.
func parseErrors() (names []string, errs []error) {
	typ := reflect.TypeFor[config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		one := reflect.New(reflect.StructOf([]reflect.StructField{f}))
		if err := processEnv(envPrefix, one.Interface()); err != nil {
			names = append(names, envPrefix+"_"+strings.ToUpper(f.Tag.Get("envconfig")))
			errs = append(errs, envError(err))
		}
	}
	return names, errs
}

// processEnv is envconfig.Process reading only prefix_NAME variables, and
// none of skip (full names), whose fields keep their defaults. envconfig
// v1.4.0 falls back to a field's bare name (NATS_URL for ALERTDESK_NATS_URL)
// when the prefixed variable is unset, so a NATS_URL exported for the nats
// CLI, or an HTTP_ADDR or LOG_LEVEL meant for another program, would
// silently become alertdesk's setting. processEnv unsets those bare names,
// and skip, for the call and sets them back before it returns. Only
// start-up calls this, before anything else reads the environment.
func processEnv(prefix string, spec any, skip ...string) error {
	var hide []string
	typ := reflect.TypeOf(spec).Elem()
	for i := range typ.NumField() {
		bare := strings.ToUpper(typ.Field(i).Tag.Get("envconfig"))
		if bare == "" {
			continue
		}
		name := prefix + "_" + bare
		if slices.Contains(skip, name) {
			hide = append(hide, name, bare)
		} else if _, ok := os.LookupEnv(name); !ok {
			hide = append(hide, bare)
		}
	}
	for _, name := range hide {
		if v, ok := os.LookupEnv(name); ok {
			// Unsetenv and Setenv fail only on a name with "=" or NUL in
			// it, and this one came from the environment.
			if err := os.Unsetenv(name); err != nil {
				return err
			}
			defer os.Setenv(name, v)
		}
	}
	return envconfig.Process(prefix, spec)
}

// knownVariables lists every variable alertdesk reads: the config's and
// topdesk-sim's.
func knownVariables() []string {
	var b strings.Builder
	const keys = "{{range .}}{{.Key}}\n{{end}}"
	// Usagef fails only on a spec that is not a pointer to a struct.
	if err := envconfig.Usagef(envPrefix, &config{}, &b, keys); err != nil {
		panic(err)
	}
	if err := envconfig.Usagef(envPrefix+"_SIM", &simConfig{}, &b, keys); err != nil {
		panic(err)
	}
	return strings.Fields(b.String())
}

// readSet records which ALERTDESK_* variables are set (commands such as dev
// pick other defaults for unset ones) and returns one error for each that
// alertdesk does not know, naming the nearest known one.
func (c *config) readSet() []error {
	known := knownVariables()
	c.set = map[string]bool{}
	var errs []error
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix+"_") {
			continue
		}
		if slices.Contains(known, name) {
			c.set[strings.TrimPrefix(name, envPrefix+"_")] = true
			continue
		}
		if near := nearestName(name, known); near != "" {
			errs = append(errs, fmt.Errorf("%s is not a known variable; did you mean %s?", name, near))
		} else {
			errs = append(errs, fmt.Errorf("%s is not a known variable (docs/configuration.md lists them)", name))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errs
}

// isSet reports whether the variable ALERTDESK_<name> is set, even empty.
func (c *config) isSet(name string) bool { return c.set[name] }

// nearestName is the known name closest to name in edits, or "" when none is
// close enough to be a misspelling.
func nearestName(name string, known []string) string {
	best, bestDist := "", len(name)/3+1
	for _, k := range known {
		if d := levenshtein.ComputeDistance(name, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// envError turns envconfig's error into one line naming the variable.
func envError(err error) error {
	var pe *envconfig.ParseError
	if errors.As(err, &pe) {
		what := pe.TypeName
		switch what {
		case "time.Duration":
			what = "a duration such as 15s or 500ms"
		case "int", "float64":
			what = "a number"
		}
		return fmt.Errorf("%s: cannot parse %q as %s", pe.KeyName, pe.Value, what)
	}
	return err
}

// validateCommon checks the settings every NATS-using command relies on.
func (c *config) validateCommon() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s_%s: %s", envPrefix, name, fmt.Sprintf(format, args...)))
	}
	if c.NATSURL != "" {
		for _, u := range strings.Split(c.NATSURL, ",") {
			if err := checkNATSURL(strings.TrimSpace(u)); err != nil {
				bad("NATS_URL", "%v", err)
			}
		}
	} else if _, _, err := net.SplitHostPort(c.EmbeddedNATSListen); err != nil {
		bad("EMBEDDED_NATS_LISTEN", "%q is not host:port", c.EmbeddedNATSListen)
	}
	for _, f := range []struct{ name, path string }{{"NATS_CREDS", c.NATSCreds}, {"NATS_CA_FILE", c.NATSCAFile}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				bad(f.name, "cannot read %s: %v", f.path, errors.Unwrap(err))
			}
		}
	}
	for name, v := range map[string]string{"STREAM": c.Stream, "CONSUMER": c.Consumer, "DLQ_STREAM": c.DLQStream, "STATE_BUCKET": c.StateBucket} {
		if v == "" || strings.ContainsAny(v, " .*>/\\\t") {
			bad(name, "%q is not a valid JetStream name (no spaces, dots, wildcards or slashes)", v)
		}
	}
	if c.Stream == c.DLQStream {
		bad("DLQ_STREAM", "must differ from ALERTDESK_STREAM (%q)", c.Stream)
	}
	if len(c.Subjects) == 0 {
		bad("SUBJECTS", "at least one subject is required")
	}
	// JetStream refuses an input stream whose subjects are not valid,
	// overlap each other or another stream's, but only when run provisions
	// it; these are the ones of alertdesk's own streams.
	taken := []struct{ subject, what string }{
		{dlq.SubjectPrefix + ">", "dead letters"},
		{timer.SubjectPrefix + ">", "timers"},
	}
	for i, s := range c.Subjects {
		if !server.IsValidSubject(s) {
			bad("SUBJECTS", "%q is not a valid subject (dot-separated tokens, no spaces, > only as the last token)", s)
			continue
		}
		var overlaps []string
		for _, t := range taken {
			if server.SubjectsCollide(s, t.subject) {
				overlaps = append(overlaps, fmt.Sprintf("%s (%s)", t.subject, t.what))
			}
		}
		if len(overlaps) > 0 {
			bad("SUBJECTS", "%q overlaps %s, which alertdesk's own streams bind", s, strings.Join(overlaps, " and "))
		}
		for _, earlier := range c.Subjects[:i] {
			if server.IsValidSubject(earlier) && server.SubjectsCollide(s, earlier) {
				bad("SUBJECTS", "%q overlaps %q; one stream cannot bind both", s, earlier)
			}
		}
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		bad("REPLICAS", "%d is out of range 1..5", c.Replicas)
	}
	if _, err := zerolog.ParseLevel(c.LogLevel); err != nil || c.LogLevel == "" {
		bad("LOG_LEVEL", "%q is not one of trace, debug, info, warn, error", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		bad("LOG_FORMAT", "%q is not json or console", c.LogFormat)
	}
	return errors.Join(errs...)
}

// validateWorker checks everything `run` needs: the settings and the
// mapping file.
func (c *config) validateWorker() error {
	_, err := loadMapping(c.MappingFile)
	return errors.Join(c.validateSettings(), err)
}

// validateSettings checks the variables `run` needs, validateCommon's
// included.
func (c *config) validateSettings() error {
	var errs []error
	if err := c.validateCommon(); err != nil {
		errs = append(errs, err)
	}
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s_%s: %s", envPrefix, name, fmt.Sprintf(format, args...)))
	}
	if c.TopdeskURL == "" {
		bad("TOPDESK_URL", "required (the TOPdesk base URL, e.g. https://example.topdesk.net)")
	} else if u, err := url.Parse(c.TopdeskURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("TOPDESK_URL", "%q is not an http(s) URL", redactURL(c.TopdeskURL))
	} else if u.User != nil {
		bad("TOPDESK_URL", "must not contain credentials; use ALERTDESK_TOPDESK_USERNAME and ALERTDESK_TOPDESK_PASSWORD")
	}
	if c.TopdeskUsername == "" {
		bad("TOPDESK_USERNAME", "required (the operator login name)")
	}
	switch {
	case c.TopdeskPassword == "" && c.TopdeskPasswordFile == "":
		bad("TOPDESK_PASSWORD", "one of ALERTDESK_TOPDESK_PASSWORD or ALERTDESK_TOPDESK_PASSWORD_FILE is required")
	case c.TopdeskPassword != "" && c.TopdeskPasswordFile != "":
		bad("TOPDESK_PASSWORD_FILE", "set either ALERTDESK_TOPDESK_PASSWORD or ALERTDESK_TOPDESK_PASSWORD_FILE, not both")
	case c.TopdeskPasswordFile != "":
		if _, err := c.topdeskPassword(); err != nil {
			bad("TOPDESK_PASSWORD_FILE", "%v", err)
		}
	}
	if c.Concurrency < 1 || c.Concurrency > 4096 {
		bad("CONCURRENCY", "%d is out of range 1..4096", c.Concurrency)
	}
	if c.MaxDeliver < 1 {
		bad("MAX_DELIVER", "%d must be at least 1", c.MaxDeliver)
	}
	if c.TopdeskTimeout < 100*time.Millisecond || c.TopdeskTimeout > 5*time.Minute {
		bad("TOPDESK_TIMEOUT", "%s is out of range 100ms..5m", c.TopdeskTimeout)
	}
	if c.TopdeskRateLimit < 0 {
		bad("TOPDESK_RATE_LIMIT", "%g must not be negative", c.TopdeskRateLimit)
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		bad("HTTP_ADDR", "%q is not [host]:port", c.HTTPAddr)
	}
	if c.AckWait < 2*time.Second {
		bad("ACK_WAIT", "%s is shorter than 2s", c.AckWait)
	}
	if hold := worker.LongestHold(4 * c.TopdeskTimeout); c.ClaimTTL != 0 && c.ClaimTTL <= hold && !c.unparsed["TOPDESK_TIMEOUT"] {
		bad("CLAIM_TTL", "%s must exceed %s, the longest a worker holds an alert key (4 x ALERTDESK_TOPDESK_TIMEOUT and the state write after it)", c.ClaimTTL, hold)
	}
	for name, d := range map[string]time.Duration{"SHUTDOWN_TIMEOUT": c.ShutdownTimeout, "BREAKER_COOLDOWN": c.BreakerCooldown, "AUTH_RETRY": c.AuthRetry} {
		if d <= 0 {
			bad(name, "%s must be positive", d)
		}
	}
	if err := c.validateSync(); err != nil {
		errs = append(errs, err)
	}
	if err := c.validateIngest(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// topdeskPassword returns the application password from the variable or the file.
func (c *config) topdeskPassword() (string, error) {
	if c.TopdeskPasswordFile == "" {
		return string(c.TopdeskPassword), nil
	}
	b, err := os.ReadFile(c.TopdeskPasswordFile)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %v", c.TopdeskPasswordFile, errors.Unwrap(err))
	}
	p := strings.TrimRight(string(b), "\r\n")
	if p == "" {
		return "", fmt.Errorf("%s is empty", c.TopdeskPasswordFile)
	}
	return p, nil
}

// checkNATSURL explains what is wrong with one NATS URL. A URL without a
// scheme, such as 127.0.0.1:4222, gets the nats:// form to use instead.
func checkNATSURL(u string) error {
	if p, err := url.Parse(u); err == nil && p.Host != "" && slices.Contains([]string{"nats", "tls", "ws", "wss"}, p.Scheme) {
		return nil
	}
	if !strings.Contains(u, "://") {
		if p, err := url.Parse("nats://" + u); err == nil && p.Host != "" {
			fixed := redactURL("nats://" + u)
			return fmt.Errorf("%q has no scheme; write %s (tls:// for TLS)", strings.TrimPrefix(fixed, "nats://"), fixed)
		}
	}
	return fmt.Errorf("%q is not a nats://, tls://, ws:// or wss:// URL", redactURL(u))
}

// redactURL drops any user info from a URL before it is printed.
func redactURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		if strings.Contains(raw, "@") { // may hold a password
			return "<unparseable URL>"
		}
		return raw
	}
	if u.User != nil {
		u.User = url.User("redacted")
	}
	return u.String()
}
