package uboot

import "testing"

// FuzzParseScriptImage and FuzzParseKernelHeader: files read back from a
// boot partition or a package.
func FuzzParseScriptImage(f *testing.F) {
	img, err := ScriptImage("boot", "echo hi\n")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(img)
	f.Add(img[:40])
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseScriptImage(data)
		if err != nil {
			return
		}
		again, err := ScriptImage("boot", s)
		if err != nil {
			return // a script ScriptImage refuses to write (too long, NUL)
		}
		if back, err := ParseScriptImage(again); err != nil || back != s {
			t.Fatalf("round trip: %q %v", back, err)
		}
	})
}

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
