package initramfs

import (
	"bytes"
	"github.com/pibake/pibake/internal/hosttool"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func TestClosure(t *testing.T) {
	dep := "kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz kernel/fs/mbcache.ko.xz kernel/lib/crc16.ko.xz\n" +
		"kernel/fs/jbd2/jbd2.ko.xz:\nkernel/fs/mbcache.ko.xz:\nkernel/lib/crc16.ko.xz:\n" +
		"kernel/drivers/block/virtio_blk.ko.xz:\nkernel/fs/overlayfs/overlay.ko.xz:\n"
	db, err := ParseModuleDB([]byte(dep), []byte("kernel/fs/squashfs/squashfs.ko\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.Closure([]string{"virtio-blk", "squashfs", "ext4", "overlay"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kernel/drivers/block/virtio_blk.ko.xz", "kernel/fs/jbd2/jbd2.ko.xz", "kernel/fs/mbcache.ko.xz", "kernel/lib/crc16.ko.xz", "kernel/fs/ext4/ext4.ko.xz", "kernel/fs/overlayfs/overlay.ko.xz"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("closure\n got %v\nwant %v", got, want)
	}
	if _, err := db.Closure([]string{"nosuchfs"}); err == nil || !strings.Contains(err.Error(), "no module nosuchfs") {
		t.Errorf("missing module: %v", err)
	}
	// A 7.x kernel (trixie-backports) has no crc32c_generic: its ext4
	// uses the crc32c library.
	if got, err := db.Closure([]string{"crc32c_generic", "ext4"}); err != nil || len(got) != 4 {
		t.Errorf("a kernel without crc32c_generic: %v %v", got, err)
	}
}

func TestWriteCPIO(t *testing.T) {
	entries := []Entry{
		{Path: "lib/modules/x/kernel/a.ko.xz", Mode: 0o644, Data: []byte("module a")},
		{Path: "init", Mode: 0o755, Data: []byte("#!init")},
		{Path: "lib/modules/pibake.modules", Mode: 0o644, Data: []byte("x/kernel/a.ko.xz\n")},
		{Path: "sbin/init", Link: true, Data: []byte("../init")},
	}
	var a, b bytes.Buffer
	if err := WriteCPIO(&a, entries, 1700000000); err != nil {
		t.Fatal(err)
	}
	rev := []Entry{entries[3], entries[2], entries[1], entries[0]}
	if err := WriteCPIO(&b, rev, 1700000000); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("entry order changes the archive")
	}
	if err := WriteCPIO(&b, append(entries, entries[0]), 0); err == nil {
		t.Error("duplicate accepted")
	}
	hosttool.Need(t, "cpio", "cpio")
	cmd := exec.Command("cpio", "-itv", "--quiet")
	cmd.Stdin = bytes.NewReader(a.Bytes())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -itv: %v\n%s", err, out)
	}
	for _, want := range []string{"-rwxr-xr-x", " init", "lib/modules/x/kernel/a.ko.xz", "sbin/init -> ../init", "drwxr-xr-x"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("cpio listing lacks %q:\n%s", want, out)
		}
	}
}
