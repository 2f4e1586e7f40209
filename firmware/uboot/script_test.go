package uboot

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/pibake/pibake/bootchain"
)

// The U-Boot script the builder generates and the Go model the agent and
// its tests use (State.boot) must agree on every state: this file runs
// the generated script in a small interpreter of the hush subset it uses
// (if/elif/fi, for/do/done, test, setenv, setexpr, load, env import and
// export, fatwrite, echo, reset, booti) and compares the slot it boots and
// the pibake.env it writes with the model's.

type hush struct {
	env   map[string]string
	mem   map[string]string // address → bytes
	files map[string]string // bootsel files
	out   []string
	// fdts are the device trees in memory, by address: node path →
	// property → value (U-Boot's control tree is the firmware's);
	// fdtWork is the address 'fdt addr' made the working tree.
	fdts    map[string]map[string]map[string]string
	fdtWork string
	loaded  []string // the slot files loaded, in order
	fdtfile string   // ${fdtfile} as U-Boot sets it ("": broadcom/x.dtb)
}

type stop struct{ why, slot, bootargs string }

type node struct {
	cmd    string // simple command
	conds  []string
	bodies [][]node // if: one body per cond, then else
	forVar string
	words  string
}

// statements splits the script into commands at newlines and at
// semicolons outside quotes, with keywords split off their commands.
func statements(script string) []string {
	var out []string
	for _, line := range strings.Split(script, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var cur strings.Builder
		quoted := false
		flush := func() {
			s := strings.TrimSpace(cur.String())
			cur.Reset()
			for _, kw := range []string{"then ", "do ", "else "} {
				if strings.HasPrefix(s, kw) {
					out = append(out, strings.TrimSpace(kw))
					s = strings.TrimSpace(s[len(kw):])
				}
			}
			if s != "" {
				out = append(out, s)
			}
		}
		for _, r := range line {
			switch {
			case r == '"':
				quoted = !quoted
				cur.WriteRune(r)
			case r == ';' && !quoted:
				flush()
			default:
				cur.WriteRune(r)
			}
		}
		flush()
	}
	return out
}

func parse(st []string, i int, until ...string) ([]node, int) {
	var body []node
	for i < len(st) {
		s := st[i]
		word := strings.Fields(s)[0]
		for _, u := range until {
			if word == u {
				return body, i
			}
		}
		switch word {
		case "if":
			n := node{}
			cond := strings.TrimPrefix(s, "if ")
			for {
				if st[i+1] != "then" {
					panic("no then after " + cond)
				}
				b, j := parse(st, i+2, "elif", "else", "fi")
				n.conds, n.bodies = append(n.conds, cond), append(n.bodies, b)
				i = j
				w := strings.Fields(st[i])[0]
				if w == "elif" {
					cond = strings.TrimPrefix(st[i], "elif ")
					continue
				}
				if w == "else" {
					b, j := parse(st, i+1, "fi")
					n.bodies = append(n.bodies, b)
					i = j
				}
				break
			}
			body = append(body, n)
			i++ // fi
		case "for":
			f := strings.Fields(s)
			n := node{forVar: f[1], words: strings.Join(f[3:], " ")}
			if st[i+1] != "do" {
				panic("no do")
			}
			b, j := parse(st, i+2, "done")
			n.bodies = [][]node{b}
			body = append(body, n)
			i = j + 1
		default:
			body = append(body, node{cmd: s})
			i++
		}
	}
	return body, i
}

func (h *hush) expand(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.Index(s[i:], "}")
		b.WriteString(s[:i])
		b.WriteString(h.env[s[i+2:i+j]])
		s = s[i+j+1:]
	}
}

// words splits a command into words, quotes kept together, then expands.
func (h *hush) words(s string) []string {
	var out []string
	var cur strings.Builder
	quoted, any := false, false
	for _, r := range s + " " {
		switch {
		case r == '"':
			quoted, any = !quoted, true
		case r == ' ' && !quoted:
			if any || cur.Len() > 0 {
				w := h.expand(cur.String())
				if w != "" || any {
					out = append(out, w)
				}
			}
			cur.Reset()
			any = false
		default:
			cur.WriteRune(r)
		}
	}
	return out
}

