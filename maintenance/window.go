// Package maintenance decides whether a maintenance window covers an alert,
// and until when.
//
// Windows come from two places: the mapping file (Spec: a cron schedule with
// a duration and a time zone, or a fixed from/to) and ad hoc, from
// `alertdesk maintenance add`, kept in a JetStream KV bucket (Store) that
// every worker watches (Set). The evaluator is pure: Windows.Cover takes the
// alert's labels and an instant and says which window covers the alert and
// when that coverage ends.
//
// A window's match is a set of label equalities, all of which must hold: the
// alert has the label and its value is exactly the given one (case
// sensitive). There are no regular expressions, negations or wildcards.
package maintenance

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Spec is one maintenance window as written in the mapping file, either
// recurring:
//
//	{match: {env: staging}, schedule: "0 22 * * 6", duration: 6h, timezone: Europe/Amsterdam}
//
// or fixed:
//
//	{match: {host: db-7}, from: 2026-12-05T22:00:00+01:00, to: 2026-12-06T02:00:00+01:00}
//
// The yaml tags let the mapping embed `Maintenance []maintenance.Spec`.
type Spec struct {
	// Match holds the labels an alert must have, with exactly these values.
	Match map[string]string `yaml:"match"`
	// Schedule is a standard 5-field cron expression (minute hour
	// day-of-month month day-of-week) or a descriptor such as @daily; each
	// occurrence starts a window lasting Duration.
	Schedule string        `yaml:"schedule,omitempty"`
	Duration time.Duration `yaml:"duration,omitempty"`
	// Timezone is the IANA zone the schedule is read in; empty means UTC.
	Timezone string `yaml:"timezone,omitempty"`
	// From and To bound a fixed window: covered from From (inclusive) to To
	// (exclusive).
	From time.Time `yaml:"from,omitempty"`
	To   time.Time `yaml:"to,omitempty"`
	// Reason says why; it is shown with suppressed events.
	Reason string `yaml:"reason,omitempty"`
}

// Window is a validated maintenance window. Make one with Compile or
// Spec.Compile; a Window is immutable and safe for concurrent use.
type Window struct {
	// ID names the window: "maintenance[2]" for the mapping's third window,
	// the entry's ID for an ad-hoc one.
	ID     string
	Match  map[string]string
	Reason string

	sched    cron.Schedule // nil for a fixed window
	duration time.Duration
	from, to time.Time
}

// cronParser reads standard 5-field expressions and descriptors (@daily).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Compile validates specs and returns their windows, named
// "maintenance[i]". The error names every problem of every spec, one per
// line, each prefixed with the spec's path ("maintenance[1].schedule: …").
func Compile(specs []Spec) (Windows, error) {
	ws := make(Windows, 0, len(specs))
	var errs []error
	for i := range specs {
		id := fmt.Sprintf("maintenance[%d]", i)
		w, err := specs[i].Compile(id)
		if err != nil {
			errs = append(errs, prefixErrors(id, err)...)
			continue
		}
		ws = append(ws, w)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ws, nil
}

// prefixErrors splits a joined error into its parts and prefixes each with
// path, so that every problem reads "path.field: …".
func prefixErrors(path string, err error) []error {
	var parts []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		parts = j.Unwrap()
	} else {
		parts = []error{err}
	}
	out := make([]error, len(parts))
	for i, p := range parts {
		out[i] = fmt.Errorf("%s.%w", path, p)
	}
	return out
}

