// Package atomicfile replaces a file so that a power cut leaves either the
// old or the new content: a new file in the same folder, synced, renamed
// over the old one, then the folder synced. The device agent's state and
// boot files use it (on FAT, bootsel, the rename is one directory entry
// write), and so do the update repository's channel documents.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Write replaces path with data. The new file is path.new, created with
// perm (no chmod: FAT mounted with a umask refuses one); one writer at a
// time is assumed. Whatever was at path.new (a leftover, or a symlink
// planted to redirect the write) is removed first, and the new file is
// created exclusively, so the write never goes through a link.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.Remove(path + ".new"); err != nil && !os.IsNotExist(err) {
		return err
	}
	tmp, err := os.OpenFile(path+".new", os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