func (h *hush) run(body []node) {
	for _, n := range body {
		switch {
		case n.cmd != "":
			h.exec(n.cmd)
		case n.forVar != "":
			for _, w := range strings.FieldsFunc(strings.Join(h.words(n.words), " "), func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' }) {
				h.env[n.forVar] = w
				h.run(n.bodies[0])
			}
		default:
			done := false
			for k, c := range n.conds {
				if h.exec(c) {
					h.run(n.bodies[k])
					done = true
					break
				}
			}
			if !done && len(n.bodies) > len(n.conds) {
				h.run(n.bodies[len(n.conds)])
			}
		}
	}
}

func hexval(s string) int64 { n, _ := strconv.ParseInt(strings.TrimPrefix(s, "0x"), 16, 64); return n }

func (h *hush) exec(cmd string) bool {
	w := h.words(cmd)
	switch w[0] {
	case "setenv":
		if len(w) == 2 {
			delete(h.env, w[1])
		} else {
			h.env[w[1]] = strings.Join(w[2:], " ")
		}
	case "setexpr": // setexpr NAME A - B, hexadecimal as U-Boot's
		h.env[w[1]] = fmt.Sprintf("%x", hexval(w[2])-hexval(w[4]))
	case "test":
		switch {
		case w[1] == "-z":
			return len(w) < 3 || w[2] == ""
		case w[1] == "-n":
			return len(w) > 2 && w[2] != ""
		case w[2] == "=":
			return w[1] == w[3]
		case w[2] == "!=":
			return w[1] != w[3]
		case w[2] == "-gt":
			a, _ := strconv.Atoi(w[1])
			b, _ := strconv.Atoi(w[3])
			return a > b
		}
		panic("test " + cmd)
	case "load": // load dev dev:part addr file
		part := w[2][strings.Index(w[2], ":")+1:]
		if part == "1" {
			data, ok := h.files[w[4]]
			if ok {
				h.mem[w[3]] = data
				h.env["filesize"] = fmt.Sprintf("%x", len(data))
			}
			return ok
		}
		h.env["filesize"] = "1000"
		h.loaded = append(h.loaded, w[4])
		return w[4] != "" // a kernel, initramfs or device tree of the slot
	case "fdt":
		return h.fdt(w[1:])
	case "env":
		if w[1] == "import" { // env import -t addr size vars...: up to the first NUL
			data, _, _ := strings.Cut(h.mem[w[3]][:hexval(w[4])], "\x00")
			vals := map[string]string{}
			for _, l := range strings.Split(data, "\n") {
				// Leading blanks skipped; a name without a value
				// (no =, or nothing after it) deleted.
				k, v, _ := strings.Cut(strings.TrimLeft(l, " \t"), "=")
				if v == "" {
					delete(vals, k)
					continue
				}
				vals[k] = v
			}
			for _, k := range w[5:] {
				if v, ok := vals[k]; ok {
					h.env[k] = v
				} else {
					delete(h.env, k)
				}
			}
			return true
		}
		keys := append([]string(nil), w[4:]...)
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "%s=%s\n", k, h.env[k])
		}
		b.WriteByte(0)
		h.mem[w[3]] = b.String()
		h.env["filesize"] = fmt.Sprintf("%x", b.Len())
	case "fatwrite": // fatwrite dev dev:1 addr file size
		h.files[w[4]] = h.mem[w[3]][:hexval(w[5])]
	case "echo":
		h.out = append(h.out, strings.Join(w[1:], " "))
	case "reset":
		panic(stop{why: "reset"})
	case "booti":
		panic(stop{why: "booti", slot: h.env["pibake_slot"], bootargs: h.env["bootargs"]})
	default:
		panic("unknown command " + w[0])
	}
	return true
}

