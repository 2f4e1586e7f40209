package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/pibake/pibake/updater/bootloader"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/chunks"
	"github.com/pibake/pibake/updater/delta"
	"github.com/pibake/pibake/updater/install"
)

// Readable is a partition read for its chunks.
type Readable interface {
	io.ReaderAt
	Size() int64
}

// Running opens the booted slot's boot and root partitions for reading.
type Running func(s bootloader.Slot) (boot, root Readable, err error)

// deltaInstall is what the delta downloads of one install share: the
// verified chunk document and the indexed partitions of the booted slot.
type deltaInstall struct {
	chunks  *channel.Chunks
	sources []delta.Source
	close   func()
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
		csig, err = readAll(ctx, a.Source, path+".minisig")
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
	dx := &deltaInstall{chunks: cs, close: func() {
		for _, p := range []Readable{boot, root} {
			if c, ok := p.(io.Closer); ok {
				_ = c.Close()
			}
		}
	}}
	// The partitions are read up to twice the size of the new artifact
	// that goes to their kind of partition: the old artifact is
	// (about) as large, and what lies behind it is free space.
	limit := map[string]int64{}
	for _, art := range arts {
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
	if n, ok := squashfsLength(root); ok {
		limit["root"] = n
	}
	for _, p := range []struct {
		name, kind string
		r          Readable
	}{{"boot-" + string(a.Booted), "boot", boot}, {"root-" + string(a.Booted), "root", root}} {
		indexed += min(p.r.Size(), limit[p.kind])
		s, err := delta.IndexSource(ctx, p.name, beatReader{p.r, a.Install.Beat}, min(p.r.Size(), limit[p.kind]), chunks.Default)
		if err != nil {
			dx.close()
			log.Warn("cannot index the running slot: downloading the artifacts in full", "err", err)
			return nil
		}
		dx.sources = append(dx.sources, s)
	}
	log.Info("indexed the running slot for a delta update", "slot", a.Booted, "bytes", indexed, "seconds", a.now().Sub(started).Round(100*time.Millisecond).Seconds())
	return dx
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
	ci, ok := dx.chunks.For(art.SHA256)
	if !ok {
		return res, false, o.Resume, nil
	}
	log := o.Log
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
