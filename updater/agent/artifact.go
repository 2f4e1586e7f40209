package agent

// One artifact's download, in one place: artifactWriter.write tries a
// patch against what the running slot holds, then the chunks the running
// slot shares with the artifact plus range requests for the rest, then
// the whole artifact, and says what each step moved. Every way ends with
// the same read-back of the partition against the signed sha256.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/chunks"
	"github.com/pibake/pibake/updater/delta"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/patch"
)

// artifactWriter writes the artifacts of one install. What a patch or a
// chunked write needs (the verified chunk document, the running slot's
// partitions and, for chunks, their indexes) is read once, at the first
// artifact that is written, and shared by the others.
type artifactWriter struct {
	a    *Agent
	doc  *channel.Document
	arts []channel.Artifact // the install's, in order

	prepared   bool
	chunks     *channel.Chunks // nil: every artifact in full
	boot, root Readable        // the running slot's partitions

	indexed  bool
	sources  []delta.Source // the running slot's chunks; nil after indexErr
	indexErr error

	// triedPatch says whether a run before this one tried art's patch;
	// tryPatch records that this one does, before its first byte. A
	// patch is not resumed: a run killed in the middle of one (the
	// watchdog, the power) goes on with chunks, never the same patch.
	triedPatch func(art channel.Artifact) bool
	tryPatch   func(art channel.Artifact) error
}

func (a *Agent) newArtifactWriter(doc *channel.Document, arts []channel.Artifact) *artifactWriter {
	return &artifactWriter{a: a, doc: doc, arts: arts}
}

// close closes the running slot's partitions, if they were opened.
func (w *artifactWriter) close() { closeAll(w.boot, w.root) }

// moved is what the download of one artifact moved.
type moved struct {
	fetched int64 // downloaded
	reused  int64 // copied from the running slot and kept
}

// write puts art into t, the cheapest way that works: a patch, else
// chunks, else the whole artifact from o.Resume (the bytes a chunked
// write left before it are kept, and checked by the read-back with the
// rest). Only the whole download's error fails the artifact, a download
// that fell behind the slowest link's pace (the ways share o.Pace), or a
// cancelled context.
func (w *artifactWriter) write(ctx context.Context, art channel.Artifact, t install.Target, o install.Options) (moved, error) {
	w.prepare(ctx)
	var m moved
	if w.chunks != nil {
		started := w.a.now()
		res, ok, err := w.fromPatch(ctx, art, t, o)
		m.fetched += res.Fetched
		if err != nil {
			return m, err
		}
		if ok {
			m.reused += res.Copied
			o.Log.Info("artifact written from a patch", "artifact", art.Name, "reused", res.Copied, "downloaded", res.Fetched,
				"seconds", w.a.now().Sub(started).Round(100*time.Millisecond).Seconds())
			return m, nil
		}
		if res.Fetched > 0 {
			// A patch wrote the partition and it did not verify: nothing
			// before the old resume point can be trusted any more.
			o.Resume = 0
		}
		c, err := w.fromChunks(ctx, art, t, o)
		m.fetched += c.res.Fetched
		if c.done || c.resume > 0 { // a full download from zero overwrites them
			m.reused += c.res.Copied
		}
		if c.done {
			o.Log.Info("artifact written from chunks", "artifact", art.Name, "reused", c.res.Copied, "downloaded", m.fetched,
				"requests", c.res.Requests, "planned", c.plan.Fetch, "local chunks unusable", c.res.Rotten)
			return m, nil
		}
		if err != nil {
			return m, err
		}
		o.Resume = c.resume
	}
	n, err := install.Write(ctx, w.a.Source, art, t, o)
	m.fetched += n
	return m, err
}