// fdt is U-Boot 2025.01's fdt command as far as the script uses it:
// 'fdt addr ADDR' (fails without a tree there) and 'fdt get value VAR
// PATH PROP' (fails, leaving VAR alone, without the node or property).
func (h *hush) fdt(w []string) bool {
	switch {
	case len(w) == 2 && w[0] == "addr":
		if h.fdts[w[1]] == nil {
			return false
		}
		h.fdtWork = w[1]
		return true
	case len(w) == 5 && w[0] == "get" && w[1] == "value":
		v, ok := h.fdts[h.fdtWork][w[3]][w[4]]
		if ok {
			h.env[w[2]] = v
		}
		return ok
	}
	panic("fdt " + strings.Join(w, " "))
}

// powerOn runs the script until it boots a slot, resetting as it asks,
// and returns the slot and the kernel command line it boots with; an
// error if it never does.
func (h *hush) powerOn(prog []node) (slot, bootargs string, err error) {
	for resets := 0; resets < 5; resets++ {
		h.env = map[string]string{"scriptaddr": "0x100", "fdtcontroladdr": "0x200", "fdtfile": "broadcom/x.dtb"}
		if h.fdtfile != "" {
			h.env["fdtfile"] = h.fdtfile
		}
		h.mem = map[string]string{}
		h.loaded = nil
		var s stop
		func() {
			defer func() {
				if r := recover(); r != nil {
					var ok bool
					if s, ok = r.(stop); !ok {
						panic(r)
					}
				}
			}()
			h.run(prog)
			s = stop{why: "end"}
		}()
		if s.why == "booti" {
			return s.slot, s.bootargs, nil
		}
		if s.why != "reset" {
			return "", "", fmt.Errorf("the script ended without booting: %v", h.out)
		}
	}
	return "", "", fmt.Errorf("the script reset 5 times: %.100q", h.out[0])
}

// modelBoot is what bootchain says the script does with the two files
// (nil: absent): StateFile if it holds the whole state, else the agent's
// copy if that does, else the defaults (the order updater/bootloader
// reads them in); then State.Boot.
func modelBoot(main, copy []byte) (bootchain.Slot, bootchain.State) {
	model, _ := bootchain.ParseState(nil)
	if st, ok := bootchain.ParseComplete(copy); ok {
		model = st
	}
	if st, ok := bootchain.ParseComplete(main); ok {
		model = st
	}
	return model.Boot()
}

// agree runs the script on the two files and reports where it and the
// model differ: the slot booted, the state written, the command line.
func agree(prog []node, main, copy []byte) error {
	h := &hush{files: map[string]string{}}
	if main != nil {
		h.files[bootchain.StateFile] = string(main)
	}
	if copy != nil {
		h.files[bootchain.AgentStateFile] = string(copy)
	}
	wantSlot, wantState := modelBoot(main, copy)
	got, bootargs, err := h.powerOn(prog)
	if err != nil {
		return fmt.Errorf("the model boots %s: %w", wantSlot, err)
	}
	gotState, err := bootchain.ParseState([]byte(h.files[bootchain.StateFile]))
	if err != nil {
		return fmt.Errorf("the script wrote %.100q: %w", h.files[bootchain.StateFile], err)
	}
	if got != string(wantSlot) || string(gotState.Marshal()) != string(wantState.Marshal()) {
		return fmt.Errorf("script boots %s and writes %.100q; the model boots %s and writes %.100q", got, gotState.Marshal(), wantSlot, wantState.Marshal())
	}
	// The init and the agent read the slot it boots from the command
	// line: bootchain's parser finds it, its root and the disk.
	if c, err := bootchain.ParseCmdline(bootargs); err != nil || c.Slot != wantSlot || c.RootPart != wantSlot.RootPartition() || c.Signature != 0x1234abcd {
		return fmt.Errorf("the script boots slot %s with %q, read as %+v (%v)", wantSlot, bootargs, c, err)
	}
	return nil
}

func testScript() []node {
	script := Script(ScriptParams{Signature: 0x1234abcd, Cmdline: "console=ttyS1", Kernel: "vmlinuz", Initrd: "initrd.img"})
	prog, _ := parse(statements(script), 0)
	return prog
}

