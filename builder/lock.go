package builder

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/builder/imagedef"
	"github.com/pibake/pibake/container"
)

// LockOptions configure `pibake lock`.
type LockOptions struct {
	Definition string
	CacheDir   string
	// Epoch becomes the lock's source_date_epoch: the timestamp of every
	// file in images built from it.
	Epoch    int64
	Progress io.Writer
	Log      *slog.Logger
	// ContainersOnly keeps the Debian packages of the existing lock and
	// pins the container images again: no bootstrap.
	ContainersOnly bool
}

// Lock resolves the definition's Debian packages against its mirror and
// writes images/<name>.lock. The packages land in the cache, verified.
func Lock(ctx context.Context, opts LockOptions) (string, *debian.Lock, error) {
	def, err := imagedef.Load(opts.Definition, imagedef.Options{})
	if err != nil {
		return "", nil, err
	}
	cacheDir := opts.CacheDir
	if cacheDir == "" {
		if cacheDir, err = debian.DefaultCacheDir(); err != nil {
			return "", nil, err
		}
	}
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	path := LockPath(opts.Definition)
	var lock *debian.Lock
	st := &stages{w: progress, total: 2}
	if opts.ContainersOnly {
		st.total = 1
		if lock, _, err = debian.ReadLock(path); err != nil {
			return "", nil, err
		}
	} else {
		archives := Archives(def)
		suites := make([]string, len(archives))
		for i, a := range archives {
			suites[i] = a.Suite
		}
		st.begin("resolve", fmt.Sprintf("%s from %s (the host's apt on their signed arm64 indexes: seconds)", strings.Join(suites, ", "), def.Debian.Mirror))
		lock, err = debian.Resolve(ctx, Inputs(def), debian.ResolveOptions{Image: def.Name, Archives: archives, Cache: debian.Cache{Dir: cacheDir}, Epoch: opts.Epoch, Log: opts.Log})
		if err != nil {
			return "", nil, err
		}
		st.end(fmt.Sprintf("%d packages", len(lock.Packages)))
	}
	st.begin("containers", fmt.Sprintf("pin %d container images to their linux/arm64 digests", len(def.Containers)))
	if lock.Containers, err = PinContainers(ctx, def); err != nil {
		return "", nil, err
	}
	st.end(fmt.Sprintf("%d pinned", len(lock.Containers)))
	tmp, err := os.CreateTemp(filepath.Dir(path), ".lock-*")
	if err != nil {
		return "", nil, fmt.Errorf("write lock: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(lock.Marshal()); err != nil {
		tmp.Close()
		return "", nil, fmt.Errorf("write lock: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", nil, fmt.Errorf("write lock: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", nil, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", nil, fmt.Errorf("write lock: %w", err)
	}
	return path, lock, nil
}

// Archives are the Debian archives a definition reads, the main suite
// first, then -updates, -security and -backports as it says.
func Archives(d *imagedef.Definition) []debian.Archive {
	deb := d.Debian
	ar := []debian.Archive{{Suite: deb.Suite, Mirror: deb.Mirror, Snapshot: deb.Snapshot}}
	if deb.UsesUpdates() {
		ar = append(ar, debian.Archive{Suite: deb.Suite + "-updates", Mirror: deb.Mirror, Snapshot: deb.Snapshot})
	}
	if deb.UsesSecurity() {
		ar = append(ar, debian.Archive{Suite: deb.Suite + "-security", Mirror: deb.SecurityMirror, Snapshot: deb.SecuritySnapshot})
	}
	if deb.Backports {
		ar = append(ar, debian.Archive{Suite: deb.Suite + "-backports", Mirror: deb.Mirror, Snapshot: deb.Snapshot})
	}
	return ar
}

// PinContainers resolves every container image of the definition (not the
// ones pibake builds from source) to the digest of its linux/arm64 image.
func PinContainers(ctx context.Context, def *imagedef.Definition) ([]debian.ContainerPin, error) {
	var pins []debian.ContainerPin
	for _, c := range def.Containers {
		if c.Image == "" {
			continue
		}
		ref, err := container.ParseRef(c.Image)
		if err != nil {
			return nil, fmt.Errorf("%s: container %s: %w", def.File, c.Name, err)
		}
		r, err := container.Resolve(ctx, ref, "", def.Dir)
		if err != nil {
			return nil, fmt.Errorf("%s: container %s: %w", def.File, c.Name, err)
		}
		pins = append(pins, debian.ContainerPin{Name: c.Name, Image: c.Image, Digest: r.Digest.String()})
	}
	return pins, nil
}

// OutdatedReport is what `pibake outdated` found for one lock.
type OutdatedReport struct {
	Lock     string          `json:"lock"`
	Archives []string        `json:"archives"`
	Packages int             `json:"packages"` // locked
	Updates  []debian.Update `json:"outdated"`
	Security int             `json:"security"` // updates that fix a vulnerability
	// Stale, if not empty, says the lock no longer matches the
	// definition: the list is against the definition's archives.
	Stale string `json:"stale,omitempty"`
}

// Outdated lists the locked packages of a definition (its lock, or
// lockPath) of which its archives now carry a newer version.
func Outdated(ctx context.Context, definition, lockPath string, log *slog.Logger) (*OutdatedReport, error) {
	def, err := imagedef.Load(definition, imagedef.Options{})
	if err != nil {
		return nil, err
	}
	if lockPath == "" {
		lockPath = LockPath(definition)
	}
	lock, _, err := debian.ReadLock(lockPath)
	if err != nil {
		return nil, err
	}
	r := &OutdatedReport{Lock: lockPath, Packages: len(lock.Packages)}
	if err := lock.Check(Inputs(def), lockPath); err != nil {
		r.Stale = err.Error()
	}
	archives := Archives(def)
	for _, a := range archives {
		r.Archives = append(r.Archives, a.Suite)
	}
	if r.Updates, err = debian.Outdated(ctx, lock, Inputs(def), archives, log); err != nil {
		return nil, err
	}
	for _, u := range r.Updates {
		if u.Security {
			r.Security++
		}
	}
	return r, nil
}