// chunkDocument reads and verifies the channel's chunk document, nil (and
// the reason logged) when there is none to use: a pair that does not
// match is read once more (rereadTorn, as in Fetch).
func (w *artifactWriter) chunkDocument(ctx context.Context) *channel.Chunks {
	a := w.a
	path := channel.ChunksPath(a.Channel)
	var missing bool // the last reading found no pair to verify
	cs, err := rereadTorn(ctx, a.log(), "chunk document", func() (*channel.Chunks, error) {
		cdoc, err := readAll(ctx, a.Source, path, a.fileOptions())
		var csig []byte
		if err == nil {
			csig, err = readAll(ctx, a.Source, channel.SignaturePath(path), a.fileOptions())
		}
		if missing = err != nil; missing {
			return nil, err
		}
		return channel.VerifyChunks(cdoc, csig, w.doc, a.Trusted, a.Revoked)
	})
	switch {
	case err != nil && missing:
		a.log().Info("no chunk document: downloading the artifacts in full", "err", err)
		return nil
	case err != nil:
		a.log().Warn("chunk document refused: downloading the artifacts in full", "err", err)
		return nil
	}
	return cs
}

// prepare reads the chunk document and opens the running slot, once. It
// leaves w.chunks nil, and says why in the log, when this install
// downloads every artifact in full: no way to read the running slot, a
// source without ranges (a bundle), no chunk document or one that does
// not verify. None of these fails the update.
func (w *artifactWriter) prepare(ctx context.Context) {
	if w.prepared {
		return
	}
	w.prepared = true
	a := w.a
	log := a.log()
	if a.Running == nil || fetcher(a.Source, channel.Artifact{}) == nil {
		return
	}
	cs := w.chunkDocument(ctx)
	if cs == nil {
		return
	}
	boot, root, err := a.Running(a.Booted)
	if err != nil {
		log.Warn("cannot read the running slot: downloading the artifacts in full", "slot", a.Booted, "err", err)
		return
	}
	w.chunks, w.boot, w.root = cs, boot, root
}

// fromPatch installs art from a patch against the running slot's
// partition, when the chunk document lists one made from what that
// partition holds (its sha256, computed here, says which) and no run
// before tried it. ok false: no patch applies, or it failed and the
// caller goes on with chunks; res counts the patch's bytes if it was
// downloaded. An error stops the artifact: the pace was lost, the
// context cancelled, or the attempt could not be recorded.
func (w *artifactWriter) fromPatch(ctx context.Context, art channel.Artifact, t install.Target, o install.Options) (res delta.Result, ok bool, _ error) {
	refs := w.chunks.PatchesFor(art.SHA256)
	log := o.Log
	if len(refs) == 0 {
		return res, false, nil
	}
	if w.triedPatch != nil && w.triedPatch(art) {
		log.Info("the patch was tried before and did not complete: using chunks", "artifact", art.Name)
		return res, false, nil
	}
	src := partitionOf(art, w.boot, w.root)
	ref, err := matchPatch(ctx, beatReader{src, o.Beat}, src.Size(), refs)
	if err != nil {
		log.Info("no patch for what the running slot holds: using chunks", "artifact", art.Name, "err", err)
		return res, false, nil
	}
	if w.tryPatch != nil {
		if err := w.tryPatch(art); err != nil {
			return res, false, err
		}
	}
	b, err := readPatch(ctx, w.a.Source, ref, o)
	if errors.Is(err, install.ErrTooSlow) || ctx.Err() != nil {
		return res, false, err
	}
	if err != nil {
		log.Warn("patch refused: using chunks", "artifact", art.Name, "err", err)
		return res, false, nil
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
		return res, false, nil
	}
	for _, op := range p.Ops {
		if op.Data == nil {
			res.Copied += op.Len
		}
	}
	return res, true, nil
}

// chunkWrite is how a chunked write of one artifact ended.
type chunkWrite struct {
	plan *delta.Plan
	res  delta.Result
	done bool // written and verified
	// resume, when not done, is where the whole download starts: the
	// bytes before it were written from verified chunks.
	resume int64
}

