package rootfs

import (
	"archive/tar"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// entry is a planned change: the header and contents of a path to write.
type entry struct {
	hdr  tar.Header
	data []byte
	// implied marks a directory the change only implies (an overlay folder
	// with default metadata): a base directory at that path is kept as is.
	implied bool
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
	ch["etc/apt/sources.list"] = fileEntry("etc/apt/sources.list", spec.Sources, 0o644, 0, 0)

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
