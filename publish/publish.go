// Package publish adds a built image to an update repository: plain files
// any static HTTP server, CDN or bucket can serve, named by the table in
// updater/channel (repo.go): content-addressed blobs, and per channel its
// signed document, its signed chunk document, and the publisher's history
// and cost records.
//
// A release has two artifacts, written by a device into its inactive slot:
// "boot" (the boot partition's FAT filesystem, trailing free space cut off)
// and "root" (the squashfs). Both slots of an image hold the same bytes, so
// one artifact fits either slot.
package publish

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/disk/inspect"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/internal/atomicfile"
	"github.com/pibake/pibake/manifest"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/chunks"
)

// Options configure a publish.
type Options struct {
	Repo    string // repository folder
	Channel string
	Build   string // a build output folder: manifest.json and the image
	Key     minisign.PrivateKey
	Expires time.Duration // from Now
	Rollout float64
	Now     time.Time
	// PreviousKeys are public keys whose documents publish may also
	// continue the serial from: the old key, on the first publish after
	// a key rotation.
	PreviousKeys []minisign.PublicKey
	// History is how many earlier releases publish keeps and prices an
	// update from (0: DefaultHistory).
	History int
}

// Result is what was published.
type Result struct {
	Document *channel.Document
	Uploaded int64 // bytes of new blobs written
	// Chunks are the artifacts' chunk indexes (channel.ChunksPath).
	Chunks []channel.ChunkIndex
	// Patches are the patches from earlier releases in the chunk document.
	Patches []channel.PatchRef
	// Delta is what a device running each earlier release of the
	// channel's history downloads for this one, newest first (also
	// written to channel.CostPath).
	Delta []Cost
}

