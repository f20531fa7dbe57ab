package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/alertdesk/alertdesk/mapping"
)

// renderOps are the operations render prints, with the request line the
// worker sends for each.
var renderOps = []struct {
	op   mapping.Op
	line string
}{
	{mapping.OpCreate, "POST /tas/api/incidents"},
	{mapping.OpUpdate, "PATCH /tas/api/incidents/id/{id}"},
	{mapping.OpResolve, "PATCH /tas/api/incidents/id/{id}"},
	{mapping.OpReopen, "PATCH /tas/api/incidents/id/{id}"},
}

// cmdRender is `alertdesk render [--mapping FILE] [EVENT_FILE|-]`: a dry run
// that prints, for every alert in the event, its key, externalNumber, what
// the mapping's noise control would do with it, and the TOPdesk requests of
// create, update, resolve and reopen. It calls nothing.
func cmdRender(_ context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "render", "usage: alertdesk render [--mapping FILE] [EVENT_FILE|-]\n\n"+
		"Prints the TOPdesk requests the mapping produces for each alert in the event\n"+
		"(native JSON, a JSON array of events, or an Alertmanager webhook) read from\n"+
		"EVENT_FILE or stdin, and what the mapping's noise control would do with it\n"+
		"(a maintenance window of the mapping that covers it now, resolve delay,\n"+
		"flapping). Calls nothing: ad-hoc windows are listed by 'alertdesk maintenance list'.\n\nflags:")
	mappingFile := fs.String("mapping", "", "mapping `file` (default $ALERTDESK_MAPPING_FILE, else the built-in mapping)")
	pos, err := parseFlagsAnywhere(fs, args)
	if err != nil {
		return cmdFlagExit(err)
	}
	if len(pos) > 1 {
		return usageError(fs, "want at most one event file, got %d", len(pos))
	}
	if *mappingFile == "" {
		cfg, err := loadConfig(nil)
		if err != nil {
			printConfigError(c, err)
			return 2
		}
		*mappingFile = cfg.MappingFile
	}
	if err := render(c, *mappingFile, pos); err != nil {
		fmt.Fprintf(c.stderr, "alertdesk render: %v\n", err)
		return 1
	}
	return 0
}

func render(c *cli, mappingFile string, pos []string) error {
	m := mapping.Default()
	if mappingFile != "" {
		var err error
		if m, err = mapping.LoadFile(mappingFile); err != nil {
			return err
		}
	}

	in, name := c.stdin, "stdin"
	if len(pos) == 1 && pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return fmt.Errorf("read event: %w", err)
		}
		defer f.Close()
		in, name = f, pos[0]
	}
	// One byte over the limit is enough for Decode to report the size.
	data, err := io.ReadAll(io.LimitReader(in, mapping.DefaultMaxBytes+1))
	if err != nil {
		return fmt.Errorf("read event from %s: %w", name, err)
	}
	alerts, err := m.Decode(data, mapping.DecodeOptions{})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}

	now := time.Now()
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	for i := range alerts {
		a := &alerts[i]
		key, err := m.Key(a)
		if err != nil {
			return fmt.Errorf("%s: alert %d of %d: %w", name, i+1, len(alerts), err)
		}
		if i > 0 {
			out.WriteString("\n")
		}
		fmt.Fprintf(&out, "=== alert %d of %d (%s)\n", i+1, len(alerts), a.Status)
		fmt.Fprintf(&out, "key:            %s\n", key)
		fmt.Fprintf(&out, "externalNumber: %s\n", mapping.ExternalNumber(key))
		out.WriteString(groupLines(m, a)) // grouping: the group key and storm rule, if any
		// brief is the create's brief description: the incident's own.
		var brief string
		for j, ro := range renderOps {
			r, err := m.Render(a, key, ro.op)
			if err != nil {
				return fmt.Errorf("%s: alert %d of %d: %s: %w", name, i+1, len(alerts), ro.op, err)
			}
			switch ro.op {
			case mapping.OpCreate:
				brief = r.Request.BriefDescription
			case mapping.OpResolve:
				// The worker prefixes the incident's own brief description,
				// never the resolve event's: here, the create's.
				r.Request.BriefDescription = m.ResolvedBrief(brief)
			}
			if j == 0 {
				fmt.Fprintf(&out, "fingerprint:    %s\n", r.Fingerprint)
				for _, l := range noiseLines(m, a, now) {
					fmt.Fprintf(&out, "%-16s%s\n", l.label+":", l.text)
				}
			}
			fmt.Fprintf(&out, "\n--- %s\n%s\n", ro.op, ro.line)
			if err := enc.Encode(&r.Request); err != nil {
				return fmt.Errorf("encode %s request: %w", ro.op, err)
			}
		}
	}
	if _, err := c.stdout.Write(out.Bytes()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// noiseLine is one line of render's noise-control summary.
type noiseLine struct{ label, text string }

// noiseLines says in words what the mapping's noise control would do with
// alert a now. Render has no state: it says what would happen, not what
// happened. A mapping without noise settings gives no lines.
func noiseLines(m *mapping.Mapping, a *mapping.Alert, now time.Time) []noiseLine {
	var lines []noiseLine
	if ws := m.Maintenance(); len(ws) > 0 {
		text := fmt.Sprintf("none of the mapping's %d windows covers it now", len(ws))
		if c, ok := ws.Cover(a.Labels, now); ok {
			why := ""
			if c.Window.Reason != "" {
				why = fmt.Sprintf(" (%s)", c.Window.Reason)
			}
			text = fmt.Sprintf("suppressed: window %s%s covers it now, until %s", c.Window.ID, why, c.End.UTC().Format(time.RFC3339))
			if a.Status == mapping.StatusFiring {
				text += "; no incident is created or reopened before then (an open incident is still updated), and it is handled then if still firing"
			} else {
				text += "; a resolve is not held back: it closes an open incident, and a firing held back is dropped"
			}
		}
		lines = append(lines, noiseLine{"maintenance", text})
	}
	if d := m.Lifecycle().ResolveDelay; d > 0 {
		lines = append(lines, noiseLine{"resolve delay", fmt.Sprintf("%s: a resolve closes the incident only if the alert does not fire again within it", d)})
	}
	if f := m.Flapping(); f.On() && m.Group(a) != "" {
		lines = append(lines, noiseLine{"flapping", "not judged for grouped alerts: a member that resolves and fires again adds one action to the group's incident"})
	} else if f.On() {
		lines = append(lines, noiseLine{"flapping", fmt.Sprintf("%d changes between firing and resolved within %s make the key flap: "+
			"one action, the incident held open, closed after %s without a change if resolved", f.Changes, f.Window, f.Quiet)})
	}
	return lines
}
