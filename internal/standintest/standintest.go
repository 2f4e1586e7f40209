// Package standintest builds the stand-in images of the edge stack for
// tests: arm64 OCI images whose programs are Debian's own packages
// (redis-server, mosquitto, and nginx playing the reverse proxy's role),
// for a build machine that cannot pull the public images the definition
// names. It uses pibake's own Debian code: the packages are pinned by
// standin.lock (name, version, sha256), fetched and verified into pibake's
// cache, and installed by the same mmdebstrap bootstrap that makes an
// image's root filesystem (maintainer scripts run, so the programs' users
// exist). The bootstrapped tree is cached under ~/.cache/pibake/base like
// an image's base: the first run takes minutes, the next ones seconds.
//
// One tree holds the three programs and serves as the single layer of
// all three images, which differ only in their command: the registry
// stores the layer once. Same lock, same epoch, same bytes: the images
// are reproducible (a test builds twice and compares digests).
//
// Limits: arm64 only, trixie (the lock's suite); the images carry
// Debian's "essential" set beside the program (a shell, coreutils), about
// 40 MB compressed. Only tests import this package: pibake itself does not
// ship stand-ins, a team uses its real images.
package standintest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	"github.com/pibake/pibake/builder"
	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/builder/imagedef"
	"github.com/pibake/pibake/internal/cachedir"
)

// Packages are what the stand-in tree installs beside Debian's
// essential set.
var Packages = []string{"redis-server", "redis-tools", "mosquitto", "mosquitto-clients", "nginx"}

// Variant is mmdebstrap's variant of the tree: the Essential packages
// and Packages, nothing else (no apt, no init).
const Variant = "essential"

// Image is one stand-in: the repository path a team would push it to
// (the public name's path, on another registry) and its command.
type Image struct {
	Name string   // short name, the container of the edge definition it stands in for
	Repo string   // repository path without the registry, e.g. essensyshub/essensys-redis
	Tag  string   // tag
	Cmd  []string // the image's command (no entrypoint)
	Port string   // exposed port, e.g. 6379/tcp
}

// Images are the three stand-ins. Their repositories and tags are the
// public images' of images/essensys-edge.yaml; the proxy's is a
// repository of its own, since nginx is not Traefik and reads another
// route file.
var Images = []Image{
	{Name: "redis", Repo: "essensyshub/essensys-redis", Tag: "V.1.3.0", Cmd: []string{"redis-server"}, Port: "6379/tcp"},
	{Name: "mosquitto", Repo: "essensyshub/essensys-mosquitto", Tag: "V.1.3.0", Cmd: []string{"mosquitto", "-c", "/mosquitto/config/mosquitto.conf"}, Port: "1883/tcp"},
	{Name: "proxy", Repo: "essensyshub/essensys-proxy-nginx", Tag: "V.1.3.0", Cmd: []string{"nginx", "-c", "/etc/nginx-edge/nginx.conf", "-g", "daemon off;"}, Port: "80/tcp"},
}

// LockFile is the checked-in lock of the stand-in tree, beside this file.
func LockFile() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "standin.lock")
}

// RepoRoot is the pibake checkout this package is part of.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// edgeDefinition is the checked-in edge definition, whose Debian
// settings (suite, mirrors, archives, doc filters) the stand-ins share.
func edgeDefinition() (*imagedef.Definition, error) {
	return imagedef.Load(filepath.Join(RepoRoot(), "images", "essensys-edge.yaml"), imagedef.Options{})
}

// inputs are the lock's Debian inputs: the edge definition's suite,
// components and archives, the stand-ins' variant and packages.
func inputs(def *imagedef.Definition) debian.Inputs {
	in := builder.Inputs(def)
	in.Variant = Variant
	in.Packages = append([]string(nil), Packages...)
	sort.Strings(in.Packages)
	return in
}

// Relock resolves the stand-in packages again and writes LockFile (what
// `pibake lock` does for an image), keeping epoch as the timestamp.
func Relock(ctx context.Context, epoch int64, log *slog.Logger) error {
	def, err := edgeDefinition()
	if err != nil {
		return err
	}
	cache, err := cacheOf()
	if err != nil {
		return err
	}
	lock, err := debian.Resolve(ctx, inputs(def), debian.ResolveOptions{Image: "edge-standins", Archives: builder.Archives(def), Cache: cache, Epoch: epoch, Log: log})
	if err != nil {
		return fmt.Errorf("stand-ins: %w", err)
	}
	return os.WriteFile(LockFile(), lock.Marshal(), 0o644)
}

func cacheOf() (debian.Cache, error) {
	dir, err := cachedir.Default()
	if err != nil {
		return debian.Cache{}, err
	}
	return debian.Cache{Dir: dir}, nil
}

// Tree returns the bootstrapped stand-in tree (a tar in pibake's base
// cache) and the lock it was made from: the locked packages are fetched
// and verified, then installed by mmdebstrap unless the cache holds the
// tree already.
func Tree(ctx context.Context, log *slog.Logger) (string, *debian.Lock, error) {
	def, err := edgeDefinition()
	if err != nil {
		return "", nil, err
	}
	lock, _, err := debian.ReadLock(LockFile())
	if err != nil {
		return "", nil, err
	}
	if err := lock.Check(inputs(def), LockFile()); err != nil {
		return "", nil, fmt.Errorf("stand-ins: %w (relock: STANDIN_RELOCK=1 go test ./internal/standintest -run TestRelock)", err)
	}
	cache, err := cacheOf()
	if err != nil {
		return "", nil, err
	}
	f := &debian.Fetcher{Archives: builder.Archives(def), Suite: lock.Suite, Cache: cache, Log: log}
	if _, err := f.Fetch(ctx, lock.Role(debian.RoleRoot)); err != nil {
		return "", nil, fmt.Errorf("stand-ins: %w", err)
	}
	opts := debian.BaseOptions{Variant: Variant, PathExclude: def.Debian.PathExclude, PathInclude: def.Debian.PathInclude}
	key, err := debian.BaseKey(ctx, lock, opts)
	if err != nil {
		return "", nil, err
	}
	path := cache.BasePath(key)
	if _, err := os.Stat(path); err == nil {
		return path, lock, nil
	}
	unlock, err := cache.LockBase(ctx, key, nil)
	if err != nil {
		return "", nil, err
	}
	defer unlock()
	if _, err := os.Stat(path); err == nil {
		return path, lock, nil // another test made it while we waited
	}
	path, err = debian.Bootstrap(ctx, lock, opts, cache, key, log)
	if err != nil {
		return "", nil, fmt.Errorf("stand-ins: %w", err)
	}
	return path, lock, nil
}

// discard is a logger that drops everything.
func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
