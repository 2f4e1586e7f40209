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
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
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
	Epoch      int64
	Hostname   string
	Mirror     string
	Suite      string
	Components []string
	Users      []User
	Overlays   []Overlay
	Units      []Unit
	Files      []File
	Trees      []Tree
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

type entry struct {
	hdr  tar.Header
	data []byte
	// implied marks a directory the change only implies (an overlay folder
	// with default metadata): a base directory at that path is kept as is.
	implied bool
}

func key(name string) string {
	return strings.Trim(strings.TrimPrefix(name, "./"), "/")
}

// dropped reports paths of the base that never go into an image: contents
// of /tmp and /run (tmpfs at run time; the build's mount points show up
// there), apt's download leftovers, and the SSH host keys openssh-server's
// postinst generated at bootstrap (random, and they would be shared by every
// device: each device makes its own on first boot), and the initramfs the
// kernel's postinst hook made (pibake boots its own; that one is not
// reproducible and would only take space).
func dropped(k string) bool {
	for _, p := range []string{"tmp/", "run/", "var/tmp/", "var/cache/apt/archives/partial/", "etc/ssh/ssh_host_", "boot/initrd.img"} {
		if strings.HasPrefix(k, p) {
			return true
		}
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
// number of entries written.
func (b *Base) Write(ctx context.Context, spec Spec, w io.Writer) (int, error) {
	epoch := time.Unix(spec.Epoch, 0).UTC()
	baseTar := b.path
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
	res := &Result{}

	f, err := os.Open(baseTar)
	if err != nil {
		return 0, fmt.Errorf("rootfs: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	tw := tar.NewWriter(w)
	written := map[string]bool{}
	put := func(h *tar.Header, r io.Reader) error {
		normalize(h, epoch)
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("rootfs: write %s: %w", h.Name, err)
		}
		if r != nil && h.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, r); err != nil {
				return fmt.Errorf("rootfs: write %s: %w", h.Name, err)
			}
		}
		written[key(h.Name)] = true
		res.Entries++
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("rootfs: read base %s: %w", baseTar, err)
		}
		k := key(h.Name)
		if dropped(k) {
			continue
		}
		if c, ok := changes[k]; ok {
			delete(changes, k)
			if c == nil {
				continue // removed
			}
			hc := c.hdr
			hc.Name = h.Name
			if err := put(&hc, strings.NewReader(string(c.data))); err != nil {
				return 0, err
			}
			continue
		}
		if err := put(h, tr); err != nil {
			return 0, err
		}
	}
	// New entries, parents first, in sorted order.
	keys := make([]string, 0, len(changes))
	for k, c := range changes {
		if c != nil {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, p := range parents(k) {
			if !written[p] && !base.paths[p] {
				if err := put(&tar.Header{Name: "./" + p + "/", Typeflag: tar.TypeDir, Mode: 0o755}, nil); err != nil {
					return 0, err
				}
			}
		}
		c := changes[k]
		h := c.hdr
		h.Name = "./" + k
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		if err := put(&h, strings.NewReader(string(c.data))); err != nil {
			return 0, err
		}
	}
	for _, t := range spec.Trees {
		if err := writeTree(ctx, t, base, written, put); err != nil {
			return 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return 0, fmt.Errorf("rootfs: finish tar: %w", err)
	}
	return res.Entries, nil
}

// writeTree adds the entries of t's tar under t.Dest.
func writeTree(ctx context.Context, t Tree, base *baseInfo, written map[string]bool, put func(*tar.Header, io.Reader) error) error {
	dest := key(t.Dest)
	if base.paths[dest] || written[dest] {
		return fmt.Errorf("rootfs: %s is already in the image: a tree cannot replace it", t.Dest)
	}
	for _, p := range append(parents(dest), dest) {
		if !written[p] && !base.paths[p] {
			if err := put(&tar.Header{Name: "./" + p + "/", Typeflag: tar.TypeDir, Mode: 0o755}, nil); err != nil {
				return err
			}
		}
	}
	f, err := os.Open(t.Tar)
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("rootfs: read %s: %w", t.Tar, err)
		}
		k := key(h.Name)
		if k == "" || k == ".." || strings.HasPrefix(k, "../") || strings.Contains(k, "/../") {
			return fmt.Errorf("rootfs: %s: entry %q leaves its folder", t.Tar, h.Name)
		}
		h.Name = "./" + dest + "/" + k
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		if h.Typeflag == tar.TypeLink {
			h.Linkname = "./" + dest + "/" + key(h.Linkname)
		}
		if err := put(h, tr); err != nil {
			return err
		}
	}
}

