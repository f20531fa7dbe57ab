// Package topdesktest is a stateful TOPdesk simulator: the subset of
// TOPdesk's incident REST API (/tas/api/…) that alertdesk uses, with Basic
// auth, TOPdesk's request validation and error bodies, FIQL and legacy
// searches with 200/206/204 paging, a tenant of searchlists and objects,
// major calls, scripted faults, a record of requests, admin endpoints under
// /_sim/ and an HTML page at /. Operators act on incidents as people in
// TOPdesk do (Edit, Close, Reopen, AddAction, Archive, Unarchive, Delete),
// and their changes call a configured URL as a TOPdesk automated action
// does (Callback).
//
// It is an independent implementation of the wire protocol (it does not use
// package topdesk), so that client bugs are not hidden by shared code. Use
// Start in tests; *Sim is an http.Handler for serving it any other way.
package topdesktest

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Default credentials and API version of a Sim.
const (
	DefaultUsername   = "alertdesk"
	DefaultPassword   = "alertdesk-app-password"
	DefaultAPIVersion = "3.8.5"
)

// Limits of a Sim.
const (
	defaultMaxRequests = 100_000
	maxBodyBytes       = 4 << 20
)

// Options configures a Sim. Zero values get defaults.
type Options struct {
	// Username and Password are the accepted operator credentials (login
	// name and application password); default DefaultUsername and
	// DefaultPassword.
	Username, Password string
	// ReadOnlyUsers maps login names to passwords of users who may read but
	// get 403 on every write.
	ReadOnlyUsers map[string]string
	// Tenant is the seed data; nil means DefaultTenant(). The Sim keeps its
	// own copy.
	Tenant *Tenant
	// APIVersion is what GET /tas/api/version reports; default
	// DefaultAPIVersion.
	APIVersion string
	// DisableFIQL makes GET /tas/api/incidents?query=… answer 400 "Error
	// parsing query", like a TOPdesk too old for FIQL on incidents; the
	// legacy external_number parameter still works.
	DisableFIQL bool
	// DisablePatch makes PATCH answer 405 Method Not Allowed, like old
	// on-premises TOPdesk; PUT still works.
	DisablePatch bool
	// Now is the clock, read to the millisecond as TOPdesk keeps times;
	// default time.Now.
	Now func() time.Time
	// MaxRequests is how many API requests Requests keeps (the oldest are
	// dropped); default 100000, so that a long-running simulator stays
	// bounded.
	MaxRequests int
	// StateFile, when set, keeps the incidents (not the recorded requests
	// or faults) in this JSON file: Open and New load it if it exists, and
	// every change to an incident rewrites it. A change that cannot be
	// written is kept in memory and answered with 500, as a TOPdesk whose
	// database failed would. Default: incidents live in memory only.
	StateFile string
	// Latency delays every API request before it is served (after faults'
	// own Delay, if any), by Latency ± Jitter × Latency, uniformly
	// distributed; Jitter is a fraction in [0, 1].
	Latency time.Duration
	Jitter  float64
	// MaxInFlight, when positive, is how many API requests the Sim serves at
	// once: a request beyond it is answered 429 with Retry-After: 1 at once,
	// like a tenant's undocumented limit.
	MaxInFlight int
	// Callback is the automated action called after changes; default none.
	// SetCallback and /_sim/callback change it.
	Callback Callback
}

// Sim is a simulated TOPdesk tenant. It is safe for concurrent use.
type Sim struct {
	opts        Options
	now         func() time.Time
	cat         *catalog
	check       checker
	createRules map[string]rule
	updateRules map[string]rule
	modelled    map[string]bool
	modelFields map[string]int       // the read model's properties, for fields=
	queryFields map[string]fieldType // what FIQL may query on incidents
	api         *http.ServeMux
	admin       *http.ServeMux
	page        *template.Template

	mu         sync.Mutex
	username   string
	password   string
	baseURL    string
	incidents  []*incident
	byID       map[string]*incident
	byNumber   map[string]*incident
	byExternal map[string][]*incident // lower-case externalNumber -> incidents, in creation order
	seq        int
	faults     []*faultState
	requests   []Request
	deleted    []deletion // incidents operators deleted, oldest first
	callback   Callback
	callbacks  []CallbackCall
	lastCall   chan struct{} // closed when the newest callback call is done

	inFlight atomic.Int64 // API requests waiting out their latency, for MaxInFlight
}

