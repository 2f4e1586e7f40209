package publish

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/install"
)

func TestBundle(t *testing.T) {
	_, priv, _ := minisign.GenerateKey(rand.Reader)
	repo := t.TempDir()
	if _, err := Publish(context.Background(), Options{Repo: repo, Channel: "stable", Build: fakeBuild(t, "1.0.0"), Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "demo.tar")
	br, err := Bundle(context.Background(), BundleOptions{Repo: repo, Channel: "stable", Out: out, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	d := br.Document
	// Same repository, same bytes.
	again := filepath.Join(dir, "again.tar")
	if _, err := Bundle(context.Background(), BundleOptions{Repo: repo, Channel: "stable", Out: again, Now: now}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Error("two bundles of the same repository differ")
	}
	// The device side reads every artifact in place, from any offset.
	bu, err := install.OpenBundle(out)
	if err != nil {
		t.Fatal(err)
	}
	if ch := bu.Channels(); len(ch) != 1 || ch[0] != "stable" {
		t.Errorf("channels %v", ch)
	}
	for _, art := range d.Artifacts {
		r, err := bu.Open(context.Background(), art.Path, 0)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, _ := io.Copy(h, r)
		r.Close()
		if n != art.Size || hex.EncodeToString(h.Sum(nil)) != art.SHA256 {
			t.Errorf("%s: %d bytes read back from the bundle, digest mismatch or short", art.Name, n)
		}
		r, _ = bu.Open(context.Background(), art.Path, art.Size-10)
		tail, _ := io.ReadAll(r)
		r.Close()
		if len(tail) != 10 {
			t.Errorf("%s: read from an offset gave %d bytes", art.Name, len(tail))
		}
	}
	if _, err := bu.Open(context.Background(), channel.BlobPath("nope"), 0); !errors.Is(err, install.ErrNotFound) {
		t.Errorf("missing file: %v", err)
	}
	// Bad input.
	// A document edited to name a file outside the blobs is refused.
	docPath := filepath.Join(repo, channel.DocumentPath("stable"))
	orig, _ := os.ReadFile(docPath)
	os.WriteFile(docPath, []byte(strings.Replace(string(orig), `"path": "`+channel.BlobsDir+"/", `"path": "../../../../etc/passwd#`, 1)), 0o644)
	if _, err := Bundle(context.Background(), BundleOptions{Repo: repo, Channel: "stable", Out: filepath.Join(dir, "evil.tar"), Now: now}); err == nil {
		t.Error("a bundle packed a path outside the repository's blobs")
	}
	os.WriteFile(docPath, orig, 0o644)
	if _, err := Bundle(context.Background(), BundleOptions{Repo: repo, Channel: "beta", Out: filepath.Join(dir, "x.tar"), Now: now}); err == nil {
		t.Error("bundle of a missing channel")
	}
	os.WriteFile(filepath.Join(dir, "junk.tar"), []byte("not a tar file at all"), 0o644)
	if _, err := install.OpenBundle(filepath.Join(dir, "junk.tar")); err == nil {
		t.Error("junk accepted as a bundle")
	}
	for _, cut := range []int{700, len(a) / 2, len(a) - 2048} {
		os.WriteFile(filepath.Join(dir, "short.tar"), a[:cut], 0o644)
		if _, err := install.OpenBundle(filepath.Join(dir, "short.tar")); err == nil {
			t.Errorf("bundle truncated to %d of %d bytes accepted", cut, len(a))
		}
	}
}
