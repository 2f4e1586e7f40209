package agent

// What the agent reads from the update repository besides the artifacts,
// each read bounded in size and kept to the slowest link's pace
// (install.ReadFile): the channel and chunk documents with their
// signatures, a chunk index, a patch.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"

	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/chunks"
	"github.com/pibake/pibake/updater/delta"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/patch"
)

// readAll reads a document of the repository whole: at most one byte more
// than channel.MaxSize, which the verifier then refuses.
func readAll(ctx context.Context, src install.Source, path string, o install.Options) ([]byte, error) {
	return install.ReadFile(ctx, src, path, channel.MaxSize, o)
}

// readPatch downloads a patch, at art's pace (o), and checks it against
// its signed digest. A patch that does not arrive in time is not resumed;
// the chunks, which are, take over.
func readPatch(ctx context.Context, src install.Source, ref channel.PatchRef, o install.Options) ([]byte, error) {
	if ref.Size <= 0 || ref.Size > patch.MaxSize {
		return nil, fmt.Errorf("patch %s: %d bytes, at most %d", ref.Path, ref.Size, patch.MaxSize)
	}
	b, err := install.ReadFile(ctx, src, ref.Path, ref.Size, o)
	if err != nil {
		return nil, fmt.Errorf("patch: %w", err)
	}
	if sum := sha256.Sum256(b); int64(len(b)) != ref.Size || hex.EncodeToString(sum[:]) != ref.SHA256 {
		return nil, fmt.Errorf("patch %s: %d bytes with sha256 %x, the chunk document says %d bytes, %s: %w", ref.Path, len(b), sum, ref.Size, ref.SHA256, install.ErrDigest)
	}
	return b, nil
}

// readIndex reads, at art's pace (o), and checks a chunk index named by
// the chunk document.
func readIndex(ctx context.Context, src install.Source, ci channel.ChunkIndex, art channel.Artifact, o install.Options) (*chunks.Index, error) {
	if ci.Size <= 0 || ci.Size > delta.MaxIndexSize {
		return nil, fmt.Errorf("%s: chunk index of %d bytes (at most %d): %w", art.Name, ci.Size, delta.MaxIndexSize, delta.ErrIndex)
	}
	b, err := install.ReadFile(ctx, src, ci.Path, ci.Size, o)
	if err != nil {
		return nil, fmt.Errorf("chunk index: %w", err)
	}
	return delta.ReadIndex(bytes.NewReader(b), ci.Size, ci.SHA256, art)
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
