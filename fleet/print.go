package fleet

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/pibake/pibake/updater/report"
)

// Filter keeps the devices that match every field set.
type Filter struct {
	Channel, Version string
	// Result is a last result (committed, rolled-back, failed,
	// in-progress), "none" (no update yet), "offline" or "malformed".
	Result string
}

// Results are the values Filter.Result takes.
var Results = []string{report.ResultCommitted, report.ResultRolledBack, report.ResultFailed, report.ResultInProgress, "none", "offline", "malformed"}

// Apply returns the devices of s that f keeps.
func (f Filter) Apply(s Status) Status {
	out := s
	out.Devices = nil
	for _, d := range s.Devices {
		if f.keeps(d) {
			out.Devices = append(out.Devices, d)
		}
	}
	if out.Devices == nil {
		out.Devices = []Device{}
	}
	return out
}

func (f Filter) keeps(d Device) bool {
	st := d.State
	switch {
	case f.Channel != "" && (st == nil || st.Channel != f.Channel):
		return false
	case f.Version != "" && (st == nil || st.Version != f.Version):
		return false
	}
	switch f.Result {
	case "":
		return true
	case "offline":
		return d.Offline != ""
	case "malformed":
		return d.Error != ""
	case "none":
		return st != nil && st.Last == nil
	}
	return st != nil && st.Last != nil && st.Last.Result == f.Result
}

// Print writes s as a table, one device a line, then what was dropped or
// cut short. Every field comes from devices, which are not trusted: no
// control or format character of theirs reaches the terminal.
func Print(w io.Writer, s Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tCHANNEL\tVERSION\tBOARD\tSLOT\tLAST UPDATE\tWHY\tLAST SEEN\tSTATUS")
	for _, d := range s.Devices {
		row := []string{d.Name, "-", "-", "-", "-", "-", "", "-", status(d)}
		if st := d.State; st != nil {
			row[1], row[2], row[3], row[4] = st.Channel, st.Version, st.Board, st.Slot
			if l := st.Last; l != nil {
				row[5] = l.Result + " " + l.Version
				row[6] = why(l)
			}
		}
		if d.Error != "" {
			row[6] = d.Error
		}
		if !d.LastSeen.IsZero() {
			row[7] = ago(now.Sub(d.LastSeen))
		}
		for i := range row {
			row[i] = printable(row[i])
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d devices", len(s.Devices))
	if s.Dropped > 0 {
		fmt.Fprintf(w, "; %d more not kept (the cap is %d devices)", s.Dropped, s.MaxDevices)
	}
	fmt.Fprintln(w)
	if s.Busy != "" {
		fmt.Fprintln(w, "note:", printable(s.Busy))
	}
	return nil
}

func status(d Device) string {
	switch {
	case d.Error != "":
		return "malformed"
	case d.Offline != "":
		return "offline: " + d.Offline
	case d.Online != nil && *d.Online:
		return "online"
	}
	return "-"
}

func why(l *report.Attempt) string {
	switch {
	case l.Check != "" && l.Reason != "":
		return l.Check + ": " + clip(l.Reason, 80)
	case l.Check != "":
		return l.Check
	}
	return clip(l.Reason, 80)
}

func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// printable replaces control and format characters, tabs and newlines
// included (they would break the table), with '?'.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) || r == unicode.ReplacementChar {
			return '?'
		}
		return r
	}, s)
}
