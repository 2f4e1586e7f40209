package debian

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrMissingTool means a host program pibake needs is not installed.
var ErrMissingTool = errors.New("missing host tool")

// LookTool finds a host program or says how to install it.
func LookTool(name, pkg string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found: install the Debian package %s (make deps does it): %w", name, pkg, ErrMissingTool)
	}
	return p, nil
}

const automountHooks = "/usr/share/mmdebstrap/hooks/file-mirror-automount"

// MmdebstrapVersion is part of the base cache key: a different mmdebstrap
// may lay out the same packages differently.
func MmdebstrapVersion(ctx context.Context) (string, error) {
	bin, err := LookTool("mmdebstrap", "mmdebstrap")
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("mmdebstrap --version: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// runLogged runs a host tool, its output going to the log; with out set,
// its standard output is kept there instead, for the caller to parse.
// Either way the last of the output ends the error if it fails.
func runLogged(ctx context.Context, log *slog.Logger, env []string, out io.Writer, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var tail tailBuffer
	// One writer for both streams: os/exec then copies them in one goroutine.
	w := io.MultiWriter(&tail, &lineLogger{log: log, name: filepath.Base(name)})
	cmd.Stdout = w
	cmd.Stderr = w
	if out != nil {
		cmd.Stdout = io.MultiWriter(out, &tail)
		cmd.Stderr = &tail
	}
	log.Debug("run", "cmd", name, "args", strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s failed: %w\n%s", name, err, tail.String())
	}
	return nil
}

// lineLogger passes a tool's progress lines ("I: ...") to the log, so a
// long bootstrap shows where it is; other lines are debug output.
type lineLogger struct {
	log  *slog.Logger
	name string
	buf  []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSpace(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
		if strings.HasPrefix(line, "I: ") {
			l.log.Info(l.name + ": " + strings.TrimPrefix(line, "I: "))
		} else if line != "" {
			l.log.Debug(l.name + ": " + line)
		}
	}
	return len(p), nil
}

// tailBuffer keeps the last 8 KiB written to it, for error messages.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 8192 {
		t.b = t.b[len(t.b)-8192:]
	}
	return len(p), nil
}
func (t *tailBuffer) String() string { return string(t.b) }

// BaseOptions shape a bootstrapped base beyond its packages.
type BaseOptions struct {
	Variant string
	// PathExclude and PathInclude are dpkg's path filters (globs): files
	// of the packages matching an exclude are not installed unless a
	// later include matches them. They stay in the image's dpkg
	// configuration, so they hold for anything dpkg installs later.
	PathExclude, PathInclude []string
}

// dpkgFilters is the dpkg configuration of the filters, excludes first.
func (o BaseOptions) dpkgFilters() []string {
	var out []string
	for _, p := range o.PathExclude {
		out = append(out, "path-exclude="+p)
	}
	for _, p := range o.PathInclude {
		out = append(out, "path-include="+p)
	}
	return out
}

