package topdesktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Callback is a TOPdesk automated action on "incident changed" with an HTTP
// request card: after a change the Sim POSTs {"number": "<incident
// number>"} to URL, with "Authorization: Bearer <Token>" when Token is set.
// Like TOPdesk's, the call is made in the background after the change, once,
// without retries, in the order of the changes; Callbacks lists the
// outcomes.
type Callback struct {
	URL   string `json:"url"`
	Token string `json:"token,omitempty"`
	// APIChanges also calls it after changes made through the API (by
	// alertdesk's user); by default only operators' changes call it.
	APIChanges bool `json:"apiChanges,omitempty"`
}

// Check reports a URL that is set but is not an absolute http(s) URL.
func (cb Callback) Check() error {
	if cb.URL == "" {
		return nil
	}
	if u, err := url.Parse(cb.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("callback url %q is not an http(s) URL", cb.URL)
	}
	return nil
}

// callbackClient makes the automated action's calls, each within 10s.
var callbackClient = &http.Client{Timeout: 10 * time.Second}

// maxCallbacks is how many outcomes Callbacks keeps (the newest).
const maxCallbacks = 1000

// CallbackCall is the outcome of one call of the automated action: the
// receiver's status, or Error when it could not be reached.
type CallbackCall struct {
	Number string    `json:"number"`
	At     time.Time `json:"at"`
	Status int       `json:"status,omitempty"`
	Error  string    `json:"error,omitempty"`
}

// SetCallback configures the automated action; a zero Callback (no URL)
// turns it off.
func (s *Sim) SetCallback(cb Callback) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.callback = cb
}

// Callbacks returns the outcomes of the automated action's calls so far,
// oldest first.
func (s *Sim) Callbacks() []CallbackCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]CallbackCall(nil), s.callbacks...)
}

// notifyLocked calls the automated action for a change of incident number
// by a, when one is configured and a's changes call it. The caller holds
// s.mu.
func (s *Sim) notifyLocked(number string, a actor) {
	cb := s.callback
	if cb.URL == "" || (!a.operator && !cb.APIChanges) {
		return
	}
	// Each call waits for the one before, so that the receiver sees them
	// in the order of the changes.
	prev, done := s.lastCall, make(chan struct{})
	s.lastCall = done
	go func() {
		defer close(done)
		if prev != nil {
			<-prev
		}
		s.call(cb, number)
	}()
}

// call POSTs the automated action's request and records its outcome.
func (s *Sim) call(cb Callback, number string) {
	out := CallbackCall{Number: number, At: s.now()}
	if status, err := post(cb, number); err != nil {
		out.Error = err.Error()
	} else {
		out.Status = status
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.callbacks) >= maxCallbacks {
		s.callbacks = append(s.callbacks[:0], s.callbacks[1:]...)
	}
	s.callbacks = append(s.callbacks, out)
}

func post(cb Callback, number string) (int, error) {
	body, err := json.Marshal(map[string]string{"number": number})
	if err != nil {
		return 0, fmt.Errorf("encode callback: %w", err)
	}
	// The call outlives the request that caused it, as TOPdesk's does; the
	// client's timeout bounds it.
	req, err := http.NewRequest(http.MethodPost, cb.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("callback request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if cb.Token != "" {
		req.Header.Set("Authorization", "Bearer "+cb.Token)
	}
	resp, err := callbackClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("callback: %w", err)
	}
	defer resp.Body.Close()
	// Drained so that the connection is reused; the body carries nothing.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBodyBytes))
	return resp.StatusCode, nil
}
