package initramfs

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Modules each board needs before the root filesystem is reachable. A
// module the kernel has built in is skipped; one it has neither built in
// nor as a module is an error.
// ext4 asks the crypto API for crc32c at mount time (a soft dependency
// modules.dep does not list), so crc32c_generic is named explicitly
// where the kernel has it (see Optional).
// The board's watchdog driver (WatchdogModules) comes first.
var Modules = map[string][]string{
	"qemu": {WatchdogModules["qemu"], "virtio_pci", "virtio_mmio", "virtio_blk", "squashfs", "crc32c_generic", "ext4", "overlay"},
	"pi3":  {WatchdogModules["pi3"], "mmc_block", "sdhci_iproc", "bcm2835", "squashfs", "crc32c_generic", "ext4", "overlay"},
	"pi4":  {WatchdogModules["pi4"], "mmc_block", "sdhci_iproc", "squashfs", "crc32c_generic", "ext4", "overlay"},
	// The SD controller's driver (sdhci-brcmstb) and what it hangs off
	// come from the device trees' storage node (the builder's walk).
	"pi5": {WatchdogModules["pi5"], "mmc_block", "squashfs", "crc32c_generic", "ext4", "overlay"},
}

// WatchdogModules is each board's hardware watchdog driver, which the
// init loads first and arms at once (bootinit): a boot that hangs
// without panicking is then reset, and the boot loader's try counter
// moves on. On the Pis, bcm2835_wdt is also the kernel's only way to
// reset the board (its restart handler: the Pi's device trees name no
// PSCI firmware), so without it in the initramfs, the init's "rebooting"
// after a failure and panic=10 before udev loads it halted the board
// instead. QEMU's virt has a watchdog only when given -device i6300esb (a
// PCI device, which no device tree names, so it is listed here).
var WatchdogModules = map[string]string{
	"qemu": "i6300esb",
	"pi3":  "bcm2835_wdt",
	"pi4":  "bcm2835_wdt",
	// The bcm2712's PM block (brcm,bcm2712-pm) carries the same watchdog.
	"pi5": "bcm2835_wdt",
}

// ModuleDB is what the kernel's modules.dep and modules.builtin say.
type ModuleDB struct {
	deps    map[string][]string // relative path -> dependency paths
	byName  map[string]string   // module name -> relative path
	builtin map[string]bool     // module names built into the kernel
	aliases []alias             // OF aliases of loadable modules (ParseAliases)
}

// ModuleName turns a module file ("kernel/fs/ext4/ext4.ko.xz") into the
// module's name ("ext4"), with '-' written as '_' since the kernel takes
// them as the same.
func ModuleName(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// ParseModuleDB reads modules.dep and modules.builtin.
func ParseModuleDB(dep, builtin []byte) (*ModuleDB, error) {
	db := &ModuleDB{deps: map[string][]string{}, byName: map[string]string{}, builtin: map[string]bool{}}
	for i, line := range strings.Split(string(dep), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		mod, deps, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("modules.dep line %d: %q", i+1, line)
		}
		db.deps[mod] = strings.Fields(deps)
		db.byName[ModuleName(mod)] = mod
	}
	for _, line := range strings.Split(string(builtin), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			db.builtin[ModuleName(line)] = true
		}
	}
	return db, nil
}

// Optional are the modules of Modules that only some kernels need: trixie's
// 6.12 ext4 takes crc32c from the crypto API (crc32c_generic), the 7.x
// kernels' ext4 calls the crc32c library, built in, and have no module of
// that name. Closure skips them when the kernel has neither.
var Optional = map[string]bool{"crc32c_generic": true}

// Closure returns the module files to load for the named modules,
// dependencies first, in a stable order.
func (db *ModuleDB) Closure(names []string) ([]string, error) {
	var order []string
	seen := map[string]bool{}
	var visit func(p string, stack []string) error
	visit = func(p string, stack []string) error {
		if seen[p] {
			return nil
		}
		for _, s := range stack {
			if s == p {
				return fmt.Errorf("module dependency loop at %s", p)
			}
		}
		deps := append([]string(nil), db.deps[p]...)
		sort.Strings(deps)
		for _, d := range deps {
			if err := visit(d, append(stack, p)); err != nil {
				return err
			}
		}
		seen[p] = true
		order = append(order, p)
		return nil
	}
	for _, n := range names {
		n = strings.ReplaceAll(n, "-", "_")
		p, ok := db.byName[n]
		if !ok {
			if db.builtin[n] || Optional[n] {
				continue
			}
			return nil, fmt.Errorf("the kernel has no module %s, neither built in nor loadable", n)
		}
		if err := visit(p, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}