// BaseKey identifies a bootstrapped base by everything that shapes it.
func BaseKey(ctx context.Context, lock *Lock, o BaseOptions) (string, error) {
	ver, err := MmdebstrapVersion(ctx)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "pibake-base-v2\n%s\nvariant=%s\nsuite=%s\nepoch=%d\n", ver, o.Variant, lock.Suite, lock.SourceDateEpoch)
	for _, f := range o.dpkgFilters() {
		fmt.Fprintf(h, "dpkg %s\n", f)
	}
	for _, p := range lock.Role(RoleRoot) {
		fmt.Fprintf(h, "%s %s %s %s\n", p.Name, p.Version, p.Arch, p.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// QEMUCPU is the CPU qemu-user emulates for the bootstrap's arm64
// programs when the environment sets none: the Pi 4's core, Armv8.0,
// without pointer authentication. Debian's arm64 binaries sign and check
// return addresses in most function prologues and epilogues; QEMU's
// default CPU ("max") computes each of those in software, while on an
// Armv8.0 core they are no-ops. Maintainer scripts run about twice as fast
// (docs/building.md).
var QEMUCPU = "cortex-a72"

// BasePath is where a bootstrapped base tar is cached.
func (c Cache) BasePath(key string) string { return filepath.Join(c.Dir, "base", key+".tar") }

// LockBase takes the cache's lock for bootstrapping base key: builds that
// share a cache (parallel tests, two terminals, CI jobs on one runner)
// bootstrap each base once, the others wait and then find it cached. The
// lock is an flock, so a build that dies releases it. waiting, if not
// nil, is called once if another build holds it.
func (c Cache) LockBase(ctx context.Context, key string, waiting func()) (unlock func(), err error) {
	path := filepath.Join(c.Dir, "base", key+".lock")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("base cache lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("base cache lock: %w", err)
	}
	for told := false; ; {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("base cache lock %s: %w", path, err)
		}
		if !told && waiting != nil {
			waiting()
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Bootstrap builds the base root filesystem tar from exactly the locked root
// packages (all already in the cache), through a local flat repository so
// apt can pick nothing else, and stores it at cache.BasePath(key).
func Bootstrap(ctx context.Context, lock *Lock, o BaseOptions, cache Cache, key string, log *slog.Logger) (string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bin, err := LookTool("mmdebstrap", "mmdebstrap")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(automountHooks); err != nil {
		return "", fmt.Errorf("bootstrap: %s missing: install a newer mmdebstrap: %w", automountHooks, ErrMissingTool)
	}
	// Under /tmp whatever $TMPDIR says: mmdebstrap's automount hook leaves
	// the (empty) mount point in the base, and the root filesystem drops
	// everything under /tmp, so no build path reaches an image.
	repo, err := os.MkdirTemp("/tmp", "pibake-repo-")
	if err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	defer os.RemoveAll(repo)
	if err := os.Chmod(repo, 0o755); err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	root := lock.Role(RoleRoot)
	if err := writeFlatRepo(ctx, repo, lock.Suite, root, cache); err != nil {
		return "", fmt.Errorf("bootstrap: local repository: %w", err)
	}
	names := make([]string, len(root))
	for i, p := range root {
		names[i] = p.Name
	}
	dst := cache.BasePath(key)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	tf, err := os.CreateTemp(filepath.Dir(dst), key+".*.part")
	if err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	tmp := tf.Name()
	tf.Close()
	args := []string{
		"--variant=" + o.Variant, "--arch=arm64",
		"--hook-dir=" + automountHooks,
		"--include=" + strings.Join(names, ","),
	}
	for _, f := range o.dpkgFilters() {
		args = append(args, "--dpkgopt="+f)
	}
	args = append(args,
		`--customize-hook=rm -f "$1"/etc/resolv.conf "$1"/etc/hostname`,
		"--format=tar",
		lock.Suite, tmp, "deb [trusted=yes] file://"+repo+" ./",
	)
	env := []string{"SOURCE_DATE_EPOCH=" + strconv.FormatInt(lock.SourceDateEpoch, 10)}
	if QEMUCPU != "" && os.Getenv("QEMU_CPU") == "" {
		env = append(env, "QEMU_CPU="+QEMUCPU)
	}
	log.Info("bootstrapping the base with mmdebstrap from the locked packages", "packages", len(root))
	if err := runLogged(ctx, log, env, nil, bin, args...); err != nil {
		os.Remove(tmp)
		releaseRepoMounts(repo, log)
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	return dst, nil
}

// releaseRepoMounts undoes what mmdebstrap leaves behind when it fails
// before its cleanup hooks ran: the read-only bind mount of the repository
// inside its chroot folder, which then cannot be removed.
func releaseRepoMounts(repo string, log *slog.Logger) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.HasSuffix(f[4], repo) || f[4] == repo {
			continue
		}
		mp := f[4]
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
			log.Warn("could not unmount a leftover bind mount", "path", mp, "err", err)
			continue
		}
		chroot := strings.TrimSuffix(mp, repo)
		now, err := os.ReadFile("/proc/self/mountinfo")
		if err == nil && strings.HasPrefix(filepath.Base(chroot), "mmdebstrap.") && !strings.Contains(string(now), " "+chroot+"/") {
			_ = os.RemoveAll(chroot) // nothing is mounted below it any more
		}
	}
}

// writeFlatRepo links the locked .debs into dir and writes a Packages index
// built from their own control files, and a Release file naming the suite:
// mmdebstrap picks the Essential and required packages only from an archive
// whose suite or codename matches the one it is given.
func writeFlatRepo(ctx context.Context, dir, suite string, pkgs []Package, cache Cache) error {
	dpkgDeb, err := LookTool("dpkg-deb", "dpkg")
	if err != nil {
		return err
	}
	var idx bytes.Buffer
	for _, p := range pkgs {
		src := cache.DebPath(p.SHA256)
		dst := filepath.Join(dir, p.FileName())
		if err := os.Link(src, dst); err != nil {
			if err := copyFile(src, dst); err != nil {
				return err
			}
		}
		out, err := exec.CommandContext(ctx, dpkgDeb, "--field", dst).Output()
		if err != nil {
			return fmt.Errorf("read control of %s (corrupt cache entry %s? delete it and rebuild): %w", p.Name, src, err)
		}
		st, err := ParseControl(bytes.NewReader(out))
		if err != nil || len(st) != 1 {
			return fmt.Errorf("control of %s: %v", p.Name, err)
		}
		s := st[0]
		s.Set("Filename", "./"+p.FileName())
		s.Set("Size", strconv.FormatInt(p.Size, 10))
		s.Set("SHA256", p.SHA256)
		if _, err := s.WriteTo(&idx); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "Packages"), idx.Bytes(), 0o644); err != nil {
		return err
	}
	sum := sha256.Sum256(idx.Bytes())
	release := fmt.Sprintf("Origin: pibake\nLabel: pibake locked packages\nSuite: %s\nCodename: %s\nArchitectures: arm64 all\nSHA256:\n %s %d Packages\n",
		suite, suite, hex.EncodeToString(sum[:]), idx.Len())
	return os.WriteFile(filepath.Join(dir, "Release"), []byte(release), 0o644)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
