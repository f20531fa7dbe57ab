package topdesk

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// DefaultTimeout is the per-request time limit used when Options.Timeout is 0.
const DefaultTimeout = 15 * time.Second

// DefaultUserAgent is the User-Agent header used when Options.UserAgent is empty.
const DefaultUserAgent = "alertdesk"

const (
	// maxErrorBody bounds how much of an error response is read.
	maxErrorBody = 64 << 10
	// maxResponseBody bounds how much of a successful response is decoded.
	maxResponseBody = 32 << 20
	// maxPages bounds how many pages one list call follows.
	maxPages = 1000
	// apiPrefix is the path of TOPdesk's REST API below the base URL.
	apiPrefix = "/tas/api"
)

// Options configures a Client. The zero value of every field gets a default.
type Options struct {
	// Username is the operator's login name.
	Username string
	// Password is the operator's application password. It never appears in
	// errors, logs or String().
	Password string
	// Timeout limits each request, including reading the response body
	// (http.Client.Timeout). Default DefaultTimeout.
	Timeout time.Duration
	// UserAgent is sent with every request. Default DefaultUserAgent.
	UserAgent string
	// RateLimit caps requests per second across this client with a token
	// bucket whose burst is ceil(RateLimit). 0 turns the limit off.
	RateLimit float64
	// Concurrency is how many requests the client lets be in flight at most
	// (0 = no bound). The client lowers this limit by itself while TOPdesk
	// answers 429 or 503 or slows down, and raises it again as requests
	// succeed (see ConcurrencyLimit). Whatever the bound, a 429 or 503 with
	// Retry-After holds every request of the client until then. The
	// default transport keeps that many connections alive (at least 64), so
	// that a busy client reuses them instead of dialling (and, over TLS,
	// shaking hands) for requests past the pool.
	Concurrency int
	// Transport sends the requests. Default: an *http.Transport tuned for many
	// concurrent requests to one host (keep-alives, max(64, Concurrency) idle
	// connections).
	Transport http.RoundTripper
}

// String describes the options with the password redacted.
func (o Options) String() string {
	pw := ""
	if o.Password != "" {
		pw = "<redacted>"
	}
	return fmt.Sprintf("topdesk.Options{Username: %q, Password: %q, Timeout: %s, UserAgent: %q, RateLimit: %g}",
		o.Username, pw, o.Timeout, o.UserAgent, o.RateLimit)
}

// GoString is String, so that %#v does not print the password either.
func (o Options) GoString() string { return o.String() }

// credentials holds the precomputed Authorization header. It is kept behind a
// pointer so that printing a Client never prints it.
type credentials struct{ header string }

// Client calls TOPdesk's REST API. It is safe for concurrent use. Create it
// with NewClient.
type Client struct {
	hc        *http.Client
	base      url.URL // scheme, host and path prefix without a trailing slash
	username  string
	auth      *credentials
	userAgent string
	limiter   *rate.Limiter
	flow      *flow
	now       func() time.Time

	// usePut is set once PATCH answered 405: updates use PUT from then on.
	usePut atomic.Bool
	// legacyFind is set once the FIQL form of the incident search was
	// rejected and the legacy external_number form worked.
	legacyFind atomic.Bool
	// legacyPersons is set once the FIQL form of the person search was
	// rejected and the legacy email form worked.
	legacyPersons atomic.Bool
}

// NewClient returns a client for the TOPdesk instance at baseURL, e.g.
// "https://example.topdesk.net". The URL must be http or https with a host
// and no query, fragment or user info; a trailing slash or a trailing
// "/tas/api" is accepted and dropped. A path prefix (for a reverse proxy) is
// kept.
func NewClient(baseURL string, opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil {
		// url.Parse errors quote the input, which may hold user info.
		return nil, errors.New("topdesk: base URL does not parse")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("topdesk: base URL scheme must be http or https, not %q", u.Scheme)
	case u.Host == "":
		return nil, errors.New("topdesk: base URL has no host")
	case u.User != nil:
		return nil, errors.New("topdesk: base URL must not contain credentials; set the username and password options")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, errors.New("topdesk: base URL must not have a query or fragment")
	}
	if opts.Username == "" {
		return nil, errors.New("topdesk: username is required")
	}
	if opts.Password == "" {
		return nil, errors.New("topdesk: application password is required")
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("topdesk: timeout must not be negative, got %s", opts.Timeout)
	}
	if opts.Concurrency < 0 {
		return nil, fmt.Errorf("topdesk: concurrency must not be negative, got %d", opts.Concurrency)
	}
	if opts.RateLimit < 0 || math.IsNaN(opts.RateLimit) || math.IsInf(opts.RateLimit, 0) {
		return nil, fmt.Errorf("topdesk: rate limit must be a non-negative number, got %g", opts.RateLimit)
	}
	prefix := strings.TrimRight(strings.TrimSuffix(strings.TrimRight(u.Path, "/"), apiPrefix), "/")
	base := url.URL{Scheme: u.Scheme, Host: u.Host, Path: prefix}

	c := &Client{
		base:      base,
		username:  opts.Username,
		auth:      &credentials{header: "Basic " + base64.StdEncoding.EncodeToString([]byte(opts.Username+":"+opts.Password))},
		userAgent: opts.UserAgent,
		now:       time.Now,
	}
	c.flow = newFlow(opts.Concurrency, func() time.Time { return c.now() })
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	rt := opts.Transport
	if rt == nil {
		rt = newTransport(max(64, opts.Concurrency))
	}
	c.hc = &http.Client{
		Transport: rt,
		Timeout:   timeout,
		// TOPdesk does not redirect API calls; a redirect means a wrong base
		// URL (e.g. to a login page), and following it would resend the
		// credentials elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if opts.RateLimit > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(opts.RateLimit), int(math.Ceil(opts.RateLimit)))
	}
	return c, nil
}

