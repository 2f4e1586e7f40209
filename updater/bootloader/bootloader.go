// Package bootloader is the updater's view of the A/B boot chain, behind
// one small interface with a backend per chain: the U-Boot script's state
// file (pibake.env on bootsel), and Fake, a file-backed model of the U-Boot
// script's exact semantics for tests (including what happens at power-on).
//
// Semantics (RAUC's bootchooser is the model): the primary slot is the first
// slot in BOOT_ORDER with tries left; TryOnce puts a slot first with a
// single try, so the next boot starts it once and any later boot falls back
// to the old primary; MarkGood gives a slot full tries and puts it first;
// MarkBad takes its tries away.
package bootloader

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Slot names a slot: "a" or "b".
type Slot string

// Slots of the layout.
const (
	A Slot = "a"
	B Slot = "b"
)

// Other returns the other slot.
func (s Slot) Other() Slot {
	if s == A {
		return B
	}
	return A
}

func (s Slot) key() string { return strings.ToUpper(string(s)) }

// ParseSlot accepts "a"/"b" in any case.
func ParseSlot(s string) (Slot, error) {
	switch strings.ToLower(s) {
	case "a":
		return A, nil
	case "b":
		return B, nil
	}
	return "", fmt.Errorf("unknown slot %q (want a or b)", s)
}

// Bootloader is what the updater asks of a boot chain.
type Bootloader interface {
	// Primary is the slot the next normal boot starts.
	Primary() (Slot, error)
	// TryOnce makes the next boot start s once; a boot after that starts
	// the previous primary unless MarkGood(s) ran.
	TryOnce(s Slot) error
	// MarkGood makes s the primary with full tries.
	MarkGood(s Slot) error
	// MarkBad keeps s from being booted. The agent calls it before the
	// first byte of an install goes to s, so a slot being written is never
	// a fallback.
	MarkBad(s Slot) error
	// Tried reports what the boot loader knows of a trial of s armed by
	// TryOnce: Yes if a boot has spent it, No if it is still armed or was
	// never armed, Unknown if the chain keeps no such record (tryboot's
	// flag is one-shot and leaves no trace).
	Tried(s Slot) (Evidence, error)
}

// Evidence is what a boot loader can tell about a trial.
type Evidence int

// Answers of Tried.
const (
	Unknown Evidence = iota
	Yes
	No
)

// MaxTries is what MarkGood restores; it matches the boot script.
const MaxTries = 3

// State is the U-Boot script's state file.
type State struct {
	Order []Slot
	Left  map[Slot]int
}

// ErrState means the state file cannot be understood.
var ErrState = errors.New("boot state file is malformed")

// ParseState reads `BOOT_ORDER=A B\nBOOT_A_LEFT=3\n...` as U-Boot's
// `env export -t` writes it (NUL-terminated, maybe).
func ParseState(data []byte) (State, error) {
	st := State{Order: []Slot{A, B}, Left: map[Slot]int{A: MaxTries, B: MaxTries}}
	text := strings.TrimRight(string(data), "\x00")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return st, fmt.Errorf("%w: %q", ErrState, line)
		}
		switch k {
		case "BOOT_ORDER":
			var order []Slot
			for _, f := range strings.Fields(v) {
				s, err := ParseSlot(f)
				if err != nil {
					return st, fmt.Errorf("%w: %v", ErrState, err)
				}
				order = append(order, s)
			}
			if len(order) != 2 || order[0] == order[1] {
				return st, fmt.Errorf("%w: BOOT_ORDER=%q", ErrState, v)
			}
			st.Order = order
		case "BOOT_A_LEFT", "BOOT_B_LEFT":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return st, fmt.Errorf("%w: %s=%q", ErrState, k, v)
			}
			st.Left[Slot(strings.ToLower(k[5:6]))] = n
		}
	}
	return st, nil
}

// Marshal renders the state the way the boot script imports it.
func (st State) Marshal() []byte {
	return []byte(fmt.Sprintf("BOOT_ORDER=%s %s\nBOOT_A_LEFT=%d\nBOOT_B_LEFT=%d\n", st.Order[0].key(), st.Order[1].key(), st.Left[A], st.Left[B]))
}

// Primary is the first slot in the order with tries left, as the script
// picks it (with no tries anywhere it gives the first its tries back).
func (st State) Primary() Slot {
	for _, s := range st.Order {
		if st.Left[s] > 0 {
			return s
		}
	}
	return st.Order[0]
}

func (st State) clone() State {
	return State{Order: append([]Slot(nil), st.Order...), Left: map[Slot]int{A: st.Left[A], B: st.Left[B]}}
}

// tryOnce, markGood and markBad are the state transitions, shared by the
// real backend and the fake.
func (st State) tryOnce(s Slot) State {
	n := st.clone()
	prev := st.Primary()
	n.Order = []Slot{s, s.Other()}
	n.Left[s] = 1
	if prev != s {
		n.Left[prev] = MaxTries
	}
	return n
}

func (st State) markGood(s Slot) State {
	n := st.clone()
	n.Order = []Slot{s, s.Other()}
	n.Left[s] = MaxTries
	return n
}

func (st State) markBad(s Slot) State {
	n := st.clone()
	n.Order = []Slot{s.Other(), s}
	n.Left[s] = 0
	if n.Left[s.Other()] == 0 {
		n.Left[s.Other()] = MaxTries
	}
	return n
}

// tried: TryOnce(s) puts s first with one try; the script spends it when
// it starts s. So s first with no tries left means a boot spent the trial;
// s first with its try left means no boot has started it yet; s second
// (as MarkBad leaves it) means the trial was never armed.
func (st State) tried(s Slot) Evidence {
	if st.Order[0] == s && st.Left[s] == 0 {
		return Yes
	}
	return No
}

// Bootable reports whether the script would ever start s.
func (st State) Bootable(s Slot) bool { return st.Left[s] > 0 }

// boot is what the U-Boot script does at power-on: it returns the slot it
// starts and the state it writes back.
func (st State) boot() (Slot, State) {
	n := st.clone()
	for _, s := range n.Order {
		if n.Left[s] > 0 {
			n.Left[s]--
			return s, n
		}
	}
	// No tries anywhere: the script gives the first slot its tries back
	// and resets (the next power-on starts it); the second, maybe a slot
	// being written, stays out.
	s := n.Order[0]
	n.Left[s] = MaxTries - 1
	return s, n
}
