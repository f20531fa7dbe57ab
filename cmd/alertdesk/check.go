package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/dlq"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
	"github.com/alertdesk/alertdesk/worker"
)

const checkUsage = `usage: alertdesk check [--create-test-incident]

Tests what 'alertdesk run' needs, with the same ALERTDESK_* settings, and
prints one line per check: "ok", "FAIL" (with what to fix) or "skip" (not
tested because an earlier check failed). It creates nothing in NATS: missing
streams, the consumer and the state bucket are reported as created by run.
Exit status 0 only when every check passed.

flags:`

// checkReport prints the result lines of `alertdesk check` and counts them.
type checkReport struct {
	w                    io.Writer
	passed, failed, skip int
}

func (r *checkReport) ok(format string, args ...any) {
	r.passed++
	fmt.Fprintf(r.w, "ok   %s\n", fmt.Sprintf(format, args...))
}

// fail prints what failed, why, and what to do about it.
func (r *checkReport) fail(what, why, fix string) {
	r.failed++
	line := "FAIL " + what + ": " + why
	if fix != "" {
		line += " — " + fix
	}
	fmt.Fprintln(r.w, line)
}

func (r *checkReport) skipped(what, why string) {
	r.skip++
	fmt.Fprintf(r.w, "skip %s: %s\n", what, why)
}

// summary prints the closing line and returns the exit status.
func (r *checkReport) summary() int {
	if r.failed == 0 && r.skip == 0 {
		fmt.Fprintf(r.w, "\nall %d checks passed\n", r.passed)
		return 0
	}
	fmt.Fprintf(r.w, "\n%d passed, %d failed, %d skipped\n", r.passed, r.failed, r.skip)
	return 1
}

// cmdCheck is `alertdesk check`: the connection test. It checks the
// settings, NATS and JetStream with the stream, dead-letter stream, state
// bucket and consumer, TOPdesk's answer and credentials, and every TOPdesk
// name of the mapping; with --create-test-incident it also creates and
// closes one incident.
func cmdCheck(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "check", checkUsage)
	createTest := fs.Bool("create-test-incident", false,
		"also create one incident \"alertdesk connection test\" in TOPdesk and close it at once")
	if code, done := parseFlags(fs, args); done {
		return code
	}

	r := &checkReport{w: c.stdout}
	cfg, err := loadConfig((*config).validateSettings)
	problems := flatten(err)
	fix := "alertdesk run refuses to start until this is fixed"
	if cfg == nil {
		fix = "fix the variable; nothing else can be checked until then"
	}
	for _, p := range problems {
		r.fail("config", p.Error(), fix)
	}
	if cfg == nil {
		return r.summary()
	}
	if len(problems) == 0 {
		r.ok("config valid")
	}
	m := checkMapping(r, cfg)

	if err := cfg.validateCommon(); err != nil {
		r.skipped("NATS and JetStream", "the NATS settings above are invalid")
	} else {
		checkNATS(ctx, r, cfg, m)
	}

	td := checkTopdesk(ctx, r, cfg)
	switch {
	case m == nil || td == nil:
		r.skipped("TOPdesk names of the mapping", "needs the mapping and TOPdesk checks above to pass")
	default:
		checkNames(ctx, r, cfg, m, td)
	}
	if *createTest {
		if td == nil {
			r.skipped("test incident", "needs the TOPdesk check above to pass")
		} else {
			checkTestIncident(ctx, r, td)
		}
	}
	return r.summary()
}

// flatten splits errors.Join trees into their leaves.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		return []error{err}
	}
	var out []error
	for _, e := range joined.Unwrap() {
		out = append(out, flatten(e)...)
	}
	return out
}

