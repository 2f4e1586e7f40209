package debian

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
)

// Update is a locked package of which the archives carry a newer version.
type Update struct {
	Name          string `json:"name"`
	Arch          string `json:"arch"`
	Role          string `json:"role"`
	Locked        string `json:"locked"`
	LockedArchive string `json:"locked_archive"`
	Newest        string `json:"available"`
	NewestArchive string `json:"archive"`
	// Security is set when the security archive carries a version newer
	// than the locked one: the update fixes a vulnerability.
	Security bool `json:"security"`
}

// Outdated reads the archives' signed indexes (verified as Resolve
// verifies them) and lists the lock's packages of which a newer version
// is there, sorted by name. The archives a package's newer version may
// come from are those apt would take it from: the main suite, -updates
// and -security for every package; -backports only for a package the
// lock took from there.
func Outdated(ctx context.Context, lock *Lock, in Inputs, archives []Archive, log *slog.Logger) ([]Update, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if lock.Suite != in.Suite {
		return nil, fmt.Errorf("outdated: the lock is of suite %s, the definition reads %s: run 'pibake lock'", lock.Suite, in.Suite)
	}
	if err := checkArchives(in.Suite, archives); err != nil {
		return nil, fmt.Errorf("outdated: %w", err)
	}
	apt, ix, err := openIndexes(ctx, log, in, archives)
	if err != nil {
		return nil, fmt.Errorf("outdated: %w", err)
	}
	os.RemoveAll(apt.dir)
	byName := map[string][]indexEntry{}
	for _, es := range ix.byKey {
		for _, e := range es {
			byName[e.s.Get("Package")] = append(byName[e.s.Get("Package")], e)
		}
	}
	var ups []Update
	for _, p := range lock.Packages {
		from := lock.ArchiveOf(p)
		u := Update{Name: p.Name, Arch: p.Arch, Role: p.Role, Locked: p.Version, LockedArchive: from}
		for _, e := range byName[p.Name] {
			kind := ArchiveKind(in.Suite, e.archive)
			if kind == KindBackports && ArchiveKind(in.Suite, from) != KindBackports {
				continue
			}
			if a := e.s.Get("Architecture"); a != p.Arch && a != "all" && p.Arch != "all" {
				continue
			}
			v := e.s.Get("Version")
			if CompareVersions(v, p.Version) <= 0 {
				continue
			}
			if kind == KindSecurity {
				u.Security = true
			}
			if u.Newest == "" || CompareVersions(v, u.Newest) > 0 || v == u.Newest && rank(in.Suite, e.archive) < rank(in.Suite, u.NewestArchive) {
				u.Newest, u.NewestArchive = v, e.archive
			}
		}
		if u.Newest != "" {
			ups = append(ups, u)
		}
	}
	sort.Slice(ups, func(i, j int) bool {
		a, b := ups[i], ups[j]
		return a.Name < b.Name || a.Name == b.Name && a.Role > b.Role
	})
	return ups, nil
}
