package publish

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/chunks"
	"github.com/pibake/pibake/updater/patch"
)

// fakeRoot is the root filesystem fakeBuild writes for version.
func fakeRoot(version string) []byte {
	return []byte(strings.Repeat("squashfs of "+version+"\n", 1000))
}

// checkAllPatches applies every patch the chunk document lists to the
// verified bytes of its source (the blob the signed document of that
// release named, read back by its own sha256) and wants the artifact.
func checkAllPatches(t *testing.T, repo string, sources map[string][]byte) {
	t.Helper()
	cdoc, err := os.ReadFile(filepath.Join(repo, channel.ChunksPath("stable")))
	if err != nil {
		t.Fatal(err)
	}
	var cd channel.Chunks
	if err := json.Unmarshal(cdoc, &cd); err != nil {
		t.Fatal(err)
	}
	for _, ref := range cd.Patches {
		b, err := os.ReadFile(filepath.Join(repo, ref.Path))
		if err != nil || sha256hex(b) != ref.SHA256 {
			t.Fatalf("patch %s: %v", ref.Path, err)
		}
		p, err := patch.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		old, ok := sources[ref.From]
		if !ok {
			t.Errorf("a patch from %s, which no release had", ref.From)
			continue
		}
		dst := &memTarget{b: make([]byte, p.TargetSize)}
		if err := patch.Apply(p, bytes.NewReader(old), dst, nil); err != nil || sha256hex(dst.b) != ref.Artifact {
			t.Errorf("publish signed a patch from %s that does not make %s on a device that runs it (%v)", ref.From, ref.Artifact, err)
		}
	}
}

// plantIndex stores a chunk index of other bytes that claims to describe
// the artifact want (its sha256), as a bucket writer could, and returns
// its reference.
func plantIndex(t *testing.T, repo string, of []byte, want string) channel.ChunkIndex {
	t.Helper()
	ix, err := chunks.Build(context.Background(), bytes.NewReader(of), chunks.Default)
	if err != nil {
		t.Fatal(err)
	}
	sum, _ := hex.DecodeString(want)
	copy(ix.SHA256[:], sum)
	b, err := ix.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	s := sha256hex(b)
	if err := os.WriteFile(filepath.Join(repo, channel.BlobPath(s)), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return channel.ChunkIndex{Artifact: want, Path: channel.BlobPath(s), Size: int64(len(b)), SHA256: s}
}

// TestPublishPlantedHistory: the history is the publisher's own record,
// signed with its key; one written by someone without the key (a bucket
// writer) never makes publish sign a patch that fails on the devices.
func TestPublishPlantedHistory(t *testing.T) {
	_, priv, _ := minisign.GenerateKey(rand.Reader)
	ctx := context.Background()
	v1, v2, v3 := fakeBuild(t, "1.0.0"), fakeBuild(t, "2.0.0"), fakeBuild(t, "3.0.0")
	for _, sig := range []string{"kept", "removed"} {
		t.Run("signature "+sig, func(t *testing.T) {
			repo := t.TempDir()
			sources := map[string][]byte{}
			for _, b := range []string{v1, v2} {
				res, err := Publish(ctx, Options{Repo: repo, Channel: "stable", Build: b, Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now})
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range res.Document.Artifacts {
					data, _ := os.ReadFile(filepath.Join(repo, a.Path))
					sources[a.SHA256] = data
				}
			}
			// The planted history: release 1.0.0's root with a chunk index
			// of 3.0.0's root that claims to be 1.0.0's.
			hpath := filepath.Join(repo, channel.HistoryPath("stable"))
			var h History
			data, _ := os.ReadFile(hpath)
			if err := json.Unmarshal(data, &h); err != nil {
				t.Fatal(err)
			}
			old := &h.Releases[1]
			for i, ix := range old.Indexes {
				if ix.Artifact == old.Artifacts[len(old.Artifacts)-1].SHA256 {
					old.Indexes[i] = plantIndex(t, repo, fakeRoot("3.0.0"), ix.Artifact)
				}
			}
			data, _ = json.MarshalIndent(&h, "", "  ")
			os.WriteFile(hpath, append(data, '\n'), 0o644)
			if sig == "removed" {
				os.Remove(channel.SignaturePath(hpath))
			}
			before, _ := os.ReadFile(filepath.Join(repo, channel.DocumentPath("stable")))
			res, err := Publish(ctx, Options{Repo: repo, Channel: "stable", Build: v3, Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now})
			if sig == "kept" {
				// Someone without the key changed a signed history: said so,
				// nothing published.
				if err == nil || !strings.Contains(err.Error(), "not signed by this key") || !strings.Contains(err.Error(), "remove it") {
					t.Errorf("a planted history under the publisher's signature: %v", err)
				}
				if after, _ := os.ReadFile(filepath.Join(repo, channel.DocumentPath("stable"))); !bytes.Equal(after, before) {
					t.Error("a refused publish changed the channel document")
				}
				checkAllPatches(t, repo, sources)
				return
			}
			// An unsigned history (an older pibake's, or planted) is set
			// aside with a warning; the update is priced from the current
			// release, which its signed documents vouch for.
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "not signed") || len(res.Delta) != 1 || res.Delta[0].From != "2.0.0" {
				t.Errorf("warnings %q, priced from %+v", res.Warnings, res.Delta)
			}
			checkAllPatches(t, repo, sources)
			// The history publish wrote is signed and read back without
			// a warning.
			res, err = Publish(ctx, Options{Repo: repo, Channel: "stable", Build: v1, Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now, AllowDowngrade: true})
			if err != nil || len(res.Warnings) != 0 || len(res.Delta) != 2 {
				t.Errorf("after a restart of the history: %v, warnings %q, priced from %+v", err, res.Warnings, res.Delta)
			}
		})
	}
}

