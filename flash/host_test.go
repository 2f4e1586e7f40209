package flash

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeHost is a /sys with disk sda (sda1, sda2), disk sdb (sdb1), dm-0
// on sdb1, and a mountinfo given by the test.
func fakeHost(t *testing.T, mountinfo string) host {
	t.Helper()
	root := t.TempDir()
	sys := filepath.Join(root, "sys")
	dev := func(path, num string, partition bool) {
		d := filepath.Join(sys, "devices", path)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "dev"), []byte(num+"\n"), 0o644)
		if partition {
			os.WriteFile(filepath.Join(d, "partition"), []byte("1\n"), 0o644)
		}
		os.MkdirAll(filepath.Join(sys, "dev", "block"), 0o755)
		if err := os.Symlink(d, filepath.Join(sys, "dev", "block", num)); err != nil {
			t.Fatal(err)
		}
	}
	dev("pci/block/sda", "8:0", false)
	dev("pci/block/sda/sda1", "8:1", true)
	dev("pci/block/sda/sda2", "8:2", true)
	dev("usb/block/sdb", "8:16", false)
	dev("usb/block/sdb/sdb1", "8:17", true)
	dev("virtual/block/dm-0", "254:0", false)
	slaves := filepath.Join(sys, "devices", "virtual/block/dm-0", "slaves")
	os.MkdirAll(slaves, 0o755)
	os.Symlink(filepath.Join(sys, "devices", "usb/block/sdb/sdb1"), filepath.Join(slaves, "sdb1"))
	mi := filepath.Join(root, "mountinfo")
	if err := os.WriteFile(mi, []byte(mountinfo), 0o644); err != nil {
		t.Fatal(err)
	}
	return host{mountinfo: mi, sys: sys}
}

type fakeInfo struct{ rdev uint64 }

func (f fakeInfo) Name() string       { return "disk" }
func (f fakeInfo) Size() int64        { return 0 }
func (f fakeInfo) Mode() fs.FileMode  { return fs.ModeDevice }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return false }
func (f fakeInfo) Sys() any           { return &syscall.Stat_t{Rdev: f.rdev} }

func TestHostCheck(t *testing.T) {
	const rootOnSda2 = "22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw\n"
	const rootOnDm = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/mapper/vg-root rw\n"
	const sdb1Mounted = "40 22 8:17 / /media/my\\040card rw,relatime shared:9 - vfat /dev/sdb1 rw\n"
	const rootOverlay = "22 1 0:31 / / rw - overlay overlay rw\n"
	sda, sdb, sdb1 := unix.Mkdev(8, 0), unix.Mkdev(8, 16), unix.Mkdev(8, 17)
	for _, c := range []struct {
		name      string
		mountinfo string
		dev       uint64
		force     bool
		want      error
		says      string
	}{
		{"free card", rootOnSda2, sdb, false, nil, ""},
		{"root disk", rootOnSda2, sda, false, ErrRootDisk, "--force"},
		{"root disk, forced", rootOverlay, sda, true, nil, ""},
		{"root disk through device-mapper", rootOnDm, sdb, false, ErrRootDisk, "holds /"},
		{"a partition mounted", rootOnSda2 + sdb1Mounted, sdb, false, ErrMounted, "/media/my card"},
		{"a partition mounted, forced", rootOnSda2 + sdb1Mounted, sdb, true, ErrMounted, "umount"},
		{"a partition", rootOnSda2, sdb1, false, ErrNotDisk, "/dev/sdb"},
		{"root in a container", rootOverlay, sda, false, nil, ""},
	} {
		h := fakeHost(t, c.mountinfo)
		err := h.check("/dev/x", fakeInfo{c.dev}, c.force)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %q does not say %q", c.name, err, c.says)
		}
	}
}
