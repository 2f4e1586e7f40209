package initramfs

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pibake/pibake/firmware/fdt"
)

// Which modules a board's root storage needs is not in modules.dep: a
// controller waits for its regulators, clocks and power domains through
// device-tree links, not symbol dependencies. So the initramfs follows the
// links of the storage controller in every device tree the board ships and
// carries the driver of each device on the way, matched by modalias.
//
// modules.alias lists only loadable modules (built-in drivers have no OF
// aliases in modules.builtin.modinfo): a device no module claims is taken
// to be driven by the kernel itself (pin control, the firmware mailbox, a
// fixed clock), except the storage controller, which must have a module.

// alias is one "alias of:... module" line of modules.alias.
type alias struct{ pattern, module string }

// ParseAliases reads the OF entries of modules.alias.
func (db *ModuleDB) ParseAliases(data []byte) error {
	for i, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "alias" || !strings.HasPrefix(line, "alias of:") {
			continue
		}
		if len(f) != 3 {
			return fmt.Errorf("modules.alias line %d: %q", i+1, line)
		}
		db.aliases = append(db.aliases, alias{f[1], strings.ReplaceAll(f[2], "-", "_")})
	}
	return nil
}

// ModuleFor returns the modules whose device tables match the node.
func (db *ModuleDB) ModuleFor(n *fdt.Node) []string {
	ma := n.Modalias()
	seen := map[string]bool{}
	var out []string
	for _, a := range db.aliases {
		if !seen[a.module] && glob(a.pattern, ma) {
			seen[a.module] = true
			out = append(out, a.module)
		}
	}
	sort.Strings(out)
	return out
}

// glob matches a modalias pattern, where only '*' is special.
func glob(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := len(parts) - 1
	for i := 1; i < last; i++ {
		j := strings.Index(s, parts[i])
		if j < 0 {
			return false
		}
		s = s[j+len(parts[i]):]
	}
	if last == 0 {
		return s == ""
	}
	return strings.HasSuffix(s, parts[last])
}

// Need is a driver a storage controller depends on.
type Need struct {
	DTB, Node, Via string
	Module         string
}

// StorageModules returns the modules the storage controllers (by
// compatible) of one device tree need, with why each is needed. It is an
// error if the tree has no enabled storage controller of the board, or the
// kernel has no module for it.
func (db *ModuleDB) StorageModules(dtbName string, tree *fdt.Tree, storage []string) ([]Need, error) {
	var start []*fdt.Node
	for _, c := range storage {
		for _, n := range tree.Compatible(c) {
			if n.Enabled() {
				start = append(start, n)
			}
		}
	}
	if len(start) == 0 {
		return nil, fmt.Errorf("%s has no enabled storage controller (compatible %s): the root filesystem could not be found on that board", dtbName, strings.Join(storage, " or "))
	}
	for _, n := range start {
		if len(db.ModuleFor(n)) == 0 {
			return nil, fmt.Errorf("%s: the kernel has no driver module for the storage controller %s (%s): this kernel cannot read the card on that board",
				dtbName, n.Path(), strings.Join(n.Strings("compatible"), ", "))
		}
	}
	var needs []Need
	for _, d := range tree.Closure(start...) {
		for _, m := range db.ModuleFor(d.Node) {
			if db.builtin[m] {
				continue
			}
			needs = append(needs, Need{DTB: dtbName, Node: d.Node.Path(), Via: strings.Join(d.Via, " -> "), Module: m})
		}
	}
	return needs, nil
}
