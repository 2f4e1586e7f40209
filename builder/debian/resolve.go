package debian

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// ArchiveKeyring verifies the mirror's signed indexes when pibake resolves
// a lock (the Debian package debian-archive-keyring).
var ArchiveKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// ResolveOptions says what Resolve records in the lock and where it reads
// and keeps the packages.
type ResolveOptions struct {
	Image  string // the image definition's name, the lock's image
	Mirror string // the main suite's mirror, when Archives is empty
	// Archives are the archives to read, the main suite first; empty
	// means the main suite alone, on Mirror.
	Archives []Archive
	Cache    Cache        // where the downloaded .debs are kept
	Epoch    int64        // the lock's source_date_epoch
	Log      *slog.Logger // nil discards
}

// ErrNotRead means a package asks for an archive the definition does not read.
var ErrNotRead = errors.New("asks for an archive the definition does not read")

// archives are the archives to read for in, checked against it: the
// suites beside the main one are in's, and a package asked for from one
// archive (name/trixie-backports) asks for one of them.
func (o ResolveOptions) archives(in Inputs) ([]Archive, error) {
	ar := o.Archives
	if len(ar) == 0 {
		ar = []Archive{{Suite: in.Suite, Mirror: o.Mirror}}
	}
	if err := checkArchives(in.Suite, ar); err != nil {
		return nil, err
	}
	var extra []string
	for _, a := range ar[1:] {
		extra = append(extra, a.Suite)
	}
	want := append([]string(nil), in.Archives...)
	sort.Strings(extra)
	sort.Strings(want)
	if strings.Join(extra, ",") != strings.Join(want, ",") {
		return nil, fmt.Errorf("the archives %v are not the inputs' %v", extra, want)
	}
	for _, p := range in.Packages {
		name, suite := BackportsRequest(p)
		if suite == "" || slices.ContainsFunc(ar, func(a Archive) bool { return a.Suite == suite }) {
			continue
		}
		fix := "set debian.backports: true"
		if ArchiveKind(in.Suite, suite) != KindBackports {
			fix = fmt.Sprintf("ask for %s/%s-backports with debian.backports: true, or for %s alone", name, in.Suite, name)
		}
		return nil, fmt.Errorf("package %s %w (%s): %s", p, ErrNotRead, suite, fix)
	}
	return ar, nil
}

// Resolve learns the exact package set a bootstrap of the inputs installs,
// without bootstrapping: the host's apt, configured for arm64 only and an
// empty root, reads the archives' signed indexes and simulates the two
// installs mmdebstrap makes (the Essential set first, then the variant's
// priority set and the definition's packages with the Essential set
// installed). It then resolves the boot packages as `apt-get download`
// would, downloads every .deb into the cache (each verified against the
// index's size and sha256) and returns the lock. No emulation, no chroot.
//
// Several archives are apt's business, with apt's priorities: the main
// suite, -updates and -security at 500 (the highest version of a package
// among them wins), -backports at 100 (its Release says NotAutomatic and
// ButAutomaticUpgrades), so a backport is taken only for a package asked
// for as name/SUITE-backports, and for a dependency of one only when no
// version at 500 satisfies it (apt then selects the backport "because of"
// the package asked for). Each package records the archive it came from.
//
// The variants are mmdebstrap's; "extract" and "custom" are not offered
// by image definitions.
func Resolve(ctx context.Context, in Inputs, o ResolveOptions) (*Lock, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	started := time.Now()
	archives, err := o.archives(in)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	apt, ix, err := openIndexes(ctx, log, in, archives)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	defer os.RemoveAll(apt.dir)
	installed, err := apt.simulate(ctx, log, in, ix)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	lock := &Lock{Format: LockFormat, Image: o.Image, Inputs: in.Digest(), Suite: in.Suite, SourceDateEpoch: o.Epoch}
	for _, e := range installed {
		lock.Packages = append(lock.Packages, e.pkg(RoleRoot, in.Suite))
	}
	out, err := apt.run(ctx, log, "apt-get", append([]string{"--print-uris", "download"}, BootPackages...)...)
	if err != nil {
		return nil, fmt.Errorf("lock: boot packages %s (is the component holding them in debian.components?): %w", strings.Join(BootPackages, ", "), err)
	}
	boot, err := printedURIs(out, ix)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if len(boot) != len(BootPackages) {
		return nil, fmt.Errorf("lock: apt offers %d of the boot packages %s", len(boot), strings.Join(BootPackages, ", "))
	}
	for _, e := range boot {
		lock.Packages = append(lock.Packages, e.pkg(RoleBoot, in.Suite))
	}
	sort.Slice(lock.Packages, func(i, j int) bool {
		a, b := lock.Packages[i], lock.Packages[j]
		return a.Name < b.Name || a.Name == b.Name && a.Role > b.Role
	})
	log.Info("resolved", "packages", len(lock.Packages), "seconds", time.Since(started).Round(100*time.Millisecond).Seconds())
	f := &Fetcher{Archives: archives, Suite: in.Suite, Cache: o.Cache, Log: log}
	if _, err := f.Fetch(ctx, lock.Packages); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	return lock, nil
}

