package config

// The maintenance window and the inhibit's bound: when a device may
// reboot into a release it has installed. Both come from the image alone
// (the override may not set them).

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Window is when the device may switch to a release it has downloaded
// and verified: on Days (the day the window opens; none: every day),
// from From to To ("HH:MM", 24-hour; To at or before From ends the next
// day; "24:00" is midnight) in Timezone (an IANA name; "" is UTC).
//
// The device never reads zone rules from its own files (/etc is on the
// writable data overlay): the build resolves Timezone into Changes, the
// zone's offsets from UTC from a year before the build for 40 years, and
// the image carries them here.
type Window struct {
	Days     []string `yaml:"days,omitempty,flow"`
	From     string   `yaml:"from"`
	To       string   `yaml:"to"`
	Timezone string   `yaml:"timezone,omitempty"`
	// Changes are written by the build, never by hand: each is the zone's
	// offset from UTC from that instant on. Empty: UTC.
	Changes []ZoneChange `yaml:"changes,omitempty"`
}

// ZoneChange is an offset from UTC in force from At (Unix seconds).
type ZoneChange struct {
	At     int64 `yaml:"at"`
	Offset int   `yaml:"offset"` // seconds east of UTC
}

// DefaultMaxInhibit is how long an application's inhibit may hold back a
// release that is due when the definition gives no bound.
const DefaultMaxInhibit = 24 * time.Hour

// Inhibit bounds how long an application may defer the reboot.
type Inhibit struct {
	// MaxDelay: once inhibits have held back a due release this long,
	// the agent applies it anyway (default DefaultMaxInhibit).
	MaxDelay time.Duration `yaml:"max_delay,omitempty"`
}

// Max is the bound in force.
func (i Inhibit) Max() time.Duration {
	if i.MaxDelay <= 0 {
		return DefaultMaxInhibit
	}
	return i.MaxDelay
}

var weekdays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// clock reads "HH:MM" as minutes after midnight; "24:00" is allowed
// (as an end) when end is set.
func clock(s string, end bool) (int, error) {
	digit := func(i int) int { return int(s[i] - '0') }
	if len(s) != 5 || s[2] != ':' || strings.Trim(s[:2]+s[3:], "0123456789") != "" {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	h, m := digit(0)*10+digit(1), digit(3)*10+digit(4)
	if (end && h == 24 && m == 0) || (h < 24 && m < 60) {
		return h*60 + m, nil
	}
	return 0, fmt.Errorf("%q is not a time of day (00:00 to 23:59)", s)
}

// Check validates the window as written in a definition (Changes aside).
func (w Window) Check() error {
	for _, d := range w.Days {
		if !slices.Contains(weekdays, strings.ToLower(d)) {
			return fmt.Errorf("window: day %q (want mon, tue, wed, thu, fri, sat or sun)", d)
		}
	}
	from, err := clock(w.From, false)
	if err != nil {
		return fmt.Errorf("window: from: %w", err)
	}
	to, err := clock(w.To, true)
	if err != nil {
		return fmt.Errorf("window: to: %w", err)
	}
	if from == to%(24*60) && to != 24*60 {
		return errors.New("window: from and to are the same time: the window would be empty (for a whole day, use from: \"00:00\", to: \"24:00\")")
	}
	for i := 1; i < len(w.Changes); i++ {
		if w.Changes[i].At <= w.Changes[i-1].At {
			return errors.New("window: the zone's changes are out of order: rebuild the image")
		}
	}
	return nil
}

// offset is the zone's offset from UTC at t.
func (w Window) offset(t time.Time) int {
	off := 0
	for _, c := range w.Changes {
		if c.At > t.Unix() {
			break
		}
		off = c.Offset
	}
	return off
}

// local is t as the window's zone reads it, as a time in UTC whose
// fields are the zone's wall clock.
func (w Window) local(t time.Time) time.Time {
	return t.UTC().Add(time.Duration(w.offset(t)) * time.Second)
}

func (w Window) on(day time.Weekday) bool {
	if len(w.Days) == 0 {
		return true
	}
	for _, d := range w.Days {
		if strings.EqualFold(d, weekdays[day]) {
			return true
		}
	}
	return false
}

// Open reports whether t falls inside the window. A window that crosses
// midnight belongs to the day it opens.
func (w Window) Open(t time.Time) bool {
	from, err1 := clock(w.From, false)
	to, err2 := clock(w.To, true)
	if err1 != nil || err2 != nil {
		return true // Check refused it; never hold a device on a bad window
	}
	l := w.local(t)
	m := l.Hour()*60 + l.Minute()
	if from < to {
		return w.on(l.Weekday()) && m >= from && m < to
	}
	return (w.on(l.Weekday()) && m >= from) || (w.on(l.AddDate(0, 0, -1).Weekday()) && m < to)
}

// Next is the first instant at or after t when the window is open
// (t itself when it is open), to the minute; zero if it never opens in
// the next 8 days (no day is allowed).
func (w Window) Next(t time.Time) time.Time {
	if w.Open(t) {
		return t
	}
	from, err := clock(w.From, false)
	if err != nil {
		return time.Time{}
	}
	l := w.local(t)
	for i := 0; i <= 8; i++ {
		d := time.Date(l.Year(), l.Month(), l.Day()+i, 0, from, 0, 0, time.UTC)
		if !w.on(d.Weekday()) {
			continue
		}
		// The wall clock's time back to UTC, by the offset in force then
		// (a change within the hour before it is taken twice, to settle).
		at := d.Add(-time.Duration(w.offset(d)) * time.Second)
		at = d.Add(-time.Duration(w.offset(at)) * time.Second)
		if !at.Before(t) {
			return at
		}
	}
	return time.Time{}
}

// ZoneChanges lists loc's offsets from UTC from start for years: the
// first entry is the offset at start, then one per change, found day by
// day and then to the second. The build writes them into the image's
// Window.
func ZoneChanges(loc *time.Location, start time.Time, years int) []ZoneChange {
	offset := func(t time.Time) int { _, off := t.In(loc).Zone(); return off }
	out := []ZoneChange{{At: start.Unix(), Offset: offset(start)}}
	end := start.AddDate(years, 0, 0)
	for t := start; t.Before(end); t = t.Add(24 * time.Hour) {
		next := t.Add(24 * time.Hour)
		if offset(next) == out[len(out)-1].Offset {
			continue
		}
		lo, hi := t, next // the change is in (lo, hi]
		for hi.Sub(lo) > time.Second {
			mid := lo.Add(hi.Sub(lo) / 2).Truncate(time.Second)
			if offset(mid) == out[len(out)-1].Offset {
				lo = mid
			} else {
				hi = mid
			}
		}
		out = append(out, ZoneChange{At: hi.Unix(), Offset: offset(hi)})
	}
	return out
}