// TestPublishVerifiesBlobs: publish reads an earlier release's artifact
// from the repository only after checking its sha256, and never leaves a
// blob that does not hold the bytes its name says.
func TestPublishVerifiesBlobs(t *testing.T) {
	_, priv, _ := minisign.GenerateKey(rand.Reader)
	ctx := context.Background()
	repo := t.TempDir()
	pub := func(build string) (*Result, error) {
		return Publish(ctx, Options{Repo: repo, Channel: "stable", Build: build, Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now})
	}
	// A blob planted where the next release's root will go (its sha256 is
	// known before it is published: a reproducible build, a re-publish).
	r1 := sha256.Sum256(fakeRoot("1.0.0"))
	planted := filepath.Join(repo, channel.BlobPath(hex.EncodeToString(r1[:])))
	os.MkdirAll(filepath.Dir(planted), 0o755)
	os.WriteFile(planted, fakeRoot("6.6.6"), 0o644)
	res, err := pub(fakeBuild(t, "1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string][]byte{}
	for _, a := range res.Document.Artifacts {
		data, _ := os.ReadFile(filepath.Join(repo, a.Path))
		if sha256hex(data) != a.SHA256 {
			t.Fatalf("%s: the blob %s does not hold the artifact: devices that download it fail", a.Name, a.Path)
		}
		sources[a.SHA256] = data
	}
	// Release 1.0.0's root replaced by other bytes of its size: no patch
	// is made from it, and publish says why.
	if res, err = pub(fakeBuild(t, "2.0.0")); err != nil {
		t.Fatal(err)
	}
	for _, a := range res.Document.Artifacts {
		sources[a.SHA256], _ = os.ReadFile(filepath.Join(repo, a.Path))
	}
	os.WriteFile(planted, fakeRoot("3.0.0"), 0o644)
	_, err = pub(fakeBuild(t, "3.0.0"))
	if err == nil || !strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), planted[len(repo)+1:]) {
		t.Errorf("a replaced blob of an earlier release: %v", err)
	}
	checkAllPatches(t, repo, sources)
	// Removed, no patch is made from it and publish goes on.
	os.Remove(planted)
	res, err = pub(fakeBuild(t, "3.0.0"))
	if err != nil || len(res.Delta) != 2 || res.Delta[1].From != "1.0.0" || slices.Contains(res.Delta[1].Patched, "root") {
		t.Fatalf("after removing the replaced blob: %v, %+v", err, res)
	}
	checkAllPatches(t, repo, sources)
}

