package uboot

import "testing"

// FuzzParseKernelHeader: a kernel file read from a package.
func FuzzParseKernelHeader(f *testing.F) {
	h := make([]byte, 64)
	copy(h[56:], "ARM\x64")
	h[18] = 0x50 // image_size 0x500000
	f.Add(h)
	f.Add([]byte("MZ"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseKernelHeader(data)
	})
}