// Compile validates s and returns it as a window named id. The error joins
// every problem found (errors.Join), each starting with the field's name.
func (s *Spec) Compile(id string) (*Window, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if len(s.Match) == 0 {
		bad("match", "at least one label is required (a window without one would cover every alert)")
	}
	for _, k := range slices.Sorted(maps.Keys(s.Match)) {
		if strings.TrimSpace(k) == "" {
			bad("match", "a label name is empty")
		} else if s.Match[k] == "" {
			bad("match."+k, "the value is empty (matchers compare exact values)")
		}
	}
	w := &Window{ID: id, Match: maps.Clone(s.Match), Reason: s.Reason, duration: s.Duration, from: s.From, to: s.To}
	fixed := !s.From.IsZero() || !s.To.IsZero()
	switch {
	case s.Schedule != "" && fixed:
		bad("schedule", "a window has either schedule and duration or from and to, not both")
	case s.Schedule != "":
		w.sched = s.compileSchedule(bad)
	case fixed:
		switch {
		case s.From.IsZero():
			bad("from", "missing (a fixed window needs from and to)")
		case s.To.IsZero():
			bad("to", "missing (a fixed window needs from and to)")
		case !s.To.After(s.From):
			bad("to", "%s is not after from %s", s.To.Format(time.RFC3339), s.From.Format(time.RFC3339))
		}
		if s.Duration != 0 {
			bad("duration", "only a scheduled window has a duration; a fixed one ends at to")
		}
		if s.Timezone != "" {
			bad("timezone", "only a scheduled window has a time zone; from and to carry their own offset")
		}
	default:
		bad("schedule", "missing: a window needs schedule and duration, or from and to")
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return w, nil
}

// compileSchedule parses the schedule in its time zone and checks the
// duration, reporting problems through bad.
func (s *Spec) compileSchedule(bad func(field, format string, args ...any)) cron.Schedule {
	if s.Duration <= 0 {
		bad("duration", "a scheduled window needs a positive duration, e.g. 6h")
	}
	loc := time.UTC
	if s.Timezone != "" {
		l, err := time.LoadLocation(s.Timezone)
		if s.Timezone == "Local" {
			// The host's zone would make the window depend on where a worker runs.
			err = errors.New("not an IANA zone name")
		}
		if err != nil {
			bad("timezone", "%q is not a known time zone (IANA name such as Europe/Amsterdam)", s.Timezone)
		} else {
			loc = l
		}
	}
	if strings.HasPrefix(s.Schedule, "TZ=") || strings.HasPrefix(s.Schedule, "CRON_TZ=") {
		bad("schedule", "give the time zone in timezone, not in the schedule")
		return nil
	}
	parsed, err := cronParser.Parse(s.Schedule)
	if err != nil {
		bad("schedule", "%q: %v", s.Schedule, err)
		return nil
	}
	spec, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		bad("schedule", "%q has no fixed start times (@every is not allowed); use a cron expression", s.Schedule)
		return nil
	}
	spec.Location = loc
	// Next gives up after five years; a schedule such as "0 0 30 2 *" never
	// starts a window.
	if spec.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, loc)).IsZero() {
		bad("schedule", "%q never occurs", s.Schedule)
		return nil
	}
	return spec
}

// matches reports whether labels satisfy every matcher of w.
func (w *Window) matches(labels map[string]string) bool {
	for k, v := range w.Match {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Cover reports whether w covers labels at instant at, and if so when the
// current occurrence ends. Occurrences are half-open: [start, start+duration)
// or [from, to). The duration is elapsed time, so across a daylight saving
// change a window ends an hour earlier or later by the wall clock. Start
// times follow the cron library's rules for such nights: a start in the
// skipped hour does not happen, a start in the repeated hour happens twice.
func (w *Window) Cover(labels map[string]string, at time.Time) (end time.Time, ok bool) {
	if !w.matches(labels) {
		return time.Time{}, false
	}
	if w.sched == nil {
		if at.Before(w.from) || !at.Before(w.to) {
			return time.Time{}, false
		}
		return w.to, true
	}
	start, ok := lastStart(w.sched, at, w.duration)
	if !ok {
		return time.Time{}, false
	}
	return start.Add(w.duration), true
}

// lastStart returns the latest start of sched in (at-d, at], if any. It
// probes back from at with doubling steps, so that a frequent schedule with
// a long duration costs a few calls to Next, not one per occurrence.
func lastStart(sched cron.Schedule, at time.Time, d time.Duration) (time.Time, bool) {
	lo := at.Add(-d)
	for step := min(time.Minute, d); ; step = min(2*step, d) {
		from := at.Add(-step)
		if n := sched.Next(from); !n.IsZero() && !n.After(at) {
			for {
				next := sched.Next(n)
				if next.IsZero() || next.After(at) {
					return n, true
				}
				n = next
			}
		}
		if !from.After(lo) {
			return time.Time{}, false
		}
	}
}

// Windows is a list of windows evaluated together.
type Windows []*Window

// Coverage says which window covers an alert and until when.
type Coverage struct {
	Window *Window
	// End is when the covering occurrence ends. When several windows cover
	// the alert it is the latest of their ends. At End the caller evaluates
	// again: another window may cover the alert by then.
	End time.Time
}

// Cover returns the window covering labels at instant at; when several do,
// the one whose occurrence ends last (the first of them on a tie).
func (ws Windows) Cover(labels map[string]string, at time.Time) (Coverage, bool) {
	var best Coverage
	for _, w := range ws {
		if end, ok := w.Cover(labels, at); ok && end.After(best.End) {
			best = Coverage{Window: w, End: end}
		}
	}
	return best, best.Window != nil
}
