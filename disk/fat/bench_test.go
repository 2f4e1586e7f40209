package fat

import (
	"testing"
	"time"
)

type discardAt struct{}

func (discardAt) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// BenchmarkWriteBootSlot writes a boot slot like the demo image's: a 37 MiB
// kernel, a 2.5 MiB initramfs and a few small files on 128 MiB.
func BenchmarkWriteBootSlot(b *testing.B) {
	files := []File{
		{Path: "vmlinuz", Data: make([]byte, 37<<20)},
		{Path: "initrd.img", Data: make([]byte, 5<<19)},
		{Path: "cmdline.txt", Data: []byte("console=ttyS1,115200 ro\n")},
		{Path: "broadcom/bcm2711-rpi-4-b.dtb", Data: make([]byte, 40<<10)},
	}
	var total int64
	for _, f := range files {
		total += int64(len(f.Data))
	}
	b.SetBytes(total)
	for b.Loop() {
		if err := Write(discardAt{}, Options{Size: 128 << 20, Label: "PIBOOT", Time: time.Unix(1700000000, 0)}, files, nil); err != nil {
			b.Fatal(err)
		}
	}
}
