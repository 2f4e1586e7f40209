package builder

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/disk/bmap"
	"github.com/pibake/pibake/disk/bmap/bmapcheck"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/manifest"
)

// TestBuildRelease: a build writes NAME.img.zst and NAME.bmap, lists them
// in SHA256SUMS and manifest.json, and the map covers every non-zero block
// of the image and the start of the data partition.
func TestBuildRelease(t *testing.T) {
	fx := newFixture(t)
	repo := fx.repo(t)
	out := filepath.Join(t.TempDir(), "out")
	res, err := Build(context.Background(), Options{Definition: filepath.Join(repo, "images", "small.yaml"), OutDir: out, CacheDir: fx.cache})
	if err != nil {
		t.Fatal(err)
	}
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"small.img", "small.img.zst", "small.bmap", "manifest.json"} {
		if !strings.Contains(string(sums), "  "+name+"\n") {
			t.Errorf("SHA256SUMS does not list %s:\n%s", name, sums)
		}
	}
	if len(res.Manifest.Release) != 2 {
		t.Errorf("manifest release files: %+v", res.Manifest.Release)
	}
	data, err := os.ReadFile(filepath.Join(out, "small.bmap"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := bmap.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(res.Image)
	if err != nil {
		t.Fatal(err)
	}
	if err := bmapcheck.Verify(m, bytes.NewReader(img)); err != nil {
		t.Fatal(err)
	}
	mapped := make([]bool, m.Blocks())
	for _, r := range m.Ranges {
		for b := r.First; b <= r.Last; b++ {
			mapped[b] = true
		}
	}
	zero := make([]byte, m.BlockSize)
	for b := range mapped {
		if !mapped[b] && !bytes.Equal(img[int64(b)*m.BlockSize:int64(b+1)*m.BlockSize], zero) {
			t.Fatalf("block %d holds data but is not mapped", b)
		}
	}
	data7, _ := manifestPart(res.Manifest, layout.Data)
	for off := data7; off < data7+dataWipe; off += m.BlockSize {
		if !mapped[off/m.BlockSize] {
			t.Fatalf("data partition byte %d is not mapped: a card's old ext4 would survive", off-data7)
		}
	}
	t.Logf("%d of %d MiB mapped, %s %d bytes", m.MappedBytes()>>20, m.ImageSize>>20, res.Manifest.Release[0].File, res.Manifest.Release[0].Size)
}

func manifestPart(m *manifest.Manifest, name string) (int64, int64) {
	for _, p := range m.Partitions {
		if p.Name == name {
			return p.Offset, p.Size
		}
	}
	return 0, 0
}
