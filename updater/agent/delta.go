package agent

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/chunks"
	"github.com/pibake/pibake/updater/delta"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/patch"
)

// Readable is a partition read for its chunks.
type Readable interface {
	io.ReaderAt
	Size() int64
}

// Running opens the booted slot's boot and root partitions for reading.
type Running func(s bootchain.Slot) (boot, root Readable, err error)

// deltaInstall is what the delta downloads of one install share: the
// verified chunk document, the booted slot's partitions, and (once a
// chunked download needs them) their chunk indexes.
type deltaInstall struct {
	chunks     *channel.Chunks
	boot, root Readable
	arts       []channel.Artifact
	sources    []delta.Source
	indexErr   error // why the slot could not be indexed; sources nil
	indexed    bool
}

func (dx *deltaInstall) close() { closeAll(dx.boot, dx.root) }

// closeAll closes the partitions that can be closed.
func closeAll(parts ...Readable) {
	for _, p := range parts {
		if c, ok := p.(io.Closer); ok {
			_ = c.Close()
		}
	}
}

// running is the booted slot's partition of the kind art goes to.
func (dx *deltaInstall) running(art channel.Artifact) Readable {
	if art.Name == "root" {
		return dx.root
	}
	return dx.boot
}

// prepareDelta returns nil, and says why in the log, when this install
// downloads every artifact in full: no way to read the running slot, a
// source without ranges (a bundle), no chunk document or one that does
// not verify. None of these fails the update.
func (a *Agent) prepareDelta(ctx context.Context, doc *channel.Document, arts []channel.Artifact) *deltaInstall {
	log := a.log()
	if a.Running == nil || fetcher(a.Source, channel.Artifact{}) == nil {
		return nil
	}
	path := channel.ChunksPath(a.Channel)
	cdoc, err := readAll(ctx, a.Source, path)
	var csig []byte
	if err == nil {
		csig, err = readAll(ctx, a.Source, channel.SignaturePath(path))
	}
	if err != nil {
		log.Info("no chunk document: downloading the artifacts in full", "err", err)
		return nil
	}
	cs, err := channel.VerifyChunks(cdoc, csig, doc, a.Trusted, a.Revoked)
	if err != nil {
		log.Warn("chunk document refused: downloading the artifacts in full", "err", err)
		return nil
	}
	boot, root, err := a.Running(a.Booted)
	if err != nil {
		log.Warn("cannot read the running slot: downloading the artifacts in full", "slot", a.Booted, "err", err)
		return nil
	}
	return &deltaInstall{chunks: cs, boot: boot, root: root, arts: arts}
}

// index chunks the booted slot's partitions, once: what a chunked
// download copies from.
func (a *Agent) index(ctx context.Context, dx *deltaInstall) error {
	if dx.indexed {
		return dx.indexErr
	}
	dx.indexed = true
	// The partitions are read up to twice the size of the new artifact
	// that goes to their kind of partition: the old artifact is
	// (about) as large, and what lies behind it is free space.
	limit := map[string]int64{}
	for _, art := range dx.arts {
		kind := "boot"
		if art.Name == "root" {
			kind = "root"
		}
		limit[kind] = 2 * art.Size
	}
	started := a.now()
	var indexed int64
	// A squashfs says how long it is: the old root artifact is exactly
	// that (publish stores the squashfs as built, 4 KiB aligned).
	if n, ok := squashfsLength(dx.root); ok {
		limit["root"] = n
	}
	for _, p := range []struct {
		name, kind string
		r          Readable
	}{{"boot-" + string(a.Booted), "boot", dx.boot}, {"root-" + string(a.Booted), "root", dx.root}} {
		indexed += min(p.r.Size(), limit[p.kind])
		s, err := delta.IndexSource(ctx, p.name, beatReader{p.r, a.Install.Beat}, min(p.r.Size(), limit[p.kind]), chunks.Default)
		if err != nil {
			dx.sources, dx.indexErr = nil, fmt.Errorf("cannot index the running slot: %w", err)
			return dx.indexErr
		}
		dx.sources = append(dx.sources, s)
	}
	a.log().Info("indexed the running slot for a delta update", "slot", a.Booted, "bytes", indexed, "seconds", a.now().Sub(started).Round(100*time.Millisecond).Seconds())
	return nil
}

// fetcher reads ranges of art from src; nil when src has no ranges.
func fetcher(src install.Source, art channel.Artifact) delta.Fetcher {
	switch s := src.(type) {
	case install.HTTP:
		return delta.HTTP{Base: s.Base, Path: art.Path, Size: art.Size, Client: s.Client}
	case install.Dir:
		return delta.File{Path: filepath.Join(s.Path, filepath.FromSlash(art.Path))}
	}
	return nil
}