// openIndexes makes an apt root for the archives and has apt fetch and
// verify their signed indexes. The caller removes the root's folder.
func openIndexes(ctx context.Context, log *slog.Logger, in Inputs, archives []Archive) (*aptRoot, *indexes, error) {
	apt, err := newAptRoot(in, archives)
	if err != nil {
		return nil, nil, err
	}
	var suites []string
	for _, a := range archives {
		suites = append(suites, a.Suite)
	}
	log.Info("reading the archives' signed package indexes for arm64", "suites", strings.Join(suites, " "), "mirror", archives[0].Mirror)
	// Error-Mode=any: an archive that cannot be reached or whose index
	// does not verify (unsigned, another key, past its Valid-Until)
	// fails the update instead of leaving a warning.
	if _, err := apt.run(ctx, log, "apt-get", "-oAPT::Update::Error-Mode=any", "update"); err != nil {
		os.RemoveAll(apt.dir)
		return nil, nil, updateError(archives, in.Components, err.Error(), err)
	}
	ix, err := apt.readIndexes(ctx, log, in.Suite)
	if err != nil {
		os.RemoveAll(apt.dir)
		return nil, nil, err
	}
	return apt, ix, nil
}

// simulate runs the two installs of a bootstrap in apt's simulation and
// returns what they install, by name.
func (r *aptRoot) simulate(ctx context.Context, log *slog.Logger, in Inputs, ix *indexes) (map[string]indexEntry, error) {
	narrow := func(pattern string) string {
		return "?narrow(?or(?archive(^" + in.Suite + "$),?codename(^" + in.Suite + "$)),?architecture(arm64)," + pattern + ")"
	}
	// Stage 1, as mmdebstrap's download of the Essential set. The
	// pattern selects packages of the main suite; apt installs each one's
	// candidate, the highest version at the top priority (a security fix).
	var first []string
	var second []string
	switch in.Variant {
	case "apt":
		first = []string{"dist-upgrade"}
		second = append([]string{"install"}, in.Packages...)
	case "essential", "required", "minbase", "buildd", "important", "standard":
		first = []string{"install", narrow("?essential")}
		second = append([]string{"install"}, in.Packages...)
		switch in.Variant {
		case "required", "minbase":
			second = append(second, narrow("?and(?priority(required),?not(?essential))"))
		case "buildd":
			second = append(second, "build-essential", narrow("?and(?priority(required),?not(?essential))"))
		case "important":
			second = append(second, narrow("?and(?or(?priority(required),?priority(important)),?not(?essential))"))
		case "standard":
			second = append(second, narrow("?and(?or(~prequired,~pimportant,~pstandard),?not(?essential))"))
		}
	default:
		return nil, fmt.Errorf("variant %q: pibake resolves essential, apt, required, minbase, buildd, important and standard", in.Variant)
	}
	installed := map[string]indexEntry{}
	for stage, args := range [][]string{first, second} {
		if len(args) == 1 {
			continue // the apt variant without packages of its own
		}
		out, err := r.run(ctx, log, "apt-get", append([]string{"--yes", "-oAPT::Get::Simulate=true"}, args...)...)
		if err != nil {
			return nil, fmt.Errorf("resolve the packages (a package the definition names may not exist in %s %s): %w", in.Suite, strings.Join(in.Components, ","), err)
		}
		picked, err := simulatedInstalls(out, ix)
		if err != nil {
			return nil, err
		}
		for _, e := range picked {
			installed[e.s.Get("Package")] = e
		}
		if stage == 0 {
			// What mmdebstrap's dpkg has installed before its second apt run.
			if err := r.writeStatus(installed); err != nil {
				return nil, err
			}
		}
	}
	return installed, nil
}

// aptRoot is an apt configuration of its own: arm64 only, an empty dpkg
// status, the host's apt but none of the host's sources or settings.
type aptRoot struct {
	dir, conf string
}

