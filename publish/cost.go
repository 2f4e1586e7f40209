package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"crypto/sha256"
	"encoding/hex"

	"aead.dev/minisign"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/chunks"
	"github.com/pibake/pibake/updater/delta"
	"github.com/pibake/pibake/updater/patch"
)

// HistoryFormat and CostFormat are the versions of the publisher's two
// records of a channel, at channel.HistoryPath and channel.CostPath.
// Devices never read either.
const (
	HistoryFormat = 1
	CostFormat    = 1
)

// DefaultHistory is how many earlier releases of a channel publish keeps
// in its history and prices an update from.
const DefaultHistory = 10

// History lists a channel's releases, newest first: what devices in the
// field may still run. Releases with the same artifacts appear once (a
// re-publish with another rollout adds no new entry).
type History struct {
	Format   int       `json:"format"`
	Channel  string    `json:"channel"`
	Releases []Release `json:"releases"`
}

// Release is one published release: its artifacts and their chunk indexes.
type Release struct {
	Serial    uint64               `json:"serial"`
	Version   string               `json:"version"`
	Artifacts []channel.Artifact   `json:"artifacts"`
	Indexes   []channel.ChunkIndex `json:"indexes,omitempty"`
}

// Cost is what a device running an earlier release downloads for this
// one with delta updates (the plan its agent makes, the chunk indexes
// included; the two small signed documents are not counted), next to the
// full artifacts.
type Cost struct {
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

// readHistory reads a channel's history; a missing file is an empty one.
func readHistory(repo, ch string) (*History, error) {
	path := filepath.Join(repo, filepath.FromSlash(channel.HistoryPath(ch)))
	h := &History{Format: HistoryFormat, Channel: ch}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return h, nil
	}
	if err != nil {
		return nil, err
	}
	bad := func(why string) error {
		return fmt.Errorf("%s: %s: it is only the publisher's record of the channel's releases (devices never read it); remove it and publish starts it again from the current release", path, why)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(h); err != nil {
		return nil, bad("malformed (" + err.Error() + ")")
	}
	if h.Format != HistoryFormat || h.Channel != ch {
		return nil, bad(fmt.Sprintf("format %d of channel %q, this pibake writes format %d of channel %q", h.Format, h.Channel, HistoryFormat, ch))
	}
	for _, r := range h.Releases {
		for _, a := range r.Artifacts {
			if !channel.IsBlobPath(a.Path) || a.Size <= 0 {
				return nil, bad(fmt.Sprintf("release %s: artifact %q at %q", r.Version, a.Name, a.Path))
			}
		}
		for _, ix := range r.Indexes {
			if !channel.IsBlobPath(ix.Path) || ix.Size <= 0 {
				return nil, bad(fmt.Sprintf("release %s: chunk index at %q", r.Version, ix.Path))
			}
		}
	}
	return h, nil
}

func sameArtifacts(a, b []channel.Artifact) bool {
	return slices.EqualFunc(a, b, func(x, y channel.Artifact) bool { return x.Name == y.Name && x.SHA256 == y.SHA256 })
}

// add puts r first and drops older entries with the same artifacts, then
// keeps at most keep+1 releases (the newest and keep earlier ones).
func (h *History) add(r Release, keep int) {
	out := []Release{r}
	for _, o := range h.Releases {
		if !sameArtifacts(o.Artifacts, r.Artifacts) && len(out) <= keep {
			out = append(out, o)
		}
	}
	h.Releases = out
}

// currentIndexes are the chunk indexes of the channel's current release,
// from its signed chunk document; nil when there is none that verifies.
func currentIndexes(repo string, prev *channel.Document, keys []minisign.PublicKey) []channel.ChunkIndex {
	base := filepath.Join(repo, filepath.FromSlash(channel.ChunksPath(prev.Channel)))
	doc, err := os.ReadFile(base)
	if err != nil {
		return nil
	}
	sig, err := os.ReadFile(channel.SignaturePath(base))
	if err != nil {
		return nil
	}
	c, err := channel.VerifyChunks(doc, sig, prev, keys, nil)
	if err != nil {
		return nil
	}
	return c.Indexes
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
			return nil, nil, fmt.Errorf("%s of %s: the stored blob %s has sha256 %s: the repository is corrupt", a.Name, r.Version, a.Path, s.Index.Hex())
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
func deltaCost(ctx context.Context, repo string, earlier []Release, arts []channel.Artifact, indexes []channel.ChunkIndex) ([]Cost, []channel.PatchRef, int64, error) {
	targets := make([]*chunks.Index, len(arts))
	for i, a := range arts {
		f, err := os.Open(filepath.Join(repo, filepath.FromSlash(indexes[i].Path)))
		if err != nil {
			return nil, nil, 0, err
		}
		ix, err := delta.ReadIndex(f, indexes[i].Size, indexes[i].SHA256, a)
		f.Close()
		if err != nil {
			return nil, nil, 0, fmt.Errorf("%s: %w", a.Name, err)
		}
		targets[i] = ix
	}
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
			p := delta.NewPlan(targets[i], sources, delta.DefaultPolicy)
			cost, reqs := p.Fetch+indexes[i].Size, p.Requests+1
			for _, s := range sources {
				if kind(s.Name) != kind(a.Name) {
					continue
				}
				old := r.Artifacts[slices.IndexFunc(r.Artifacts, func(o channel.Artifact) bool { return o.Name == s.Name })]
				key := [2]string{a.SHA256, old.SHA256}
				e, ok := made[key]
				if !ok {
					e, err = makePatch(ctx, repo, old, s.Index, a, targets[i])
					if err != nil {
						return nil, nil, 0, fmt.Errorf("patch of %s from %s: %w", a.Name, r.Version, err)
					}
					made[key] = e
				}
				if e != nil && e.ref.Size < cost {
					if !e.stored {
						sum, n, err := storeBlob(ctx, repo, bytes.NewReader(e.data))
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

// makePatch encodes the patch from old to a; nil when old is gone from
// the repository or the patch would be larger than a device may download
// (patch.MaxSize).
func makePatch(ctx context.Context, repo string, old channel.Artifact, oldIx *chunks.Index, a channel.Artifact, newIx *chunks.Index) (*encoded, error) {
	of, err := os.Open(filepath.Join(repo, filepath.FromSlash(old.Path)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer of.Close()
	nf, err := os.Open(filepath.Join(repo, filepath.FromSlash(a.Path)))
	if err != nil {
		return nil, err
	}
	defer nf.Close()
	p, err := patch.Encode(ctx, of, oldIx, nf, newIx)
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
