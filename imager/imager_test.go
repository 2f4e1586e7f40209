package imager_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/imager"
	"github.com/pibake/pibake/internal/hosttool"
	"github.com/pibake/pibake/manifest"
)

// fakeBuild writes a build folder: NAME.img (part random, part zeros, as
// an image is), its manifest.json, and NAME.img.zst made by the zstd CLI.
func fakeBuild(t *testing.T, dir, board string, seed uint64) manifest.Manifest {
	t.Helper()
	zstdCLI := hosttool.Need(t, "zstd", "zstd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	img := make([]byte, 3<<20)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < 1<<20; i++ {
		img[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(filepath.Join(dir, "demo.img"), img, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(img)
	m := manifest.Manifest{Format: manifest.Format, Image: "demo", Version: "0.1.0", Board: board, Env: "default", SourceDateEpoch: 1795392000,
		Disk: manifest.Disk{File: "demo.img", Size: int64(len(img)), SHA256: hex.EncodeToString(sum[:])}}
	writeManifest(t, dir, m)
	if out, err := exec.Command(zstdCLI, "-q", "-3", filepath.Join(dir, "demo.img"), "-o", filepath.Join(dir, "demo.img.zst")).CombinedOutput(); err != nil {
		t.Fatalf("zstd: %v\n%s", err, out)
	}
	return m
}

func writeManifest(t *testing.T, dir string, m manifest.Manifest) {
	t.Helper()
	if _, err := manifest.Write(dir, &m); err != nil {
		t.Fatal(err)
	}
}

func fileSum(t *testing.T, path string) (string, int64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:]), int64(len(data))
}

var opts = imager.Options{BaseURL: "https://images.example.com/fleet/{build}/", Icon: "https://images.example.com/fleet/icon.png", InitFormat: "cloudinit-rpi"}

// TestOSList: sizes and checksums are the files', the shape is Imager's.
func TestOSList(t *testing.T) {
	root := t.TempDir()
	pi4, pi3 := filepath.Join(root, "demo-pi4"), filepath.Join(root, "demo-pi3")
	fakeBuild(t, pi4, "pi4", 1)
	fakeBuild(t, pi3, "pi3", 2)
	l, err := imager.Make([]string{pi4, pi3}, opts)
	if err != nil {
		t.Fatal(err)
	}
	data, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// Read back as Imager does: untyped JSON, keys by name.
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	list, _ := doc["os_list"].([]any)
	devs, _ := doc["imager"].(map[string]any)["devices"].([]any)
	if len(list) != 2 || len(devs) != 2 {
		t.Fatalf("os_list %d entries, imager.devices %d:\n%s", len(list), len(devs), data)
	}
	for i, dir := range []string{pi4, pi3} {
		e := list[i].(map[string]any)
		for _, k := range []string{"name", "description", "icon", "url", "extract_size", "extract_sha256", "image_download_size", "release_date", "devices", "init_format"} {
			if _, ok := e[k]; !ok {
				t.Errorf("entry %d lacks %s (Imager's schema requires it)", i, k)
			}
		}
		isum, isize := fileSum(t, filepath.Join(dir, "demo.img"))
		zsum, zsize := fileSum(t, filepath.Join(dir, "demo.img.zst"))
		if e["extract_sha256"] != isum || int64(e["extract_size"].(float64)) != isize {
			t.Errorf("%s: extract %v %v, want %s %d", dir, e["extract_sha256"], e["extract_size"], isum, isize)
		}
		if e["image_download_sha256"] != zsum || int64(e["image_download_size"].(float64)) != zsize {
			t.Errorf("%s: download %v %v, want %s %d", dir, e["image_download_sha256"], e["image_download_size"], zsum, zsize)
		}
		if want := "https://images.example.com/fleet/" + filepath.Base(dir) + "/demo.img.zst"; e["url"] != want {
			t.Errorf("url %v, want %s", e["url"], want)
		}
		if e["release_date"] != "2026-11-23" || e["init_format"] != "cloudinit-rpi" {
			t.Errorf("release_date %v, init_format %v", e["release_date"], e["init_format"])
		}
	}
	tags := func(v any) string {
		var s []string
		for _, x := range v.([]any) {
			s = append(s, x.(string))
		}
		return strings.Join(s, ",")
	}
	if got := tags(list[0].(map[string]any)["devices"]) + " " + tags(list[1].(map[string]any)["devices"]); got != "pi4-64bit pi3-64bit" {
		t.Errorf("devices %s", got)
	}
	// Each entry is shown for exactly its board's device.
	if d := devs[0].(map[string]any); d["name"] != "Raspberry Pi 3" || tags(d["tags"]) != "pi3-64bit" {
		t.Errorf("imager.devices[0] %v", d)
	}
}

func TestRefuses(t *testing.T) {
	root := t.TempDir()
	for _, c := range []struct {
		name string
		mut  func(dir string, m manifest.Manifest)
		want string
		is   error
	}{
		{"no .img.zst", func(dir string, _ manifest.Manifest) { os.Remove(filepath.Join(dir, "demo.img.zst")) }, "no compressed image demo.img.zst", imager.ErrNoCompressed},
		{"manifest of another image", func(dir string, m manifest.Manifest) {
			m.Disk.SHA256 = strings.Repeat("0", 64)
			writeManifest(t, dir, m)
		}, "decompresses to 3145728 bytes with sha256", imager.ErrMismatch},
		{"image of another size", func(dir string, m manifest.Manifest) {
			m.Disk.Size++
			writeManifest(t, dir, m)
		}, "demo.img is 3145728 bytes, manifest.json says 3145729", imager.ErrMismatch},
		{"not zstd", func(dir string, _ manifest.Manifest) {
			os.WriteFile(filepath.Join(dir, "demo.img.zst"), []byte("gzip? no"), 0o644)
		}, "not a zstd stream", nil},
		{"qemu build", func(dir string, m manifest.Manifest) {
			m.Board = "qemu"
			writeManifest(t, dir, m)
		}, `board "qemu", which Raspberry Pi Imager has no device for`, nil},
		{"no manifest", func(dir string, _ manifest.Manifest) { os.Remove(filepath.Join(dir, "manifest.json")) }, "is not a build folder", nil},
	} {
		dir := filepath.Join(root, strings.ReplaceAll(c.name, " ", "-"))
		m := fakeBuild(t, dir, "pi4", 3)
		c.mut(dir, m)
		_, err := imager.Make([]string{dir}, opts)
		if err == nil || !strings.Contains(err.Error(), c.want) || (c.is != nil && !errors.Is(err, c.is)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	dir := filepath.Join(root, "ok")
	fakeBuild(t, dir, "pi4", 4)
	for name, o := range map[string]imager.Options{
		"no base url":       {InitFormat: "none"},
		"relative base url": {BaseURL: "images/", InitFormat: "none"},
		"bad init format":   {BaseURL: "https://h/", InitFormat: "cloud-init"},
	} {
		if _, err := imager.Make([]string{dir}, o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// Two builds of one image under one URL would overwrite each other.
	other := filepath.Join(root, "ok2")
	fakeBuild(t, other, "pi3", 5)
	if _, err := imager.Make([]string{dir, other}, imager.Options{BaseURL: "https://h/img", InitFormat: "none"}); err == nil || !strings.Contains(err.Error(), "put {build} in --base-url") {
		t.Errorf("two builds, one URL: %v", err)
	}
}

// TestInitFormats: only the formats a pibake device reads are offered.
// Imager's systemd format writes firstrun.sh, and rpi-preseed
// rpi-preseed.toml, with the password hash and the Wi-Fi passphrase, to
// bootsel: a pibake image runs neither, so they would stay on the card,
// never erased, and nothing the user set would apply.
func TestInitFormats(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "b")
	fakeBuild(t, dir, "pi4", 6)
	for _, f := range []string{"systemd", "rpi-preseed"} {
		_, err := imager.Make([]string{dir}, imager.Options{BaseURL: "https://h/", InitFormat: f})
		if err == nil || !strings.Contains(err.Error(), "never erased") {
			t.Errorf("--init-format %s: %v", f, err)
		}
	}
	for _, f := range []string{"", "none", "cloudinit", "cloudinit-rpi"} {
		if _, err := imager.Make([]string{dir}, imager.Options{BaseURL: "https://h/", InitFormat: f}); err != nil {
			t.Errorf("--init-format %q: %v", f, err)
		}
	}
}
