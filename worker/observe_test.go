package worker

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
)

func TestObserved(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	closedDate := &topdesk.Time{Time: t0.Add(time.Hour)}
	open := incidentState{Key: "k", IncidentID: "id-1", Number: "I 1", Open: true, Fingerprint: "f", LastEvent: t0, LastStatus: "firing"}
	closedByAlertdesk := open
	closedByAlertdesk.Open, closedByAlertdesk.ClosedAt, closedByAlertdesk.LastStatus = false, t0, "resolved"
	closedByEva := open
	closedByEva.Open, closedByEva.ClosedAt, closedByEva.ClosedBy, closedByEva.ClosureCode = false, closedDate.Time, "Jansen, Eva", "Solved"
	wontFix := func(code *topdesk.Ref) bool { return code != nil && code.ID == "dup-id" }

	tests := []struct {
		name    string
		resolve mapping.ResolveMode
		st      incidentState
		inc     topdesk.Incident
		want    incidentState
		change  string
	}{
		{
			name: "an operator closes an open incident",
			st:   open,
			inc: topdesk.Incident{ID: "id-1", Closed: true, ClosedDate: closedDate,
				ClosureCode: &topdesk.Ref{ID: "solved-id", Name: "Solved"}, Modifier: &topdesk.Ref{Name: "Jansen, Eva"}},
			want: closedByEva, change: changeClosed,
		},
		{
			name: "closed with a wontFix code",
			st:   open,
			inc: topdesk.Incident{ID: "id-1", Closed: true, ClosedDate: closedDate,
				ClosureCode: &topdesk.Ref{ID: "dup-id", Name: "Duplicate"}, Modifier: &topdesk.Ref{Name: "Jansen, Eva"}},
			want: func() incidentState {
				st := closedByEva
				st.ClosureCode, st.WontFix = "Duplicate", true
				return st
			}(),
			change: changeClosed,
		},
		{
			name: "completed without a modifier",
			st:   open,
			inc:  topdesk.Incident{ID: "id-1", Completed: true, CompletedDate: closedDate},
			want: func() incidentState {
				st := closedByEva
				st.ClosedBy, st.ClosureCode = operatorUnknown, ""
				return st
			}(),
			change: changeClosed,
		},
		{
			name:   "the closure code changed later",
			st:     closedByEva,
			inc:    topdesk.Incident{ID: "id-1", Closed: true, ClosureCode: &topdesk.Ref{ID: "dup-id", Name: "Duplicate"}},
			want:   func() incidentState { st := closedByEva; st.ClosureCode, st.WontFix = "Duplicate", true; return st }(),
			change: changeClosureCode,
		},
		{
			name: "closed by alertdesk, closed in TOPdesk",
			st:   closedByAlertdesk,
			inc:  topdesk.Incident{ID: "id-1", Closed: true, ClosureCode: &topdesk.Ref{Name: "Solved"}},
			want: closedByAlertdesk,
		},
		{
			name:   "an operator reopens",
			st:     closedByEva,
			inc:    topdesk.Incident{ID: "id-1"},
			want:   open,
			change: changeReopened,
		},
		{
			name:    "resolve: comment leaves incidents open",
			resolve: mapping.ResolveComment,
			st:      closedByAlertdesk,
			inc:     topdesk.Incident{ID: "id-1"},
			want:    closedByAlertdesk,
		},
		{
			name:   "archived: the key forgets it",
			st:     closedByEva,
			inc:    topdesk.Incident{ID: "id-1", Status: "firstLineArchived", Closed: true},
			want:   incidentState{Key: "k", LastEvent: t0, LastStatus: "firing"},
			change: changeArchived,
		},
		{
			name: "another incident of the key",
			st:   open,
			inc:  topdesk.Incident{ID: "id-2", Closed: true},
			want: open,
		},
		{
			name: "no incident known",
			st:   incidentState{Key: "k"},
			inc:  topdesk.Incident{ID: "id-1", Closed: true},
			want: incidentState{Key: "k"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lc := mapping.Lifecycle{Resolve: mapping.ResolveClose}
			if tc.resolve != "" {
				lc.Resolve = tc.resolve
			}
			st := tc.st
			change := observed(&st, &tc.inc, &lc, wontFix, t0.Add(2*time.Hour))
			if change != tc.change {
				t.Errorf("change %q, want %q", change, tc.change)
			}
			if diff := cmp.Diff(tc.want, st); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
		})
	}
}

