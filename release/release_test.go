package release

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pibake/pibake/disk/bmap"
	"github.com/pibake/pibake/disk/bmap/bmapcheck"
)

// testImage is 8 MiB: random data in two places, zeros elsewhere.
func testImage(t *testing.T, dir string) (string, bmap.Extents) {
	t.Helper()
	img := make([]byte, 8<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	var ext bmap.Extents
	for _, x := range []bmap.Extent{{Off: 0, Len: 512}, {Off: 1 << 20, Len: 3 << 20}, {Off: 6 << 20, Len: 4096}} {
		for i := x.Off; i < x.Off+x.Len; i++ {
			img[i] = byte(rng.Uint32())
		}
		ext.Add(x.Off, x.Len)
	}
	p := filepath.Join(dir, "t.img")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, ext
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	imgPath, ext := testImage(t, dir)
	res, err := Write(context.Background(), dir, "t.img", ext)
	if err != nil {
		t.Fatal(err)
	}
	if res.Zst.Name != "t.img.zst" || res.Bmap.Name != "t.bmap" {
		t.Errorf("wrote %s and %s", res.Zst.Name, res.Bmap.Name)
	}
	img, _ := os.ReadFile(imgPath)
	zst, err := os.ReadFile(filepath.Join(dir, res.Zst.Name))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(zst)) != res.Zst.Size {
		t.Errorf("size %d reported, %d on disk", res.Zst.Size, len(zst))
	}
	dec, _ := zstd.NewReader(nil)
	back, err := dec.DecodeAll(zst, nil)
	if err != nil || !bytes.Equal(back, img) {
		t.Fatalf("the .zst does not decompress to the image (%v)", err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, res.Bmap.Name))
	m, err := bmap.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if m.MappedBlocks() != 1+768+1 {
		t.Errorf("%d mapped blocks, want 770", m.MappedBlocks())
	}
	if err := bmapcheck.Verify(m, bytes.NewReader(img)); err != nil {
		t.Error(err)
	}
}

// TestZstIndependentOfConcurrency: the host's core count does not show in
// the compressed image.
func TestZstIndependentOfConcurrency(t *testing.T) {
	dir := t.TempDir()
	imgPath, _ := testImage(t, dir)
	f, err := os.Open(imgPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var outs [][]byte
	for _, c := range []int{1, 2, 8} {
		var b bytes.Buffer
		if err := compress(context.Background(), &b, f, 8<<20, c); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, b.Bytes())
	}
	for i := 1; i < len(outs); i++ {
		if !bytes.Equal(outs[0], outs[i]) {
			t.Errorf("concurrency changes the compressed bytes (run %d)", i)
		}
	}
}
