// Package initramfs builds pibake's initramfs: a newc cpio archive holding
// the pibake-init program (cmd/pibake-init) and the kernel modules it needs
// to reach the root filesystem, taken from the image's own kernel. Output
// depends only on its inputs: entries sorted, inode numbers counted from 1,
// every timestamp the given epoch, owner root.
package initramfs

import (
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// Entry is one file, folder or symlink of the archive.
type Entry struct {
	Path string // relative, slash-separated, e.g. "lib/modules/x/kernel/fs/squashfs/squashfs.ko.xz"
	Mode int64  // permission bits
	Data []byte // file contents, or the symlink target
	Dir  bool
	Link bool
}

const (
	modeDir  = 0o040000
	modeReg  = 0o100000
	modeLink = 0o120000
)

// WriteCPIO writes entries (plus any missing parent folders) as a newc
// archive, sorted by path so parents come first.
func WriteCPIO(w io.Writer, entries []Entry, mtime int64) error {
	all := map[string]Entry{}
	for _, e := range entries {
		p := strings.Trim(path.Clean(e.Path), "/")
		if p == "" || p == "." || strings.HasPrefix(p, "../") {
			return fmt.Errorf("initramfs: bad path %q", e.Path)
		}
		if _, dup := all[p]; dup {
			return fmt.Errorf("initramfs: %s listed twice", p)
		}
		e.Path = p
		all[p] = e
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if _, ok := all[d]; !ok {
				all[d] = Entry{Path: d, Mode: 0o755, Dir: true}
			}
		}
	}
	names := make([]string, 0, len(all))
	for p := range all {
		names = append(names, p)
	}
	sort.Strings(names)
	ino := 0
	for _, p := range names {
		e := all[p]
		ino++
		r := record{name: p, ino: ino, mode: modeReg | e.Mode, nlink: 1, mtime: mtime, data: e.Data}
		switch {
		case e.Dir:
			r.mode, r.nlink, r.data = modeDir|e.Mode, 2, nil
		case e.Link:
			r.mode = modeLink | 0o777
		}
		if err := r.write(w); err != nil {
			return fmt.Errorf("initramfs: writing %s: %w", p, err)
		}
	}
	if err := (record{name: "TRAILER!!!", nlink: 1}).write(w); err != nil {
		return fmt.Errorf("initramfs: writing the trailer: %w", err)
	}
	return nil
}

// record is one newc header's fields and what follows it. The fields a
// pibake archive leaves zero (uid, gid, device numbers, check) are not here.
type record struct {
	name  string
	ino   int
	mode  int64
	nlink int
	mtime int64
	data  []byte
}

func (r record) write(w io.Writer) error {
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		r.ino, r.mode, 0, 0, r.nlink, r.mtime, len(r.data), 0, 0, 0, 0, len(r.name)+1, 0)
	buf := make([]byte, 0, len(hdr)+len(r.name)+8+len(r.data)+4)
	buf = append(buf, hdr...)
	buf = append(buf, r.name...)
	buf = append(buf, 0)
	buf = pad4(buf)
	buf = append(buf, r.data...)
	buf = pad4(buf)
	_, err := w.Write(buf)
	return err
}

// pad4 pads to a multiple of 4 bytes; every record starts aligned because
// the previous one ended aligned.
func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
