package builder

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/firmware/uboot/ubootcheck"
)

// These tests build real images from Debian's archive: the first run on a
// machine bootstraps (minutes, under qemu-user), later runs reuse the cache
// in ~/.cache/pibake. make test runs them (PIBAKE_REAL=1).

// needReal also runs the real builds beside each other: the cold
// bootstrap of TestRealReproducibleSmall keeps about one core busy
// (maintainer scripts run one at a time under qemu-user), the demo's
// builds use the other.
func needReal(t *testing.T) {
	t.Helper()
	if os.Getenv("PIBAKE_REAL") == "" {
		t.Skip("set PIBAKE_REAL=1 to build real images from Debian (make test does)")
	}
	need(t, "mmdebstrap", "tar2sqfs", "dpkg-deb", "sfdisk", "fsck.vfat", "unsquashfs")
	t.Parallel()
}

// copyTree copies a checkout's images/, overlays/ and services/ to a new
// path, as a second clone would have them.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "clone")
	// The demo's container is built from Go source in the module.
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if errors.Is(err, os.ErrNotExist) {
			continue // a definition without containers built from source
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"images", "overlays", "services", "examples"} {
		if _, err := os.Stat(filepath.Join(src, d)); errors.Is(err, os.ErrNotExist) && d == "examples" {
			continue
		}
		err := filepath.Walk(filepath.Join(src, d), func(p string, info os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			out := filepath.Join(dst, rel)
			switch {
			case info.IsDir():
				return os.MkdirAll(out, 0o755)
			case info.Mode()&os.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil {
					return err
				}
				return os.Symlink(target, out)
			}
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			o, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(o, in); err != nil {
				o.Close()
				return err
			}
			return o.Close()
		})
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	return dst
}

func buildLogged(t *testing.T, opts Options) (*Result, time.Duration) {
	t.Helper()
	opts.Progress = testWriter{t}
	start := time.Now()
	res, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return res, time.Since(start)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Logf("%s", p); return len(p), nil }

