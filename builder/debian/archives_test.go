package debian

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fake archive's other suites: -updates and -backports on the main
// mirror, -security on a mirror of its own (a.url+"/security", pool
// paths under pool/updates as Debian's).
var (
	updatesPackages = []fakePackage{
		{"liby", "1.1", "Priority: optional"},
	}
	securityPackages = []fakePackage{
		{"libx", "2.0+sec1", "Priority: optional"},
		{"base-a", "1.0", "Essential: yes\nPriority: required\nDepends: libx (>= 2)"}, // the same bytes as main's
		{"u-boot-rpi", "2025.02", "Priority: optional"},
	}
	backportsPackages = []fakePackage{
		{"app", "2.0~bpo1", "Priority: optional\nDepends: base-a, liby (>= 1.0), libnew"},
		{"libnew", "1.0~bpo1", "Priority: optional"},
		{"liby", "9.0~bpo1", "Priority: optional"}, // newer, never wanted: main satisfies app
	}
)

// Debian's backports Release: apt gives the suite priority 100.
const backportsRelease = "NotAutomatic: yes\nButAutomaticUpgrades: yes\n"

// withSuites adds the updates, security and backports suites to a.
func (a *fakeArchive) withSuites(t *testing.T) {
	t.Helper()
	a.writeSuite(t, "", "testsuite-updates", a.packages(t, "", "pool/main", updatesPackages), a.gnupg, "")
	a.writeSecurity(t, securityPackages, a.gnupg, "")
	a.writeSuite(t, "", "testsuite-backports", a.packages(t, "", "pool/main", backportsPackages), a.gnupg, backportsRelease)
}

func (a *fakeArchive) writeSecurity(t *testing.T, pkgs []fakePackage, gnupg, extra string) {
	t.Helper()
	a.writeSuite(t, "security", "testsuite-security", a.packages(t, "security", "pool/updates/main", pkgs), gnupg, extra)
}

// archives are the fake's archives of the given kinds, the main suite first.
func (a *fakeArchive) archives(kinds ...string) []Archive {
	ar := []Archive{{Suite: "testsuite", Mirror: a.url}}
	for _, k := range kinds {
		m := a.url
		if k == KindSecurity {
			m += "/security"
		}
		ar = append(ar, Archive{Suite: "testsuite-" + k, Mirror: m})
	}
	return ar
}

func (a *fakeArchive) resolveArchives(t *testing.T, archives []Archive, pkgs ...string) (*Lock, Cache, error) {
	t.Helper()
	old := ArchiveKeyring
	ArchiveKeyring = a.keyring
	t.Cleanup(func() { ArchiveKeyring = old })
	cache := Cache{Dir: t.TempDir()}
	in := Inputs{Suite: "testsuite", Components: []string{"main"}, Variant: "minbase", Packages: pkgs}
	for _, ar := range archives[1:] {
		in.Archives = append(in.Archives, ar.Suite)
	}
	lock, err := Resolve(context.Background(), in, ResolveOptions{Image: "test", Archives: archives, Cache: cache, Epoch: MinEpoch})
	return lock, cache, err
}

func archivesOf(l *Lock) string {
	var out []string
	for _, p := range l.Role(RoleRoot) {
		if p.Archive != "" {
			out = append(out, p.Name+"@"+p.Archive)
		}
	}
	return strings.Join(out, " ")
}

// TestResolveArchives: apt's priorities across the archives. The highest
// version of main, updates and security wins; backports only for what is
// asked for by name and for its dependencies main cannot satisfy; the
// lock records each package's archive (none for the main suite, also for
// a package security lists with the same bytes), fetches each from its
// archive's mirror, and reads back.
func TestResolveArchives(t *testing.T) {
	a := newFakeArchive(t)
	a.withSuites(t)
	lock, cache, err := a.resolveArchives(t, a.archives(KindUpdates, KindSecurity, KindBackports), "app")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(lock, RoleRoot), "app=1.0 base-a=1.0 libx=2.0+sec1 liby=1.1 req-b=1:3.0-1"; got != want {
		t.Errorf("without a backport asked for: %q, want %q", got, want)
	}
	if got, want := archivesOf(lock), "libx@testsuite-security liby@testsuite-updates"; got != want {
		t.Errorf("archives %q, want %q", got, want)
	}
	for _, p := range lock.Packages {
		if err := cache.Verify(p); err != nil {
			t.Errorf("%s not fetched from its archive: %v", p.Name, err)
		}
	}
	lock, _, err = a.resolveArchives(t, a.archives(KindUpdates, KindSecurity, KindBackports), "app/testsuite-backports")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(lock, RoleRoot), "app=2.0~bpo1 base-a=1.0 libnew=1.0~bpo1 libx=2.0+sec1 liby=1.1 req-b=1:3.0-1"; got != want {
		t.Errorf("with app from backports: %q, want %q", got, want)
	}
	if got, want := archivesOf(lock), "app@testsuite-backports libnew@testsuite-backports libx@testsuite-security liby@testsuite-updates"; got != want {
		t.Errorf("archives %q, want %q", got, want)
	}
	back, _, err := ReadLock(writeTemp(t, lock.Marshal()))
	if err != nil || archivesOf(back) != archivesOf(lock) {
		t.Errorf("the lock does not read back its archives: %v", err)
	}
	if !strings.Contains(string(lock.Marshal()), "archive: testsuite-security}") {
		t.Errorf("the lock does not write the archive:\n%s", lock.Marshal())
	}
}