// checkMapping loads the mapping; nil when it does not load.
func checkMapping(r *checkReport, cfg *config) *mapping.Mapping {
	what := "mapping (built-in default)"
	if cfg.MappingFile != "" {
		what = "mapping " + cfg.MappingFile
	}
	m, err := loadMapping(cfg.MappingFile)
	if err != nil {
		r.fail(what, err.Error(), "fix the file; `alertdesk render --mapping FILE` shows what it produces")
		return nil
	}
	r.ok("%s loads (%d TOPdesk names to resolve)", what, len(m.Names()))
	return m
}

// checkNATS connects to NATS and inspects JetStream and alertdesk's
// resources without creating any.
func checkNATS(ctx context.Context, r *checkReport, cfg *config, m *mapping.Mapping) {
	url := cfg.clientNATSURL()
	nc, err := connectNATS(cfg, url, "alertdesk check", zerolog.Nop())
	if err != nil {
		if inner := errors.Unwrap(err); inner != nil {
			err = inner
		}
		r.fail("NATS reachable at "+redactURLs(url), err.Error(), natsFix(cfg, err))
		r.skipped("JetStream", "NATS is not reachable")
		return
	}
	defer nc.Close()
	r.ok("NATS reachable at %s (server %s, version %s)", nc.ConnectedUrlRedacted(), nc.ConnectedServerName(), nc.ConnectedServerVersion())

	js, err := jetstream.New(nc)
	if err != nil {
		r.fail("JetStream", err.Error(), "")
		return
	}
	ai, err := js.AccountInfo(ctx)
	switch {
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		r.fail("JetStream enabled", err.Error(), "enable JetStream on the NATS server (a jetstream {} block in its config, or nats-server -js)")
		return
	case errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		r.fail("JetStream enabled", err.Error(), "enable JetStream for the account of these credentials (ALERTDESK_NATS_CREDS)")
		return
	case err != nil:
		r.fail("JetStream enabled", err.Error(), "check that the account may use the JetStream API ($JS.API.>) and that JetStream is up")
		return
	}
	r.ok("JetStream enabled (account has %d streams, %d consumers)", ai.Streams, ai.Consumers)

	for _, st := range worker.CheckTopology(ctx, js, cfg.topology(m)) {
		what := fmt.Sprintf("%s %s", st.Resource, st.Name)
		switch {
		case st.Err != nil:
			r.fail(what, st.Err.Error(), topologyFix(cfg, st))
		case !st.Exists:
			r.ok("%s missing: will be created by run", what)
		case st.Detail != "":
			r.ok("%s present (%s)", what, st.Detail)
		default:
			r.ok("%s present", what)
		}
	}
}

// topologyFix says what to do about a resource CheckTopology objected to.
func topologyFix(cfg *config, st worker.ResourceStatus) string {
	var overlap *worker.OverlapError
	var conflict *worker.ConflictError
	variable := map[worker.Resource]string{
		worker.ResourceStream:   "ALERTDESK_STREAM",
		worker.ResourceDLQ:      "ALERTDESK_DLQ_STREAM",
		worker.ResourceBucket:   "ALERTDESK_STATE_BUCKET",
		worker.ResourceConsumer: "ALERTDESK_CONSUMER",
	}[st.Resource]
	switch {
	case errors.As(st.Err, &overlap):
		return fmt.Sprintf("remove the overlapping subjects from stream %q, or set %s=%s if that stream is meant for alertdesk",
			overlap.Other, variable, overlap.Other)
	case errors.As(st.Err, &conflict) && st.Resource == worker.ResourceStream:
		return fmt.Sprintf("add the subjects to the stream (nats stream edit %s --subjects ...), or set ALERTDESK_STREAM and ALERTDESK_SUBJECTS (now %s) to match a stream",
			st.Name, strings.Join(cfg.Subjects, ","))
	case errors.As(st.Err, &conflict) && st.Resource == worker.ResourceDLQ:
		return fmt.Sprintf("make the stream bind %s>, or set ALERTDESK_DLQ_STREAM to an unused name", dlq.SubjectPrefix)
	case st.Resource == worker.ResourceTimers && st.Exists:
		return fmt.Sprintf("delete stream %s (nats stream rm %s) so that run creates it; it holds only alertdesk's pending timers, which are lost with it", st.Name, st.Name)
	case errors.As(st.Err, &conflict) && st.Resource == worker.ResourceConsumer:
		return fmt.Sprintf("delete it (nats consumer rm %s %s) so that run creates an explicit-ack pull consumer, or set ALERTDESK_CONSUMER to an unused name",
			cfg.Stream, st.Name)
	}
	return "check that the NATS account may read JetStream stream, consumer and KV information"
}