// newTransport returns an HTTP transport tuned for up to idle concurrent
// requests to one TOPdesk host.
func newTransport(idle int) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          2 * idle,
		MaxIdleConnsPerHost:   idle,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
}

// String describes the client without its credentials.
func (c *Client) String() string {
	return fmt.Sprintf("topdesk.Client{URL: %q, Username: %q}", c.base.String(), c.username)
}

// BaseURL returns the base URL the client sends requests to, without a
// trailing slash.
func (c *Client) BaseURL() string { return c.base.String() }

// CloseIdleConnections closes idle keep-alive connections of the client's
// transport.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// param is one query parameter; a slice of them keeps the order stable and
// avoids building a url.Values map per request.
type param struct{ key, value string }

// encodeQuery percent-encodes params, with spaces as %20 rather than '+'.
func encodeQuery(params []param) string {
	if len(params) == 0 {
		return ""
	}
	var b strings.Builder
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(p.key))
		b.WriteByte('=')
		b.WriteString(strings.ReplaceAll(url.QueryEscape(p.value), "+", "%20"))
	}
	return b.String()
}

// endpoint builds the URL of an API path. segments are appended to path
// after path escaping, so that ids and numbers with spaces or slashes stay
// one segment.
func (c *Client) endpoint(path string, segments ...string) *url.URL {
	u := c.base
	raw := u.EscapedPath() + apiPrefix + path
	plain := u.Path + apiPrefix + path
	for _, s := range segments {
		raw += "/" + url.PathEscape(s)
		plain += "/" + s
	}
	u.Path, u.RawPath = plain, raw
	if raw == plain {
		u.RawPath = ""
	}
	return &u
}

// isWrite reports whether a request with this method changes TOPdesk state.
func isWrite(method string) bool {
	return method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
}

// sendTrace records how far the transport got with a write request.
type sendTrace struct {
	gotConn atomic.Bool
	wrote   atomic.Bool
}

func (t *sendTrace) onGotConn(httptrace.GotConnInfo) { t.gotConn.Store(true) }

func (t *sendTrace) onWrote(info httptrace.WroteRequestInfo) {
	if info.Err == nil {
		t.wrote.Store(true)
	}
}

// sent reports whether the request may have reached the server given that
// the round trip failed with err: it was written completely, or a connection
// was up when time ran out (the write may have completed unnoticed).
func (t *sendTrace) sent(err error) bool {
	if t == nil {
		return false
	}
	if t.wrote.Load() {
		return true
	}
	var ne net.Error
	return t.gotConn.Load() && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &ne) && ne.Timeout())
}

// do sends one request and decodes a 2xx JSON answer into out (unless out is
// nil or the status is 204). It returns the status code. A non-2xx answer
// becomes an *APIError; a failure to get an answer becomes a *requestError.
// The response body is drained and closed on every path.
func (c *Client) do(ctx context.Context, method string, u *url.URL, body []byte, out any) (int, error) {
	path := u.EscapedPath()
	var trace *sendTrace
	if isWrite(method) {
		trace = new(sendTrace)
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: trace.onGotConn, WroteRequest: trace.onWrote})
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	// The URL is already built; formatting and re-parsing it would only cost
	// allocations.
	req, err := http.NewRequestWithContext(ctx, method, "", rd)
	if err != nil {
		return 0, fmt.Errorf("topdesk: %s %s: build request: %w", method, path, err)
	}
	req.URL, req.Host = u, u.Host
	req.Header.Set("Authorization", c.auth.header)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	t, err := c.wait(ctx)
	if err != nil {
		return 0, &requestError{Method: method, Path: path, Err: err}
	}
	resp, err := c.hc.Do(req)
	c.flow.release(t, resp, err)
	if err != nil {
		err = transportError(ctx, err)
		return 0, &requestError{Method: method, Path: path, Sent: trace.sent(err), Err: err}
	}
	defer drainClose(resp.Body)

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, c.newAPIError(ctx, method, path, resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(out); err != nil {
		if ctxErr := ctxError(ctx); ctxErr != nil {
			err = ctxErr
		} else if errors.Is(err, io.EOF) {
			// An empty or cut body on a status that promises one.
			err = fmt.Errorf("read %d response: %w", resp.StatusCode, io.ErrUnexpectedEOF)
		} else {
			err = fmt.Errorf("decode %d response: %w", resp.StatusCode, err)
		}
		// The request was answered, so a write reached TOPdesk, but its
		// result (the id) is unknown.
		return resp.StatusCode, &requestError{Method: method, Path: path, Sent: true, Err: err}
	}
	return resp.StatusCode, nil
}