// TestResolveArchiveFaults: an archive unsigned, signed by another key or
// past its Valid-Until, a package version whose bytes differ between two
// archives, a backport asked for without the backports archive: each
// refused naming the archive (and package) and the fix, nothing cached.
func TestResolveArchiveFaults(t *testing.T) {
	a := newFakeArchive(t)
	a.withSuites(t)
	other := filepath.Join(t.TempDir(), "g")
	os.Mkdir(other, 0o700)
	gpgRun(t, other, "--quick-gen-key", "someone else <else@pibake.test>", "ed25519", "sign", "never")
	all := a.archives(KindUpdates, KindSecurity)
	conflict := append(append([]fakePackage(nil), securityPackages...), fakePackage{"req-b", "1:3.0-1", "Priority: required\nBytes: other bytes"})
	for _, c := range []struct {
		name  string
		setup func()
		pkgs  []string
		want  []string
	}{
		{"unsigned", func() { a.writeSecurity(t, securityPackages, "", "") }, []string{"app"},
			[]string{"archive testsuite-security at " + a.url + "/security", "no signed Release", "point debian.security_mirror"}},
		{"another key", func() { a.writeSecurity(t, securityPackages, other, "") }, []string{"app"},
			[]string{"archive testsuite-security", "not in Debian's archive keyring", "debian-archive-keyring"}},
		{"expired", func() { a.writeSecurity(t, securityPackages, a.gnupg, "Valid-Until: Sat, 08 Nov 2025 00:00:00 UTC\n") }, []string{"app"},
			[]string{"archive testsuite-security", "past its Valid-Until", "stale"}},
		{"two contents", func() { a.writeSecurity(t, conflict, a.gnupg, "") }, []string{"app"},
			[]string{"req-b 1:3.0-1", "testsuite with sha256", "testsuite-security with sha256", "check debian.mirror and debian.security_mirror"}},
		{"backport without backports", func() { a.writeSecurity(t, securityPackages, a.gnupg, "") }, []string{"app/testsuite-backports"},
			[]string{"package app/testsuite-backports", "does not read", "set debian.backports: true"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.setup()
			_, cache, err := a.resolveArchives(t, all, c.pkgs...)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q:\n%v", w, err)
				}
			}
			if ents, _ := os.ReadDir(filepath.Join(cache.Dir, "debs")); len(ents) != 0 {
				t.Errorf("%d files cached", len(ents))
			}
		})
	}
	if _, _, err := a.resolveArchives(t, all, "app/testsuite-backports"); !errors.Is(err, ErrNotRead) {
		t.Errorf("backport without backports: %v", err)
	}
}