func newAptRoot(in Inputs, archives []Archive) (*aptRoot, error) {
	if _, err := LookTool("apt-get", "apt"); err != nil {
		return nil, err
	}
	if _, err := os.Stat(ArchiveKeyring); err != nil {
		return nil, fmt.Errorf("%s missing: install the Debian package debian-archive-keyring (make deps does it) to verify the mirror's indexes: %w", ArchiveKeyring, ErrMissingTool)
	}
	dir, err := os.MkdirTemp("", "pibake-resolve-")
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/sources.list.d", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	r := &aptRoot{dir: dir, conf: filepath.Join(dir, "apt.conf")}
	var src string
	for _, a := range archives {
		src += fmt.Sprintf("deb [signed-by=%q] %s %s %s\n", ArchiveKeyring, a.Mirror, a.Suite, strings.Join(in.Components, " "))
	}
	conf := strings.Join([]string{
		`Apt::Architecture "arm64";`,
		`Apt::Architectures "arm64";`,
		fmt.Sprintf("Dir %q;", dir+"/"),
		fmt.Sprintf("Dir::State::Status %q;", filepath.Join(dir, "var/lib/dpkg/status")),
		// mmdebstrap's settings for every variant but apt: apt does
		// not count itself Essential, no Recommends.
		`Apt::Install-Recommends "false";`,
		`Acquire::Languages "none";`,
		`Debug::NoLocking "true";`,
		`APT::Sandbox::User "root";`,
	}, "\n") + "\n"
	if in.Variant != "apt" {
		conf += `pkgCacheGen::ForceEssential ",";` + "\n"
	}
	for name, data := range map[string]string{"etc/apt/sources.list": src, "apt.conf": conf, "var/lib/dpkg/status": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	return r, nil
}

// run runs an apt tool with this configuration and returns its output.
func (r *aptRoot) run(ctx context.Context, log *slog.Logger, name string, args ...string) ([]byte, error) {
	bin, err := LookTool(name, "apt")
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := runLogged(ctx, log, []string{"APT_CONFIG=" + r.conf, "LC_ALL=C.UTF-8"}, &out, bin, args...); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// writeStatus records pkgs as installed in the dpkg status file, with
// their index stanzas' relations, as dpkg leaves them after it installed
// the Essential set.
func (r *aptRoot) writeStatus(pkgs map[string]indexEntry) error {
	names := make([]string, 0, len(pkgs))
	for n := range pkgs {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	drop := map[string]bool{"filename": true, "size": true, "md5sum": true, "sha256": true, "description-md5": true}
	for _, n := range names {
		s := pkgs[n].s
		var st Stanza
		for _, k := range s.Keys() {
			if drop[strings.ToLower(k)] {
				continue
			}
			st.Set(k, s.Get(k))
			if strings.EqualFold(k, "Package") {
				st.Set("Status", "install ok installed")
			}
		}
		if _, err := st.WriteTo(&b); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(r.dir, "var/lib/dpkg/status"), b.Bytes(), 0o644)
}

// "Inst name [old] (version archive [arch])", as apt-get -s prints it.
var instLine = regexp.MustCompile(`^Inst (\S+) (?:\[[^]]*\] )?\((\S+) [^\[]*\[([^]]+)\]\)`)

// simulatedInstalls are the packages an apt-get -s run installs, looked
// up in the mirror's index.
func simulatedInstalls(out []byte, ix *indexes) ([]indexEntry, error) {
	var picked []indexEntry
	for _, line := range strings.Split(string(out), "\n") {
		m := instLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name, _, _ := strings.Cut(m[1], ":")
		e, err := ix.pick(name, m[2], m[3])
		if err != nil {
			return nil, err
		}
		picked = append(picked, e)
	}
	if len(picked) == 0 {
		return nil, fmt.Errorf("apt's simulation installed nothing:\n%s", out)
	}
	return picked, nil
}

// printedURIs are the packages of an `apt-get --print-uris download`
// ("'URI' name_version_arch.deb size SHA256:hex"), looked up in the index.
func printedURIs(out []byte, ix *indexes) ([]indexEntry, error) {
	var picked []indexEntry
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "'") {
			continue
		}
		parts := strings.Split(strings.TrimSuffix(f[1], ".deb"), "_")
		if len(parts) != 3 {
			return nil, fmt.Errorf("apt printed an unexpected file name %q", f[1])
		}
		version := strings.ReplaceAll(parts[1], "%3a", ":")
		e, err := ix.pick(parts[0], version, parts[2])
		if err != nil {
			return nil, err
		}
		picked = append(picked, e)
	}
	return picked, nil
}