// wait waits until a request may be sent: for the rate limit, then for the
// flow (a Retry-After pause, a free slot). The time it took is added to
// ctx's Waited, if any.
func (c *Client) wait(ctx context.Context) (ticket, error) {
	start := time.Now()
	if w, ok := ctx.Value(waitedKey{}).(*Waited); ok {
		defer func() { w.ns.Add(int64(time.Since(start))) }()
	}
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			if ctxErr := ctxError(ctx); ctxErr != nil {
				return ticket{}, ctxErr
			}
			return ticket{}, fmt.Errorf("rate limit wait would exceed the deadline: %w", context.DeadlineExceeded)
		}
	}
	return c.flow.acquire(ctx)
}

// Waited adds up how long the requests made with a context (WithWaited)
// waited in the client before they were sent: for the rate limit
// (Options.RateLimit), for TOPdesk's Retry-After pause to end, or for a
// free slot of the concurrency limit (Options.Concurrency). That time is
// spent in the caller's process, not at TOPdesk: a caller that measures
// TOPdesk's latency subtracts it.
type Waited struct{ ns atomic.Int64 }

// Duration returns the time waited so far.
func (w *Waited) Duration() time.Duration { return time.Duration(w.ns.Load()) }

type waitedKey struct{}

// WithWaited returns a copy of ctx whose requests add the time they wait in
// the client to w.
func WithWaited(ctx context.Context, w *Waited) context.Context {
	return context.WithValue(ctx, waitedKey{}, w)
}

// newAPIError reads an error response into an *APIError.
func (c *Client) newAPIError(ctx context.Context, method, path string, resp *http.Response) error {
	e := &APIError{StatusCode: resp.StatusCode, Method: method, Path: path}
	if v := resp.Header.Get("Retry-After"); v != "" {
		e.RetryAfter, _ = parseRetryAfter(v, c.now())
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil && ctxError(ctx) != nil {
		return &requestError{Method: method, Path: path, Sent: true, Err: ctxError(ctx)}
	}
	e.Body = string(b)
	e.Messages = parseMessages(b)
	return e
}

// drainClose reads a bounded rest of a body so that the connection can be
// reused, then closes it.
func drainClose(body io.ReadCloser) {
	// Errors are irrelevant here: the answer was already read or rejected,
	// and a body that fails to drain only costs the keep-alive connection.
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxErrorBody))
	_ = body.Close()
}

// ctxError returns the context's error, with its cause when one was given.
func ctxError(ctx context.Context) error {
	err := ctx.Err()
	if err == nil {
		return nil
	}
	if cause := context.Cause(ctx); cause != nil && cause != err {
		return fmt.Errorf("%w: %w", err, cause)
	}
	return err
}

// transportError prefers the context's error when the context is done, and
// strips *url.Error, whose text repeats the full URL with its query.
func transportError(ctx context.Context, err error) error {
	if ctxErr := ctxError(ctx); ctxErr != nil {
		return ctxErr
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// getJSON is do for a GET without a body.
func (c *Client) getJSON(ctx context.Context, u *url.URL, out any) (int, error) {
	return c.do(ctx, http.MethodGet, u, nil, out)
}

// getPaged fetches every page of a list endpoint that answers 206 while more
// pages exist, 204 when empty and 200 on the last page. startKey and sizeKey
// name the offset and page size parameters (pageStart/pageSize for incidents,
// start/page_size elsewhere).
func getPaged[T any](ctx context.Context, c *Client, path string, params []param, startKey, sizeKey string, size int) ([]T, error) {
	var all []T
	n := len(params)
	q := make([]param, n, n+2)
	copy(q, params)
	q = append(q, param{startKey, "0"}, param{sizeKey, strconv.Itoa(size)})
	for range maxPages {
		q[n].value = strconv.Itoa(len(all))
		u := c.endpoint(path)
		u.RawQuery = encodeQuery(q)
		var page []T
		status, err := c.getJSON(ctx, u, &page)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		switch status {
		case http.StatusPartialContent:
			if len(page) == 0 {
				return nil, fmt.Errorf("topdesk: GET %s: 206 Partial Content with an empty page", u.EscapedPath())
			}
		default:
			return all, nil
		}
	}
	return nil, fmt.Errorf("topdesk: GET %s: more than %d pages", c.endpoint(path).EscapedPath(), maxPages)
}
