package publish

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/chunks"
	"github.com/pibake/pibake/updater/delta"
	"github.com/pibake/pibake/updater/patch"
)

// Cost is what a device running an earlier release downloads for this
// one with delta updates (the plan its agent makes, the chunk indexes
// included; the two small signed documents are not counted), next to the
// full artifacts.
type Cost struct {
	// Board is the board whose devices this is for, in a release of
	// several boards; empty for a release of one.
	Board    string `json:"board,omitempty"`
	From     string `json:"from"` // the earlier release's version
	Serial   uint64 `json:"serial"`
	Bytes    int64  `json:"bytes"`
	Requests int    `json:"requests"`
	Full     int64  `json:"full"`
	// Patched names the artifacts a device gets as a patch (one request
	// each, no chunk index) rather than as chunks.
	Patched []string `json:"patched,omitempty"`
	// Missing names artifacts of the earlier release gone from the
	// repository: priced as if the device had nothing to reuse for them
	// (its real cost is lower; it reuses its own slot).
	Missing []string `json:"missing,omitempty"`
}

// Percent is Bytes as a share of the full download.
func (c Cost) Percent() float64 {
	if c.Full == 0 {
		return 0
	}
	return 100 * float64(c.Bytes) / float64(c.Full)
}

// CostReport is the file at channel.CostPath: the newest release and, for
// each earlier release in the history, what its devices download.
type CostReport struct {
	Format  int    `json:"format"`
	Channel string `json:"channel"`
	Serial  uint64 `json:"serial"`
	Version string `json:"version"`
	Full    int64  `json:"full"`
	From    []Cost `json:"from"`
}

// releaseSources are the chunk indexes of an earlier release's artifacts,
// as a device running it finds them in its slots: read from the stored
// index where there is one (verified against its digest and artifact),
// else by chunking the stored artifact. Artifacts gone from the
// repository are returned by name.
func releaseSources(ctx context.Context, repo string, r Release) ([]delta.Source, []string, error) {
	var sources []delta.Source
	var missing []string
	for _, a := range r.Artifacts {
		if i := slices.IndexFunc(r.Indexes, func(ix channel.ChunkIndex) bool { return ix.Artifact == a.SHA256 }); i >= 0 {
			ci := r.Indexes[i]
			if f, err := os.Open(filepath.Join(repo, filepath.FromSlash(ci.Path))); err == nil {
				ix, err := delta.ReadIndex(f, ci.Size, ci.SHA256, a)
				f.Close()
				if err == nil {
					sources = append(sources, delta.Source{Name: a.Name, Index: ix})
					continue
				}
			}
		}
		f, err := os.Open(filepath.Join(repo, filepath.FromSlash(a.Path)))
		if errors.Is(err, os.ErrNotExist) {
			missing = append(missing, a.Name)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		s, err := delta.IndexSource(ctx, a.Name, f, a.Size, chunks.Default)
		f.Close()
		if err != nil {
			return nil, nil, err
		}
		if s.Index.Hex() != a.SHA256 {
			return nil, nil, fmt.Errorf("%s of %s: %w: the blob %s has sha256 %s, not %s: restore it, or remove it (publish then prices that release as a full download of it)", a.Name, r.Version, errCorrupt, a.Path, s.Index.Hex(), a.SHA256)
		}
		s.R = nil
		sources = append(sources, s)
	}
	return sources, missing, nil
}

// deltaCost plans the update from each earlier release to the new
// artifacts the way a device does, its release's artifacts as the
// running slot's partitions, and makes the patches (updater/patch) that
// cost a device less than that plan: one per new artifact and earlier
// artifact of the same kind (boot or root), stored as blobs. It returns
// the costs, newest release first, the patches and the bytes stored.
// The earlier releases are read from the repository; the new artifacts,
// their indexes and the patches are in bs.
func deltaCost(ctx context.Context, bs *blobStore, earlier []Release, arts []channel.Artifact, indexes []channel.ChunkIndex) ([]Cost, []channel.PatchRef, int64, error) {
	repo := bs.repo
	targets, err := openTargets(bs, arts, indexes)
	if err != nil {
		return nil, nil, 0, err
	}
	defer func() {
		for _, t := range targets {
			t.close()
		}
	}()
	var costs []Cost
	var refs []channel.PatchRef
	var stored int64
	made := map[[2]string]*encoded{} // by new and old sha256; nil: none
	for _, r := range earlier {
		sources, missing, err := releaseSources(ctx, repo, r)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("from %s: %w", r.Version, err)
		}
		c := Cost{From: r.Version, Serial: r.Serial, Missing: missing}
		for i, a := range arts {
			p := delta.NewPlan(targets[i].ix, sources, delta.DefaultPolicy)
			cost, reqs := p.Fetch+indexes[i].Size, p.Requests+1
			for _, s := range sources {
				if kind(s.Name) != kind(a.Name) {
					continue
				}
				old := r.Artifacts[slices.IndexFunc(r.Artifacts, func(o channel.Artifact) bool { return o.Name == s.Name })]
				key := [2]string{a.SHA256, old.SHA256}
				e, ok := made[key]
				if !ok {
					began := time.Now()
					if bs.progress != nil {
						fmt.Fprintf(bs.progress, "encoding the patch of %s from %s (%d MiB to %d MiB)...\n", a.Name, r.Version, old.Size>>20, a.Size>>20)
					}
					e, err = makePatch(ctx, repo, old, s.Index, a, targets[i])
					if err != nil {
						return nil, nil, 0, fmt.Errorf("patch of %s from %s: %w", a.Name, r.Version, err)
					}
					if bs.progress != nil {
						size := "none (larger than a device may download)"
						if e != nil {
							size = fmt.Sprintf("%d bytes", e.ref.Size)
						}
						fmt.Fprintf(bs.progress, "  patch of %s from %s: %s, in %s\n", a.Name, r.Version, size, time.Since(began).Round(10*time.Millisecond))
					}
					made[key] = e
				}
				if e != nil && e.ref.Size < cost {
					if !e.stored {
						sum, n, err := bs.put(ctx, bytes.NewReader(e.data))
						if err != nil {
							return nil, nil, 0, fmt.Errorf("patch of %s from %s: %w", a.Name, r.Version, err)
						}
						if channel.BlobPath(sum) != e.ref.Path {
							return nil, nil, 0, fmt.Errorf("patch of %s from %s: stored as %s, encoded as %s", a.Name, r.Version, sum, e.ref.Path)
						}
						e.stored = true
						stored += n
						refs = append(refs, e.ref)
					}
					cost, reqs = e.ref.Size, 1
					if !slices.Contains(c.Patched, a.Name) {
						c.Patched = append(c.Patched, a.Name)
					}
				}
			}
			c.Bytes += cost
			c.Requests += reqs
			c.Full += a.Size
		}
		costs = append(costs, c)
	}
	return costs, refs, stored, nil
}

