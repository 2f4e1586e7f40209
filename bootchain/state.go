package bootchain

// The U-Boot chain's A/B state, declared once: the file pibake.env on
// bootsel (BOOT_ORDER, BOOT_A_LEFT, BOOT_B_LEFT, as the boot script reads
// and U-Boot's env export writes it), its parser, and its transitions:
// what the agent does to it (TryOnce, MarkGood, MarkBad) and what the
// script does at power-on (Boot). The builder writes the initial state
// with it, the boot script generator's test runs the script against Boot,
// and the agent edits the file through it.

import (
	"bytes"
	"errors"
	"fmt"
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
// `env import -t` reads what `env export -t` wrote (importText), and
// accepts exactly what the boot script accepts: BOOT_ORDER holds each
// slot's Key once and nothing else (words split on blanks, as hush's for
// splits them), each count is one decimal digit (the script counts down
// with setexpr, which reads hexadecimal: the two agree below 10). Anything
// else is ErrState, and the script then reads the agent's copy, or the
// defaults (ParseComplete). A variable the file lacks keeps its default.
func ParseState(data []byte) (State, error) {
	st := State{Order: []Slot{A, B}, Left: map[Slot]int{A: MaxTries, B: MaxTries}}
	vars := importText(data)
	if v, ok := vars["BOOT_ORDER"]; ok {
		order := strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' })
		if len(order) != 2 || order[0] == order[1] || !isKey(order[0]) || !isKey(order[1]) {
			return st, fmt.Errorf("%w: BOOT_ORDER=%q", ErrState, v)
		}
		st.Order = []Slot{Slot(strings.ToLower(order[0])), Slot(strings.ToLower(order[1]))}
	}
	for _, s := range Slots() {
		k := "BOOT_" + s.Key() + "_LEFT"
		v, ok := vars[k]
		if !ok {
			continue
		}
		if len(v) != 1 || v[0] < '0' || v[0] > '9' {
			return st, fmt.Errorf("%w: %s=%q", ErrState, k, v)
		}
		st.Left[s] = int(v[0] - '0')
	}
	return st, nil
}

func isKey(w string) bool {
	for _, s := range Slots() {
		if w == s.Key() {
			return true
		}
	}
	return false
}

// importText reads a state file as U-Boot's `env import -t` does
// (himport_r in its lib/hashtable.c): the text ends at the first NUL;
// each line is name=value with leading blanks skipped; a line starting
// with # is a comment; a backslash in a value takes the next character
// as it is (a newline too); a name with no = or an empty value is
// deleted; a later line wins.
func importText(data []byte) map[string]string {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		data = data[:i]
	}
	vars := map[string]string{}
	s := string(data)
	for len(s) > 0 {
		s = strings.TrimLeft(s, " \t")
		line, _, _ := strings.Cut(s, "\n")
		name, _, eq := strings.Cut(line, "=")
		switch {
		case strings.HasPrefix(s, "#"):
			s = s[min(len(line)+1, len(s)):]
			continue
		case !eq || len(name)+1 == len(line):
			delete(vars, name)
			s = s[min(len(line)+1, len(s)):]
			continue
		}
		var v strings.Builder
		i := len(name) + 1
		for ; i < len(s) && s[i] != '\n'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			v.WriteByte(s[i])
		}
		vars[name] = v.String()
		s = s[min(i+1, len(s)):]
	}
	return vars
}

// ParseComplete parses a state file and reports whether it holds the
// whole state, every variable well formed: the boot script uses StateFile
// only then, else the agent's copy if that is complete, else the defaults
// (a torn or zeroed file parses, but lacks variables; a garbage one does
// not parse).
func ParseComplete(data []byte) (State, bool) {
	st, err := ParseState(data)
	if err != nil {
		return st, false
	}
	vars := importText(data)
	for _, k := range []string{"BOOT_ORDER", "BOOT_A_LEFT", "BOOT_B_LEFT"} {
		if _, ok := vars[k]; !ok {
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
