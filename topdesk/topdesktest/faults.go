package topdesktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Fault is a scripted failure of API requests (/tas/…). Faults are matched
// in the order they were injected against the request's method and path
// prefix; the first match applies. A fault applies to Count requests (0 =
// until ClearFaults) and is then used up. Delay comes first; then Drop,
// Status or LoseResponse (in that order of precedence); with only a Delay
// the request is then served normally. Faults apply before authentication.
//
// In JSON (POST /_sim/faults) the keys are the field names in lower camel
// case and Delay is a Go duration string such as "250ms".
type Fault struct {
	Method       string        // "" = any
	Path         string        // path prefix, e.g. "/tas/api/incidents"; "" = any
	Status       int           // answer this status with TOPdesk's error body ([{"message": …}])
	RetryAfter   string        // Retry-After header value sent with Status, e.g. "2" or an HTTP date
	Delay        time.Duration // wait this long before answering; a client that gives up gets nothing
	Drop         bool          // close the connection without an answer
	LoseResponse bool          // perform the request for real (e.g. create the incident), then close the connection
	Count        int
}

type faultJSON struct {
	Method       string          `json:"method,omitempty"`
	Path         string          `json:"path,omitempty"`
	Status       int             `json:"status,omitempty"`
	RetryAfter   string          `json:"retryAfter,omitempty"`
	Delay        json.RawMessage `json:"delay,omitempty"`
	Drop         bool            `json:"drop,omitempty"`
	LoseResponse bool            `json:"loseResponse,omitempty"`
	Count        int             `json:"count,omitempty"`
}

// MarshalJSON writes Delay as a Go duration string.
func (f Fault) MarshalJSON() ([]byte, error) {
	j := faultJSON{Method: f.Method, Path: f.Path, Status: f.Status, RetryAfter: f.RetryAfter,
		Drop: f.Drop, LoseResponse: f.LoseResponse, Count: f.Count}
	if f.Delay != 0 {
		j.Delay = json.RawMessage(fmt.Sprintf("%q", f.Delay.String()))
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads Delay as a Go duration string (or a number of
// nanoseconds) and checks the fault.
func (f *Fault) UnmarshalJSON(b []byte) error {
	var j faultJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("decode fault: %w", err)
	}
	out := Fault{Method: strings.ToUpper(j.Method), Path: j.Path, Status: j.Status, RetryAfter: j.RetryAfter,
		Drop: j.Drop, LoseResponse: j.LoseResponse, Count: j.Count}
	if len(j.Delay) > 0 {
		var s string
		if err := json.Unmarshal(j.Delay, &s); err == nil {
			d, err := time.ParseDuration(s)
			if err != nil {
				return fmt.Errorf("decode fault delay: %w", err)
			}
			out.Delay = d
		} else if err := json.Unmarshal(j.Delay, &out.Delay); err != nil {
			return fmt.Errorf("decode fault delay: want a duration like \"250ms\": %w", err)
		}
	}
	if err := out.validate(); err != nil {
		return err
	}
	*f = out
	return nil
}

func (f Fault) validate() error {
	switch {
	case f.Status != 0 && (f.Status < 100 || f.Status > 599):
		return fmt.Errorf("fault status %d is not an HTTP status", f.Status)
	case f.Delay < 0 || f.Count < 0:
		return fmt.Errorf("fault delay and count must not be negative")
	case f.Status == 0 && f.Delay == 0 && !f.Drop && !f.LoseResponse:
		return fmt.Errorf("fault does nothing: set status, delay, drop or loseResponse")
	}
	return nil
}

// faultState is an injected fault and how many more requests it applies to
// (-1 = unlimited).
type faultState struct {
	Fault
	left int
}

// Inject adds a fault after those already injected.
func (s *Sim) Inject(f Fault) {
	left := f.Count
	if left <= 0 {
		left = -1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &faultState{Fault: f, left: left})
}

// ClearFaults removes all faults.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// faultList returns the faults still in force, with Count set to the
// requests they still apply to (0 = unlimited).
func (s *Sim) faultList() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Fault, len(s.faults))
	for i, f := range s.faults {
		out[i] = f.Fault
		out[i].Count = max(f.left, 0)
	}
	return out
}

// takeFault returns the first fault matching the request and uses it once.
func (s *Sim) takeFault(method, path string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if (f.Method != "" && !strings.EqualFold(f.Method, method)) || !strings.HasPrefix(path, f.Path) {
			continue
		}
		if f.left > 0 {
			f.left--
			if f.left == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return f.Fault, true
	}
	return Fault{}, false
}
