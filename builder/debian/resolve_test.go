package debian

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// fakeArchive is a signed Debian archive on loopback: one suite, main,
// arm64, with packages that exercise what the resolver must get right.
type fakeArchive struct {
	dir, keyring, url string
	gnupg             string
}

// archive packages: name, version, fields. Each gets a pool file of
// made-up bytes, listed with its size and sha256.
var archivePackages = []fakePackage{
	{"base-a", "1.0", "Essential: yes\nPriority: required\nDepends: libx (>= 2)"},
	{"libx", "1.0", "Priority: optional"},
	{"libx", "2.0", "Priority: optional"}, // the newest satisfies base-a
	{"req-b", "1:3.0-1", "Priority: required"},
	{"app", "0.9", "Priority: optional\nDepends: base-a"},
	{"app", "1.0", "Priority: optional\nDepends: base-a, liby | libz\nRecommends: extra"},
	{"liby", "1.0", "Priority: optional"},
	{"libz", "1.0", "Priority: optional"},
	{"extra", "1.0", "Priority: optional"},
	{"unused", "1.0", "Priority: optional"},
	{"raspi-firmware", "1.0", "Priority: optional\nArchitecture-All: yes"},
	{"u-boot-rpi", "2024.01", "Priority: optional"},
	{"u-boot-rpi", "2025.01", "Priority: optional"},
	{"u-boot-qemu", "2025.01", "Priority: optional"},
}

func gpgRun(t *testing.T, home string, args ...string) {
	t.Helper()
	cmd := exec.Command("gpg", append([]string{"--batch", "--quiet", "--homedir", home, "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gpg %v: %v\n%s", args, err, out)
	}
}

func newFakeArchive(t *testing.T) *fakeArchive {
	t.Helper()
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("apt-get not installed")
	}
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Fatal("gpg not installed: apt-get install gnupg (make deps does it)")
	}
	a := &fakeArchive{dir: t.TempDir(), gnupg: filepath.Join(t.TempDir(), "g")}
	os.Mkdir(a.gnupg, 0o700)
	gpgRun(t, a.gnupg, "--quick-gen-key", "pibake test archive <archive@pibake.test>", "ed25519", "sign", "never")
	a.keyring = filepath.Join(t.TempDir(), "archive.gpg")
	gpgRun(t, a.gnupg, "--output", a.keyring, "--export")
	a.writeIndex(t, a.packages(t, "", "pool/main", archivePackages), a.gnupg)
	srv := httptest.NewServer(http.FileServer(http.Dir(a.dir)))
	t.Cleanup(srv.Close)
	a.url = srv.URL
	return a
}

// fakePackage is a package of a fake archive: name, version, fields.
type fakePackage struct{ name, version, fields string }

// packages writes each package's pool file (made-up bytes, the same for
// the same name and version whatever the archive, unless the fields say
// "Bytes: ...") under root/pool and returns their Packages index.
func (a *fakeArchive) packages(t *testing.T, root, pool string, pkgs []fakePackage) string {
	t.Helper()
	var idx strings.Builder
	for _, p := range pkgs {
		arch := "arm64"
		fields := p.fields
		if strings.Contains(fields, "Architecture-All") {
			arch, fields = "all", strings.ReplaceAll(fields, "\nArchitecture-All: yes", "")
		}
		data := []byte("not really a deb: " + p.name + " " + p.version)
		if before, bytes, ok := strings.Cut(fields, "\nBytes: "); ok {
			fields, data = before, []byte(bytes)
		}
		sum := sha256.Sum256(data)
		v := p.version // pool file names carry no epoch
		if _, after, ok := strings.Cut(v, ":"); ok {
			v = after
		}
		file := fmt.Sprintf("%s/%s_%s_%s.deb", pool, p.name, v, arch)
		os.MkdirAll(filepath.Join(a.dir, root, pool), 0o755)
		os.WriteFile(filepath.Join(a.dir, root, file), data, 0o644)
		fmt.Fprintf(&idx, "Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: nobody <nobody@pibake.test>\n%s\nFilename: %s\nSize: %d\nSHA256: %s\nDescription: test package %s\n\n",
			p.name, p.version, arch, fields, file, len(data), hex.EncodeToString(sum[:]), p.name)
	}
	return idx.String()
}

