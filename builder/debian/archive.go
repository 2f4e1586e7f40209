package debian

import (
	"fmt"
	"strings"
)

// Archive is one Debian archive a definition reads: a suite on a mirror.
// An image reads the main suite (trixie) and, as the definition says, its
// -updates, -security and -backports suites, each verified with Debian's
// keyring when the lock is resolved.
type Archive struct {
	Suite  string // trixie, trixie-updates, trixie-security, trixie-backports
	Mirror string // the URL the suite's dists/ and pool/ are under
	// Snapshot, if set, is a snapshot of the mirror (e.g.
	// https://snapshot.debian.org/archive/debian/20260101T000000Z): the
	// fetch tries it for a locked pool file the mirror no longer has.
	Snapshot string
}

// Kinds of archive beside the main suite, as suffixes of its name.
const (
	KindMain      = "main"
	KindUpdates   = "updates"
	KindSecurity  = "security"
	KindBackports = "backports"
)

// ArchiveKind names what suite is to the main suite: KindMain,
// KindUpdates, KindSecurity, KindBackports, or "" for a suite of another
// release.
func ArchiveKind(main, suite string) string {
	if suite == main {
		return KindMain
	}
	for _, k := range []string{KindUpdates, KindSecurity, KindBackports} {
		if suite == main+"-"+k {
			return k
		}
	}
	return ""
}

// rank orders the archives a package found in several is recorded from:
// the main suite first (its pool keeps a version longest), backports last.
func rank(main, suite string) int {
	switch ArchiveKind(main, suite) {
	case KindMain:
		return 0
	case KindUpdates:
		return 1
	case KindSecurity:
		return 2
	case KindBackports:
		return 3
	}
	return 4
}

// checkArchives refuses a list of archives whose first is not the main
// suite, or that names a suite twice or one of another release.
func checkArchives(main string, archives []Archive) error {
	if len(archives) == 0 || archives[0].Suite != main {
		return fmt.Errorf("the first archive must be the main suite %s", main)
	}
	seen := map[string]bool{}
	for _, a := range archives {
		if ArchiveKind(main, a.Suite) == "" {
			return fmt.Errorf("archive %s is not %s or its -updates, -security or -backports suite", a.Suite, main)
		}
		if seen[a.Suite] {
			return fmt.Errorf("archive %s listed twice", a.Suite)
		}
		if a.Mirror == "" {
			return fmt.Errorf("archive %s has no mirror", a.Suite)
		}
		seen[a.Suite] = true
	}
	return nil
}

// SourcesList is /etc/apt/sources.list for an image that reads archives
// (main suite first) with components: one line per archive, in order.
func SourcesList(archives []Archive, components []string) []byte {
	var b strings.Builder
	for _, a := range archives {
		fmt.Fprintf(&b, "deb %s %s %s\n", a.Mirror, a.Suite, strings.Join(components, " "))
	}
	return []byte(b.String())
}

// BackportsRequest splits a definition's package "name/suite" (apt's way
// of asking for a package from one archive) into its name and suite;
// suite is "" for a plain name.
func BackportsRequest(pkg string) (name, suite string) {
	name, suite, _ = strings.Cut(pkg, "/")
	return name, suite
}

// MirrorField is the definition's field that names the mirror of suite:
// debian.security_mirror for the security archive, debian.mirror for the
// others.
func MirrorField(main, suite string) string {
	if ArchiveKind(main, suite) == KindSecurity {
		return "debian.security_mirror"
	}
	return "debian.mirror"
}
