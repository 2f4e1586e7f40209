package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/pibake/pibake/internal/hosttool"
	"github.com/pibake/pibake/internal/servicetest"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/builder/imagedef"
	"github.com/pibake/pibake/disk/inspect"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/internal/testbase"
	"github.com/pibake/pibake/updater/channel"
)

const smallYAML = `name: small
version: 1.2.3
boards: [pi4, qemu]
debian:
  mirror: %s
  packages: [systemd-sysv]
partitions:
  bootsel: 40MiB
  boot: 40MiB
  root: 32MiB
  data: 16MiB
hostname: small
users:
  - name: pi
    groups: [adm]
    ssh_keys: ["ssh-ed25519 AAAAC3Nza pi@test"]
overlays:
  - name: base
    files:
      - path: etc/app/secret
        mode: "0640"
        owner: root:adm
services:
  - name: hello
environments:
  prod:
    hostname: small-prod
`

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		hosttool.Need(t, tool, "")
	}
}

// fakeDeb builds a .deb with the given files using dpkg-deb.
func fakeDeb(t *testing.T, dir, name, version, arch string, files map[string]string) debian.Package {
	t.Helper()
	root := filepath.Join(t.TempDir(), name)
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctl := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: test <t@example.org>\nDescription: fake %s\n", name, version, arch, name)
	if err := os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte(ctl), 0o644); err != nil {
		t.Fatal(err)
	}
	rel := fmt.Sprintf("pool/main/%c/%s/%s_%s_%s.deb", name[0], name, name, version, arch)
	out := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", root, out).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return debian.Package{Name: name, Version: version, Arch: arch, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Path: rel}
}

type fixture struct {
	mirror, cache string
	lock          []byte
}

// newFixture makes a file:// mirror with fake boot packages, a lock for
// smallYAML and a synthetic base in the cache under the lock's base key.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureBase(t, testbase.Write)
}

// newFixtureBase is newFixture with the base written by writeBase.
func newFixtureBase(t *testing.T, writeBase func(string, []testbase.Package) error) *fixture {
	t.Helper()
	need(t, "dpkg-deb", "tar2sqfs", "mmdebstrap")
	fx := &fixture{mirror: t.TempDir(), cache: t.TempDir()}
	fw := map[string]string{}
	for _, f := range []string{"bootcode.bin", "start.elf", "fixup.dat", "start4.elf", "fixup4.dat"} {
		fw["usr/lib/raspi-firmware/"+f] = "firmware " + f + "\n"
	}
	for _, f := range []string{"brcmfmac43456-sdio.bin", "brcmfmac43456-sdio.clm_blob", "brcmfmac43456-sdio.txt", "brcmfmac43455-sdio.txt"} {
		fw["usr/lib/firmware/brcm/"+f] = "wifi " + f + "\n"
	}
	pkgs := []debian.Package{
		fakeDeb(t, fx.mirror, "systemd-sysv", "257.9-1", "arm64", map[string]string{"usr/share/doc/systemd-sysv/x": "x"}),
		fakeDeb(t, fx.mirror, "raspi-firmware", "1.20240424+ds-1", "all", fw),
		fakeDeb(t, fx.mirror, "u-boot-rpi", "2025.01-3", "arm64", map[string]string{"usr/lib/u-boot/rpi_arm64/u-boot.bin": "u-boot for the pi\n"}),
		fakeDeb(t, fx.mirror, "u-boot-qemu", "2025.01-3", "all", map[string]string{"usr/lib/u-boot/qemu_arm64/u-boot.bin": "u-boot for qemu\n"}),
	}
	pkgs[0].Role = debian.RoleRoot
	for i := 1; i < len(pkgs); i++ {
		pkgs[i].Role = debian.RoleBoot
	}
	def, err := imagedef.Parse("small.yaml", []byte(fmt.Sprintf(smallYAML, "file://"+fx.mirror)), writeRepo(t, "file://"+fx.mirror), "")
	if err != nil {
		t.Fatal(err)
	}
	lock := &debian.Lock{Format: debian.LockFormat, Image: "small", Inputs: Inputs(def).Digest(), Suite: "trixie", SourceDateEpoch: 1700000000, Packages: pkgs}
	fx.lock = lock.Marshal()
	key, err := debian.BaseKey(context.Background(), lock, debian.BaseOptions{Variant: def.Debian.Variant, PathExclude: def.Debian.PathExclude, PathInclude: def.Debian.PathInclude})
	if err != nil {
		t.Fatal(err)
	}
	base := debian.Cache{Dir: fx.cache}.BasePath(key)
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeBase(base, []testbase.Package{{Name: "systemd-sysv", Version: "257.9-1", Arch: "arm64"}}); err != nil {
		t.Fatal(err)
	}
	return fx
}