// TestOperatorPolicy is the lifecycle table for an incident an operator
// closed: decide, then operatorPolicy, as applyOnce does.
func TestOperatorPolicy(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	closedByEva := incidentState{Key: "k", IncidentID: "id-1", Number: "I 1", ClosedAt: t0.Add(time.Minute),
		ClosedBy: "Jansen, Eva", ClosureCode: "Solved", Fingerprint: "f", LastEvent: t0, LastStatus: "firing"}
	afterResolve := closedByEva
	afterResolve.LastEvent, afterResolve.LastStatus = t0.Add(2*time.Minute), "resolved"
	wontFix := closedByEva
	wontFix.WontFix = true
	wontFixResolved := afterResolve
	wontFixResolved.WontFix = true
	alertdeskClosed := closedByEva
	alertdeskClosed.ClosedBy, alertdeskClosed.LastStatus = "", "resolved"

	fire := func(at time.Time, fp string) keyEvent {
		return keyEvent{alert: &mapping.Alert{Status: mapping.StatusFiring}, at: at, fingerprint: fp}
	}
	resolve := keyEvent{alert: &mapping.Alert{Status: mapping.StatusResolved}, at: t0.Add(3 * time.Minute)}
	tests := []struct {
		name   string
		policy mapping.OperatorClose
		st     incidentState
		ev     keyEvent
		want   decision
	}{
		{"respect: the same content fires on", "", closedByEva, fire(t0.Add(5*time.Minute), "f"), doDuplicate},
		{"respect: changed content goes in as an action", "", closedByEva, fire(t0.Add(5*time.Minute), "g"), doNote},
		{"respect: also after the reopen window", "", closedByEva, fire(t0.Add(48*time.Hour), "g"), doNote},
		{"respect: a resolve does nothing", "", closedByEva, resolve, doNothing},
		{"respect: a firing after a resolve reopens", "", afterResolve, fire(t0.Add(5*time.Minute), "f"), doReopen},
		{"respect: after a resolve and the window it creates", "", afterResolve, fire(t0.Add(48*time.Hour), "f"), doCreate},
		{"explicit respect", mapping.OperatorCloseRespect, closedByEva, fire(t0.Add(5*time.Minute), "f"), doDuplicate},
		{"reopen: the next firing reopens", mapping.OperatorCloseReopen, closedByEva, fire(t0.Add(5*time.Minute), "f"), doReopen},
		{"reopen, wontFix: a new incident", mapping.OperatorCloseReopen, wontFix, fire(t0.Add(5*time.Minute), "f"), doCreate},
		{"respect, wontFix: still firing stays closed", "", wontFix, fire(t0.Add(5*time.Minute), "f"), doDuplicate},
		{"respect, wontFix: after a resolve a new incident", "", wontFixResolved, fire(t0.Add(5*time.Minute), "f"), doCreate},
		{"stale stays stale", "", closedByEva, fire(t0.Add(-time.Minute), "g"), doStale},
		{"closed by alertdesk reopens as before", "", alertdeskClosed, fire(t0.Add(5*time.Minute), "f"), doReopen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lc := mapping.Lifecycle{ReopenWindow: 24 * time.Hour, OperatorClose: tc.policy}
			st, ev := tc.st, tc.ev
			if got := operatorPolicy(&st, &ev, &lc, decide(&st, &ev, lc)); got != tc.want {
				t.Errorf("decision %d, want %d", got, tc.want)
			}
		})
	}
}

func TestNoteOnly(t *testing.T) {
	invisible := true
	st := incidentState{ClosedBy: "<b>Eva</b>"}
	update := topdesk.IncidentRequest{BriefDescription: "new", Priority: &topdesk.Ref{Name: "P1"}, Action: "Alert changed", ActionInvisibleForCaller: &invisible}
	got := noteOnly(&st, &update)
	want := topdesk.IncidentRequest{
		Action:                   "The alert still fires; the incident stays closed as &lt;b&gt;Eva&lt;/b&gt; closed it.<br>Alert changed",
		ActionInvisibleForCaller: &invisible,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("note (-want +got):\n%s", diff)
	}
}
