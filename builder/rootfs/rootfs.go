// Package rootfs turns a bootstrapped Debian base (a tar from mmdebstrap)
// into the root filesystem of an image, as a tar stream: it sets the host
// name, adds users with SSH keys, copies overlays with the modes and owners
// asked for, installs and enables systemd units and drops files that must
// not be in a read-only image. The stream is then packed by tar2sqfs.
//
// Every entry is normalised the same way (mtime clamped to
// SOURCE_DATE_EPOCH, no atime/ctime, numeric ids from the image's own
// account files, new entries in sorted order), so the output depends only
// on its inputs. Limits: the base must be an uncompressed tar; overlays may
// hold regular files, directories and symlinks only.
package rootfs

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// Overlay is a host folder copied into the image at Dest.
type Overlay struct {
	Name      string // for messages
	Dir       string // host folder
	Dest      string // absolute path in the image
	Owner     string // default user:group of every entry
	Overrides map[string]Override
}

// Override sets the mode and/or owner of one overlay path (relative to Dir).
type Override struct {
	Mode  int64 // -1: keep the default
	Owner string
}

// Unit is a systemd unit file to install into /etc/systemd/system.
type Unit struct {
	Name   string
	Data   []byte
	Enable bool
}

// File is an extra file, folder (Dir) or symlink (Link) written into the
// image, owned by root.
type File struct {
	Path string // absolute
	Data []byte
	Mode int64
	Dir  bool
	Link string
}

// Spec is everything that shapes the root filesystem beyond the base.
type Spec struct {
	Epoch    int64
	Hostname string
	// Sources is /etc/apt/sources.list: the archives the image's
	// packages came from (builder/debian.SourcesList).
	Sources  []byte
	Users    []User
	Overlays []Overlay
	Units    []Unit
	Files    []File
	Trees    []Tree
}

// Tree is a whole folder tree added under Dest (which the base must not
// have): the entries of a tar file with relative names, written in the
// file's order after everything else, owners and modes as they are
// (a container's flattened image).
type Tree struct {
	Dest string // absolute
	Tar  string // host path of the tar file
}

// Package is an installed Debian package, read from the dpkg status.
type Package struct {
	Name, Version, Arch string
}

// Result describes what was written.
type Result struct {
	Packages      []Package
	KernelVersion string
	Kernel        []byte            // /boot/vmlinuz-<version>
	DTBs          map[string][]byte // file name -> contents, from usr/lib/linux-image-<version>/broadcom
	KernelConfig  []byte            // /boot/config-<version>
	// modules.dep, modules.builtin and modules.alias of the kernel, for
	// the initramfs.
	ModulesDep, ModulesBuiltin, ModulesAlias []byte
	Entries                                  int
}

func key(name string) string {
	return strings.Trim(strings.TrimPrefix(name, "./"), "/")
}

// dropped reports paths of the base that never go into an image: contents
// of /tmp and /run (tmpfs at run time; the build's mount points show up
// there), apt's download leftovers, and the SSH host keys openssh-server's
// postinst generated at bootstrap (random, and they would be shared by every
// device: each device makes its own on first boot), the initramfs the
// kernel's postinst hook made (pibake boots its own; that one is not
// reproducible and would only take space), and the kernel image itself
// (/boot/vmlinuz-V, or /usr/lib/modules/V/vmlinuz in the new layout): the
// boot slot carries the one that boots, nothing on the device reads a
// second copy, and it made every kernel update download the kernel twice
// (13 MB of the root's 104 MB in a security kernel update). Its config
// and the modules stay.
func dropped(k string) bool {
	for _, p := range []string{"tmp/", "run/", "var/tmp/", "var/cache/apt/archives/partial/", "etc/ssh/ssh_host_", "boot/initrd.img", "boot/vmlinuz-"} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	if v, f, ok := kernelPath(k); ok && f == "vmlinuz" && k == "usr/lib/modules/"+v+"/vmlinuz" {
		return true
	}
	return strings.HasPrefix(k, "var/cache/apt/archives/") && strings.HasSuffix(k, ".deb")
}

// Base is a scanned base tar.
type Base struct {
	path string
	info *baseInfo
	// Result describes the base: packages, kernel, device trees.
	Result
}

// Scan reads the base tar once for what the transform and the boot
// partitions need.
func Scan(ctx context.Context, baseTar string) (*Base, error) {
	info, res, err := scanBase(ctx, baseTar)
	if err != nil {
		return nil, err
	}
	return &Base{path: baseTar, info: info, Result: *res}, nil
}

// Write streams the finished root filesystem as a tar to w and returns the
// number of entries written: the base's entries in the base's order (each
// replaced, dropped or kept), then the new entries, parents first, in
// sorted order, then the trees.
func (b *Base) Write(ctx context.Context, spec Spec, w io.Writer) (int, error) {
	// plan edits the account tables: work on a copy so Write can run twice.
	info := *b.info
	acc := *b.info.accounts
	acc.passwd, acc.group = cloneDB(acc.passwd), cloneDB(acc.group)
	acc.shadow, acc.gshadow = cloneDB(acc.shadow), cloneDB(acc.gshadow)
	info.accounts = &acc
	base := &info
	changes, err := plan(spec, base)
	if err != nil {
		return 0, err
	}
	o := &out{tw: tar.NewWriter(w), epoch: time.Unix(spec.Epoch, 0).UTC(), written: map[string]bool{}}
	if err := o.copyBase(ctx, b.path, changes); err != nil {
		return 0, err
	}
	if err := o.addNew(changes, base); err != nil {
		return 0, err
	}
	for _, t := range spec.Trees {
		if err := o.writeTree(ctx, t, base); err != nil {
			return 0, err
		}
	}
	if err := o.tw.Close(); err != nil {
		return 0, fmt.Errorf("rootfs: finish tar: %w", err)
	}
	return o.entries, nil
}
