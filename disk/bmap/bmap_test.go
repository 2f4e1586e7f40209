package bmap_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/disk/bmap"
	"github.com/pibake/pibake/disk/bmap/bmapcheck"
	"github.com/pibake/pibake/internal/hosttool"
)

func testImage() ([]byte, bmap.Extents) {
	img := make([]byte, 10*bmap.BlockSize+100) // a short last block
	var ext bmap.Extents
	put := func(off int, s string) {
		copy(img[off:], s)
		ext.Add(int64(off), int64(len(s)))
	}
	put(0, "partition table")
	put(3*bmap.BlockSize+10, strings.Repeat("x", bmap.BlockSize)) // blocks 3 and 4
	ext.Add(6*bmap.BlockSize, 512)                                // written zeros are mapped too
	put(10*bmap.BlockSize+90, "tail!")
	return img, ext
}

func TestCreateRoundTrip(t *testing.T) {
	img, ext := testImage()
	m, err := bmap.Create(bytes.NewReader(img), int64(len(img)), ext)
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]int64{{0, 0}, {3, 4}, {6, 6}, {10, 10}}
	if len(m.Ranges) != len(want) {
		t.Fatalf("ranges %+v, want %v", m.Ranges, want)
	}
	for i, w := range want {
		if m.Ranges[i].First != w[0] || m.Ranges[i].Last != w[1] {
			t.Errorf("range %d is %d-%d, want %d-%d", i, m.Ranges[i].First, m.Ranges[i].Last, w[0], w[1])
		}
	}
	if got, want := m.MappedBytes(), int64(4*bmap.BlockSize+100); got != want {
		t.Errorf("mapped %d bytes, want %d", got, want)
	}
	data := m.Marshal()
	if !bytes.Equal(data, m.Marshal()) {
		t.Error("Marshal is not deterministic")
	}
	back, err := bmap.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if back.ImageSize != m.ImageSize || back.BlockSize != m.BlockSize || len(back.Ranges) != len(m.Ranges) {
		t.Fatalf("parsed %+v, wrote %+v", back, m)
	}
	for i := range m.Ranges {
		if back.Ranges[i] != m.Ranges[i] {
			t.Errorf("range %d: parsed %+v, wrote %+v", i, back.Ranges[i], m.Ranges[i])
		}
	}
	if err := bmapcheck.Verify(back, bytes.NewReader(img)); err != nil {
		t.Error(err)
	}
	img[3*bmap.BlockSize+20] ^= 1
	if err := bmapcheck.Verify(back, bytes.NewReader(img)); !errors.Is(err, bmap.ErrMismatch) {
		t.Errorf("a changed byte: %v, want ErrMismatch", err)
	}
}

func TestParseRefuses(t *testing.T) {
	img, ext := testImage()
	m, err := bmap.Create(bytes.NewReader(img), int64(len(img)), ext)
	if err != nil {
		t.Fatal(err)
	}
	good := string(m.Marshal())
	for name, edit := range map[string]func(string) string{
		"edited range":   func(s string) string { return strings.Replace(s, "> 3-4 <", "> 3-5 <", 1) },
		"cut":            func(s string) string { return s[:len(s)/2] },
		"other checksum": func(s string) string { return strings.Replace(s, "<ChecksumType> sha256", "<ChecksumType> sha1", 1) },
		"version 3":      func(s string) string { return strings.Replace(s, `version="2.0"`, `version="3.0"`, 1) },
		"not xml":        func(string) string { return "hello" },
	} {
		if _, err := bmap.Parse([]byte(edit(good))); !errors.Is(err, bmap.ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
}

// TestBmaptoolReadsOurMap copies an image with bmaptool and pibake's map
// into a file and checks the mapped bytes arrived (bmaptool recreates a
// file target; flash/ tests the unmapped blocks on a loop device).
func TestBmaptoolReadsOurMap(t *testing.T) {
	tool := hosttool.Need(t, "bmaptool", "bmap-tools")
	img, ext := testImage()
	m, err := bmap.Create(bytes.NewReader(img), int64(len(img)), ext)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src, bm, dst := filepath.Join(dir, "t.img"), filepath.Join(dir, "t.bmap"), filepath.Join(dir, "out.img")
	if err := os.WriteFile(src, img, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bm, m.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, bytes.Repeat([]byte{0xff}, len(img)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "copy", "--bmap", bm, src, dst).CombinedOutput()
	if err != nil {
		t.Fatalf("bmaptool copy: %v\n%s", err, out)
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := bmapcheck.Verify(m, bytes.NewReader(got)); err != nil {
		t.Errorf("after bmaptool copy: %v\n%s", err, out)
	}
}

func FuzzParse(f *testing.F) {
	img, ext := testImage()
	m, _ := bmap.Create(bytes.NewReader(img), int64(len(img)), ext)
	f.Add(m.Marshal())
	f.Add(bmap.Full(1 << 20).Marshal())
	f.Add([]byte(`<bmap version="2.0"><ImageSize>1</ImageSize></bmap>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := bmap.Parse(data)
		if err != nil {
			return
		}
		if m.MappedBlocks() > m.Blocks() {
			t.Fatalf("%d mapped of %d blocks", m.MappedBlocks(), m.Blocks())
		}
		again, err := bmap.Parse(m.Marshal())
		if err != nil {
			t.Fatalf("a parsed map does not parse after Marshal: %v", err)
		}
		if len(again.Ranges) != len(m.Ranges) {
			t.Fatal("ranges changed in a round trip")
		}
	})
}

// TestWritten: reads through Written equal reads of the file wherever the
// file holds what was written, at any offset and length; outside the
// extents it gives zeros without reading (the file's garbage there stays
// unseen), and it ends at Size with io.EOF.
func TestWritten(t *testing.T) {
	const size = 1 << 20
	file := make([]byte, size)
	for i := range file {
		file[i] = 0xEE // garbage where nothing was written
	}
	want := make([]byte, size)
	var ext bmap.Extents
	rng := rand.New(rand.NewPCG(1, 2))
	for range 40 {
		off, n := rng.Int64N(size), rng.Int64N(8192)+1
		n = min(n, size-off)
		for j := off; j < off+n; j++ {
			b := byte(rng.IntN(255) + 1)
			file[j], want[j] = b, b
		}
		ext.Add(off, n)
	}
	w := bmap.Written{R: bytes.NewReader(file), Extents: ext.Normalize(), Size: size}
	for range 2000 {
		off := rng.Int64N(size + 100)
		buf := make([]byte, rng.IntN(20000))
		n, err := w.ReadAt(buf, off)
		wantN := max(0, min(int64(len(buf)), size-off))
		if int64(n) != wantN {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, want %d", len(buf), off, n, wantN)
		}
		if int64(len(buf)) > size-off && err != io.EOF {
			t.Fatalf("ReadAt past the end: err %v, want io.EOF", err)
		}
		if int64(len(buf)) <= size-off && err != nil {
			t.Fatalf("ReadAt(%d at %d): %v", len(buf), off, err)
		}
		if n > 0 && !bytes.Equal(buf[:n], want[off:off+int64(n)]) {
			t.Fatalf("ReadAt(%d at %d) gave other bytes", len(buf), off)
		}
	}
	// A whole pass through io.SectionReader, as the image's users read it.
	got, err := io.ReadAll(io.NewSectionReader(w, 0, size))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("whole read: %v", err)
	}
}
