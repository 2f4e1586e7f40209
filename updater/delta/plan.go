// Package delta installs an artifact from the chunks a device already
// holds plus HTTP range requests for the rest. The new artifact's chunk
// index (updater/chunks, verified against the signed channel document by
// the caller) lists every chunk's digest; NewPlan finds each chunk in the
// indexes of local sources (the running slot's boot and root partitions)
// or schedules it for download, merging neighbouring downloads into one
// range request; Apply writes the target in order and writes no byte whose
// chunk digest it has not checked, whether the chunk came from the server
// or from a local partition (a local chunk that no longer matches, bit rot
// or a slot that is not what the device believes, is downloaded instead).
//
// Limits: a source must not be the target partition (the target is
// written in order and would overwrite chunks before they are copied);
// one range per request (docs/updates.md says why); the whole artifact is
// still read back and checked against its signed sha256 by the caller
// (install.Verify) before anything switches to it.
package delta

import (
	"context"
	"fmt"
	"io"

	"github.com/pibake/pibake/updater/chunks"
)

// Source is a local partition (or file) whose chunks may be reused.
type Source struct {
	Name  string // for logs: "root-a"
	R     io.ReaderAt
	Index *chunks.Index // of the first Index.Size bytes of R
}

// IndexSource chunks the first size bytes of r with p: what a device does
// with its running slot before an update (one sequential read).
func IndexSource(ctx context.Context, name string, r io.ReaderAt, size int64, p chunks.Params) (Source, error) {
	ix, err := chunks.Build(ctx, io.NewSectionReader(r, 0, size), p)
	if err != nil {
		return Source{}, fmt.Errorf("index %s: %w", name, err)
	}
	return Source{Name: name, R: r, Index: ix}, nil
}

// Self as Op.Source copies from a chunk written earlier into the target.
const (
	Fetch = -1
	Self  = -2
)

// Op is one step of a plan, in target order.
type Op struct {
	Source int   // index into the plan's sources, Self, or Fetch
	From   int64 // offset of the bytes in the source (copies)
	First  int   // first target chunk
	Last   int   // last target chunk (a fetch may span several)
}

// Policy says when neighbouring downloads become one range request.
type Policy struct {
	// Gap: two downloads with at most Gap bytes of reusable chunks between
	// them are fetched as one range, the gap included (bytes for fewer
	// requests). 0 merges only adjacent downloads.
	Gap int64
	// MaxRange bounds one request's bytes (0: no bound); a smaller bound
	// loses less to a connection cut, as the retry restarts at the chunk.
	MaxRange int64
}

// DefaultPolicy is what the measurement in docs/updates.md chose.
var DefaultPolicy = Policy{Gap: 64 << 10, MaxRange: 64 << 20}

// Plan is what Apply does.
type Plan struct {
	Ops      []Op
	Copy     int64 // bytes copied from local sources or the target itself
	Fetch    int64 // bytes downloaded
	Requests int   // range requests (without retries)
}

// NewPlan decides, for each chunk of target, where its bytes come from.
func NewPlan(target *chunks.Index, sources []Source, pol Policy) *Plan {
	type loc struct {
		src  int
		from int64
	}
	have := map[[32]byte]loc{}
	for i, s := range sources {
		for _, c := range s.Index.Chunks {
			if _, ok := have[c.SHA256]; !ok {
				have[c.SHA256] = loc{i, c.Offset}
			}
		}
	}
	// First pass: one op per chunk, then merge downloads.
	ops := make([]Op, 0, len(target.Chunks))
	for i, c := range target.Chunks {
		if l, ok := have[c.SHA256]; ok {
			ops = append(ops, Op{Source: l.src, From: l.from, First: i, Last: i})
			continue
		}
		ops = append(ops, Op{Source: Fetch, First: i, Last: i})
		// A repeat later in the target (zeros, duplicated files) copies
		// this chunk once it is written.
		have[c.SHA256] = loc{Self, c.Offset}
	}
	span := func(first, last int) int64 {
		return target.Chunks[last].End() - target.Chunks[first].Offset
	}
	var merged []Op
	for i := 0; i < len(ops); i++ {
		op := ops[i]
		if op.Source != Fetch {
			merged = append(merged, op)
			continue
		}
		// Extend op over following downloads, and over copies between
		// them when the gap is small enough.
		for j := i + 1; j < len(ops); j++ {
			if ops[j].Source != Fetch {
				continue
			}
			gap := target.Chunks[ops[j].First].Offset - target.Chunks[op.Last].End()
			if gap > pol.Gap || pol.MaxRange > 0 && span(op.First, ops[j].Last) > pol.MaxRange {
				break
			}
			op.Last = ops[j].Last
			i = j
		}
		merged = append(merged, op)
	}
	p := &Plan{Ops: merged}
	for _, op := range merged {
		if op.Source == Fetch {
			p.Fetch += span(op.First, op.Last)
			p.Requests++
		} else {
			p.Copy += span(op.First, op.Last)
		}
	}
	return p
}
