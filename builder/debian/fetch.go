package debian

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/pibake/pibake/internal/cachedir"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ErrDigest means downloaded bytes do not match the lock.
var ErrDigest = errors.New("sha256 mismatch")

// Cache is the content-addressed store of .deb files and bootstrapped bases,
// kept outside the repository (default ~/.cache/pibake).
type Cache struct{ Dir string }

// DefaultCacheDir is where the cache lives unless a build names another
// (internal/cachedir).
func DefaultCacheDir() (string, error) { return cachedir.Default() }

// DebPath is where the .deb with this sha256 lives in the cache.
func (c Cache) DebPath(sha string) string { return filepath.Join(c.Dir, "debs", sha+".deb") }

// Has reports whether the cached .deb exists with the locked size.
func (c Cache) Has(p Package) bool {
	st, err := os.Stat(c.DebPath(p.SHA256))
	return err == nil && st.Size() == p.Size
}

// Fetcher downloads locked packages into the cache. A package comes from
// the mirror of the archive the lock took it from and, if the mirror no
// longer has it (Debian drops superseded versions at each point release),
// from the archive's snapshot.
type Fetcher struct {
	// Archives are the archives the lock's packages come from, the main
	// suite first; empty means the main suite alone, on Mirror.
	Archives []Archive
	Suite    string // the lock's main suite: packages without an archive come from it
	Mirror   string // the main suite's mirror when Archives is empty
	Cache    Cache
	Client   *http.Client // nil means a client with a 10-minute limit per download
	Log      *slog.Logger // nil means discard
	Parallel int          // concurrent downloads, default 4
	Retries  int          // attempts per file, default 3
}

// Fetch makes sure every package is in the cache, verifying size and sha256
// of each download before it is stored. It returns the bytes downloaded.
func (f *Fetcher) Fetch(ctx context.Context, pkgs []Package) (int64, error) {
	log := f.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(f.Cache.Dir, "debs"), 0o755); err != nil {
		return 0, fmt.Errorf("fetch: create cache: %w", err)
	}
	var todo []Package
	var total int64
	for _, p := range pkgs {
		if !f.Cache.Has(p) {
			todo = append(todo, p)
			total += p.Size
		}
	}
	if len(todo) == 0 {
		return 0, nil
	}
	log.Info("downloading packages", "count", len(todo), "bytes", total, "mirror", f.archive("").Mirror)
	par := f.Parallel
	if par <= 0 {
		par = 4
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		done     int64
		wg       sync.WaitGroup
	)
	ch := make(chan Package)
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range ch {
				err := f.fetchOne(ctx, p)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				done += p.Size
				mu.Unlock()
			}
		}()
	}
	for _, p := range todo {
		select {
		case ch <- p:
		case <-ctx.Done():
		}
	}
	close(ch)
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("fetch: %w", err)
	}
	return total, nil
}

// archive is where a package of the given archive comes from ("" for
// the main suite).
func (f *Fetcher) archive(suite string) Archive {
	if len(f.Archives) == 0 {
		return Archive{Suite: f.Suite, Mirror: f.Mirror}
	}
	if suite == "" {
		return f.Archives[0]
	}
	for _, a := range f.Archives {
		if a.Suite == suite {
			return a
		}
	}
	return Archive{Suite: suite}
}

// ErrGone means a locked package is neither in the cache nor on any
// source of its archive.
var ErrGone = errors.New("no source has it")