// writeRepo lays out a checkout: images/small.yaml, overlays/, services/.
func writeRepo(t *testing.T, mirror string) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"images/small.yaml":            fmt.Sprintf(smallYAML, mirror),
		"overlays/base/etc/app/config": "setting=1\n",
		"overlays/base/etc/app/secret": "token=x\n",
		"overlays/base/usr/bin/app":    "#!/bin/sh\necho app\n",
		"services/hello.service":       "[Unit]\nDescription=hello\n[Service]\nExecStart=/usr/bin/app\n[Install]\nWantedBy=multi-user.target\n",
	}
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(p, "overlays/base/usr/bin/") {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func (fx *fixture) repo(t *testing.T) string {
	root := writeRepo(t, "file://"+fx.mirror)
	if err := os.WriteFile(filepath.Join(root, "images", "small.lock"), fx.lock, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func sumFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = hex.EncodeToString(h.Sum(nil))
	}
	return out
}

// TestBuildReproducible builds the same definition from two checkouts at
// different paths, with umasks and file modes that differ, and compares
// every output byte. The base is synthetic; TestRealBuild uses Debian.
func TestBuildReproducible(t *testing.T) {
	fx := newFixture(t)
	var sums []map[string]string
	for i := 0; i < 2; i++ {
		repo := fx.repo(t)
		if i == 1 {
			// A different checkout: group-writable files, as with umask 002.
			_ = filepath.Walk(filepath.Join(repo, "overlays"), func(p string, info os.FileInfo, err error) error {
				if err == nil && info.Mode().IsRegular() {
					return os.Chmod(p, info.Mode()|0o020)
				}
				return err
			})
		}
		out := filepath.Join(t.TempDir(), "out")
		res, err := Build(context.Background(), Options{Definition: filepath.Join(repo, "images", "small.yaml"), OutDir: out, CacheDir: fx.cache})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Stages) != 8 {
			t.Errorf("%d stages reported, want 8", len(res.Stages))
		}
		sums = append(sums, sumFiles(t, out))
		checkSBOM(t, out, filepath.Join(repo, "images", "small.lock"))
	}
	if len(sums[0]) != 6 {
		t.Errorf("outputs %v, want small.img, small.img.zst, small.bmap, manifest.json, small.spdx.json, SHA256SUMS", sums[0])
	}
	for name, s := range sums[0] {
		if sums[1][name] != s {
			t.Errorf("%s differs between the two builds: %s vs %s", name, s, sums[1][name])
		}
	}
}