func parents(k string) []string {
	var out []string
	for d := path.Dir(k); d != "." && d != "/"; d = path.Dir(d) {
		out = append(out, d)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// normalize is the one place that makes an entry reproducible. An entry
// keeps only its type, name, link, size, mode, numeric owner, device
// numbers, its modification time clamped to epoch and whole seconds, and
// its PAX records but times and POSIX ACLs. Extended attributes travel in
// PAXRecords ("SCHILY.xattr." and the name); the reader also copies them
// into the deprecated Xattrs field, which the writer would write back, so
// the header is rebuilt without it.
func normalize(h *tar.Header, epoch time.Time) {
	mt := h.ModTime
	if mt.IsZero() || mt.After(epoch) {
		mt = epoch
	}
	for k := range h.PAXRecords {
		// POSIX ACLs (systemd sets them on /var/log/journal) cannot be
		// stored in squashfs; systemd-tmpfiles applies them again at boot.
		if k == "atime" || k == "ctime" || k == "mtime" || strings.HasPrefix(k, "SCHILY.xattr.system.posix_acl_") {
			delete(h.PAXRecords, k)
		}
	}
	*h = tar.Header{
		Typeflag:   h.Typeflag,
		Name:       h.Name,
		Linkname:   h.Linkname,
		Size:       h.Size,
		Mode:       h.Mode,
		Uid:        h.Uid,
		Gid:        h.Gid,
		ModTime:    mt.Truncate(time.Second),
		Devmajor:   h.Devmajor,
		Devminor:   h.Devminor,
		PAXRecords: h.PAXRecords,
		Format:     tar.FormatPAX,
	}
}

func fileEntry(p string, data []byte, mode int64, uid, gid int) *entry {
	return &entry{hdr: tar.Header{Typeflag: tar.TypeReg, Mode: mode, Uid: uid, Gid: gid, Size: int64(len(data))}, data: data}
}

func dirEntry(mode int64, uid, gid int) *entry {
	return &entry{hdr: tar.Header{Typeflag: tar.TypeDir, Mode: mode, Uid: uid, Gid: gid}}
}

func linkEntry(target string) *entry {
	return &entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}}
}

// plan computes every path to replace (non-nil), add (non-nil, not in base)
// or remove (nil) relative to the base.
func plan(spec Spec, base *baseInfo) (map[string]*entry, error) {
	ch := map[string]*entry{}
	acc := base.accounts
	lastChange := spec.Epoch / 86400

	ch["etc/hostname"] = fileEntry("etc/hostname", []byte(spec.Hostname+"\n"), 0o644, 0, 0)
	ch["etc/hosts"] = fileEntry("etc/hosts", []byte(fmt.Sprintf("127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\t\tlocalhost ip6-localhost ip6-loopback\n", spec.Hostname)), 0o644, 0, 0)
	ch["etc/apt/sources.list"] = fileEntry("etc/apt/sources.list", []byte(fmt.Sprintf("deb %s %s %s\n", spec.Mirror, spec.Suite, strings.Join(spec.Components, " "))), 0o644, 0, 0)

	for _, u := range spec.Users {
		uid, gid, err := acc.addUser(u, lastChange)
		if err != nil {
			return nil, fmt.Errorf("rootfs: %w", err)
		}
		home := "home/" + u.Name
		ch[home] = dirEntry(0o750, uid, gid)
		if len(u.SSHKeys) > 0 {
			ch[home+"/.ssh"] = dirEntry(0o700, uid, gid)
			ch[home+"/.ssh/authorized_keys"] = fileEntry("", []byte(strings.Join(u.SSHKeys, "\n")+"\n"), 0o600, uid, gid)
		}
	}
	if len(spec.Users) > 0 {
		ch["etc/passwd"] = fileEntry("", formatDB(acc.passwd), 0o644, 0, 0)
		ch["etc/group"] = fileEntry("", formatDB(acc.group), 0o644, 0, 0)
		shadowGID, _ := resolveID(acc.group, "shadow", 2)
		ch["etc/shadow"] = fileEntry("", formatDB(acc.shadow), 0o640, 0, shadowGID)
		ch["etc/gshadow"] = fileEntry("", formatDB(acc.gshadow), 0o640, 0, shadowGID)
	}

	for _, o := range spec.Overlays {
		if err := planOverlay(ch, o, acc); err != nil {
			return nil, err
		}
	}

	for _, u := range spec.Units {
		ch["etc/systemd/system/"+u.Name] = fileEntry("", u.Data, 0o644, 0, 0)
		if !u.Enable {
			continue
		}
		links, err := enableLinks(u.Name, u.Data)
		if err != nil {
			return nil, fmt.Errorf("rootfs: enable %w", err)
		}
		for p, t := range links {
			ch[p] = linkEntry(t)
		}
	}
	for _, f := range spec.Files {
		switch {
		case f.Dir:
			ch[key(f.Path)] = dirEntry(f.Mode, 0, 0)
		case f.Link != "":
			ch[key(f.Path)] = linkEntry(f.Link)
		default:
			ch[key(f.Path)] = fileEntry("", f.Data, f.Mode, 0, 0)
		}
	}
	// Keep existing directories' metadata when a change only implies them.
	for k, c := range ch {
		if c != nil && c.implied && base.dirs[k] {
			delete(ch, k)
		}
	}
	return ch, checkAgainstBase(ch, base)
}