// TestPublishSerialJump: publish does not continue from a current
// document whose serial is above what its own signed history records
// (a leaked previous key's document far ahead would make every device
// refuse the new key's releases), unless told the serial to continue from.
func TestPublishSerialJump(t *testing.T) {
	oldPub, oldKey, _ := minisign.GenerateKey(rand.Reader)
	newPub, newKey, _ := minisign.GenerateKey(rand.Reader)
	ctx := context.Background()
	repo := t.TempDir()
	v1, v2, v3 := fakeBuild(t, "1.0.0"), fakeBuild(t, "2.0.0"), fakeBuild(t, "3.0.0")
	for _, b := range []string{v1, v2} {
		if _, err := Publish(ctx, Options{Repo: repo, Channel: "stable", Build: b, Key: oldKey, Expires: 24 * time.Hour, Rollout: 1, Now: now}); err != nil {
			t.Fatal(err)
		}
	}
	docPath := filepath.Join(repo, channel.DocumentPath("stable"))
	legit, _ := os.ReadFile(docPath)
	// The leaked old key signs the same release 2^21 ahead.
	var d channel.Document
	json.Unmarshal(legit, &d)
	d.Serial += 1 << 21
	doc, sig, err := channel.Sign(&d, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(channel.SignaturePath(docPath), sig, 0o644)
	os.WriteFile(docPath, doc, 0o644)
	rotate := func(serialFrom uint64) (*Result, error) {
		return Publish(ctx, Options{Repo: repo, Channel: "stable", Build: v3, Key: newKey, Expires: 24 * time.Hour, Rollout: 1, Now: now,
			PreviousKeys: []minisign.PublicKey{oldPub}, SerialFrom: serialFrom})
	}
	// The publishing key's own documents are held to the bound too.
	if _, err := Publish(ctx, Options{Repo: repo, Channel: "stable", Build: v3, Key: oldKey, Expires: 24 * time.Hour, Rollout: 1, Now: now}); err == nil || !strings.Contains(err.Error(), "--serial-from 2") {
		t.Errorf("a serial far ahead under the publishing key: %v", err)
	}
	if res, err := rotate(0); err == nil || !strings.Contains(err.Error(), "--serial-from 2") {
		if err == nil {
			t.Errorf("continued from a planted serial: serial %d", res.Document.Serial)
		} else {
			t.Errorf("a planted serial far ahead: %v", err)
		}
	}
	// Told where to continue, the new release follows the history, and a
	// device that committed serial 2 takes it.
	res, err := rotate(2)
	if err != nil || res.Document.Serial != 3 {
		t.Fatalf("--serial-from 2: %v", err)
	}
	doc, _ = os.ReadFile(docPath)
	sig, _ = os.ReadFile(channel.SignaturePath(docPath))
	if _, err := channel.Verify(doc, sig, channel.Check{Trusted: []minisign.PublicKey{newPub}, Board: "qemu", Channel: "stable", Image: "demo", Now: now, LastSerial: 2}); err != nil {
		t.Errorf("a device at serial 2 refuses the recovered release: %v", err)
	}

	// A rotation with no signed history to compare with: the previous
	// key's document alone does not set the serial.
	repo2 := t.TempDir()
	if _, err := Publish(ctx, Options{Repo: repo2, Channel: "stable", Build: v1, Key: oldKey, Expires: 24 * time.Hour, Rollout: 1, Now: now}); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(repo2, channel.HistoryPath("stable")))
	os.Remove(filepath.Join(repo2, channel.SignaturePath(channel.HistoryPath("stable"))))
	o := Options{Repo: repo2, Channel: "stable", Build: v2, Key: newKey, Expires: 24 * time.Hour, Rollout: 1, Now: now, PreviousKeys: []minisign.PublicKey{oldPub}}
	if _, err := Publish(ctx, o); err == nil || !strings.Contains(err.Error(), "--serial-from 1") {
		t.Errorf("a rotation without a history: %v", err)
	}
	o.SerialFrom = 1
	if res, err := Publish(ctx, o); err != nil || res.Document.Serial != 2 {
		t.Errorf("a rotation without a history, --serial-from 1: %v", err)
	}
}

// TestBundleVerifiesBlobs: a bundle carries only artifacts that hold the
// bytes its channel document names; one changed in the repository stops
// it (the device would refuse it after the whole bundle was carried there).
func TestBundleVerifiesBlobs(t *testing.T) {
	_, priv, _ := minisign.GenerateKey(rand.Reader)
	repo := t.TempDir()
	res, err := Publish(context.Background(), Options{Repo: repo, Channel: "stable", Build: fakeBuild(t, "1.0.0"), Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	root := res.Document.Artifacts[len(res.Document.Artifacts)-1]
	os.WriteFile(filepath.Join(repo, root.Path), fakeRoot("6.6.6"), 0o644)
	out := filepath.Join(t.TempDir(), "b.tar")
	if _, err := Bundle(context.Background(), BundleOptions{Repo: repo, Channel: "stable", Out: out, Now: now}); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("a bundle of a changed blob: %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("the refused bundle was written")
	}
}