// fetchOne tries the package's archive mirror, then its snapshot.
func (f *Fetcher) fetchOne(ctx context.Context, p Package) error {
	a := f.archive(p.Archive)
	if a.Mirror == "" {
		return fmt.Errorf("fetch %s %s: the lock takes it from archive %s, which the definition does not read: run 'pibake lock'", p.Name, p.Version, a.Suite)
	}
	var tried []string
	for _, base := range []string{a.Mirror, a.Snapshot} {
		if base == "" {
			continue
		}
		err := f.fetchFrom(ctx, base, p)
		if err == nil || !errors.Is(err, errNotFound) {
			return err
		}
		tried = append(tried, err.Error())
	}
	name := "the main suite's"
	fix := "debian.snapshot (e.g. https://snapshot.debian.org/archive/debian/<date>T000000Z from when the lock was made)"
	switch ArchiveKind(f.archive("").Suite, a.Suite) {
	case KindSecurity:
		name = "the security archive's"
		fix = "debian.security_snapshot (e.g. https://snapshot.debian.org/archive/debian-security/<date>T000000Z)"
	case KindUpdates, KindBackports:
		name = "the mirror's"
	}
	return fmt.Errorf("fetch %s %s (archive %s): %w: not in the cache %s, and %s: name %s snapshot in %s, or run 'pibake lock' to move to current versions",
		p.Name, p.Version, a.Suite, ErrGone, f.Cache.DebPath(p.SHA256), strings.Join(tried, "; "), name, fix)
}

// fetchFrom downloads the package from one source, retrying what may pass.
func (f *Fetcher) fetchFrom(ctx context.Context, base string, p Package) error {
	tries := f.Retries
	if tries <= 0 {
		tries = 3
	}
	var err error
	for i := 0; i < tries; i++ {
		if i > 0 {
			select {
			case <-time.After(time.Duration(i) * time.Second):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err = f.tryFetch(ctx, base, p)
		if err == nil || errors.Is(err, ErrDigest) || errors.Is(err, errNotFound) || ctx.Err() != nil {
			break
		}
	}
	return err
}

var errNotFound = errors.New("not found")

func (f *Fetcher) tryFetch(ctx context.Context, base string, p Package) error {
	src := strings.TrimRight(base, "/") + "/" + p.Path
	var body io.ReadCloser
	if strings.HasPrefix(src, "file://") {
		u, err := url.Parse(src)
		if err != nil {
			return fmt.Errorf("fetch %s: %w", src, err)
		}
		fh, err := os.Open(u.Path)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %w", src, errNotFound)
		}
		if err != nil {
			return fmt.Errorf("fetch %s: %w", src, err)
		}
		body = fh
	} else {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return fmt.Errorf("fetch %s: %w", src, err)
		}
		client := f.Client
		if client == nil {
			client = &http.Client{Timeout: 10 * time.Minute}
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("fetch %s %s from %s: %w (is the mirror reachable? check debian.mirror)", p.Name, p.Version, src, err)
		}
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
			resp.Body.Close()
			return fmt.Errorf("%s (HTTP %d): %w", src, resp.StatusCode, errNotFound)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return fmt.Errorf("fetch %s: HTTP %s", src, resp.Status)
		}
		body = resp.Body
	}
	defer body.Close()

	dst := f.Cache.DebPath(p.SHA256)
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".part-*")
	if err != nil {
		return fmt.Errorf("fetch %s: %w", p.Name, err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(body, p.Size+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fetch %s from %s: %w", p.Name, src, err)
	}
	if n != p.Size {
		return fmt.Errorf("fetch %s from %s: got %d bytes, the lock says %d: %w", p.Name, src, n, p.Size, ErrDigest)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.SHA256 {
		return fmt.Errorf("fetch %s from %s: sha256 %s, the lock says %s: %w", p.Name, src, got, p.SHA256, ErrDigest)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("fetch %s: %w", p.Name, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("fetch %s: %w", p.Name, err)
	}
	return nil
}

// Verify re-hashes a cached .deb against the lock, for bytes that go
// straight into an image (firmware, U-Boot).
func (c Cache) Verify(p Package) error {
	f, err := os.Open(c.DebPath(p.SHA256))
	if err != nil {
		return fmt.Errorf("cache %s: %w", p.Name, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("cache %s: %w", p.Name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.SHA256 {
		return fmt.Errorf("cache %s: %s has sha256 %s, the lock says %s (delete it to fetch it again): %w", p.Name, c.DebPath(p.SHA256), got, p.SHA256, ErrDigest)
	}
	return nil
}