// writeIndex writes the main suite's index, signed with the key in gnupg.
func (a *fakeArchive) writeIndex(t *testing.T, packages, gnupg string) {
	t.Helper()
	a.writeSuite(t, "", "testsuite", packages, gnupg, "")
}

// writeSuite writes a suite's Packages index under root (the mirror's
// folder below the archive's), a Release listing its sha256 with the
// extra fields, and the Release signed inline (InRelease) with the key in
// gnupg; no gnupg leaves the suite unsigned.
func (a *fakeArchive) writeSuite(t *testing.T, root, suite, packages, gnupg, extra string) {
	t.Helper()
	d := filepath.Join(a.dir, root, "dists", suite)
	os.MkdirAll(filepath.Join(d, "main/binary-arm64"), 0o755)
	os.WriteFile(filepath.Join(d, "main/binary-arm64/Packages"), []byte(packages), 0o644)
	sum := sha256.Sum256([]byte(packages))
	release := fmt.Sprintf("Origin: pibake test\nSuite: %s\nCodename: %s\nDate: Sat, 01 Nov 2025 00:00:00 UTC\n%sArchitectures: arm64\nComponents: main\nSHA256:\n %s %d main/binary-arm64/Packages\n",
		suite, suite, extra, hex.EncodeToString(sum[:]), len(packages))
	os.WriteFile(filepath.Join(d, "Release"), []byte(release), 0o644)
	os.Remove(filepath.Join(d, "InRelease"))
	if gnupg != "" {
		gpgRun(t, gnupg, "--output", filepath.Join(d, "InRelease"), "--clearsign", filepath.Join(d, "Release"))
	}
}

func (a *fakeArchive) resolve(t *testing.T, variant string, pkgs ...string) (*Lock, Cache, error) {
	t.Helper()
	old := ArchiveKeyring
	ArchiveKeyring = a.keyring
	t.Cleanup(func() { ArchiveKeyring = old })
	cache := Cache{Dir: t.TempDir()}
	lock, err := Resolve(context.Background(), Inputs{Suite: "testsuite", Components: []string{"main"}, Variant: variant, Packages: pkgs}, ResolveOptions{Image: "test", Mirror: a.url, Cache: cache, Epoch: MinEpoch})
	return lock, cache, err
}

func names(l *Lock, role string) string {
	var n []string
	for _, p := range l.Role(role) {
		n = append(n, p.Name+"="+p.Version)
	}
	sort.Strings(n)
	return strings.Join(n, " ")
}

// TestResolve: the resolver picks what mmdebstrap would install (the
// Essential set and its dependencies, the variant's priority set, the
// definition's packages with their first alternative, no Recommends, the
// newest version) and the newest boot packages, and caches each verified.
func TestResolve(t *testing.T) {
	a := newFakeArchive(t)
	lock, cache, err := a.resolve(t, "minbase", "app")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(lock, RoleRoot), "app=1.0 base-a=1.0 libx=2.0 liby=1.0 req-b=1:3.0-1"; got != want {
		t.Errorf("root packages %q, want %q", got, want)
	}
	if got, want := names(lock, RoleBoot), "raspi-firmware=1.0 u-boot-qemu=2025.01 u-boot-rpi=2025.01"; got != want {
		t.Errorf("boot packages %q, want %q", got, want)
	}
	for _, p := range lock.Packages {
		if err := cache.Verify(p); err != nil {
			t.Errorf("%s not in the cache: %v", p.Name, err)
		}
	}
	// The essential variant: no Priority: required beyond the Essential set.
	lock, _, err = a.resolve(t, "essential")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(lock, RoleRoot); got != "base-a=1.0 libx=2.0" {
		t.Errorf("essential variant: %q", got)
	}
	// The lock is the same whatever the mirror's URL (a mirror is not an input).
	if _, _, err := ReadLock(writeTemp(t, lock.Marshal())); err != nil {
		t.Errorf("the resolved lock does not read back: %v", err)
	}
}

