package ubootcheck

import (
	"testing"

	"github.com/pibake/pibake/firmware/uboot"
)

// FuzzParseScriptImage: files read back from a boot partition.
func FuzzParseScriptImage(f *testing.F) {
	img, err := uboot.ScriptImage("boot", "echo hi\n")
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
		again, err := uboot.ScriptImage("boot", s)
		if err != nil {
			return // a script ScriptImage refuses to write (too long, NUL)
		}
		if back, err := ParseScriptImage(again); err != nil || back != s {
			t.Fatalf("round trip: %q %v", back, err)
		}
	})
}
