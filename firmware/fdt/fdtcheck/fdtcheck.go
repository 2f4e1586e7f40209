// Package fdtcheck finds device-tree nodes by path, for tests that check
// or edit a known node of a parsed tree. The builder walks trees by
// compatible and phandle instead, so this lookup stays out of package
// fdt. Only tests import it.
package fdtcheck

import (
	"strings"

	"github.com/pibake/pibake/firmware/fdt"
)

// Lookup finds a node by its full path ("/emmc2bus/mmc@7e340000"), each
// part matched against a child's name with its unit address; nil if there
// is none. "/" is the root.
func Lookup(t *fdt.Tree, path string) *fdt.Node {
	n := t.Root
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		if part == "" {
			continue
		}
		var next *fdt.Node
		for _, c := range n.Children {
			if c.Name == part {
				next = c
				break
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}
