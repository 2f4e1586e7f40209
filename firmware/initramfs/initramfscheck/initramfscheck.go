// Package initramfscheck checks a built initramfs against what the
// board's device trees say its root storage needs: every module of
// initramfs.ModuleDB.StorageModules must be among the modules the
// initramfs loads. Only tests import it.
package initramfscheck

import (
	"fmt"

	"github.com/pibake/pibake/firmware/initramfs"
)

// CheckLoaded reports the first need whose module is not among the loaded
// module files (as ModuleDB.Closure returns them).
func CheckLoaded(needs []initramfs.Need, loaded []string) error {
	have := map[string]bool{}
	for _, p := range loaded {
		have[initramfs.ModuleName(p)] = true
	}
	for _, n := range needs {
		if !have[n.Module] {
			via := n.Via
			if via == "" {
				via = "the storage controller itself"
			}
			return fmt.Errorf("%s: %s (%s) needs module %s, which the initramfs lacks", n.DTB, n.Node, via, n.Module)
		}
	}
	return nil
}
