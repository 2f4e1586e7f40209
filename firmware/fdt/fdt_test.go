package fdt_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/firmware/fdt"
	"github.com/pibake/pibake/firmware/fdt/fdtcheck"
	"github.com/pibake/pibake/internal/testbase"
)

func dump(t *fdt.Tree) string {
	var b strings.Builder
	t.Walk(func(n *fdt.Node) {
		b.WriteString(n.Path() + "\n")
		for _, p := range n.Props {
			b.WriteString("  " + p.Name + "=" + string(p.Value) + "\n")
		}
	})
	return b.String()
}

func TestRoundTrip(t *testing.T) {
	for _, blob := range [][]byte{testbase.Pi4DTB(), testbase.Pi3DTB()} {
		tree, err := fdt.Parse(blob)
		if err != nil {
			t.Fatal(err)
		}
		again, err := fdt.Parse(tree.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if dump(tree) != dump(again) || !bytes.Equal(tree.Encode(), again.Encode()) {
			t.Errorf("round trip changed the tree:\n%s\nvs\n%s", dump(tree), dump(again))
		}
	}
}

func TestLinks(t *testing.T) {
	tree, err := fdt.Parse(testbase.Pi4DTB())
	if err != nil {
		t.Fatal(err)
	}
	mmc := fdtcheck.Lookup(tree, "/emmc2bus/mmc@7e340000")
	if mmc == nil || !mmc.Enabled() {
		t.Fatalf("emmc2 not found or disabled: %v", mmc)
	}
	if got := mmc.Modalias(); got != "of:NmmcT<NULL>Cbrcm,bcm2711-emmc2" {
		t.Errorf("modalias %q", got)
	}
	var got []string
	for _, d := range tree.Closure(mmc) {
		got = append(got, d.Node.Path()+" via "+strings.Join(d.Via, ","))
	}
	want := []string{
		"/emmc2bus via parent",
		"/emmc2bus/mmc@7e340000 via ",
		"/firmware via vqmmc-supply,gpios,parent",
		"/firmware/gpio via vqmmc-supply,gpios",
		"/regulator-sd-io-1v8 via vqmmc-supply",
		"/regulator-sd-vcc via vmmc-supply",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("closure:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !mmc.DeleteProp("vqmmc-supply") || mmc.DeleteProp("vqmmc-supply") {
		t.Error("DeleteProp")
	}
	edited, err := fdt.Parse(tree.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fdtcheck.Lookup(edited, "/emmc2bus/mmc@7e340000").Prop("vqmmc-supply"); ok {
		t.Error("the deleted property came back")
	}
}

func TestParseRejects(t *testing.T) {
	good := testbase.Pi3DTB()
	cases := map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte{0, 0, 0, 0}, good[4:]...),
		"truncated": good[:len(good)-8],
	}
	for name, b := range cases {
		if _, err := fdt.Parse(b); !errors.Is(err, fdt.ErrFormat) {
			t.Errorf("%s: err %v, want ErrFormat", name, err)
		}
	}
}

// TestRealDeviceTrees parses every device tree of the demo's locked
// kernel package and writes it back: the walker sees the real files.
func TestRealDeviceTrees(t *testing.T) {
	if os.Getenv("PIBAKE_REAL") == "" {
		t.Skip("set PIBAKE_REAL=1 to read the locked kernel's device trees (make test does)")
	}
	lock, _, err := debian.ReadLock(filepath.Join("..", "..", "images", "demo.lock"))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := debian.DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	cache := debian.Cache{Dir: dir}
	var kernel *debian.Package
	for _, p := range lock.Packages {
		if strings.HasPrefix(p.Name, "linux-image-") && strings.HasSuffix(p.Name, "-arm64") && p.Name != "linux-image-arm64" {
			kernel = &p
		}
	}
	if kernel == nil || !cache.Has(*kernel) {
		t.Skip("the demo's kernel package is not in the cache: make image fetches it")
	}
	files, err := debian.ExtractFiles(context.Background(), cache.DebPath(kernel.SHA256), func(p string) bool {
		return strings.Contains(p, "/broadcom/bcm2") && strings.HasSuffix(p, ".dtb")
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("only %d device trees in %s", len(files), kernel.Name)
	}
	for name, blob := range files {
		tree, err := fdt.Parse(blob)
		if err != nil {
			t.Errorf("%s: %v", path.Base(name), err)
			continue
		}
		again, err := fdt.Parse(tree.Encode())
		if err != nil || dump(again) != dump(tree) {
			t.Errorf("%s: round trip: %v", path.Base(name), err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(testbase.Pi4DTB())
	f.Add(testbase.Pi3DTB())
	f.Add([]byte{0xd0, 0x0d, 0xfe, 0xed})
	f.Fuzz(func(t *testing.T, b []byte) {
		tree, err := fdt.Parse(b)
		if err != nil {
			if !errors.Is(err, fdt.ErrFormat) {
				t.Fatalf("error %v is not ErrFormat", err)
			}
			return
		}
		again, err := fdt.Parse(tree.Encode())
		if err != nil {
			t.Fatalf("re-encoded tree does not parse: %v", err)
		}
		if dump(again) != dump(tree) {
			t.Fatal("round trip changed the tree")
		}
		tree.Walk(func(n *fdt.Node) { tree.Links(n); n.Modalias() })
		tree.Closure(tree.Root)
	})
}
