package publish

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/disk/fat"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/disk/mbr"
	"github.com/pibake/pibake/manifest"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/delta"
	"github.com/pibake/pibake/updater/patch"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// fakeBuild writes a build output folder: an image with the pibake layout,
// a FAT boot slot and a stand-in root filesystem, and its manifest.
func fakeBuild(t *testing.T, version string) string {
	t.Helper()
	return fakeBuildWith(t, version, "uboot")
}

func fakeBuildWith(t *testing.T, version, bootloader string) string {
	t.Helper()
	dir := t.TempDir()
	lay, err := layout.Compute(layout.Sizes{Bootsel: 40 << 20, Boot: 40 << 20, Root: 16 << 20, Data: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "demo.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(lay.DiskSize)
	if err := mbr.Write(f, lay.MBR(0x12345678), uint64(lay.DiskSize/512)); err != nil {
		t.Fatal(err)
	}
	root := []byte(strings.Repeat("squashfs of "+version+"\n", 1000))
	for _, p := range lay.Parts {
		switch p.Name {
		case layout.Bootsel, layout.BootA, layout.BootB:
			files := []fat.File{{Path: "vmlinuz", Data: []byte("kernel " + version)}, {Path: "cmdline.txt", Data: []byte("root of " + p.Name)}}
			if err := fat.Write(io.NewOffsetWriter(f, p.Offset), fat.Options{Size: p.Size, Label: "PIBOOT", Time: now}, files, nil); err != nil {
				t.Fatal(err)
			}
		case layout.RootA, layout.RootB:
			f.WriteAt(root, p.Offset)
		}
	}
	f.Close()
	data, _ := os.ReadFile(img)
	sum := sha256.Sum256(data)
	m := manifest.Manifest{Format: manifest.Format, Image: "demo", Version: version, Board: "qemu", Bootloader: bootloader,
		Disk: manifest.Disk{File: "demo.img", Size: lay.DiskSize, SHA256: hex.EncodeToString(sum[:])}, Rootfs: manifest.Rootfs{Size: int64(len(root))}}
	if _, err := manifest.Write(dir, &m); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPublish(t *testing.T) {
	pub, priv, _ := minisign.GenerateKey(rand.Reader)
	repo := t.TempDir()
	v1 := fakeBuild(t, "1.0.0")
	res, err := Publish(context.Background(), Options{Repo: repo, Channel: "stable", Build: v1, Key: priv, Expires: 720 * time.Hour, Rollout: 1, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	d := res.Document
	if d.Serial != 1 || d.Version != "1.0.0" || len(d.Artifacts) != 2 || d.Boards[0] != "qemu" {
		t.Fatalf("document %+v", d)
	}
	boot := d.Artifacts[0]
	if boot.Name != "boot" || boot.Size >= boot.PartitionSize || boot.Size%4096 != 0 {
		t.Errorf("boot artifact %+v: want the FAT without its free tail", boot)
	}
	// The stored blob opens as the FAT it came from.
	blob, err := os.ReadFile(filepath.Join(repo, boot.Path))
	if err != nil {
		t.Fatal(err)
	}
	padded := append(blob, make([]byte, boot.PartitionSize-boot.Size)...)
	fsys, err := fat.Open(strings.NewReader(string(padded)), boot.PartitionSize)
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := fsys.ReadFile("vmlinuz"); string(k) != "kernel 1.0.0" {
		t.Errorf("boot blob holds kernel %q", k)
	}
	// The signed document verifies.
	doc, _ := os.ReadFile(filepath.Join(repo, channel.DocumentPath("stable")))
	sig, _ := os.ReadFile(filepath.Join(repo, channel.SignaturePath(channel.DocumentPath("stable"))))
	if _, err := channel.Verify(doc, sig, channel.Check{Trusted: []minisign.PublicKey{pub}, Board: "qemu", Channel: "stable", Image: "demo", Now: now}); err != nil {
		t.Fatalf("published document does not verify: %v", err)
	}

	// The chunk document verifies for that document, and each index
	// describes its artifact.
	cdoc, _ := os.ReadFile(filepath.Join(repo, channel.ChunksPath("stable")))
	csig, _ := os.ReadFile(filepath.Join(repo, channel.SignaturePath(channel.ChunksPath("stable"))))
	cs, err := channel.VerifyChunks(cdoc, csig, d, []minisign.PublicKey{pub}, nil)
	if err != nil {
		t.Fatalf("chunk document: %v", err)
	}
	for _, a := range d.Artifacts {
		ci, ok := cs.For(a.SHA256)
		if !ok {
			t.Fatalf("no chunk index for %s", a.Name)
		}
		f, err := os.Open(filepath.Join(repo, ci.Path))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := delta.ReadIndex(f, ci.Size, ci.SHA256, a); err != nil {
			t.Errorf("%s: %v", a.Name, err)
		}
		f.Close()
	}

	// The same build again: a new serial, no new artifact bytes; only a
	// patch per artifact, one copy each.
	res, err = Publish(context.Background(), Options{Repo: repo, Channel: "stable", Build: v1, Key: priv, Expires: 24 * time.Hour, Rollout: 0.5, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if res.Document.Serial != 2 || len(res.Patches) != 2 || res.Uploaded != res.Patches[0].Size+res.Patches[1].Size || res.Uploaded > 2*100 {
		t.Fatalf("republish: serial %d, %d bytes uploaded, patches %+v, %v", res.Document.Serial, res.Uploaded, res.Patches, err)
	}
	// The same bytes: a device running the release before downloads the
	// two patches, in two requests.
	if len(res.Delta) != 1 || res.Delta[0].From != "1.0.0" || res.Delta[0].Bytes != res.Uploaded || res.Delta[0].Requests != 2 || len(res.Delta[0].Patched) != 2 {
		t.Errorf("cost of an update to the same bytes: %+v", res.Delta)
	}
	// A serial raised in the repository without the key (a writable
	// bucket) is not continued.
	doc, _ = os.ReadFile(filepath.Join(repo, channel.DocumentPath("stable")))
	os.WriteFile(filepath.Join(repo, channel.DocumentPath("stable")), []byte(strings.Replace(string(doc), `"serial": 2`, `"serial": 18446744073709551614`, 1)), 0o644)
	if _, err := Publish(context.Background(), Options{Repo: repo, Channel: "stable", Build: v1, Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now}); err == nil || !strings.Contains(err.Error(), "not one this key signed") || !strings.HasPrefix(err.Error(), "publish: read the channel: ") {
		t.Errorf("unsigned serial continued: %v", err)
	}
	os.WriteFile(filepath.Join(repo, channel.DocumentPath("stable")), doc, 0o644)
	// A rotation: the new key continues the old key's serial only when
	// told the old public key.
	_, newKey, _ := minisign.GenerateKey(rand.Reader)
	if _, err := Publish(context.Background(), Options{Repo: repo, Channel: "stable", Build: v1, Key: newKey, Expires: 24 * time.Hour, Rollout: 1, Now: now}); err == nil {
		t.Error("a new key continued a serial it did not sign")
	}
	res, err = Publish(context.Background(), Options{Repo: repo, Channel: "stable", Build: v1, Key: newKey, Expires: 24 * time.Hour, Rollout: 1, Now: now, PreviousKeys: []minisign.PublicKey{pub}})
	if err != nil || res.Document.Serial != 3 {
		t.Fatalf("rotation publish: %v", err)
	}
	// A modified build is refused.
	v2 := fakeBuild(t, "2.0.0")
	f, _ := os.OpenFile(filepath.Join(v2, "demo.img"), os.O_RDWR, 0)
	f.WriteAt([]byte("evil"), 1<<20)
	f.Close()
	if _, err := Publish(context.Background(), Options{Repo: repo, Channel: "stable", Build: v2, Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now}); err == nil || !strings.Contains(err.Error(), "corrupt or modified") || !strings.HasPrefix(err.Error(), "publish: read the build: ") {
		t.Errorf("modified build: %v", err)
	}
}

// TestPublishTryboot: a tryboot image's boot partitions differ (each
// cmdline.txt names its own root and slot), so each slot gets its own.
func TestPublishTryboot(t *testing.T) {
	_, priv, _ := minisign.GenerateKey(rand.Reader)
	repo := t.TempDir()
	res, err := Publish(context.Background(), Options{Repo: repo, Channel: "stable", Build: fakeBuildWith(t, "1.0.0", "tryboot"), Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range res.Document.Artifacts {
		names = append(names, a.Name)
		if !strings.HasPrefix(a.Name, "boot.") {
			continue
		}
		blob, _ := os.ReadFile(filepath.Join(repo, a.Path))
		fsys, err := fat.Open(strings.NewReader(string(append(blob, make([]byte, a.PartitionSize-a.Size)...))), a.PartitionSize)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"boot.a": "root of " + layout.BootA, "boot.b": "root of " + layout.BootB}[a.Name]
		if c, _ := fsys.ReadFile("cmdline.txt"); string(c) != want {
			t.Errorf("%s holds cmdline %q, want %q", a.Name, c, want)
		}
	}
	if strings.Join(names, " ") != "boot.a boot.b root" {
		t.Errorf("artifacts %v", names)
	}
}

// TestPublishHistory: publish keeps the channel's earlier releases and
// prices the update from each of them into channels/<name>.cost.json.
type memTarget struct{ b []byte }

func (m *memTarget) WriteAt(p []byte, off int64) (int, error) { return copy(m.b[off:], p), nil }
func (m *memTarget) Size() int64                              { return int64(len(m.b)) }
func (m *memTarget) Sync() error                              { return nil }

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestPublishHistory(t *testing.T) {
	_, priv, _ := minisign.GenerateKey(rand.Reader)
	repo := t.TempDir()
	ctx := context.Background()
	pub := func(build string, history int) *Result {
		t.Helper()
		res, err := Publish(ctx, Options{Repo: repo, Channel: "stable", Build: build, Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now, History: history, AllowDowngrade: true}) // older builds again, to price from their releases
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	readJSON := func(path string, v any) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(repo, path))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	v1, v2, v3 := fakeBuild(t, "1.0.0"), fakeBuild(t, "2.0.0"), fakeBuild(t, "3.0.0")
	if res := pub(v1, 0); len(res.Delta) != 0 {
		t.Errorf("first release priced from %+v", res.Delta)
	}
	pub(v2, 0)
	pub(v2, 0) // a re-publish (another rollout) adds no release
	res := pub(v3, 0)
	var from []string
	for _, c := range res.Delta {
		from = append(from, c.From)
		if c.Bytes <= 0 || c.Bytes >= c.Full || c.Requests < 2 || len(c.Missing) != 0 {
			t.Errorf("cost from %s: %+v", c.From, c)
		}
	}
	if strings.Join(from, " ") != "2.0.0 1.0.0" {
		t.Errorf("priced from %v, want the earlier releases newest first", from)
	}
	// The patches: from each earlier artifact of the same kind, each one
	// turning that blob into the new artifact, listed in the signed chunk
	// document; the costs count them.
	checkPatches := func(res *Result, want int) {
		t.Helper()
		var cd channel.Chunks
		readJSON(channel.ChunksPath("stable"), &cd)
		if len(res.Patches) != want || !reflect.DeepEqual(cd.Patches, res.Patches) {
			t.Fatalf("%d patches (want %d), the chunk document lists %d", len(res.Patches), want, len(cd.Patches))
		}
		for _, ref := range res.Patches {
			b, err := os.ReadFile(filepath.Join(repo, ref.Path))
			if err != nil || sha256hex(b) != ref.SHA256 || int64(len(b)) != ref.Size {
				t.Fatalf("patch %s: %v", ref.Path, err)
			}
			p, err := patch.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			old, err := os.ReadFile(filepath.Join(repo, channel.BlobPath(ref.From)))
			if err != nil || int64(len(old)) != ref.FromSize {
				t.Fatalf("source of %s: %v", ref.Path, err)
			}
			dst := &memTarget{b: make([]byte, p.TargetSize)}
			if err := patch.Apply(p, bytes.NewReader(old), dst, nil); err != nil || sha256hex(dst.b) != ref.Artifact {
				t.Errorf("patch %s from %s does not make %s (%v)", ref.Path, ref.From, ref.Artifact, err)
			}
		}
		for _, c := range res.Delta {
			if len(c.Patched) != 2 && len(c.Missing) == 0 {
				t.Errorf("cost from %s counts patches for %v", c.From, c.Patched)
			}
		}
	}
	checkPatches(res, 4)
	var report CostReport
	readJSON(channel.CostPath("stable"), &report)
	if report.Version != "3.0.0" || report.Serial != 4 || len(report.From) != 2 || report.From[0].Bytes != res.Delta[0].Bytes || report.Full != res.Delta[0].Full {
		t.Errorf("cost report %+v", report)
	}
	var h History
	readJSON(channel.HistoryPath("stable"), &h)
	if len(h.Releases) != 3 || h.Releases[0].Version != "3.0.0" || h.Releases[1].Serial != 3 || len(h.Releases[2].Indexes) != 2 {
		t.Errorf("history %+v", h.Releases)
	}

	// A release whose artifacts were pruned from the repository is priced
	// as a full download of them, and said so.
	for _, a := range h.Releases[2].Artifacts {
		os.Remove(filepath.Join(repo, a.Path))
	}
	for _, ix := range h.Releases[2].Indexes {
		os.Remove(filepath.Join(repo, ix.Path))
	}
	res = pub(fakeBuild(t, "4.0.0"), 2)
	if len(res.Delta) != 2 || res.Delta[1].From != "2.0.0" || len(res.Delta[0].Missing) != 0 {
		t.Errorf("history of 2: priced from %+v", res.Delta)
	}
	readJSON(channel.HistoryPath("stable"), &h)
	if len(h.Releases) != 3 {
		t.Errorf("history of 2 keeps %d releases, want the newest and 2 earlier", len(h.Releases))
	}
	res = pub(fakeBuild(t, "5.0.0"), 3)
	if c := res.Delta[2]; c.From != "2.0.0" || len(c.Missing) != 0 {
		t.Errorf("from 2.0.0: %+v", c)
	}
	readJSON(channel.HistoryPath("stable"), &h)
	for _, a := range h.Releases[2].Artifacts {
		os.Remove(filepath.Join(repo, a.Path))
	}
	for _, ix := range h.Releases[2].Indexes {
		os.Remove(filepath.Join(repo, ix.Path))
	}
	res = pub(fakeBuild(t, "6.0.0"), 3)
	if c := res.Delta[2]; c.From != "3.0.0" || len(c.Missing) != 2 || c.Bytes < res.Delta[1].Bytes || len(c.Patched) != 0 {
		t.Errorf("from a pruned release: %+v", c)
	}
	checkPatches(res, 4) // none from the pruned release

	// A damaged history is refused with what to do, and nothing published.
	os.WriteFile(filepath.Join(repo, channel.HistoryPath("stable")), []byte(`{"format": 1, "channel": "stable", "releases": [{"serial": 1, "version": "x", "artifacts": [{"name": "root", "path": "../../etc/passwd", "size": 1}]}]}`), 0o644)
	before, _ := os.ReadFile(filepath.Join(repo, channel.DocumentPath("stable")))
	if _, err := Publish(ctx, Options{Repo: repo, Channel: "stable", Build: v1, Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now}); err == nil || !strings.Contains(err.Error(), "remove it") {
		t.Errorf("damaged history: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(repo, channel.DocumentPath("stable"))); string(after) != string(before) {
		t.Error("a refused publish changed the channel document")
	}
	// Without the history file, publish starts it from the current release.
	os.Remove(filepath.Join(repo, channel.HistoryPath("stable")))
	if res := pub(v1, 0); len(res.Delta) != 1 || res.Delta[0].From != "6.0.0" {
		t.Errorf("history restarted: %+v", res.Delta)
	}
}