// New returns a Sim that is not listening; serve it as an http.Handler, or
// use Start in tests. It panics when Options.StateFile cannot be loaded; use
// Open to get that error instead.
func New(opts Options) *Sim {
	s, err := Open(opts)
	if err != nil {
		panic(err)
	}
	return s
}

// Open is New, with the incidents of Options.StateFile loaded when that file
// exists. It fails when the file cannot be read or decoded.
func Open(opts Options) (*Sim, error) {
	s := newSim(opts)
	if opts.StateFile == "" {
		return s, nil
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

func newSim(opts Options) *Sim {
	if opts.Username == "" {
		opts.Username = DefaultUsername
	}
	if opts.Password == "" {
		opts.Password = DefaultPassword
	}
	if opts.APIVersion == "" {
		opts.APIVersion = DefaultAPIVersion
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxRequests <= 0 {
		opts.MaxRequests = defaultMaxRequests
	}
	opts.ReadOnlyUsers = maps.Clone(opts.ReadOnlyUsers)
	var t *Tenant
	if opts.Tenant == nil {
		t = DefaultTenant()
	} else {
		t = opts.Tenant.clone()
	}
	opts.Tenant = t
	cat := newCatalog(t)
	s := &Sim{
		opts: opts,
		// TOPdesk keeps and answers times to the millisecond; a finer time
		// would make a read-back from the last modificationDate it answered
		// find that incident again.
		now:         func() time.Time { return opts.Now().Truncate(time.Millisecond) },
		cat:         cat,
		check:       checker{cat: cat},
		createRules: createRules(),
		updateRules: updateRules(),
		modelled:    modelledFields(),
		modelFields: readModelFields(),
		queryFields: incidentQueryFields(),
		username:    opts.Username,
		password:    opts.Password,
		byID:        map[string]*incident{},
		byNumber:    map[string]*incident{},
		byExternal:  map[string][]*incident{},
		callback:    opts.Callback,
		page:        template.Must(template.New("page").Funcs(pageFuncs()).Parse(pageTemplate)),
	}
	s.api = s.apiRoutes()
	s.admin = s.adminRoutes()
	return s
}

// Start serves a new Sim on an httptest server at 127.0.0.1 with a free
// port. The server is closed by t.Cleanup; requests still waiting on a Delay
// fault are cancelled first.
func Start(t testing.TB, opts Options) *Sim {
	t.Helper()
	s := New(opts)
	srv := httptest.NewUnstartedServer(s)
	ctx := t.Context() // cancelled just before the cleanups run
	srv.Config.BaseContext = func(net.Listener) context.Context { return ctx }
	srv.Start()
	t.Cleanup(srv.Close)
	s.SetURL(srv.URL)
	return s
}

// URL returns the base URL (e.g. http://127.0.0.1:41234) set by Start or
// SetURL; "" when neither was called.
func (s *Sim) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.baseURL
}

// SetURL sets the base URL the Sim is reachable at, for the links in its
// answers and HTML page, when it is served by something other than Start.
func (s *Sim) SetURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.baseURL = strings.TrimRight(u, "/")
}

// SetCredentials replaces the accepted operator login and application
// password; requests with the old ones get 401 from then on.
func (s *Sim) SetCredentials(username, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.username, s.password = username, password
}

// ServeHTTP serves the API under /tas/, the admin endpoints under /_sim/ and
// the HTML page at /.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/tas/"):
		s.serveAPI(w, r)
	case strings.HasPrefix(p, "/_sim/"):
		s.admin.ServeHTTP(w, r)
	case p == "/":
		s.servePage(w, r)
	default:
		http.NotFound(w, r)
	}
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// discardWriter collects a response that is never sent (LoseResponse).
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *discardWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(b), nil
}