// Publish verifies the build against its manifest, stores its artifacts and
// signs a new channel document whose serial follows the current one.
func Publish(ctx context.Context, o Options) (*Result, error) {
	m, err := manifest.Read(o.Build)
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return nil, fmt.Errorf("publish: %s is not a build output folder: %w", o.Build, err)
	} else if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	img, err := os.Open(filepath.Join(o.Build, m.Disk.File))
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	defer img.Close()
	if got, err := fileSHA256(ctx, img); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	} else if got != m.Disk.SHA256 {
		return nil, fmt.Errorf("publish: %s has sha256 %s, its manifest says %s: corrupt or modified build", m.Disk.File, got, m.Disk.SHA256)
	}
	lay, _, err := inspect.Layout(img, m.Disk.Size)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	type part struct {
		name      string
		off, n    int64
		partition int64
	}
	bootOf := func(name, label string) (part, error) {
		p, _ := lay.Part(label)
		n, err := usedLength(img, p.Offset, p.Size)
		return part{name, p.Offset, n, p.Size}, err
	}
	// With the U-Boot chain both boot partitions hold the same bytes. With
	// tryboot each holds its own cmdline.txt (its root and slot), so each
	// slot gets its own boot artifact, boot.a and boot.b.
	boots := [][2]string{{"boot", layout.BootA}}
	if bootchain.Chain(m.Bootloader) == bootchain.Tryboot {
		boots = [][2]string{{channel.BootArtifact(bootchain.A.String()), bootchain.A.Boot()}, {channel.BootArtifact(bootchain.B.String()), bootchain.B.Boot()}}
	}
	var parts []part
	for _, b := range boots {
		p, err := bootOf(b[0], b[1])
		if err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
		parts = append(parts, p)
	}
	root, _ := lay.Part(layout.RootA)
	parts = append(parts, part{"root", root.Offset, m.Rootfs.Size, root.Size})
	res := &Result{}
	var arts []channel.Artifact
	var indexes []channel.ChunkIndex
	for _, a := range parts {
		sum, wrote, err := storeBlob(ctx, o.Repo, io.NewSectionReader(img, a.off, a.n))
		if err != nil {
			return nil, fmt.Errorf("publish: %s: %w", a.name, err)
		}
		res.Uploaded += wrote
		arts = append(arts, channel.Artifact{Name: a.name, Path: channel.BlobPath(sum), Size: a.n, SHA256: sum, PartitionSize: a.partition})
		ix, wrote, err := storeIndex(ctx, o.Repo, sum, io.NewSectionReader(img, a.off, a.n))
		if err != nil {
			return nil, fmt.Errorf("publish: %s: chunk index: %w", a.name, err)
		}
		res.Uploaded += wrote
		indexes = append(indexes, ix)
	}
	prev, err := current(o.Repo, o.Channel, o.Key, o.PreviousKeys)
	if err != nil {
		return nil, err
	}
	hist, err := readHistory(o.Repo, o.Channel)
	if err != nil {
		return nil, err
	}
	serial := uint64(1)
	if prev != nil {
		serial = prev.Serial + 1
		// A repository published before the history existed, or one whose
		// history lost the current release: start it from the current one.
		if len(hist.Releases) == 0 || !sameArtifacts(hist.Releases[0].Artifacts, prev.Artifacts) {
			pub, _ := o.Key.Public().(minisign.PublicKey)
			hist.add(Release{Serial: prev.Serial, Version: prev.Version, Artifacts: prev.Artifacts,
				Indexes: currentIndexes(o.Repo, prev, append([]minisign.PublicKey{pub}, o.PreviousKeys...))}, keep(o.History))
		}
	}
	var earlier []Release
	for _, r := range hist.Releases {
		if !sameArtifacts(r.Artifacts, arts) && len(earlier) < keep(o.History) {
			earlier = append(earlier, r)
		}
	}
	if len(earlier) == 0 && prev != nil {
		earlier = hist.Releases[:1] // the same bytes again: a device fetches only the indexes
	}
	var patches []channel.PatchRef
	var stored int64
	if res.Delta, patches, stored, err = deltaCost(ctx, o.Repo, earlier, arts, indexes); err != nil {
		return nil, fmt.Errorf("publish: the cost of an update: %w", err)
	}
	res.Uploaded += stored
	res.Patches = patches
	d := &channel.Document{Format: channel.Format, Channel: o.Channel, Image: m.Image, Version: m.Version, Serial: serial,
		Expires: o.Now.Add(o.Expires).UTC().Truncate(time.Second), Boards: []string{m.Board}, Rollout: o.Rollout, Artifacts: arts}
	doc, sig, err := channel.Sign(d, o.Key)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	chunkDoc, chunkSig, err := channel.SignChunks(&channel.Chunks{Format: channel.ChunksFormat, Channel: d.Channel, Serial: d.Serial, Indexes: indexes, Patches: patches}, d, o.Key)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	dir := filepath.Join(o.Repo, channel.ChannelsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// The chunk document first: a device that sees the new channel
	// document finds its chunks. One that reads the old chunk document
	// with the new channel document (or the reverse) sees another serial
	// and downloads the artifacts in full.
	chunks := filepath.Join(o.Repo, filepath.FromSlash(channel.ChunksPath(o.Channel)))
	if err := atomicfile.Write(channel.SignaturePath(chunks), chunkSig, 0o644); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(chunks, chunkDoc, 0o644); err != nil {
		return nil, err
	}
	res.Chunks = indexes
	// The publisher's records, before the channel document that makes
	// the release current: its cost, and the history with it first.
	report := CostReport{Format: CostFormat, Channel: o.Channel, Serial: serial, Version: m.Version, From: res.Delta}
	for _, a := range arts {
		report.Full += a.Size
	}
	hist.add(Release{Serial: serial, Version: m.Version, Artifacts: arts, Indexes: indexes}, keep(o.History))
	for _, rec := range []struct {
		path string
		v    any
	}{{channel.CostPath(o.Channel), report}, {channel.HistoryPath(o.Channel), hist}} {
		b, err := json.MarshalIndent(rec.v, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := atomicfile.Write(filepath.Join(o.Repo, filepath.FromSlash(rec.path)), append(b, '\n'), 0o644); err != nil {
			return nil, err
		}
	}
	base := filepath.Join(o.Repo, filepath.FromSlash(channel.DocumentPath(o.Channel)))
	if err := atomicfile.Write(channel.SignaturePath(base), sig, 0o644); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(base, doc, 0o644); err != nil {
		return nil, err
	}
	res.Document = d
	return res, nil
}

func keep(n int) int {
	if n <= 0 {
		return DefaultHistory
	}
	return n
}

// storeIndex chunks an artifact (updater/chunks, the default bounds) and
// stores its index as a blob.
func storeIndex(ctx context.Context, repo, artifact string, r io.Reader) (channel.ChunkIndex, int64, error) {
	ix, err := chunks.Build(ctx, r, chunks.Default)
	if err != nil {
		return channel.ChunkIndex{}, 0, err
	}
	if ix.Hex() != artifact {
		return channel.ChunkIndex{}, 0, fmt.Errorf("the artifact changed while it was chunked (sha256 %s, stored as %s)", ix.Hex(), artifact)
	}
	b, err := ix.MarshalBinary()
	if err != nil {
		return channel.ChunkIndex{}, 0, err
	}
	sum, wrote, err := storeBlob(ctx, repo, bytes.NewReader(b))
	if err != nil {
		return channel.ChunkIndex{}, 0, err
	}
	return channel.ChunkIndex{Artifact: artifact, Path: channel.BlobPath(sum), Size: int64(len(b)), SHA256: sum}, wrote, nil
}

// usedLength is the partition's length without its trailing all-zero
// 4 KiB blocks: the free space of a freshly written FAT filesystem.
func usedLength(r io.ReaderAt, off, size int64) (int64, error) {
	const blk = 4096
	buf := make([]byte, blk)
	for end := size; end > 0; end -= blk {
		if _, err := r.ReadAt(buf, off+end-blk); err != nil {
			return 0, err
		}
		for _, b := range buf {
			if b != 0 {
				return end, nil
			}
		}
	}
	return 0, errors.New("boot partition is empty")
}

func fileSHA256(ctx context.Context, f *os.File) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), ctx.Err()
}