// checkTopdesk builds the client and calls GET /tas/api/version. It returns
// the client when TOPdesk answered and accepted the credentials.
func checkTopdesk(ctx context.Context, r *checkReport, cfg *config) *topdesk.Client {
	what := "TOPdesk reachable and credentials valid"
	password, err := cfg.topdeskPassword()
	if err != nil || cfg.TopdeskURL == "" || cfg.TopdeskUsername == "" || password == "" {
		r.skipped(what, "the TOPdesk settings above are incomplete")
		return nil
	}
	td, err := topdesk.NewClient(cfg.TopdeskURL, topdesk.Options{
		Username:  cfg.TopdeskUsername,
		Password:  password,
		Timeout:   cfg.TopdeskTimeout,
		UserAgent: "alertdesk/" + version,
	})
	if err != nil {
		r.skipped(what, "the TOPdesk settings above are invalid")
		return nil
	}
	what = "TOPdesk at " + redactURL(cfg.TopdeskURL)
	v, err := td.Version(ctx)
	if err != nil {
		why, fix := topdeskProblem(err, cfg)
		r.fail(what, why, fix)
		return nil
	}
	r.ok("%s reachable, operator %q accepted (API version %s)", what, cfg.TopdeskUsername, v)
	return td
}

// topdeskProblem explains a failed GET /tas/api/version: why, and what to do.
func topdeskProblem(err error, cfg *config) (why, fix string) {
	const fixURL = "set ALERTDESK_TOPDESK_URL to the tenant's base URL, e.g. https://example.topdesk.net (no path)"
	var ae *topdesk.APIError
	var dns *net.DNSError
	var ne net.Error
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &ae) && ae.StatusCode == http.StatusUnauthorized:
		return "401 Unauthorized: TOPdesk rejected the login name or the application password",
			fmt.Sprintf("check ALERTDESK_TOPDESK_USERNAME (now %q, the operator's login name) and the application password "+
				"in ALERTDESK_TOPDESK_PASSWORD or ALERTDESK_TOPDESK_PASSWORD_FILE; if it expired or was revoked, create a new one "+
				"under My settings > Application passwords", cfg.TopdeskUsername)
	case errors.As(err, &ae) && ae.StatusCode == http.StatusForbidden:
		return "403 Forbidden: the credentials are valid, but the operator may not use the REST API",
			"give the operator's permission group the rights REST API (read) and Use application passwords (write), " +
				"plus create, edit and close rights on incidents"
	case errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound:
		return fmt.Sprintf("404 Not Found for %s: this is not TOPdesk's REST API", ae.Path), fixURL
	case errors.As(err, &ae) && ae.StatusCode >= 300 && ae.StatusCode < 400:
		return fmt.Sprintf("%d %s: TOPdesk's API does not redirect, so this URL points elsewhere (a login page, or http instead of https)",
			ae.StatusCode, http.StatusText(ae.StatusCode)), fixURL
	case errors.As(err, &ae) && ae.StatusCode >= 500:
		return ae.Error(), "TOPdesk or a proxy in front of it has a problem; try again later"
	case errors.As(err, &ae):
		return ae.Error(), fixURL
	case errors.As(err, &dns):
		return fmt.Sprintf("host %q not found", dns.Name), "check the host name in ALERTDESK_TOPDESK_URL"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", "check the host and port in ALERTDESK_TOPDESK_URL, and that TOPdesk is up"
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &verify):
		return "the TLS certificate is not trusted: " + err.Error(),
			"check the host name in ALERTDESK_TOPDESK_URL; for a private CA add it to the system's trust store (or SSL_CERT_FILE)"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no answer within %s", cfg.TopdeskTimeout),
			"check that TOPdesk is reachable from here (firewall, HTTPS_PROXY), or raise ALERTDESK_TOPDESK_TIMEOUT"
	case topdesk.IsRetryable(err):
		return err.Error(), "check that TOPdesk is reachable from here (firewall, HTTPS_PROXY)"
	}
	return err.Error() + " (the answer is not TOPdesk's)", fixURL
}

