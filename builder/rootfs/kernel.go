package rootfs

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// A kernel package puts its files in one of two places:
//
//	old (trixie's 6.12): /boot/vmlinuz-V, /boot/config-V,
//	                     /usr/lib/linux-image-V/broadcom/*.dtb
//	new (7.x, trixie-backports): /usr/lib/modules/V/vmlinuz,
//	                     /usr/lib/modules/V/config,
//	                     /usr/lib/modules/V/dtb/broadcom/*.dtb
//
// (the new packages may add /boot/vmlinuz-V as a symlink: only regular
// files are read). kernelPath reads both.

// kernelPath says which kernel file a base path is: its kernel version
// and "vmlinuz", "config" or the name of a Pi device tree.
func kernelPath(p string) (version, file string, ok bool) {
	switch {
	case strings.HasPrefix(p, "boot/vmlinuz-"):
		return strings.TrimPrefix(p, "boot/vmlinuz-"), "vmlinuz", true
	case strings.HasPrefix(p, "boot/config-"):
		return strings.TrimPrefix(p, "boot/config-"), "config", true
	}
	var rest string
	var dtbDir string
	switch {
	case strings.HasPrefix(p, "usr/lib/linux-image-"):
		rest, dtbDir = strings.TrimPrefix(p, "usr/lib/linux-image-"), "broadcom/"
	case strings.HasPrefix(p, "usr/lib/modules/"):
		rest, dtbDir = strings.TrimPrefix(p, "usr/lib/modules/"), "dtb/broadcom/"
	default:
		return "", "", false
	}
	v, f, found := strings.Cut(rest, "/")
	if !found || v == "" {
		return "", "", false
	}
	if dtbDir == "dtb/broadcom/" && (f == "vmlinuz" || f == "config") {
		return v, f, true
	}
	if strings.HasPrefix(f, dtbDir) && strings.HasSuffix(f, ".dtb") && !strings.Contains(strings.TrimPrefix(f, dtbDir), "/") {
		return v, path.Base(f), true
	}
	return "", "", false
}

// kernelFiles collects the kernel files of a base, by version.
type kernelFiles map[string]map[string][]byte

// add reads the file at base path p when it is a kernel file.
func (kf kernelFiles) add(p string, read func() ([]byte, error)) error {
	v, f, ok := kernelPath(p)
	if !ok {
		return nil
	}
	data, err := read()
	if err != nil {
		return fmt.Errorf("rootfs: read %s: %w", p, err)
	}
	if kf[v] == nil {
		kf[v] = map[string][]byte{}
	}
	kf[v][f] = data
	return nil
}

// pick puts the one kernel of the base, its config and its device trees
// into res; a base with kernels of several versions is refused.
func (kf kernelFiles) pick(res *Result) error {
	var versions []string
	for v, files := range kf {
		if files["vmlinuz"] != nil {
			versions = append(versions, v)
		}
	}
	sort.Strings(versions)
	switch {
	case len(versions) > 1:
		return fmt.Errorf("rootfs: base has %d kernels (%s); install exactly one linux-image package", len(versions), strings.Join(versions, ", "))
	case len(versions) == 0:
		return nil
	}
	v := versions[0]
	res.KernelVersion = v
	for f, data := range kf[v] {
		switch f {
		case "vmlinuz":
			res.Kernel = data
		case "config":
			res.KernelConfig = data
		default:
			res.DTBs[f] = data
		}
	}
	return nil
}
