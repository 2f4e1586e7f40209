package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// out is the tar stream Write makes. Every entry goes through put, which
// normalises it and records its path in written.
type out struct {
	tw      *tar.Writer
	epoch   time.Time
	written map[string]bool
	entries int
}

// put writes one entry, its contents from r for a regular file.
func (o *out) put(h *tar.Header, r io.Reader) error {
	normalize(h, o.epoch)
	if err := o.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("rootfs: write %s: %w", h.Name, err)
	}
	if r != nil && h.Typeflag == tar.TypeReg {
		if _, err := io.Copy(o.tw, r); err != nil {
			return fmt.Errorf("rootfs: write %s: %w", h.Name, err)
		}
	}
	o.written[key(h.Name)] = true
	o.entries++
	return nil
}

// copyBase writes the entries of the base tar in its order: dropped paths
// left out, changed ones replaced (and removed from changes), the rest as
// they are.
func (o *out) copyBase(ctx context.Context, baseTar string, changes map[string]*entry) error {
	f, err := os.Open(baseTar)
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
			return fmt.Errorf("rootfs: read base %s: %w", baseTar, err)
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
			if err := o.put(&hc, strings.NewReader(string(c.data))); err != nil {
				return err
			}
			continue
		}
		if err := o.put(h, tr); err != nil {
			return err
		}
	}
}

// addNew writes the changes the base did not have, parents first, in
// sorted order.
func (o *out) addNew(changes map[string]*entry, base *baseInfo) error {
	keys := make([]string, 0, len(changes))
	for k, c := range changes {
		if c != nil {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := o.parentDirs(parents(k), base); err != nil {
			return err
		}
		c := changes[k]
		h := c.hdr
		h.Name = "./" + k
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		if err := o.put(&h, strings.NewReader(string(c.data))); err != nil {
			return err
		}
	}
	return nil
}

// parentDirs writes a plain folder for each of dirs that neither the base
// nor the stream so far has.
func (o *out) parentDirs(dirs []string, base *baseInfo) error {
	for _, p := range dirs {
		if !o.written[p] && !base.paths[p] {
			if err := o.put(&tar.Header{Name: "./" + p + "/", Typeflag: tar.TypeDir, Mode: 0o755}, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeTree adds the entries of t's tar under t.Dest.
func (o *out) writeTree(ctx context.Context, t Tree, base *baseInfo) error {
	dest := key(t.Dest)
	if base.paths[dest] || o.written[dest] {
		return fmt.Errorf("rootfs: %s is already in the image: a tree cannot replace it", t.Dest)
	}
	if err := o.parentDirs(append(parents(dest), dest), base); err != nil {
		return err
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
		if err := o.put(h, tr); err != nil {
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