// serveAPI records the request, applies a matching fault and otherwise
// authenticates and routes it. A request is recorded before its connection
// is dropped, so that a client that sees the transport error also sees the
// record.
func (s *Sim) serveAPI(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w}
	user, _, _ := r.BasicAuth()
	entry := Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, User: user, At: s.now()}

	body, err := readBody(rec, r)
	entry.Body = body
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(rec, http.StatusRequestEntityTooLarge, fmt.Sprintf("The request body is larger than %d bytes.", maxBodyBytes))
		} else {
			writeError(rec, http.StatusBadRequest, "The request body cannot be read.")
		}
		entry.Status = rec.status
		s.record(entry)
		return
	}
	r.Body = &bufferedBody{Reader: bytes.NewReader(body), b: body}

	if n := s.inFlight.Add(1); s.opts.MaxInFlight > 0 && n > int64(s.opts.MaxInFlight) {
		s.inFlight.Add(-1)
		rec.Header().Set("Retry-After", "1")
		writeError(rec, http.StatusTooManyRequests, "Too many requests in progress.")
		entry.Status = rec.status
		s.record(entry)
		return
	}
	f, faulty := s.takeFault(r.Method, r.URL.Path)
	waited := (!faulty || delay(r, f.Delay)) && delay(r, s.latency())
	// A request stops counting before it is answered, so that a client
	// that sends its next one on the answer finds the slot free.
	s.inFlight.Add(-1)
	if !waited {
		// The client gave up; nothing is answered.
		s.record(entry)
		return
	}
	switch {
	case faulty && f.Drop:
		s.record(entry)
		dropConnection(w)
	case faulty && f.Status != 0:
		if f.RetryAfter != "" {
			rec.Header().Set("Retry-After", f.RetryAfter)
		}
		writeError(rec, f.Status, fmt.Sprintf("Simulated fault: %d %s.", f.Status, http.StatusText(f.Status)))
		entry.Status = rec.status
		s.record(entry)
	case faulty && f.LoseResponse:
		dw := &discardWriter{header: http.Header{}}
		s.authAndRoute(dw, r)
		entry.Status = dw.status
		s.record(entry)
		dropConnection(w)
	default:
		s.authAndRoute(rec, r)
		entry.Status = rec.status
		s.record(entry)
	}
}

// latency returns the configured latency with its jitter applied.
func (s *Sim) latency() time.Duration {
	d, j := s.opts.Latency, min(max(s.opts.Jitter, 0), 1)
	if d <= 0 || j == 0 {
		return d
	}
	return d + time.Duration((2*rand.Float64()-1)*j*float64(d))
}

// delay waits d and reports true, or false when the client gives up first.
func delay(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.Context().Done():
		return false
	case <-t.C:
		return true
	}
}

// readBody reads the request body, at most maxBodyBytes of it, into a slice
// of its size when the client sent Content-Length.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	rd := http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if r.ContentLength < 0 || r.ContentLength > maxBodyBytes {
		return io.ReadAll(rd)
	}
	b := make([]byte, r.ContentLength)
	n, err := io.ReadFull(rd, b)
	return b[:n], err
}

// bufferedBody is a request body serveAPI has read already.
type bufferedBody struct {
	*bytes.Reader
	b []byte
}

// Close does nothing: the server closes the body serveAPI read.
func (*bufferedBody) Close() error { return nil }

// requestBody returns the request body; one that serveAPI has read is
// returned without copying it.
func requestBody(r *http.Request) ([]byte, error) {
	if bb, ok := r.Body.(*bufferedBody); ok {
		return bb.b, nil
	}
	return io.ReadAll(r.Body)
}