// fromChunks installs art from the chunks the running slot shares with it
// and range requests for the rest, when the chunk document lists its
// index. Not done and no error: download the whole artifact from resume.
// An error only when the context is cancelled or the pace was lost.
func (w *artifactWriter) fromChunks(ctx context.Context, art channel.Artifact, t install.Target, o install.Options) (chunkWrite, error) {
	log := o.Log
	ci, ok := w.chunks.For(art.SHA256)
	if ctx.Err() != nil || !ok {
		return chunkWrite{resume: o.Resume}, nil
	}
	if err := w.index(ctx); err != nil {
		log.Warn("downloading the artifact in full", "artifact", art.Name, "err", err)
		return chunkWrite{resume: o.Resume}, nil
	}
	ix, err := readIndex(ctx, w.a.Source, ci, art, o)
	if errors.Is(err, install.ErrTooSlow) || ctx.Err() != nil {
		return chunkWrite{resume: o.Resume}, err
	}
	if err != nil {
		log.Warn("chunk index refused: downloading the artifact in full", "artifact", art.Name, "err", err)
		return chunkWrite{resume: o.Resume}, nil
	}
	written := o.Resume
	do := delta.Options{Attempts: o.Attempts, Backoff: o.Backoff, StallTimeout: o.StallTimeout, Log: log,
		Resume: o.Resume, Checkpoint: o.Checkpoint, Beat: o.Beat, Pace: o.Pace,
		Progress: func(n int64) error {
			written = n
			if o.Progress != nil {
				return o.Progress(n)
			}
			return nil
		}}
	pol := w.a.DeltaPolicy
	if pol == (delta.Policy{}) {
		pol = delta.DefaultPolicy
	}
	in := delta.Inputs{Index: ix, Sources: w.sources, Fetcher: fetcher(w.a.Source, art)}
	plan, res, err := delta.Write(ctx, art, in, t, pol, do)
	c := chunkWrite{plan: plan, res: res}
	switch {
	case err == nil:
		c.done = true
	case ctx.Err() != nil, errors.Is(err, install.ErrTooSlow):
		c.resume = written
		return c, err
	default:
		if errors.Is(err, install.ErrDigest) || errors.Is(err, delta.ErrNoRanges) {
			// The read-back failed (nothing of it is kept), or the server
			// cannot resume a download either: start the artifact over.
			written = 0
		}
		log.Warn("delta download failed: downloading the artifact in full", "artifact", art.Name, "from", written, "err", err)
		c.resume = written
	}
	return c, nil
}

// index chunks the running slot's partitions, once: what a chunked
// download copies from.
func (w *artifactWriter) index(ctx context.Context) error {
	if w.indexed {
		return w.indexErr
	}
	w.indexed = true
	a := w.a
	// The partitions are read up to twice the size of the new artifact
	// that goes to their kind of partition: the old artifact is
	// (about) as large, and what lies behind it is free space.
	limit := map[string]int64{}
	for _, art := range w.arts {
		limit[partitionOf(art, "boot", "root")] = 2 * art.Size
	}
	started := a.now()
	var indexed int64
	// A squashfs says how long it is: the old root artifact is exactly
	// that (publish stores the squashfs as built, 4 KiB aligned).
	if n, ok := squashfsLength(w.root); ok {
		limit["root"] = n
	}
	for _, p := range []struct {
		name, kind string
		r          Readable
	}{{"boot-" + string(a.Booted), "boot", w.boot}, {"root-" + string(a.Booted), "root", w.root}} {
		n := min(p.r.Size(), limit[p.kind])
		indexed += n
		s, err := delta.IndexSource(ctx, p.name, beatReader{p.r, a.Beat}, n, chunks.Default)
		if err != nil {
			w.sources, w.indexErr = nil, fmt.Errorf("cannot index the running slot: %w", err)
			return w.indexErr
		}
		w.sources = append(w.sources, s)
	}
	a.log().Info("indexed the running slot for a delta update", "slot", a.Booted, "bytes", indexed, "seconds", a.now().Sub(started).Round(100*time.Millisecond).Seconds())
	return nil
}
