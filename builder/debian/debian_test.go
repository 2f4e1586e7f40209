package debian

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestParseControl(t *testing.T) {
	in := "Package: a\nVersion: 1:2.0-1\nDescription: short\n long line\n .\n more\n\nPackage: b\nStatus: install ok installed\n"
	st, err := ParseControl(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].Get("package") != "a" || st[0].Get("Description") != "short\nlong line\n.\nmore" || st[1].Get("Status") != "install ok installed" {
		t.Fatalf("parsed %+v", st)
	}
	var b bytes.Buffer
	if _, err := st[0].WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	again, err := ParseControl(&b)
	if err != nil || len(again) != 1 || again[0].Get("Description") != st[0].Get("Description") {
		t.Fatalf("round trip: %+v %v", again, err)
	}
	if _, err := ParseControl(strings.NewReader(" orphan continuation\n")); err == nil {
		t.Error("accepted a continuation line without a field")
	}
}

func TestLockRoundTripAndCheck(t *testing.T) {
	in := Inputs{Suite: "trixie", Components: []string{"main"}, Variant: "minbase", Packages: []string{"b", "a"}}
	if in.Digest() != (Inputs{Suite: "trixie", Components: []string{"main"}, Variant: "minbase", Packages: []string{"a", "b"}}).Digest() {
		t.Error("package order changes the inputs digest")
	}
	l := &Lock{Format: LockFormat, Image: "x", Inputs: in.Digest(), Suite: "trixie", SourceDateEpoch: 1700000000, Packages: []Package{
		{Name: "zlib1g", Version: "1:1.3.dfsg+really1.3.1-1+b1", Arch: "arm64", Role: RoleRoot, Size: 10, SHA256: strings.Repeat("a", 64), Path: "pool/main/z/zlib/zlib1g_1.3.dfsg+really1.3.1-1+b1_arm64.deb"},
		{Name: "raspi-firmware", Version: "1.2", Arch: "all", Role: RoleBoot, Size: 5, SHA256: strings.Repeat("b", 64), Path: "pool/non-free-firmware/r/raspi-firmware/raspi-firmware_1.2_all.deb"},
	}}
	p := filepath.Join(t.TempDir(), "x.lock")
	if err := os.WriteFile(p, l.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	got, data, err := ReadLock(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, l.Marshal()) || len(got.Packages) != 2 || got.Packages[0].Version != "1:1.3.dfsg+really1.3.1-1+b1" {
		t.Errorf("round trip: %+v", got)
	}
	if got.Packages[0].FileName() != "zlib1g_1.3.dfsg+really1.3.1-1+b1_arm64.deb" {
		t.Errorf("file name %s", got.Packages[0].FileName())
	}
	if err := got.Check(in, p); err != nil {
		t.Errorf("check: %v", err)
	}
	in.Packages = append(in.Packages, "curl")
	if err := got.Check(in, p); !errors.Is(err, ErrStaleLock) {
		t.Errorf("stale lock not detected: %v", err)
	}
	// A hand-edited lock with a broken digest is refused with advice.
	bad := strings.Replace(string(data), strings.Repeat("a", 64), "abc", 1)
	if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadLock(p); err == nil || !strings.Contains(err.Error(), "pibake lock") {
		t.Errorf("broken lock: %v", err)
	}
	if _, _, err := ReadLock(filepath.Join(t.TempDir(), "none.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing lock: %v", err)
	}
}

func TestFetchHTTP(t *testing.T) {
	body := []byte("a .deb, honestly")
	sum := sha256.Sum256(body)
	p := Package{Name: "x", Version: "1", Arch: "all", Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:]), Path: "pool/main/x/x/x_1_all.deb"}
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		switch {
		case r.URL.Path != "/debian/"+p.Path:
			http.NotFound(w, r)
		case n == 1:
			http.Error(w, "busy", http.StatusServiceUnavailable) // retried
		default:
			_, _ = w.Write(body)
		}
	}))
	defer srv.Close()
	cache := Cache{Dir: t.TempDir()}
	f := &Fetcher{Mirror: srv.URL + "/debian", Cache: cache}
	n, err := f.Fetch(context.Background(), []Package{p})
	if err != nil || n != p.Size || !cache.Has(p) {
		t.Fatalf("fetch: %d bytes, %v", n, err)
	}
	if hits.Load() != 2 {
		t.Errorf("%d requests, want 2 (one retry)", hits.Load())
	}
	// Cached: no request.
	if n, err := f.Fetch(context.Background(), []Package{p}); err != nil || n != 0 || hits.Load() != 2 {
		t.Errorf("cached fetch: %d bytes, %v, %d requests", n, err, hits.Load())
	}
	// Not on the mirror: no retries, and the error says what to do.
	missing := p
	missing.Path, missing.SHA256 = "pool/main/x/x/gone.deb", strings.Repeat("0", 64)
	before := hits.Load()
	if _, err := f.Fetch(context.Background(), []Package{missing}); err == nil || !strings.Contains(err.Error(), "HTTP 404") || !strings.Contains(err.Error(), "pibake lock") {
		t.Errorf("missing package: %v", err)
	}
	if hits.Load()-before != 1 {
		t.Errorf("a 404 was retried %d times", hits.Load()-before-1)
	}
	// Unreachable mirror.
	srv.Close()
	f = &Fetcher{Mirror: srv.URL + "/debian", Cache: Cache{Dir: t.TempDir()}, Retries: 1}
	if _, err := f.Fetch(context.Background(), []Package{p}); err == nil || !strings.Contains(err.Error(), "mirror reachable") {
		t.Errorf("unreachable mirror: %v", err)
	}
}
