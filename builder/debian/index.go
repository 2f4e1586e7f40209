package debian

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
)

// indexEntry is one package stanza of a signed index, and the suite of
// the archive whose index lists it.
type indexEntry struct {
	s       Stanza
	archive string
}

// pkg is the entry as a locked package; main is the lock's main suite,
// which a package records by leaving its archive empty.
func (e indexEntry) pkg(role, main string) Package {
	size, _ := strconv.ParseInt(e.s.Get("Size"), 10, 64)
	p := Package{Name: e.s.Get("Package"), Version: e.s.Get("Version"), Arch: e.s.Get("Architecture"),
		Role: role, Size: size, SHA256: e.s.Get("SHA256"), Path: e.s.Get("Filename")}
	if e.archive != main {
		p.Archive = e.archive
	}
	return p
}

// indexes are the package indexes of every archive a lock reads.
type indexes struct {
	main  string                  // the main suite
	byKey map[string][]indexEntry // "name version arch": one per archive listing it
}

// ErrArchiveConflict means two archives list the same package version
// with different contents.
var ErrArchiveConflict = errors.New("archives disagree on a package's contents")

// pick is the entry of a package version apt chose. An archive that
// lists it with other contents than another is refused: a version names
// one set of bytes across Debian's archives. Of several archives with
// the same bytes, the main suite's is recorded (its pool keeps a version
// longest), then updates', security's, backports'.
func (ix *indexes) pick(name, version, arch string) (indexEntry, error) {
	es := ix.byKey[name+" "+version+" "+arch]
	if len(es) == 0 {
		return indexEntry{}, fmt.Errorf("apt picked %s %s %s, which is in none of the archives' indexes", name, version, arch)
	}
	best := es[0]
	for _, e := range es[1:] {
		if e.s.Get("SHA256") != best.s.Get("SHA256") {
			return indexEntry{}, fmt.Errorf("%s %s (%s) is in %s with sha256 %s and in %s with sha256 %s: %w; one of the mirrors serves altered or broken indexes: check debian.mirror and debian.security_mirror, or wait for the mirror to finish syncing and lock again",
				name, version, arch, best.archive, best.s.Get("SHA256"), e.archive, e.s.Get("SHA256"), ErrArchiveConflict)
		}
		if rank(ix.main, e.archive) < rank(ix.main, best.archive) {
			best = e
		}
	}
	return best, nil
}

// readIndexes reads the Packages indexes apt fetched and verified, each
// attributed to its archive by apt's own list of index targets.
func (r *aptRoot) readIndexes(ctx context.Context, log *slog.Logger, main string) (*indexes, error) {
	out, err := r.run(ctx, log, "apt-get", "indextargets")
	if err != nil {
		return nil, err
	}
	targets, err := ParseControl(strings.NewReader(string(out)))
	if err != nil {
		return nil, fmt.Errorf("apt-get indextargets: %w", err)
	}
	ix := &indexes{main: main, byKey: map[string][]indexEntry{}}
	files := 0
	sort.Slice(targets, func(i, j int) bool { return targets[i].Get("Filename") < targets[j].Get("Filename") })
	for _, t := range targets {
		if t.Get("Created-By") != "Packages" {
			continue
		}
		fh, err := os.Open(t.Get("Filename"))
		if os.IsNotExist(err) {
			continue // a component the archive does not carry (trixie-security has no non-free-firmware)
		}
		if err != nil {
			return nil, err
		}
		stanzas, err := ParseControl(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Get("Filename"), err)
		}
		files++
		for _, s := range stanzas {
			k := s.Get("Package") + " " + s.Get("Version") + " " + s.Get("Architecture")
			ix.byKey[k] = append(ix.byKey[k], indexEntry{s: s, archive: t.Get("Release")})
		}
	}
	if files == 0 {
		return nil, fmt.Errorf("apt fetched no Packages index")
	}
	return ix, nil
}

// updateError says which archive's index apt could not fetch or verify
// and what to do, from what apt printed.
func updateError(archives []Archive, components []string, out string, err error) error {
	for _, a := range archives {
		field := MirrorField(archives[0].Suite, a.Suite)
		var lines []string
		in := false // inside a message about a: its line and the indented ones after it
		for _, l := range strings.Split(out, "\n") {
			in = mentions(l, a) || in && strings.HasPrefix(l, " ")
			if in {
				lines = append(lines, strings.TrimSpace(l))
			}
		}
		text := strings.Join(lines, "\n")
		var why string
		switch {
		case strings.Contains(text, "is expired") || strings.Contains(text, "Valid-Until"):
			why = "its Release is past its Valid-Until date, so its packages may lack current security fixes: the mirror is stale (point " + field + " at a current one) or this machine's clock is wrong"
		case strings.Contains(text, "NO_PUBKEY") || strings.Contains(text, "couldn't be verified") || strings.Contains(text, "BADSIG") || strings.Contains(text, "EXPKEYSIG"):
			why = "its Release is signed by a key that is not in Debian's archive keyring (" + ArchiveKeyring + "): " + field + " is not a mirror of Debian's, or the keyring is too old (update debian-archive-keyring)"
		case strings.Contains(text, "is not signed") || strings.Contains(text, "does not have a Release file"):
			why = "it serves no signed Release (InRelease or Release.gpg): pibake reads only signed archives; point " + field + " at a mirror of Debian's that signs its indexes"
		case strings.Contains(text, "Hash Sum mismatch") || strings.Contains(text, "unexpected size"):
			why = "an index does not match the sha256 its signed Release lists: the mirror is syncing or altered; try again later or point " + field + " at another mirror"
		case strings.Contains(text, "Err:") || strings.Contains(text, "Failed to fetch") || strings.HasPrefix(text, "E:"):
			why = "apt could not fetch its indexes (is the mirror reachable, " + field + " right, and the suite right? components: " + strings.Join(components, ", ") + ")"
		default:
			continue
		}
		return fmt.Errorf("archive %s at %s refused: %s: %w", a.Suite, a.Mirror, why, err)
	}
	return fmt.Errorf("read the indexes (is the mirror reachable and the suite right?): %w", err)
}

// mentions reports whether a line of apt's output is about archive a.
func mentions(line string, a Archive) bool {
	m := strings.TrimRight(a.Mirror, "/")
	i := strings.Index(line, m)
	if i < 0 {
		return false
	}
	rest := line[i+len(m):]
	return strings.HasPrefix(rest, " "+a.Suite+" ") || strings.HasPrefix(rest, " "+a.Suite+"/") || strings.HasPrefix(rest, "/dists/"+a.Suite+"/")
}