// checkAgainstBase refuses changes the base's shape cannot take: a path
// that goes through a symlink of the base (merged /usr: /lib -> usr/lib),
// and a base folder replaced by something that is not a folder.
func checkAgainstBase(ch map[string]*entry, base *baseInfo) error {
	keys := make([]string, 0, len(ch))
	for k := range ch {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c := ch[k]
		if c == nil {
			continue
		}
		for _, p := range append(parents(k), k) {
			t, ok := base.symlinks[p]
			if !ok || (p == k && c.hdr.Typeflag == tar.TypeSymlink) {
				continue
			}
			if p == k && c.hdr.Typeflag == tar.TypeReg {
				break // a file replacing a symlink is fine (e.g. /etc/resolv.conf)
			}
			return fmt.Errorf("rootfs: /%s: /%s is a symlink to %s in the base; put the files under the link's target instead", k, p, t)
		}
		if base.dirs[k] && c.hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("rootfs: /%s is a folder in the base and cannot be replaced by a file or symlink", k)
		}
	}
	return nil
}

func planOverlay(ch map[string]*entry, o Overlay, acc *accounts) error {
	duid, dgid, err := acc.lookup(o.Owner)
	if err != nil {
		return fmt.Errorf("rootfs: overlay %s: %w", o.Name, err)
	}
	return filepath.WalkDir(o.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("rootfs: overlay %s: %w", o.Name, err)
		}
		rel, err := filepath.Rel(o.Dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		dest := key(path.Join(o.Dest, rel))
		if dest == "" {
			return nil // the overlay root itself maps onto an existing folder
		}
		uid, gid := duid, dgid
		ov, explicit := o.Overrides[rel]
		if explicit && ov.Owner != "" {
			if uid, gid, err = acc.lookup(ov.Owner); err != nil {
				return fmt.Errorf("rootfs: overlay %s: %s: %w", o.Name, rel, err)
			}
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("rootfs: overlay %s: %w", o.Name, err)
		}
		var e *entry
		switch {
		case d.IsDir():
			e = dirEntry(0o755, uid, gid)
			e.implied = !explicit
		case info.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("rootfs: overlay %s: %w", o.Name, err)
			}
			e = linkEntry(t)
			e.hdr.Uid, e.hdr.Gid = uid, gid
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("rootfs: overlay %s: %w", o.Name, err)
			}
			// Only the executable bit comes from the checkout: git keeps
			// nothing else, and umask differs between machines.
			mode := int64(0o644)
			if info.Mode()&0o111 != 0 {
				mode = 0o755
			}
			e = fileEntry("", data, mode, uid, gid)
		default:
			return fmt.Errorf("rootfs: overlay %s: %s is not a file, folder or symlink", o.Name, rel)
		}
		if explicit && ov.Mode >= 0 {
			e.hdr.Mode = ov.Mode
		}
		if prev, ok := ch[dest]; ok && prev != nil && e.implied && prev.hdr.Typeflag == tar.TypeDir {
			return nil // a folder an earlier step made (a home, a named folder) keeps its metadata
		}
		ch[dest] = e
		return nil
	})
}
