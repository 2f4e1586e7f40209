package imagedef

import (
	"os"
	"testing"
)

// FuzzParse: an image definition, as a user writes it.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../../images/demo.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("name: x\nversion: 1\nboards: [pi4]\n"))
	f.Add([]byte("name: [\n"))
	f.Add([]byte("name: x\npartitions: {root: 12QiB}\n"))
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Parse("fuzz.yaml", data, root, "")
	})
}
