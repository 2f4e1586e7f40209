package mbr

import (
	"bytes"
	"testing"
)

// FuzzRead: a card's first sectors and EBR chain, as any tool or damage
// left them.
func FuzzRead(f *testing.F) {
	sec := make([]byte, 4*512)
	sec[510], sec[511] = 0x55, 0xaa
	copy(sec[446:], []byte{0, 0, 0, 0, 0x0c, 0, 0, 0, 1, 0, 0, 0, 0x10, 0, 0, 0})
	copy(sec[462:], []byte{0, 0, 0, 0, 0x0f, 0, 0, 0, 2, 0, 0, 0, 0x10, 0, 0, 0})
	f.Add(bytes.Clone(sec))
	ebr := bytes.Clone(sec)
	ebr[1024+510], ebr[1024+511] = 0x55, 0xaa
	copy(ebr[1024+446:], []byte{0, 0, 0, 0, 0x83, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0})
	copy(ebr[1024+462:], []byte{0, 0, 0, 0, 0x05, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}) // a loop back to itself
	f.Add(ebr)
	f.Add([]byte{0x55})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = Read(bytes.NewReader(data))
	})
}