func TestBuildImageChecks(t *testing.T) {
	need(t, "sfdisk", "fsck.vfat", "unsquashfs")
	fx := newFixture(t)
	repo := fx.repo(t)
	out := filepath.Join(t.TempDir(), "out")
	res, err := Build(context.Background(), Options{Definition: filepath.Join(repo, "images", "small.yaml"), Env: "prod", OutDir: out, CacheDir: fx.cache})
	if err != nil {
		t.Fatal(err)
	}
	CheckImage(t, res.Image, ImageExpect{
		Hostname: "small-prod",
		Files: map[string]string{
			"/usr/lib/systemd/systemd":      "-rwxr-xr-x 0/0",
			"/etc/app/secret":               "-rw-r----- 0/4",
			"/etc/app/config":               "-rw-r--r-- 0/0",
			"/usr/bin/app":                  "-rwxr-xr-x 0/0",
			"/home/pi/.ssh/authorized_keys": "-rw------- 1000/1000",
			"/etc/systemd/system/multi-user.target.wants/hello.service": "lrwxrwxrwx 0/0",
			// The Pi 400's Wi-Fi: raspi-firmware has it, no package of
			// the root does (firmware-brcm80211 has no 43456).
			"/usr/lib/firmware/brcm/brcmfmac43456-sdio.bin":      "-rw-r--r-- 0/0",
			"/usr/lib/firmware/brcm/brcmfmac43456-sdio.clm_blob": "-rw-r--r-- 0/0",
			"/usr/lib/firmware/brcm/brcmfmac43456-sdio.txt":      "-rw-r--r-- 0/0",
		},
		BootselFiles: []string{"start4.elf", "fixup4.dat", "u-boot.bin", "config.txt", "bcm2711-rpi-4-b.dtb", "boot.scr", "pibake.env"},
		SlotFiles:    []string{"vmlinuz", "initrd.img", "cmdline.txt", "pibake.json", "broadcom/bcm2711-rpi-4-b.dtb"},
	})
	pi4, _ := firmware.Lookup("pi4")
	checkBootChain(t, res.Image, pi4, rpiEnv, []byte(testbase.ModulesAlias), nil)
	if env := readBootFile(t, res.Image, 1, "pibake.env"); string(env) != "BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n" {
		t.Errorf("initial boot state %q", env)
	}
	if cfg := readBootFile(t, res.Image, 1, "config.txt"); !strings.Contains(string(cfg), "kernel=u-boot.bin") {
		t.Errorf("config.txt does not start U-Boot:\n%s", cfg)
	}
	m := res.Manifest
	if m.Env != "prod" || m.Board != "pi4" || m.Version != "1.2.3" || len(m.Packages) != 1 || m.Packages[0].SHA256 == "" || len(m.BootPackages) != 3 {
		t.Errorf("manifest: %+v", m)
	}
	// boot-a and boot-b, root-a and root-b: identical bytes.
	byName := map[string]string{}
	for _, p := range m.Partitions {
		byName[p.Name] = p.SHA256
	}
	if byName["boot-a"] != byName["boot-b"] || byName["root-a"] != byName["root-b"] {
		t.Errorf("slots differ: %v", byName)
	}

	// inspect notices a root slot whose bytes do not match its boot slot.
	rootB := m.Partitions[4]
	f, err := os.OpenFile(res.Image, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("tampered"), rootB.Offset+4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, s := range inspectFile(t, res.Image).Slots {
		if s.Name == "b" && (s.Verified || !strings.Contains(s.Problem, "does not match")) {
			t.Errorf("tampered root-b: verified %v, problem %q", s.Verified, s.Problem)
		}
		if s.Name == "a" && !s.Verified {
			t.Errorf("root-a: %s", s.Problem)
		}
	}

	// The qemu board has no Pi firmware on bootsel.
	res, err = Build(context.Background(), Options{Definition: filepath.Join(repo, "images", "small.yaml"), Board: "qemu", OutDir: out + "-qemu", CacheDir: fx.cache})
	if err != nil {
		t.Fatal(err)
	}
	rep := inspectFile(t, res.Image)
	for _, f := range rep.Bootsel {
		if strings.HasPrefix(f, "start") || strings.HasPrefix(f, "config.txt") {
			t.Errorf("qemu image has Pi firmware %s on bootsel", f)
		}
	}
	if ub := readBootFile(t, res.Image, 1, "u-boot.bin"); string(ub) != "u-boot for qemu\n" {
		t.Errorf("qemu bootsel u-boot.bin is %q, want the one from u-boot-qemu", ub)
	}
	// The initramfs holds the init and the qemu board's modules, in load order.
	initrd := readBootFile(t, res.Image, 2, "initrd.img")
	need(t, "cpio")
	cmd := exec.Command("cpio", "-it", "--quiet")
	cmd.Stdin = bytes.NewReader(initrd)
	list, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -it: %v", err)
	}
	for _, want := range []string{"init\n", "lib/modules/pibake.modules\n", "kernel/fs/jbd2/jbd2.ko.xz\n", "kernel/drivers/block/virtio_blk.ko.xz\n"} {
		if !strings.Contains(string(list), want) {
			t.Errorf("initramfs lacks %q:\n%s", want, list)
		}
	}
}