// writeDelta installs art from chunks when the chunk document lists it.
// done false: write it in full, from resume (the bytes before it were
// written from verified chunks, and are read back with the rest).
func (a *Agent) writeDelta(ctx context.Context, dx *deltaInstall, art channel.Artifact, t install.Target, o install.Options) (res delta.Result, done bool, resume int64, err error) {
	if dx == nil {
		return res, false, o.Resume, nil
	}
	log := o.Log
	res, ok := a.writePatch(ctx, dx, art, t, o)
	if ok {
		return res, true, 0, nil
	}
	if res.Fetched > 0 {
		// A patch wrote the partition and it did not verify: nothing
		// before the old resume point can be trusted any more.
		o.Resume = 0
	}
	ci, ok := dx.chunks.For(art.SHA256)
	if ctx.Err() != nil || !ok {
		return res, false, o.Resume, nil
	}
	if err := a.index(ctx, dx); err != nil {
		log.Warn("downloading the artifact in full", "artifact", art.Name, "err", err)
		return res, false, o.Resume, nil
	}
	fetchedPatch := res.Fetched
	ix, err := readIndex(ctx, a.Source, ci, art)
	if err != nil {
		log.Warn("chunk index refused: downloading the artifact in full", "artifact", art.Name, "err", err)
		return res, false, o.Resume, nil
	}
	written := o.Resume
	progress := o.Progress
	do := delta.Options{Attempts: o.Attempts, Backoff: o.Backoff, StallTimeout: o.StallTimeout, Log: log,
		Resume: o.Resume, Checkpoint: o.Checkpoint, Beat: o.Beat,
		Progress: func(w int64) error {
			written = w
			if progress != nil {
				return progress(w)
			}
			return nil
		}}
	pol := a.DeltaPolicy
	if pol == (delta.Policy{}) {
		pol = delta.DefaultPolicy
	}
	plan, res, err := delta.Write(ctx, art, ix, dx.sources, fetcher(a.Source, art), t, pol, do)
	res.Fetched += fetchedPatch
	if err == nil {
		log.Info("artifact written from chunks", "artifact", art.Name, "reused", res.Copied, "downloaded", res.Fetched,
			"requests", res.Requests, "planned", plan.Fetch, "local chunks unusable", res.Rotten)
		return res, true, 0, nil
	}
	if ctx.Err() != nil {
		return res, false, 0, err
	}
	if errors.Is(err, install.ErrDigest) || errors.Is(err, delta.ErrNoRanges) {
		// The read-back failed (nothing of it is kept), or the server
		// cannot resume a download either: start the artifact over.
		written = 0
	}
	log.Warn("delta download failed: downloading the artifact in full", "artifact", art.Name, "from", written, "err", err)
	return res, false, written, nil
}

// writePatch installs art from a patch against the running slot's
// partition, when the chunk document lists one made from what that
// partition holds (its sha256, computed here, says which). ok false: no
// patch applies, or it failed and the caller goes on with chunks; res
// counts the patch's bytes if it was downloaded.
func (a *Agent) writePatch(ctx context.Context, dx *deltaInstall, art channel.Artifact, t install.Target, o install.Options) (res delta.Result, ok bool) {
	refs := dx.chunks.PatchesFor(art.SHA256)
	if len(refs) == 0 {
		return res, false
	}
	log := o.Log
	src := dx.running(art)
	started := a.now()
	ref, err := matchPatch(ctx, beatReader{src, o.Beat}, src.Size(), refs)
	if err != nil {
		log.Info("no patch for what the running slot holds: using chunks", "artifact", art.Name, "err", err)
		return res, false
	}
	b, err := readPatch(ctx, a.Source, ref)
	if err != nil {
		log.Warn("patch refused: using chunks", "artifact", art.Name, "err", err)
		return res, false
	}
	res.Fetched, res.Requests = int64(len(b)), 1
	p, err := patch.Parse(b)
	if err == nil && (hex.EncodeToString(p.TargetSHA256[:]) != art.SHA256 || p.TargetSize != art.Size ||
		hex.EncodeToString(p.SourceSHA256[:]) != ref.From || p.SourceSize != ref.FromSize) {
		err = fmt.Errorf("patch %s is for other artifacts than the chunk document says", ref.Path)
	}
	if err == nil && o.Progress != nil {
		err = o.Progress(0) // the old resume point means nothing once the patch writes
	}
	if err == nil {
		err = patch.Apply(p, src, t, o.Beat)
	}
	if err == nil {
		err = install.Verify(ctx, art, t)
	}
	if err != nil {
		log.Warn("patch failed: using chunks", "artifact", art.Name, "err", err)
		return res, false
	}
	for _, op := range p.Ops {
		if op.Data == nil {
			res.Copied += op.Len
		}
	}
	log.Info("artifact written from a patch", "artifact", art.Name, "reused", res.Copied, "downloaded", res.Fetched,
		"seconds", a.now().Sub(started).Round(100*time.Millisecond).Seconds())
	return res, true
}