// TestRealDemo builds images/demo.yaml, checks it with the real tools,
// builds it again from another clone path and compares every output, then
// changes one overlay file and rebuilds (the warm path).
func TestRealDemo(t *testing.T) {
	needReal(t)
	a := copyTree(t, "..")
	resA, took := buildLogged(t, Options{Definition: filepath.Join(a, "images", "demo.yaml"), OutDir: filepath.Join(t.TempDir(), "demo")})
	t.Logf("demo build (first in this run) took %s", took.Round(time.Second))
	modDir := "/usr/lib/modules/" + resA.Manifest.Kernel
	read := map[string][]byte{modDir + "/modules.alias": nil, modDir + "/modules.builtin": nil}
	CheckImage(t, resA.Image, ImageExpect{
		Read:     read,
		Hostname: "demo",
		Files: map[string]string{
			"/usr/lib/systemd/systemd":      "-rwxr-xr-x 0/0",
			"/etc/demo/secret.conf":         "-rw-r----- 0/4",
			"/etc/demo/motd":                "-rw-r--r-- 0/0",
			"/usr/local/bin/demo-hello":     "-rwxr-xr-x 0/0",
			"/home/pi/.ssh/authorized_keys": "-rw------- 1000/1000",
			"/etc/systemd/system/multi-user.target.wants/demo-hello.service": "lrwxrwxrwx 0/0",
			"/usr/bin/podman": "-rwxr-xr-x 0/0",
			"/usr/share/containers/systemd/hello.container": "-rw-r--r-- 0/0",
			"/usr/lib/pibake/containers/hello/rootfs/app":   "-rwxr-xr-x 0/0",
			"/etc/containers/storage.conf":                  "-rw-r--r-- 0/0",
		},
		BootselFiles: []string{"start4.elf", "fixup4.dat", "u-boot.bin", "config.txt", "bcm2711-rpi-4-b.dtb", "boot.scr", "pibake.env"},
		SlotFiles:    []string{"vmlinuz", "initrd.img", "cmdline.txt", "pibake.json", "broadcom/bcm2711-rpi-4-b.dtb"},
	})

	checkQuadlet(t, resA.Image)
	checkSBOM(t, resA.OutDir, filepath.Join(a, "images", "demo.lock"))
	// The boot chain as the Pi 4 runs it: the script against the real
	// u-boot.bin's environment, the initramfs against the real device
	// trees and module aliases.
	env, err := ubootcheck.DefaultEnv(readBootFile(t, resA.Image, 1, "u-boot.bin"))
	if err != nil {
		t.Fatal(err)
	}
	pi4, _ := firmware.Lookup("pi4")
	checkBootChain(t, resA.Image, pi4, env, read[modDir+"/modules.alias"], read[modDir+"/modules.builtin"])

	b := copyTree(t, "..")
	resB, took := buildLogged(t, Options{Definition: filepath.Join(b, "images", "demo.yaml"), OutDir: filepath.Join(t.TempDir(), "demo")})
	t.Logf("demo build from a second clone path took %s", took.Round(time.Second))
	sa, sb := sumFiles(t, resA.OutDir), sumFiles(t, resB.OutDir)
	for name, s := range sa {
		if sb[name] != s {
			t.Errorf("%s differs between clones: %s vs %s", name, s, sb[name])
		}
	}
	t.Logf("demo.img sha256 %s", sa["demo.img"])

	if err := os.WriteFile(filepath.Join(b, "overlays/demo-base/etc/demo/motd"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	resC, took := buildLogged(t, Options{Definition: filepath.Join(b, "images", "demo.yaml"), OutDir: filepath.Join(t.TempDir(), "demo")})
	t.Logf("warm rebuild after changing one overlay file took %s", took.Round(time.Second))
	if resC.Manifest.Disk.SHA256 == resA.Manifest.Disk.SHA256 {
		t.Error("changing an overlay file did not change the image")
	}
}

// TestRealReproducibleSmall bootstraps a small image twice, from scratch,
// in two clones with separate base caches, and compares every output byte:
// the whole chain (mmdebstrap included) is reproducible, not just the steps
// after a shared cached base.
func TestRealReproducibleSmall(t *testing.T) {
	needReal(t)
	shared, err := debian.DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	var sums []map[string]string
	for i := 0; i < 2; i++ {
		repo := copyTree(t, "testdata/small")
		cache := shared
		if i == 1 {
			// A fresh cache: its own bootstrap of the base. The .debs are
			// content-addressed and verified, so sharing them changes nothing.
			cache = t.TempDir()
			if err := os.MkdirAll(filepath.Join(shared, "debs"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(shared, "debs"), filepath.Join(cache, "debs")); err != nil {
				t.Fatal(err)
			}
		}
		res, took := buildLogged(t, Options{Definition: filepath.Join(repo, "images", "small.yaml"), OutDir: filepath.Join(t.TempDir(), "small"), CacheDir: cache})
		t.Logf("small build %d took %s", i+1, took.Round(time.Second))
		sums = append(sums, sumFiles(t, res.OutDir))
	}
	for name, s := range sums[0] {
		if sums[1][name] != s {
			t.Errorf("%s differs between two bootstraps: %s vs %s", name, s, sums[1][name])
		}
	}
	t.Logf("small.img sha256 %s", sums[0]["small.img"])
}

// checkQuadlet runs the image's own Quadlet (podman's systemd generator,
// arm64, under qemu-user) on the unit pibake wrote for the demo's hello
// container, as systemd does at boot, and checks the service it makes.
func checkQuadlet(t *testing.T, img string) {
	t.Helper()
	qemu, err := exec.LookPath("qemu-aarch64-static")
	if err != nil {
		t.Fatalf("qemu-aarch64-static: %v (scripts/deps.sh installs qemu-user-static)", err)
	}
	dir := filepath.Join(t.TempDir(), "root")
	paths := []string{"/usr/libexec/podman/quadlet", "/usr/lib/aarch64-linux-gnu/libc.so.6", "/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1", "/usr/share/containers/systemd"}
	if out, err := exec.Command("unsquashfs", append([]string{"-q", "-d", dir, extractRoot(t, img)}, paths...)...).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	os.MkdirAll(filepath.Join(dir, "lib"), 0o755)
	os.Symlink("../usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1", filepath.Join(dir, "lib", "ld-linux-aarch64.so.1"))
	cmd := exec.Command(qemu, "-L", dir, filepath.Join(dir, "usr/libexec/podman/quadlet"), "-dryrun")
	cmd.Env = append(os.Environ(), "QUADLET_UNIT_DIRS="+filepath.Join(dir, "usr/share/containers/systemd"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("quadlet: %v\n%s", err, stderr.String())
	}
	unit := string(out)
	for _, want := range []string{"---hello.service---", "Type=notify", "--sdnotify=healthy", "--rootfs /usr/lib/pibake/containers/hello/rootfs:O",
		`--health-cmd "[\"/app\",\"-check\",\"http://127.0.0.1:8080/healthz\"]"`, "--publish 8080:8080", "-v hello-data:/data:U", "--env HELLO_VERSION=0.1.0", "WantedBy=multi-user.target"} {
		if !strings.Contains(unit, want) {
			t.Errorf("Quadlet's hello.service lacks %q:\n%s\n%s", want, unit, stderr.String())
		}
	}
	if strings.Contains(strings.ToLower(stderr.String()), "unsupported") || strings.Contains(strings.ToLower(stderr.String()), "error") {
		t.Errorf("Quadlet complained about the unit:\n%s", stderr.String())
	}
}