// TestOutdated: a lock made from the main suite alone, against the
// archives with their updates: the newer versions are listed, the
// security fix marked, the backport not (app was not taken from there),
// a package security lists with its locked version not at all.
func TestOutdated(t *testing.T) {
	a := newFakeArchive(t)
	a.withSuites(t)
	old, _, err := a.resolveArchives(t, a.archives(), "app")
	if err != nil {
		t.Fatal(err)
	}
	in := Inputs{Suite: "testsuite", Components: []string{"main"}, Variant: "minbase", Packages: []string{"app"}, Archives: []string{"testsuite-updates", "testsuite-security", "testsuite-backports"}}
	ups, err := Outdated(context.Background(), old, in, a.archives(KindUpdates, KindSecurity, KindBackports), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range ups {
		got = append(got, fmt.Sprintf("%s %s->%s@%s security=%v", u.Name, u.Locked, u.Newest, u.NewestArchive, u.Security))
	}
	want := []string{
		"libx 2.0->2.0+sec1@testsuite-security security=true",
		"liby 1.0->1.1@testsuite-updates security=false",
		"u-boot-rpi 2025.01->2025.02@testsuite-security security=true",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("outdated:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Relocked with the archives: nothing is outdated.
	now, _, err := a.resolveArchives(t, a.archives(KindUpdates, KindSecurity, KindBackports), "app")
	if err != nil {
		t.Fatal(err)
	}
	if ups, err := Outdated(context.Background(), now, in, a.archives(KindUpdates, KindSecurity, KindBackports), nil); err != nil || len(ups) != 0 {
		t.Errorf("after the relock: %+v, %v", ups, err)
	}
	// The security archive's index must verify here too.
	a.writeSecurity(t, securityPackages, "", "")
	if _, err := Outdated(context.Background(), old, in, a.archives(KindUpdates, KindSecurity, KindBackports), nil); err == nil || !strings.Contains(err.Error(), "archive testsuite-security") {
		t.Errorf("unsigned security archive: %v", err)
	}
}

// TestFetchOutlivesMirror: the mirror dropped a locked version (as
// Debian's does at a point release). The cache still serves it; without
// it, the archive's snapshot does; without either, the error names the
// package, version, archive, every place tried and the fix.
func TestFetchOutlivesMirror(t *testing.T) {
	a := newFakeArchive(t)
	a.withSuites(t)
	archives := a.archives(KindUpdates, KindSecurity)
	lock, cache, err := a.resolveArchives(t, archives, "app")
	if err != nil {
		t.Fatal(err)
	}
	libx, _ := lock.Find("libx", RoleRoot)
	// A snapshot of the security mirror as it was, then the mirror drops libx.
	snap := filepath.Join(t.TempDir(), "snapshot")
	if err := os.CopyFS(snap, os.DirFS(filepath.Join(a.dir, "security"))); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(a.dir, "security", libx.Path)); err != nil {
		t.Fatal(err)
	}
	f := &Fetcher{Archives: archives, Suite: lock.Suite, Cache: cache}
	if n, err := f.Fetch(context.Background(), lock.Packages); err != nil || n != 0 {
		t.Errorf("from the cache: %d bytes, %v", n, err)
	}
	f.Cache = Cache{Dir: t.TempDir()}
	_, err = f.Fetch(context.Background(), lock.Packages)
	for _, w := range []string{"libx 2.0+sec1", "archive testsuite-security", a.url + "/security/" + libx.Path + " (HTTP 404)", "not in the cache " + f.Cache.DebPath(libx.SHA256), "debian.security_snapshot", "pibake lock"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("without a snapshot, the error does not say %q: %v", w, err)
		}
	}
	if !errors.Is(err, ErrGone) {
		t.Errorf("not ErrGone: %v", err)
	}
	f.Archives = append([]Archive(nil), archives...)
	f.Archives[2].Snapshot = "file://" + snap
	if _, err := f.Fetch(context.Background(), lock.Packages); err != nil {
		t.Fatalf("with the snapshot: %v", err)
	}
	if err := f.Cache.Verify(libx); err != nil {
		t.Errorf("libx from the snapshot: %v", err)
	}
	// Neither the mirror nor the snapshot: both named.
	os.Remove(filepath.Join(snap, libx.Path))
	f.Cache = Cache{Dir: t.TempDir()}
	if _, err := f.Fetch(context.Background(), lock.Packages); err == nil || !strings.Contains(err.Error(), "file://"+snap+"/"+libx.Path) || !strings.Contains(err.Error(), "(HTTP 404)") {
		t.Errorf("neither has it: %v", err)
	}
}

// TestOldLockMeansMainSuite: a package without an archive comes from the
// lock's main suite, and an archive of another release is refused.
func TestOldLockMeansMainSuite(t *testing.T) {
	l := &Lock{Suite: "trixie"}
	if got := l.ArchiveOf(Package{Name: "x"}); got != "trixie" {
		t.Errorf("no archive: %s", got)
	}
	in := Inputs{Suite: "trixie", Components: []string{"main"}, Variant: "minbase", Packages: []string{"a"}}
	plain := in.Digest()
	in.Archives = []string{"trixie-security"}
	if in.Digest() == plain {
		t.Error("the archives are not part of the inputs")
	}
	bad := "format: 1\nimage: x\nsuite: trixie\nsource_date_epoch: 1700000000\npackages:\n  - {name: a, version: \"1\", arch: arm64, role: root, size: 1, sha256: " + strings.Repeat("a", 64) + ", path: pool/a.deb, archive: bookworm-security}\n"
	if _, _, err := ReadLock(writeTemp(t, []byte(bad))); err == nil || !strings.Contains(err.Error(), "bookworm-security") {
		t.Errorf("an archive of another release: %v", err)
	}
}
