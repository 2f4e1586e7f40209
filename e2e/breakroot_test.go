package e2e

import (
	"os"
	"testing"

	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/disk/mbr"
)

// breakRoot zeroes the first MiB of a root partition (the squashfs
// superblock): the kernel boots, and pibake-init cannot mount the root.
func breakRoot(t *testing.T, img, part string) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	_, entries, err := mbr.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	lay, err := layout.FromMBR(entries, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	p, ok := lay.Part(part)
	if !ok {
		t.Fatalf("no partition %s", part)
	}
	if _, err := f.WriteAt(make([]byte, 1<<20), p.Offset); err != nil {
		t.Fatal(err)
	}
}