// openImage opens an image for reading; it is closed when the test ends.
func openImage(t *testing.T, img string) (*os.File, int64) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return f, st.Size()
}

// readBootFile reads a file from a FAT partition (by number) of an image.
func readBootFile(t *testing.T, img string, num int, name string) []byte {
	t.Helper()
	f, size := openImage(t, img)
	part := map[int]string{1: layout.Bootsel, 2: layout.BootA, 3: layout.BootB}[num]
	fsys, _, err := inspect.FAT(f, size, part)
	if err != nil {
		t.Fatal(err)
	}
	data, err := fsys.ReadFile(name)
	if err != nil {
		t.Fatalf("partition %d: %v", num, err)
	}
	return data
}

func inspectFile(t *testing.T, img string) *inspect.Report {
	t.Helper()
	f, size := openImage(t, img)
	rep, err := inspect.Image(f, size)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestBuildFailuresLeaveNoOutput(t *testing.T) {
	fx := newFixture(t)
	cases := []struct {
		name  string
		edit  func(t *testing.T, repo string)
		board string
		want  error
		text  string
		stage string // the error starts "build small: STAGE: "
	}{
		{"root too large", func(t *testing.T, repo string) {
			big := make([]byte, 40<<20)
			_, _ = rand.NewChaCha8([32]byte{1}).Read(big) // incompressible
			if err := os.WriteFile(filepath.Join(repo, "overlays/base/big.bin"), big, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "", ErrTooLarge, "raise partitions.root", "rootfs"},
		{"unknown board", nil, "pi5", nil, `board "pi5" is not a target`, "load"},
		{"stale lock", func(t *testing.T, repo string) {
			p := filepath.Join(repo, "images/small.yaml")
			b, _ := os.ReadFile(p)
			_ = os.WriteFile(p, []byte(strings.Replace(string(b), "[systemd-sysv]", "[systemd-sysv, curl]", 1)), 0o644)
		}, "", debian.ErrStaleLock, "run 'pibake lock'", "load"},
		{"missing lock", func(t *testing.T, repo string) { os.Remove(filepath.Join(repo, "images/small.lock")) }, "", os.ErrNotExist, "run 'pibake lock'", "load"},
		{"missing overlay", func(t *testing.T, repo string) { os.RemoveAll(filepath.Join(repo, "overlays/base")) }, "", imagedef.ErrInvalid, "small.yaml:18: overlays.0.name", "load"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repo := fx.repo(t)
			if c.edit != nil {
				c.edit(t, repo)
			}
			out := filepath.Join(t.TempDir(), "out")
			// A previous good output must survive a failed build untouched.
			earlierOutput(t, out)
			_, err := Build(context.Background(), Options{Definition: filepath.Join(repo, "images", "small.yaml"), Board: c.board, OutDir: out, CacheDir: fx.cache})
			if err == nil {
				t.Fatal("build succeeded")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("error %v does not wrap %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.text) {
				t.Errorf("error %q does not say %q", err, c.text)
			}
			if prefix := "build small: " + c.stage + ": "; !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start %q", err, prefix)
			}
			if b, _ := os.ReadFile(filepath.Join(out, "small.img")); string(b) != "previous" {
				t.Error("the previous output was touched")
			}
			left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".out.partial-*"))
			if len(left) != 0 {
				t.Errorf("staging left behind: %v", left)
			}
		})
	}
}