// dropConnection closes the client's connection without an answer, so that
// the client sees a transport error.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2): abort the stream instead.
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		// Reset rather than close gracefully, like a crashed peer; a failure
		// here only makes the close gentler.
		_ = tc.SetLinger(0)
	}
	// The connection is gone either way; its close error carries nothing.
	_ = conn.Close()
}

func (s *Sim) record(r Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.requests); n >= 2*s.opts.MaxRequests {
		s.requests = slices.Clone(s.requests[n-s.opts.MaxRequests:])
	}
	s.requests = append(s.requests, r)
}

// authAndRoute checks Basic auth (401 for bad credentials, 403 for writes by
// read-only users) and routes the request.
func (s *Sim) authAndRoute(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	s.mu.Lock()
	wantUser, wantPass := s.username, s.password
	s.mu.Unlock()
	operator := ok && equal(user, wantUser) && equal(pass, wantPass)
	readOnly := false
	if !operator && ok {
		if p, found := s.opts.ReadOnlyUsers[user]; found && equal(pass, p) {
			readOnly = true
		}
	}
	switch {
	case !operator && !readOnly:
		w.Header().Set("WWW-Authenticate", `Basic realm="TOPdesk"`)
		writeError(w, http.StatusUnauthorized, "Unauthorized: the login name or application password is not valid.")
		return
	case readOnly && r.Method != http.MethodGet && r.Method != http.MethodHead:
		writeError(w, http.StatusForbidden, "Forbidden: the user has no write permission for this resource.")
		return
	}
	s.api.ServeHTTP(w, r)
}

func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// writeError answers TOPdesk's error body [{"message": …}].
func writeError(w http.ResponseWriter, status int, msgs ...string) {
	body := make([]map[string]string, len(msgs))
	for i, m := range msgs {
		body[i] = map[string]string{"message": m}
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`[{"message":"cannot encode the answer"}]`)
	}
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// A failed write means the client is gone; there is nobody to tell.
	_, _ = w.Write(b)
}

// Request is one API request the Sim received (admin and page requests are
// not recorded). Status is 0 when no answer was sent (a Drop fault, or the
// client gave up during a Delay); for LoseResponse it is the status of the
// answer that was dropped.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	Status   int
	Body     []byte
	User     string
	At       time.Time
}

type requestJSON struct {
	Method   string    `json:"method"`
	Path     string    `json:"path"`
	RawQuery string    `json:"rawQuery,omitempty"`
	Status   int       `json:"status"`
	Body     string    `json:"body,omitempty"`
	User     string    `json:"user,omitempty"`
	At       time.Time `json:"at"`
}

// MarshalJSON writes the body as a string, not base64.
func (r Request) MarshalJSON() ([]byte, error) {
	return json.Marshal(requestJSON{r.Method, r.Path, r.RawQuery, r.Status, string(r.Body), r.User, r.At})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Request) UnmarshalJSON(b []byte) error {
	var j requestJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("decode request: %w", err)
	}
	*r = Request{j.Method, j.Path, j.RawQuery, j.Status, []byte(j.Body), j.User, j.At}
	return nil
}

// Requests returns the recorded API requests, oldest first.
func (s *Sim) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.requests
	if len(rs) > s.opts.MaxRequests {
		rs = rs[len(rs)-s.opts.MaxRequests:]
	}
	out := make([]Request, len(rs))
	for i, r := range rs {
		r.Body = bytes.Clone(r.Body)
		out[i] = r
	}
	return out
}

// ResetRequests forgets the recorded requests.
func (s *Sim) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// reset drops all incidents and requests; the number counter restarts.
func (s *Sim) reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clearLocked()
	s.requests = nil
	return s.saveLocked()
}

// clearLocked drops all incidents; the number counter restarts. The caller
// holds s.mu.
func (s *Sim) clearLocked() {
	s.incidents = nil
	s.byID = map[string]*incident{}
	s.byNumber = map[string]*incident{}
	s.byExternal = map[string][]*incident{}
	s.deleted = nil
	s.seq = 0
}