func TestScriptMatchesModel(t *testing.T) {
	prog := testScript()
	n := 0
	// main: StateFile's bytes (nil: absent); copy: the agent's copy.
	check := func(name string, main []byte, copy *bootchain.State) {
		t.Helper()
		var c []byte
		if copy != nil {
			c = copy.Marshal()
		}
		if err := agree(prog, main, c); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		// The Pi 5's script (its D0 tree choice added) keeps the state
		// machine.
		if err := agree(pi5Script(), main, c); err != nil {
			t.Errorf("pi5 script, %s: %v", name, err)
		}
		n++
	}
	check("no state file", nil, nil)
	for _, order := range [][]bootchain.Slot{{bootchain.A, bootchain.B}, {bootchain.B, bootchain.A}} {
		for a := 0; a <= bootchain.MaxTries; a++ {
			for b := 0; b <= bootchain.MaxTries; b++ {
				st := bootchain.State{Order: order, Left: map[bootchain.Slot]int{bootchain.A: a, bootchain.B: b}}
				other := bootchain.State{Order: []bootchain.Slot{order[1], order[0]}, Left: map[bootchain.Slot]int{bootchain.A: bootchain.MaxTries - a, bootchain.B: bootchain.MaxTries - b}}
				check(fmt.Sprintf("%q", st.Marshal()), st.Marshal(), &other)
				// StateFile torn by U-Boot's own write: zeroed, half
				// written, or gone; the script must read the agent's copy.
				check(fmt.Sprintf("zeroed, copy %q", st.Marshal()), make([]byte, 40), &st)
				check(fmt.Sprintf("half, copy %q", st.Marshal()), []byte("BOOT_ORDER=B A\nBOOT_A_"), &st)
				check(fmt.Sprintf("absent, copy %q", st.Marshal()), nil, &st)
			}
		}
	}
	t.Logf("%d states: the generated script and the model agree", n)
}

// TestScriptGarbageOrder: a BOOT_ORDER (or a count) the model does not
// read, in the state file, in the agent's copy, or in both, never makes
// the script reset for ever: it boots what the model boots, a slot with
// tries left, and writes back a state the model reads.
func TestScriptGarbageOrder(t *testing.T) {
	prog := testScript()
	orders := []string{"", "C", "A C", "X Y", "A A", "B", "A B C", "a b", "A\tB", strings.Repeat("Z ", 4000) + "A B"}
	counts := []string{"", "x", "-1", "10", "3 ", "0x2"}
	n := 0
	for _, copyOK := range []bool{true, false} {
		good := bootchain.State{Order: []bootchain.Slot{bootchain.B, bootchain.A}, Left: map[bootchain.Slot]int{bootchain.A: 0, bootchain.B: 2}}
		copy := good.Marshal()
		for _, o := range orders {
			for a := 0; a <= bootchain.MaxTries; a++ {
				main := []byte(fmt.Sprintf("BOOT_ORDER=%s\nBOOT_A_LEFT=%d\nBOOT_B_LEFT=%d\n", o, a, bootchain.MaxTries-a))
				if !copyOK {
					copy = []byte(fmt.Sprintf("BOOT_ORDER=%s\nBOOT_A_LEFT=1\nBOOT_B_LEFT=1\n", o))
				}
				if err := agree(prog, main, copy); err != nil {
					t.Errorf("BOOT_ORDER=%.20q (%d bytes), copy %.60q: %v", o, len(o), copy, err)
				}
				n++
			}
		}
		for _, c := range counts {
			main := []byte(fmt.Sprintf("BOOT_ORDER=A B\nBOOT_A_LEFT=%s\nBOOT_B_LEFT=1\n", c))
			if !copyOK {
				copy = []byte(fmt.Sprintf("BOOT_ORDER=B A\nBOOT_A_LEFT=2\nBOOT_B_LEFT=%s\n", c))
			}
			if err := agree(prog, main, copy); err != nil {
				t.Errorf("BOOT_A_LEFT=%q, copy %q: %v", c, copy, err)
			}
			n++
		}
	}
	// The agent's copy holding part of the state: the defaults, not a mix.
	if err := agree(prog, nil, []byte("BOOT_ORDER=B A\n")); err != nil {
		t.Errorf("a copy with the order only: %v", err)
	}
	t.Logf("%d garbage states: the generated script and the model agree", n+1)
}

