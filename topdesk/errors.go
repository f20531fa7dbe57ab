package topdesk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// ErrNotFound is matched (with errors.Is) by an *APIError with status 404:
// the incident or object does not exist, or the base URL is wrong.
var ErrNotFound = errors.New("topdesk: not found")

// APIError is a non-2xx answer from TOPdesk. Every Client method returns it
// (wrapped or not) when TOPdesk answered with an error status.
type APIError struct {
	// StatusCode is the HTTP status code.
	StatusCode int
	// Method is the HTTP method of the request.
	Method string
	// Path is the request path, without the query string.
	Path string
	// Messages are TOPdesk's error messages, parsed from either
	// [{"message": …}] or {"errors": [{"errorCode": …, "errorMessage": …}]};
	// for any other body, the body's text, shortened.
	Messages []string
	// RetryAfter is the wait the Retry-After header asked for, computed when
	// the answer arrived; 0 when absent.
	RetryAfter time.Duration
	// Body is the start (at most 64 KiB) of the response body.
	Body string
}

// Error returns a one-line description: method, path, status and messages.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("topdesk: ")
	b.WriteString(e.Method)
	b.WriteByte(' ')
	b.WriteString(e.Path)
	b.WriteString(": ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteByte(' ')
		b.WriteString(t)
	}
	for i, m := range e.Messages {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Messages)-i)
			break
		}
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(shorten(m, 300))
	}
	switch {
	case e.StatusCode >= 300 && e.StatusCode < 400:
		b.WriteString(" (TOPdesk's API does not redirect: check the base URL)")
	case e.StatusCode == http.StatusUnauthorized:
		b.WriteString(" (check the operator login name and application password)")
	case e.StatusCode == http.StatusForbidden:
		b.WriteString(" (the operator account lacks a permission for this request)")
	}
	if e.RetryAfter > 0 {
		b.WriteString(" (retry after ")
		d := e.RetryAfter
		if d >= time.Second {
			d = d.Round(time.Second)
		}
		b.WriteString(d.String())
		b.WriteByte(')')
	}
	return b.String()
}

// Is reports whether the error matches target; a 404 matches ErrNotFound.
func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && e.StatusCode == http.StatusNotFound
}

// LimitError reports a request field that is longer than TOPdesk accepts. The
// client returns it before sending anything.
type LimitError struct {
	// Field is the JSON path of the field, e.g. "briefDescription" or
	// "caller.dynamicName".
	Field string
	// Length is the field's length in UTF-16 code units, as TOPdesk counts.
	Length int
	// Max is TOPdesk's maxLength for the field.
	Max int
}

// Error names the field, its length and the limit.
func (e *LimitError) Error() string {
	return fmt.Sprintf("topdesk: %s is %d characters long; TOPdesk allows at most %d", e.Field, e.Length, e.Max)
}

// ValidationError reports a request that TOPdesk would reject for its shape,
// e.g. a callerLookup with two keys. The client returns it before sending
// anything.
type ValidationError struct {
	// Field is the JSON path of the offending field.
	Field string
	// Reason says what is wrong.
	Reason string
}

// Error names the field and the reason.
func (e *ValidationError) Error() string {
	return "topdesk: " + e.Field + ": " + e.Reason
}

// requestError is a failure to get an answer: the transport failed, the
// context ended, or the answer could not be read.
type requestError struct {
	Method string
	Path   string
	// Sent is true when the request may have reached TOPdesk.
	Sent bool
	Err  error
}

func (e *requestError) Error() string {
	return "topdesk: " + e.Method + " " + e.Path + ": " + e.Err.Error()
}

func (e *requestError) Unwrap() error { return e.Err }

// IsRetryable reports whether repeating the request later may succeed:
// transport failures (connection refused or reset, unexpected EOF, timeouts
// including an expired context deadline), 5xx, 408 and 429. A context
// cancelled by the caller is not retryable, and neither is any rejection.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.StatusCode >= 500 || ae.StatusCode == http.StatusRequestTimeout || ae.StatusCode == http.StatusTooManyRequests
	}
	if isLocalRejection(err) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var re *requestError
	if !errors.As(err, &re) {
		return false
	}
	var ne net.Error
	return errors.As(re.Err, &ne) ||
		errors.Is(re.Err, io.ErrUnexpectedEOF) ||
		errors.Is(re.Err, io.EOF) ||
		errors.Is(re.Err, syscall.ECONNRESET) ||
		errors.Is(re.Err, syscall.ECONNREFUSED) ||
		errors.Is(re.Err, syscall.ECONNABORTED) ||
		errors.Is(re.Err, syscall.EPIPE)
}

