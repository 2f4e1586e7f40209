package agent

// What the agent reads from the update repository besides the artifacts,
// each read bounded in time and size: the channel and chunk documents
// with their signatures, a chunk index, a patch.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/chunks"
	"github.com/pibake/pibake/updater/delta"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/patch"
)

// FetchTimeout bounds reading the channel document and its signature.
const FetchTimeout = 2 * time.Minute

// readAll reads a document of the repository whole: at most one byte more
// than channel.MaxSize, which the verifier then refuses.
func readAll(ctx context.Context, src install.Source, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	r, err := src.Open(ctx, path, 0)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, channel.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
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
