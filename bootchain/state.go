package bootchain

// The U-Boot chain's A/B state, declared once: the file pibake.env on
// bootsel (BOOT_ORDER, BOOT_A_LEFT, BOOT_B_LEFT, as the boot script reads
// and U-Boot's env export writes it), its parser, and its transitions:
// what the agent does to it (TryOnce, MarkGood, MarkBad) and what the
// script does at power-on (Boot). The builder writes the initial state
// with it, the boot script generator's test runs the script against Boot,
// and the agent edits the file through it.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// StateFile is the state U-Boot counts down; AgentStateFile the agent's
// copy, which the script reads when StateFile cannot be read (U-Boot's own
// fatwrite is not atomic).
const (
	StateFile      = "pibake.env"
	AgentStateFile = "pibake.agent.env"
)

// Evidence is what a boot loader can tell about a trial.
type Evidence int

// Answers of Tried.
const (
	Unknown Evidence = iota
	Yes
	No
)

// Initial is the state an image is built with: A first, both slots with
// full tries.
func Initial() State {
	return State{Order: []Slot{A, B}, Left: map[Slot]int{A: MaxTries, B: MaxTries}}
}

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

// ParseComplete parses a state file and reports whether it holds the
// whole state: the boot script uses StateFile only then, else the agent's
// copy if that is complete, else the defaults (a torn or zeroed file
// parses, but lacks variables).
func ParseComplete(data []byte) (State, bool) {
	st, err := ParseState(data)
	if err != nil {
		return st, false
	}
	text := string(data)
	for _, k := range []string{"BOOT_ORDER=", "BOOT_A_LEFT=", "BOOT_B_LEFT="} {
		if !strings.Contains(text, k) {
			return st, false
		}
	}
	return st, true
}

// Marshal renders the state the way the boot script imports it.
func (st State) Marshal() []byte {
	return []byte(fmt.Sprintf("BOOT_ORDER=%s %s\nBOOT_A_LEFT=%d\nBOOT_B_LEFT=%d\n", st.Order[0].Key(), st.Order[1].Key(), st.Left[A], st.Left[B]))
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

// Clone returns a copy that shares nothing with st.
func (st State) Clone() State {
	return State{Order: append([]Slot(nil), st.Order...), Left: map[Slot]int{A: st.Left[A], B: st.Left[B]}}
}

// TryOnce, MarkGood and MarkBad are the agent's transitions; Boot is what
// the U-Boot script does at power-on; Tried reads a trial's evidence.
func (st State) TryOnce(s Slot) State {
	n := st.Clone()
	prev := st.Primary()
	n.Order = []Slot{s, s.Other()}
	n.Left[s] = 1
	if prev != s {
		n.Left[prev] = MaxTries
	}
	return n
}

func (st State) MarkGood(s Slot) State {
	n := st.Clone()
	n.Order = []Slot{s, s.Other()}
	n.Left[s] = MaxTries
	return n
}

func (st State) MarkBad(s Slot) State {
	n := st.Clone()
	n.Order = []Slot{s.Other(), s}
	n.Left[s] = 0
	if n.Left[s.Other()] == 0 {
		n.Left[s.Other()] = MaxTries
	}
	return n
}

// Tried: TryOnce(s) puts s first with one try; the script spends it when
// it starts s. So s first with no tries left means a boot spent the trial;
// s first with its try left means no boot has started it yet; s second
// (as MarkBad leaves it) means the trial was never armed.
func (st State) Tried(s Slot) Evidence {
	if st.Order[0] == s && st.Left[s] == 0 {
		return Yes
	}
	return No
}

// Bootable reports whether the script would ever start s.
func (st State) Bootable(s Slot) bool { return st.Left[s] > 0 }

// Boot is what the U-Boot script does at power-on: it returns the slot it
// starts and the state it writes back.
func (st State) Boot() (Slot, State) {
	n := st.Clone()
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