// RetryAfter returns the wait TOPdesk asked for with a Retry-After header
// (seconds or an HTTP date, converted when the answer arrived), or, for a
// request not sent because the client's pause after such an answer outlasts
// the deadline, what is left of the pause. ok is false when err carries no
// positive wait.
func RetryAfter(err error) (d time.Duration, ok bool) {
	var ae *APIError
	var pe *pauseError
	switch {
	case errors.As(err, &ae) && ae.RetryAfter > 0:
		return ae.RetryAfter, true
	case errors.As(err, &pe) && pe.wait > 0:
		return pe.wait, true
	}
	return 0, false
}

// IsAuth reports whether TOPdesk refused the credentials (401) or the
// operator lacks a permission (403). Repeating the request does not help
// until an administrator acts.
func IsAuth(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.StatusCode == http.StatusUnauthorized || ae.StatusCode == http.StatusForbidden)
}

// IsNotFound reports whether TOPdesk answered 404.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsRejected reports whether the request itself is wrong and repeating it
// cannot succeed: a 4xx other than 401, 403, 408 and 429 (so a 404 is also
// rejected), or a *LimitError, *ValidationError or *NameError found before
// sending.
func IsRejected(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		switch ae.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestTimeout, http.StatusTooManyRequests:
			return false
		}
		return ae.StatusCode >= 400 && ae.StatusCode < 500
	}
	return isLocalRejection(err)
}

func isLocalRejection(err error) bool {
	var le *LimitError
	var ve *ValidationError
	var ne *NameError
	return errors.As(err, &le) || errors.As(err, &ve) || errors.As(err, &ne)
}

// IsOutcomeUnknown reports whether a write (POST, PUT, PATCH) may have been
// carried out although no success answer arrived: the request was sent and
// then the connection dropped, the answer timed out or could not be read, or
// TOPdesk (or a proxy) answered 5xx. Before retrying a create after such an
// error, look the incident up by its externalNumber.
func IsOutcomeUnknown(err error) bool {
	var re *requestError
	if errors.As(err, &re) {
		return re.Sent && isWrite(re.Method)
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.StatusCode >= 500 && isWrite(ae.Method)
	}
	return false
}

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date
// (relative to now; a past date gives 0).
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(math.MaxInt64/time.Second) {
			return time.Duration(math.MaxInt64), true
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// parseMessages extracts TOPdesk's error messages from an error body.
func parseMessages(body []byte) []string {
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case '[':
		var list []struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &list) == nil {
			var msgs []string
			for _, m := range list {
				if m.Message != "" {
					msgs = append(msgs, m.Message)
				}
			}
			return msgs
		}
	case '{':
		var obj struct {
			Message string `json:"message"`
			Errors  []struct {
				ErrorCode    string `json:"errorCode"`
				ErrorMessage string `json:"errorMessage"`
				Message      string `json:"message"`
			} `json:"errors"`
		}
		if json.Unmarshal(b, &obj) == nil {
			var msgs []string
			if obj.Message != "" {
				msgs = append(msgs, obj.Message)
			}
			for _, e := range obj.Errors {
				m := e.ErrorMessage
				if m == "" {
					m = e.Message
				}
				switch {
				case m != "" && e.ErrorCode != "":
					msgs = append(msgs, e.ErrorCode+": "+m)
				case m != "":
					msgs = append(msgs, m)
				case e.ErrorCode != "":
					msgs = append(msgs, e.ErrorCode)
				}
			}
			return msgs
		}
	}
	return []string{shorten(strings.Join(strings.Fields(string(b)), " "), 500)}
}

// shorten cuts s to at most n runes, on a rune boundary, marking the cut.
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for j := range s {
		if i == n {
			return s[:j] + "…"
		}
		i++
	}
	return s
}
