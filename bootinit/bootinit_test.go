package bootinit

import (
	"bytes"
	"encoding/binary"
	"github.com/pibake/pibake/internal/hosttool"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/disk/mbr"
)

// memDisk is a sparse in-memory disk.
type memDisk map[int64][]byte

func (m memDisk) ReadAt(p []byte, off int64) (int, error) {
	for i := range p {
		p[i] = 0
	}
	for o, b := range m {
		if o < off+int64(len(p)) && o+int64(len(b)) > off {
			start := max(o, off)
			copy(p[start-off:], b[start-o:])
		}
	}
	return len(p), nil
}

func (m memDisk) WriteAt(p []byte, off int64) (int, error) {
	m[off] = bytes.Clone(p)
	return len(p), nil
}

func TestGrowLast(t *testing.T) {
	lay, err := layout.Compute(layout.Sizes{Bootsel: 64 << 20, Boot: 128 << 20, Root: 512 << 20, Data: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	d := memDisk{}
	if err := mbr.Write(d, lay.MBR(0xabcdef01), uint64(lay.DiskSize/512)); err != nil {
		t.Fatal(err)
	}
	card := uint64(lay.DiskSize/512) + 2*1024*1024 + 7 // 1 GiB bigger, not aligned
	start, sectors, changed, err := GrowLast(d, d, card)
	if err != nil || !changed {
		t.Fatalf("grow: %v changed %v", err, changed)
	}
	data, _ := lay.Part(layout.Data)
	if int64(start)*512 != data.Offset || (start+sectors)%2048 != 0 || start+sectors > card || card-(start+sectors) >= 2048 {
		t.Errorf("data now %d+%d sectors on a %d-sector card", start, sectors, card)
	}
	sig, entries, err := mbr.Read(d)
	if err != nil || sig != 0xabcdef01 {
		t.Fatalf("table after grow: %v", err)
	}
	if _, err := layout.FromMBR(entries, int64(card)*512); err != nil {
		t.Errorf("no longer a pibake layout: %v", err)
	}
	// Growing again changes nothing.
	if _, _, changed, err := GrowLast(d, d, card); err != nil || changed {
		t.Errorf("second grow: changed %v, %v", changed, err)
	}
}

func TestExt4Size(t *testing.T) {
	hosttool.Need(t, "mkfs.ext4", "e2fsprogs")
	img := filepath.Join(t.TempDir(), "fs.img")
	f, _ := os.Create(img)
	f.Truncate(64 << 20)
	f.Close()
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v %s", err, out)
	}
	f, _ = os.Open(img)
	defer f.Close()
	if n := Ext4Size(f); n != 64<<20 {
		t.Errorf("Ext4Size = %d, want %d", n, 64<<20)
	}
	if n := Ext4Size(bytes.NewReader(make([]byte, 4096))); n != 0 {
		t.Errorf("Ext4Size of zeros = %d", n)
	}
}

func TestFindPartition(t *testing.T) {
	root := t.TempDir()
	sys, dev := filepath.Join(root, "sys/class/block"), filepath.Join(root, "dev")
	devices := filepath.Join(root, "sys/devices/virtio1/block")
	for _, d := range []string{sys, dev} {
		os.MkdirAll(d, 0o755)
	}
	// Two disks: vda (ours) and vdb (another signature).
	for disk, sig := range map[string]uint32{"vda": 0x1cf9920d, "vdb": 0x11111111} {
		os.MkdirAll(filepath.Join(devices, disk), 0o755)
		os.Symlink(filepath.Join(devices, ".."), filepath.Join(devices, disk, "device"))
		os.Symlink(filepath.Join(devices, disk), filepath.Join(sys, disk))
		mbrSector := make([]byte, 512)
		binary.LittleEndian.PutUint32(mbrSector[440:], sig)
		mbrSector[510], mbrSector[511] = 0x55, 0xAA
		os.WriteFile(filepath.Join(dev, disk), mbrSector, 0o644)
		for _, n := range []string{"5", "7"} {
			p := filepath.Join(devices, disk, disk+n)
			os.MkdirAll(p, 0o755)
			os.WriteFile(filepath.Join(p, "partition"), []byte(n+"\n"), 0o644)
			os.Symlink(p, filepath.Join(sys, disk+n))
		}
	}
	b, err := FindPartition(sys, dev, 0x1cf9920d, 5)
	if err != nil || b.Disk != "vda" || b.Name != "vda5" {
		t.Fatalf("found %+v, %v", b, err)
	}
	d, err := Sibling(sys, b, 7)
	if err != nil || d.Name != "vda7" {
		t.Fatalf("sibling %+v, %v", d, err)
	}
	if _, err := FindPartition(sys, dev, 0x22222222, 5); err == nil || !strings.Contains(err.Error(), "22222222") {
		t.Errorf("unknown signature: %v", err)
	}
}