func TestFetchRejectsTamperedPackage(t *testing.T) {
	fx := newFixture(t)
	var lock debian.Lock
	l, _, err := debian.ReadLock(writeLock(t, fx.lock))
	if err != nil {
		t.Fatal(err)
	}
	lock = *l
	// Corrupt the mirror's copy of one package; a fresh cache must refuse it.
	p := lock.Packages[0]
	full := filepath.Join(fx.mirror, p.Path)
	data, _ := os.ReadFile(full)
	data[len(data)-1] ^= 0xff
	if err := os.WriteFile(full, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cache := debian.Cache{Dir: t.TempDir()}
	f := &debian.Fetcher{Mirror: "file://" + fx.mirror, Cache: cache}
	_, err = f.Fetch(context.Background(), lock.Packages)
	if !errors.Is(err, debian.ErrDigest) {
		t.Fatalf("error %v, want ErrDigest", err)
	}
	if cache.Has(p) {
		t.Error("a tampered package landed in the cache")
	}
	// Truncated: the same.
	if err := os.WriteFile(full, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err = f.Fetch(context.Background(), lock.Packages); !errors.Is(err, debian.ErrDigest) {
		t.Fatalf("truncated: error %v, want ErrDigest", err)
	}
	// Gone from the mirror: says what to do.
	os.Remove(full)
	if _, err = f.Fetch(context.Background(), lock.Packages); err == nil || !strings.Contains(err.Error(), "pibake lock") {
		t.Fatalf("missing: error %v", err)
	}
}

func writeLock(t *testing.T, data []byte) string {
	p := filepath.Join(t.TempDir(), "x.lock")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBuildTryboot(t *testing.T) {
	need(t, "fsck.vfat")
	fx := newFixture(t)
	repo := fx.repo(t)
	def := filepath.Join(repo, "images", "small.yaml")
	b, _ := os.ReadFile(def)
	if err := os.WriteFile(def, []byte(strings.Replace(string(b), "boards: [pi4, qemu]", "boards: [pi4]\nbootloader: tryboot", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Build(context.Background(), Options{Definition: def, OutDir: filepath.Join(t.TempDir(), "out"), CacheDir: fx.cache})
	if err != nil {
		t.Fatal(err)
	}
	if auto := string(readBootFile(t, res.Image, 1, "autoboot.txt")); !strings.Contains(auto, "tryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n") {
		t.Errorf("autoboot.txt:\n%s", auto)
	}
	for part, root := range map[int]string{2: "-05 pibake.slot=a", 3: "-06 pibake.slot=b"} {
		if cl := string(readBootFile(t, res.Image, part, "cmdline.txt")); !strings.Contains(cl, root) {
			t.Errorf("partition %d cmdline.txt %q lacks %q", part, cl, root)
		}
		// The firmware (no upstream_kernel=1 here) loads the CM4's tree
		// as bcm2711-rpi-cm4.dtb: the slot has it under that name too.
		for _, f := range []string{"start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb", "bcm2711-rpi-cm4.dtb", "vmlinuz", "initrd.img"} {
			readBootFile(t, res.Image, part, f)
		}
		if cfg := string(readBootFile(t, res.Image, part, "config.txt")); !strings.Contains(cfg, "kernel=vmlinuz") {
			t.Errorf("partition %d config.txt does not start the kernel:\n%s", part, cfg)
		}
	}
}

func TestBuildWithUpdater(t *testing.T) {
	need(t, "unsquashfs")
	fx := newFixture(t)
	repo := fx.repo(t)
	if _, _, err := channel.GenerateKeyFiles(filepath.Join(repo, "keys"), "fleet", ""); err != nil {
		t.Fatal(err)
	}
	def := filepath.Join(repo, "images", "small.yaml")
	b, _ := os.ReadFile(def)
	servicetest.TestCA(t, filepath.Join(repo, "keys"))
	updater := "updater:\n  server: http://10.0.2.100:8080\n  keys: [keys/fleet.pub]\n  health:\n    units: [hello.service]\n" +
		"  report:\n    broker: ssl://10.0.2.2:8883\n    ca: keys/ca.pem\n"
	if err := os.WriteFile(def, []byte(strings.Replace(string(b), "environments:", updater+"environments:", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Build(context.Background(), Options{Definition: def, Board: "qemu", OutDir: filepath.Join(t.TempDir(), "out"), CacheDir: fx.cache})
	if err != nil {
		t.Fatal(err)
	}
	CheckImage(t, res.Image, ImageExpect{Files: map[string]string{
		"/usr/bin/pibake-updater":                                            "-rwxr-xr-x 0/0",
		"/usr/lib/pibake/updater.yaml":                                       "-rw-r--r-- 0/0",
		"/usr/lib/pibake/etc.sha256":                                         "-rw-r--r-- 0/0",
		"/etc/systemd/system/multi-user.target.wants/pibake-updater.service": "lrwxrwxrwx 0/0",
	}})
	if got := res.Manifest.Channels; len(got) != 1 || got[0] != "stable" {
		t.Errorf("the manifest says the devices follow %q, want [stable] (publish refuses other channels by it)", got)
	}
	root := extractRoot(t, res.Image)
	if out, _ := exec.Command("unsquashfs", "-lls", root, "/usr/lib/firmware/brcm").Output(); strings.Contains(string(out), "43456") {
		t.Errorf("a qemu build carries the Pi 400's Wi-Fi firmware:\n%s", out)
	}
	cfg, err := exec.Command("unsquashfs", "-cat", root, "/usr/lib/pibake/updater.yaml").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"server: http://10.0.2.100:8080", "channel: stable", "board: qemu", "- RW", "hello.service", "\nimage: ", "\nbuilt: ",
		"report:\n    broker: ssl://10.0.2.2:8883\n    ca: |\n        -----BEGIN CERTIFICATE-----"} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("updater.yaml lacks %q:\n%s", want, cfg)
		}
	}
	if out, _ := exec.Command("unsquashfs", "-lls", root, "/usr/lib/systemd/system/pibake-boot-ok.service").Output(); strings.Contains(string(out), "pibake-boot-ok") {
		t.Error("pibake-boot-ok is installed next to the updater: it would commit trials before their health checks")
	}
}

func extractRoot(t *testing.T, img string) string {
	t.Helper()
	f, size := openImage(t, img)
	lay, _, err := inspect.Layout(f, size)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := lay.Part(layout.RootA)
	out := filepath.Join(t.TempDir(), "root.sqfs")
	o, _ := os.Create(out)
	defer o.Close()
	if _, err := io.Copy(o, io.NewSectionReader(f, p.Offset, p.Size)); err != nil {
		t.Fatal(err)
	}
	return out
}

// A Pi 5 build with a kernel that has no driver for the bcm2712's SD
// controller (Debian trixie's) stops with the reason and the kernel to
// use, not with an image that can never find its root.
func TestBuildPi5NeedsSDDriver(t *testing.T) {
	fx := newFixture(t)
	repo := fx.repo(t)
	def := filepath.Join(repo, "images", "small.yaml")
	b, _ := os.ReadFile(def)
	if err := os.WriteFile(def, []byte(strings.Replace(string(b), "boards: [pi4, qemu]", "boards: [pi5]", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	_, err := Build(context.Background(), Options{Definition: def, OutDir: out, CacheDir: fx.cache})
	if err == nil || !strings.Contains(err.Error(), "does not build CONFIG_MMC_SDHCI_BRCMSTB") || !strings.Contains(err.Error(), "linux-image-arm64/trixie-backports") || !strings.HasPrefix(err.Error(), "build small: boot: ") {
		t.Fatalf("pi5 build with no bcm2712 SD driver: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed build left %s", out)
	}
}
