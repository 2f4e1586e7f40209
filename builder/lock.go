package builder

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

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
		st.begin("resolve", fmt.Sprintf("%s from %s (the host's apt on its signed arm64 indexes: seconds)", def.Debian.Suite, def.Debian.Mirror))
		lock, err = debian.Resolve(ctx, Inputs(def), debian.ResolveOptions{Image: def.Name, Mirror: def.Debian.Mirror, Cache: debian.Cache{Dir: cacheDir}, Epoch: opts.Epoch, Log: opts.Log})
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
