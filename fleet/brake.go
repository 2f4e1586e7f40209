package fleet

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/pibake/pibake/updater/report"
)

// Brake is when pibake rollout watch halts a release: at MaxFailures
// devices that failed it, or at a failure rate of MaxFailureRate once
// MinAttempts devices have finished an attempt. A zero field is off.
type Brake struct {
	MaxFailures    int
	MaxFailureRate float64 // a fraction: 0.2 is 20%
	MinAttempts    int
}

// Validate refuses a brake that can never act, or a rate outside (0, 1].
func (b Brake) Validate() error {
	switch {
	case b.MaxFailures < 0 || b.MinAttempts < 0:
		return errors.New("--max-failures and --min-attempts cannot be negative")
	case b.MaxFailureRate < 0 || b.MaxFailureRate > 1:
		return fmt.Errorf("--max-failure-rate %v%%: want more than 0%% and at most 100%%", b.MaxFailureRate*100)
	case b.MaxFailures == 0 && b.MaxFailureRate == 0:
		return errors.New("no threshold: give --max-failures N, --max-failure-rate P% or both")
	}
	return nil
}

// Release is the release a watch judges: the attempts devices on Channel
// report for Image and Version with a serial of Since or later (a resume
// starts counting again from its serial).
type Release struct {
	Channel, Image, Version string
	Since                   uint64
}

// Outcome is what one device's report says of its attempt at a release.
type Outcome int

// A device's outcome: not attempted (or not this release), still going,
// committed, or failed (rolled back, or failed before its trial).
const (
	NotAttempted Outcome = iota
	InFlight
	Succeeded
	Failed
)

// OutcomeOf reads one report: the outcome of the device's last attempt
// at rel, and for a failure its check and reason.
func OutcomeOf(rel Release, s report.State) (Outcome, string) {
	a := s.Last
	if a == nil || s.Channel != rel.Channel || a.Image != rel.Image || a.Version != rel.Version || a.Serial < rel.Since {
		return NotAttempted, ""
	}
	switch a.Result {
	case report.ResultInProgress:
		return InFlight, ""
	case report.ResultCommitted:
		return Succeeded, ""
	case report.ResultRolledBack, report.ResultFailed:
		return Failed, fmt.Sprintf("%s, %s: %s", a.Result, orUnknown(a.Check), orUnknown(a.Reason))
	}
	return NotAttempted, ""
}

func orUnknown(s string) string {
	if s == "" {
		return "not reported"
	}
	return s
}

// Tally counts the finished attempts at a release; Failed maps each
// device that failed it to its check and reason.
type Tally struct {
	Attempts int
	InFlight int
	Failed   map[string]string
}

// Verdict is the brake's judgement of a tally, and why, in words.
type Verdict struct {
	Halt bool
	Why  string
}

// Judge says whether the brake halts the release at tally t.
func (b Brake) Judge(t Tally) Verdict {
	n := len(t.Failed)
	rate := 0.0
	if t.Attempts > 0 {
		rate = float64(n) / float64(t.Attempts)
	}
	var why string
	switch {
	case b.MaxFailures > 0 && n >= b.MaxFailures:
		why = fmt.Sprintf("%d devices failed it, the --max-failures of %d", n, b.MaxFailures)
	case b.MaxFailureRate > 0 && n > 0 && t.Attempts >= max(b.MinAttempts, 1) && rate >= b.MaxFailureRate:
		why = fmt.Sprintf("%d of %d attempts failed (%.1f%%), at or above the --max-failure-rate of %.1f%% after at least %d attempts",
			n, t.Attempts, rate*100, b.MaxFailureRate*100, max(b.MinAttempts, 1))
	default:
		return Verdict{}
	}
	return Verdict{Halt: true, Why: why + ": " + t.failedList(10)}
}

// failedList names up to n failed devices with their checks.
func (t Tally) failedList(n int) string {
	devs := make([]string, 0, len(t.Failed))
	for d := range t.Failed {
		devs = append(devs, d)
	}
	sort.Strings(devs)
	var parts []string
	for i, d := range devs {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(devs)-n))
			break
		}
		parts = append(parts, d+" ("+t.Failed[d]+")")
	}
	return strings.Join(parts, "; ")
}