// matchPatch hashes r (of size bytes) once, up to the largest FromSize
// of refs, and returns the patch made from what r holds.
func matchPatch(ctx context.Context, r io.ReaderAt, size int64, refs []channel.PatchRef) (channel.PatchRef, error) {
	var sizes []int64
	for _, p := range refs {
		sizes = append(sizes, p.FromSize)
	}
	sums, err := prefixSums(ctx, r, size, sizes)
	if err != nil {
		return channel.PatchRef{}, err
	}
	for _, p := range refs {
		if sums[p.FromSize] == p.From {
			return p, nil
		}
	}
	return channel.PatchRef{}, fmt.Errorf("it matches none of the %d patches", len(refs))
}

// prefixSums reads r (of size bytes) once, up to the largest of sizes,
// and returns the sha256 (hex) of its first n bytes for each n of sizes
// that fits.
func prefixSums(ctx context.Context, r io.ReaderAt, size int64, sizes []int64) (map[int64]string, error) {
	want := map[int64]bool{}
	var end int64
	for _, n := range sizes {
		if n > 0 && n <= size {
			want[n] = true
			end = max(end, n)
		}
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	sums := map[int64]string{}
	for at := int64(0); at < end; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(int64(len(buf)), end-at)
		for s := range want { // stop at every size on the way
			if s > at && s-at < n {
				n = s - at
			}
		}
		if _, err := r.ReadAt(buf[:n], at); err != nil {
			return nil, fmt.Errorf("read the running slot at %d: %w", at, err)
		}
		h.Write(buf[:n])
		at += n
		if want[at] {
			sums[at] = hex.EncodeToString(h.Sum(nil))
		}
	}
	return sums, nil
}

// readPatch downloads a patch and checks it against its signed digest.
func readPatch(ctx context.Context, src install.Source, ref channel.PatchRef) ([]byte, error) {
	if ref.Size <= 0 || ref.Size > patch.MaxSize {
		return nil, fmt.Errorf("patch %s: %d bytes, at most %d", ref.Path, ref.Size, patch.MaxSize)
	}
	// As long as a slow link needs: 2 minutes, plus a second per 8 KiB
	// (64 kbit/s). A patch that does not arrive in time is not resumed;
	// the chunks, which are, take over.
	ctx, cancel := context.WithTimeout(ctx, FetchTimeout+time.Duration(ref.Size>>13)*time.Second)
	defer cancel()
	r, err := src.Open(ctx, ref.Path, 0)
	if err != nil {
		return nil, fmt.Errorf("patch %s: %w", ref.Path, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, ref.Size+1))
	if err != nil {
		return nil, fmt.Errorf("patch %s: %w", ref.Path, err)
	}
	if sum := sha256.Sum256(b); int64(len(b)) != ref.Size || hex.EncodeToString(sum[:]) != ref.SHA256 {
		return nil, fmt.Errorf("patch %s: %d bytes with sha256 %x, the chunk document says %d bytes, %s: %w", ref.Path, len(b), sum, ref.Size, ref.SHA256, install.ErrDigest)
	}
	return b, nil
}

// readIndex reads and checks a chunk index named by the chunk document.
func readIndex(ctx context.Context, src install.Source, ci channel.ChunkIndex, art channel.Artifact) (*chunks.Index, error) {
	ctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	r, err := src.Open(ctx, ci.Path, 0)
	if err != nil {
		return nil, fmt.Errorf("chunk index %s: %w", ci.Path, err)
	}
	defer r.Close()
	return delta.ReadIndex(r, ci.Size, ci.SHA256, art)
}

// beatReader feeds the watchdog while a partition is indexed: reading a
// root partition takes seconds to minutes, and it is progress.
type beatReader struct {
	r    io.ReaderAt
	beat func()
}

func (b beatReader) ReadAt(p []byte, off int64) (int, error) {
	if b.beat != nil {
		b.beat()
	}
	return b.r.ReadAt(p, off)
}

// squashfsLength is the length of the squashfs at the start of r, from its
// superblock (magic "hsqs", bytes_used at offset 40), rounded up to 4 KiB;
// false when r holds none or the length does not fit r. Only a bound on
// what is read: every chunk copied from r is checked against the signed
// index, so a wrong length costs downloads, never correctness.
func squashfsLength(r Readable) (int64, bool) {
	var sb [48]byte
	if _, err := r.ReadAt(sb[:], 0); err != nil || string(sb[:4]) != "hsqs" {
		return 0, false
	}
	used := binary.LittleEndian.Uint64(sb[40:])
	n := (int64(used) + 4095) &^ 4095
	if used == 0 || used > uint64(r.Size()) || n > r.Size() {
		return 0, false
	}
	return n, true
}
