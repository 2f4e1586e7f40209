package chunks

import (
	"bytes"
	"testing"
)

// FuzzParse: Parse refuses or returns an index that obeys every rule and
// marshals back to the same bytes (one index, one file).
func FuzzParse(f *testing.F) {
	for _, b := range [][]byte{nil, []byte("x"), data(4, 300<<10)} {
		ix := build(f, b, Default)
		enc, err := ix.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	small, _ := build(f, data(5, 5000), Params{Min: 64, Avg: 256, Max: 1024}).MarshalBinary()
	f.Add(small)
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		ix, err := Parse(b)
		if err != nil {
			return
		}
		if err := ix.check(); err != nil {
			t.Fatalf("accepted an index that breaks the rules: %v", err)
		}
		back, err := ix.MarshalBinary()
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("accepted bytes that do not round-trip (%v)", err)
		}
	})
}
