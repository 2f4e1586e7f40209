package delta

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/chunks"
	"github.com/pibake/pibake/updater/install"
)

// ErrIndex is a chunk index that does not match what the signed channel
// document says (its own digest, or the artifact's size and sha256).
var ErrIndex = errors.New("chunk index does not match the channel document")

// MaxIndexSize bounds an index file a device reads before verifying it:
// 44 bytes a chunk, so an artifact of 4 GiB in 16 KiB chunks.
const MaxIndexSize = 12 << 20

// ReadIndex reads an index file of at most size bytes, checks its sha256
// (hex, from the signed document) and parses it, and checks that it
// describes artifact a. Nothing of an index is used before this.
func ReadIndex(r io.Reader, size int64, sum string, a channel.Artifact) (*chunks.Index, error) {
	if size <= 0 || size > MaxIndexSize {
		return nil, fmt.Errorf("%s: chunk index of %d bytes (at most %d): %w", a.Name, size, MaxIndexSize, ErrIndex)
	}
	b, err := io.ReadAll(io.LimitReader(r, size+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read chunk index: %w", a.Name, err)
	}
	if got := sha256.Sum256(b); int64(len(b)) != size || hex.EncodeToString(got[:]) != sum {
		return nil, fmt.Errorf("%s: chunk index is %d bytes with sha256 %x, the channel document says %d bytes, %s: %w", a.Name, len(b), got, size, sum, ErrIndex)
	}
	ix, err := chunks.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.Name, err)
	}
	if ix.Size != a.Size || ix.Hex() != a.SHA256 {
		return nil, fmt.Errorf("%s: chunk index describes %d bytes with sha256 %s, the artifact is %d bytes, %s: %w", a.Name, ix.Size, ix.Hex(), a.Size, a.SHA256, ErrIndex)
	}
	return ix, nil
}

// Inputs are where a chunked write takes its bytes from: the new
// artifact's chunk index (verified by the caller, ReadIndex), the local
// sources whose chunks it may reuse, and the server's byte ranges for the
// rest.
type Inputs struct {
	Index   *chunks.Index
	Sources []Source
	Fetcher Fetcher
}

// Write installs artifact a into dst from in (its chunks, planned with
// pol), then reads the partition back and checks the artifact's signed
// sha256 (install.Verify), as install.Write does. Any error leaves dst
// unusable but never switched to: the caller falls back to install.Write.
func Write(ctx context.Context, a channel.Artifact, in Inputs, dst install.Target, pol Policy, o Options) (*Plan, Result, error) {
	if in.Index.Size != a.Size || in.Index.Hex() != a.SHA256 {
		return nil, Result{}, fmt.Errorf("%s: %w", a.Name, ErrIndex)
	}
	if a.PartitionSize > dst.Size() {
		return nil, Result{}, fmt.Errorf("%s: made for a %d-byte partition, this one has %d: %w", a.Name, a.PartitionSize, dst.Size(), install.ErrTooLarge)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	plan := NewPlan(in.Index, in.Sources, pol)
	o.Log.Info("delta plan", "artifact", a.Name, "copy", plan.Copy, "fetch", plan.Fetch, "requests", plan.Requests)
	res, err := Apply(ctx, plan, in, dst, o)
	if err != nil {
		return plan, res, fmt.Errorf("%s: %w", a.Name, err)
	}
	return plan, res, install.Verify(ctx, a, dst)
}