// kind is the partition an artifact goes to: "root", or "boot" for boot,
// boot.a and boot.b (a tryboot device running slot a holds boot.a's bytes
// where boot.b goes, and the reverse).
func kind(artifact string) string {
	if artifact == "root" {
		return "root"
	}
	return "boot"
}

// encoded is a patch made, stored once some release's devices use it.
type encoded struct {
	ref    channel.PatchRef
	data   []byte
	stored bool
}

// target is a new artifact as publish reads it to make patches: its
// blob, checked against its sha256, and its chunk index.
type target struct {
	r     io.ReaderAt
	close func()
	ix    *chunks.Index
}

// openTargets opens the new artifacts' blobs and reads their chunk
// indexes, each checked against the sha256 the documents will sign.
func openTargets(bs *blobStore, arts []channel.Artifact, indexes []channel.ChunkIndex) ([]target, error) {
	var targets []target
	fail := func(err error) ([]target, error) {
		for _, t := range targets {
			t.close()
		}
		return nil, err
	}
	for i, a := range arts {
		ci := indexes[i]
		r, closeIx, err := bs.open(ci.Path, ci.Size, ci.SHA256)
		if err != nil {
			return fail(fmt.Errorf("%s: chunk index: %w", a.Name, err))
		}
		ix, err := delta.ReadIndex(io.NewSectionReader(r, 0, ci.Size), ci.Size, ci.SHA256, a)
		closeIx()
		if err != nil {
			return fail(fmt.Errorf("%s: %w", a.Name, err))
		}
		r, closeArt, err := bs.open(a.Path, a.Size, a.SHA256)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", a.Name, err))
		}
		targets = append(targets, target{r: r, close: closeArt, ix: ix})
	}
	return targets, nil
}

// errCorrupt means a blob does not hold the bytes its name and the
// documents say.
var errCorrupt = errors.New("the repository is corrupt")

// openBlob opens an artifact's blob after reading it whole to check its
// size and sha256: the repository is plain files others may write, and a
// patch made from other bytes than a device holds fails on every device.
// The checked file stays open, so a blob replaced afterwards is not read.
func openBlob(repo string, a channel.Artifact) (*os.File, error) {
	f, err := os.Open(filepath.Join(repo, filepath.FromSlash(a.Path)))
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if got := hex.EncodeToString(h.Sum(nil)); err == nil && (n != a.Size || got != a.SHA256) {
		err = fmt.Errorf("%w: the blob %s holds %d bytes with sha256 %s, not the %d bytes with sha256 %s stored there: restore it, or remove it (publish then makes no patch from it)", errCorrupt, a.Path, n, got, a.Size, a.SHA256)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// makePatch encodes the patch from old to a (its verified blob and
// index in t); nil when old is gone from the repository or the patch
// would be larger than a device may download (patch.MaxSize).
func makePatch(ctx context.Context, repo string, old channel.Artifact, oldIx *chunks.Index, a channel.Artifact, t target) (*encoded, error) {
	of, err := openBlob(repo, old)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer of.Close()
	p, err := patch.Encode(ctx, of, oldIx, t.r, t.ix)
	if errors.Is(err, patch.ErrTooLarge) {
		return nil, nil // the chunks, then: Encode stopped once past the limit
	}
	if err != nil {
		return nil, err
	}
	b, err := p.MarshalBinary()
	if err != nil || len(b) > patch.MaxSize {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return &encoded{data: b, ref: channel.PatchRef{Artifact: a.SHA256, From: old.SHA256, FromSize: old.Size,
		Path: channel.BlobPath(hex.EncodeToString(sum[:])), Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}}, nil
}