// checkNames resolves every TOPdesk name of the mapping, one line each.
func checkNames(ctx context.Context, r *checkReport, cfg *config, m *mapping.Mapping, td *topdesk.Client) {
	names := m.Names()
	if len(names) == 0 {
		r.ok("TOPdesk names of the mapping: it uses none")
		return
	}
	where := "the built-in mapping"
	if cfg.MappingFile != "" {
		where = cfg.MappingFile
	}
	res := topdesk.NewResolver(td)
	for _, ref := range names {
		what := fmt.Sprintf("mapping %s %q", ref.Field, ref.Name)
		if ref.Category != "" {
			what += fmt.Sprintf(" in category %q", ref.Category)
		}
		_, err := res.Resolve(ctx, ref)
		var ne *topdesk.NameError
		switch {
		case err == nil:
			r.ok("%s resolves", what)
		case errors.As(err, &ne) && ne.Ambiguous:
			r.fail("mapping name", ne.Error(), "make the name unique in TOPdesk, or name it more precisely in "+where)
		case errors.As(err, &ne):
			r.fail("mapping name", ne.Error(), "correct it in "+where+", or add it in TOPdesk")
		case topdesk.IsAuth(err):
			r.fail(what, err.Error(), "give the operator's permission group read access to this list")
		default:
			r.fail(what, err.Error(), "")
		}
	}
}

// checkTestIncident creates one incident and closes it at once.
func checkTestIncident(ctx context.Context, r *checkReport, td *topdesk.Client) {
	now := time.Now().UTC()
	ext := "alertdesk-test-" + now.Format("20060102T150405Z")
	yes := true
	inc, err := td.CreateIncident(ctx, &topdesk.IncidentRequest{
		Caller:           &topdesk.Caller{DynamicName: "alertdesk"},
		BriefDescription: "alertdesk connection test",
		Request: "Created by <code>alertdesk check --create-test-incident</code> at " + now.Format(time.RFC3339) +
			" and closed at once. It can be ignored.",
		ExternalNumber: ext,
	})
	if err != nil {
		fix := "the operator needs the right to create incidents; a 400 names a field the tenant requires"
		if topdesk.IsOutcomeUnknown(err) {
			fix = "the incident may exist anyway: search for externalNumber " + ext
		}
		r.fail("test incident created", err.Error(), fix)
		return
	}
	_, err = td.UpdateIncident(ctx, inc.ID, &topdesk.IncidentRequest{
		Closed:                   &yes,
		Action:                   "alertdesk connection test finished; closing.",
		ActionInvisibleForCaller: &yes,
	})
	if err != nil {
		r.fail(fmt.Sprintf("test incident %s closed", inc.Number), err.Error(),
			"close it by hand; the operator needs the right to close incidents (alertdesk closes resolved alerts' incidents)")
		return
	}
	r.ok("test incident %s created and closed (externalNumber %s)", inc.Number, ext)
}

// redactURLs is redactURL for a comma-separated list.
func redactURLs(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		parts[i] = redactURL(p)
	}
	return strings.Join(parts, ",")
}