func writeTemp(t *testing.T, b []byte) string {
	p := filepath.Join(t.TempDir(), "x.lock")
	os.WriteFile(p, b, 0o644)
	return p
}

// TestResolveRefuses: an index that does not verify, an unreachable
// mirror, a package the archive does not have: each a clear error, and
// nothing cached.
func TestResolveRefuses(t *testing.T) {
	a := newFakeArchive(t)
	idx, _ := os.ReadFile(filepath.Join(a.dir, "dists/testsuite/main/binary-arm64/Packages"))

	// The Packages file changed after the Release was signed.
	os.WriteFile(filepath.Join(a.dir, "dists/testsuite/main/binary-arm64/Packages"), append(idx, []byte("Package: evil\nVersion: 1\nArchitecture: arm64\n\n")...), 0o644)
	if _, cache, err := a.resolve(t, "minbase", "app"); err == nil || !strings.Contains(err.Error(), "archive testsuite at") || !strings.Contains(err.Error(), "does not match the sha256") {
		t.Errorf("tampered Packages: %v", err)
	} else if ents, _ := os.ReadDir(filepath.Join(cache.Dir, "debs")); len(ents) != 0 {
		t.Errorf("tampered Packages: %d files cached", len(ents))
	}
	// A Release signed by a key that is not the archive's.
	other := filepath.Join(t.TempDir(), "g")
	os.Mkdir(other, 0o700)
	gpgRun(t, other, "--quick-gen-key", "someone else <else@pibake.test>", "ed25519", "sign", "never")
	a.writeIndex(t, string(idx), other)
	if _, _, err := a.resolve(t, "minbase", "app"); err == nil || !strings.Contains(err.Error(), "not in Debian's archive keyring") {
		t.Errorf("Release signed by another key: %v", err)
	}
	a.writeIndex(t, string(idx), a.gnupg)
	if _, _, err := a.resolve(t, "minbase", "app"); err != nil {
		t.Fatalf("restored archive: %v", err)
	}
	// A package the archive does not have.
	if _, _, err := a.resolve(t, "minbase", "app", "no-such-package"); err == nil || !strings.Contains(err.Error(), "no-such-package") {
		t.Errorf("unknown package: %v", err)
	}
	// A mirror nobody answers at.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + l.Addr().String()
	l.Close()
	a.url = dead
	if _, _, err := a.resolve(t, "minbase", "app"); err == nil || !strings.Contains(err.Error(), "is the mirror reachable") {
		t.Errorf("unreachable mirror: %v", err)
	}
}

// TestSimulatedInstalls: apt's simulation lines, epochs and arch
// qualifiers included, map to index entries; a line naming a package not
// in the index is refused.
func TestSimulatedInstalls(t *testing.T) {
	ix := &indexes{byKey: map[string][]indexEntry{}}
	for _, k := range []string{"zlib1g 1:1.3-1 arm64", "tzdata 2025a-1 all"} {
		f := strings.Fields(k)
		var s Stanza
		s.Set("Package", f[0])
		s.Set("Version", f[1])
		s.Set("Architecture", f[2])
		ix.byKey[k] = []indexEntry{{s: s, archive: "trixie"}}
	}
	out := "Reading package lists...\nInst zlib1g (1:1.3-1 Debian:13.2/stable [arm64])\nInst tzdata:all [2024a-1] (2025a-1 Debian:13.2/stable [all])\nConf zlib1g (1:1.3-1 Debian:13.2/stable [arm64])\n"
	got, err := simulatedInstalls([]byte(out), ix)
	if err != nil || len(got) != 2 || got[1].s.Get("Package") != "tzdata" {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := simulatedInstalls([]byte("Inst evil (1 x [arm64])\n"), ix); err == nil {
		t.Error("a package outside the index was accepted")
	}
	if _, err := simulatedInstalls([]byte("E: nothing\n"), ix); err == nil {
		t.Error("an empty simulation was accepted")
	}
}