// storeBlob writes r as the blob of its sha256 (channel.BlobPath) unless
// it is there already.
func storeBlob(ctx context.Context, repo string, r io.Reader) (string, int64, error) {
	dir := filepath.Join(repo, filepath.FromSlash(channel.BlobsDir))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", 0, err
	}
	tmp, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, err
	}
	if err := ctx.Err(); err != nil {
		return "", 0, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	dst := filepath.Join(dir, sum)
	if _, err := os.Stat(dst); err == nil {
		return sum, 0, nil // content-addressed: the same bytes are there
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", 0, err
	}
	return sum, n, os.Rename(tmp.Name(), dst)
}

// current is the channel's document already published (nil for none),
// only if it is signed by this key: publish continues its serial, and the
// repository is plain files that others may write; an unsigned serial
// near the top of the range would end the channel for every device.
func current(repo, name string, key minisign.PrivateKey, previous []minisign.PublicKey) (*channel.Document, error) {
	base := filepath.Join(repo, filepath.FromSlash(channel.DocumentPath(name)))
	data, err := os.ReadFile(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	sig, err := os.ReadFile(channel.SignaturePath(base))
	if err != nil {
		return nil, fmt.Errorf("publish: channel %s has a document but no signature (%v): the repository was changed by hand; restore it from a backup", name, err)
	}
	pub, _ := key.Public().(minisign.PublicKey)
	d, err := channel.VerifySigned(data, sig, append([]minisign.PublicKey{pub}, previous...))
	if err != nil {
		return nil, fmt.Errorf("publish: the current document of channel %s is not one this key signed (%w): publish continues serials only from its own documents; after a key rotation give the old public key with --previous-key (docs/updates.md)", name, err)
	}
	return d, nil
}