// pi5Script is the boot script as the builder generates it for the pi5
// board, with its variant (firmware.Boards; firmware's tests check those
// values against the kernel's trees).
func pi5Script() []node {
	d0 := FDTVariant{
		FDTFile: "broadcom/bcm2712-rpi-5-b.dtb",
		Node:    "/soc@107c000000/pinctrl@7d504100", Prop: "compatible", Value: "brcm,bcm2712d0-pinctrl",
		File: "broadcom/bcm2712-d-rpi-5-b.dtb",
	}
	script := Script(ScriptParams{Signature: 0x1234abcd, Cmdline: "console=ttyAMA10", Kernel: "vmlinuz", Initrd: "initrd.img", FDTVariants: []FDTVariant{d0}})
	prog, _ := parse(statements(script), 0)
	return prog
}

// The firmware's device trees as U-Boot gets them (its control tree) on
// the Pi 5's two steppings: the kernel's trees differ in their pinctrl
// nodes' compatible strings (measured on linux-image 7.3.4's
// bcm2712-rpi-5-b.dtb and bcm2712-d-rpi-5-b.dtb).
var (
	pi5C1Tree = map[string]map[string]string{"/soc@107c000000/pinctrl@7d504100": {"compatible": "brcm,bcm2712c0-pinctrl"}}
	pi5D0Tree = map[string]map[string]string{"/soc@107c000000/pinctrl@7d504100": {"compatible": "brcm,bcm2712d0-pinctrl"}}
)

// TestScriptPi5D0Tree: U-Boot 2025.01 sets ${fdtfile} to
// broadcom/bcm2712-rpi-5-b.dtb on every Pi 5 (board type 0x17, one
// entry); on a D0-stepping board the script must load the slot's
// bcm2712-d-rpi-5-b.dtb instead, which it can tell from the device tree
// the firmware handed U-Boot. Any other tree, or none, keeps U-Boot's
// choice, and other boards' ${fdtfile} is never touched.
func TestScriptPi5D0Tree(t *testing.T) {
	cases := []struct {
		name, fdtfile string
		control       map[string]map[string]string
		want          string
	}{
		{"Pi 5 C1", "broadcom/bcm2712-rpi-5-b.dtb", pi5C1Tree, "broadcom/bcm2712-rpi-5-b.dtb"},
		{"Pi 5 D0", "broadcom/bcm2712-rpi-5-b.dtb", pi5D0Tree, "broadcom/bcm2712-d-rpi-5-b.dtb"},
		{"Pi 5, no firmware tree", "broadcom/bcm2712-rpi-5-b.dtb", nil, "broadcom/bcm2712-rpi-5-b.dtb"},
		{"Pi 5, a tree without the node", "broadcom/bcm2712-rpi-5-b.dtb", map[string]map[string]string{"/": {"model": "Raspberry Pi 5"}}, "broadcom/bcm2712-rpi-5-b.dtb"},
		{"Pi 4 with a D0-looking tree", "broadcom/bcm2711-rpi-4-b.dtb", pi5D0Tree, "broadcom/bcm2711-rpi-4-b.dtb"},
	}
	prog := pi5Script()
	for _, c := range cases {
		h := &hush{files: map[string]string{}, fdtfile: c.fdtfile, fdts: map[string]map[string]map[string]string{}}
		if c.control != nil {
			h.fdts["0x200"] = c.control
		}
		slot, _, err := h.powerOn(prog)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		fdt := ""
		if len(h.loaded) == 3 {
			fdt = h.loaded[2]
		}
		if slot != string(bootchain.A) || fdt != c.want {
			t.Errorf("%s: the script boots slot %s with the slot's %q (loads %q); want slot %s with %q", c.name, slot, fdt, h.loaded, bootchain.A, c.want)
		}
	}
}
