package publish

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/chunks"
)

// store writes each of the build's artifacts and its chunk index as
// blobs, those not in the repository already, and returns them in the
// build's order with the bytes it wrote.
func (b *build) store(ctx context.Context, repo string) ([]channel.Artifact, []channel.ChunkIndex, int64, error) {
	var arts []channel.Artifact
	var indexes []channel.ChunkIndex
	var uploaded int64
	for _, a := range b.parts {
		sum, wrote, err := storeBlob(ctx, repo, io.NewSectionReader(b.img, a.off, a.n))
		if err != nil {
			return nil, nil, 0, fmt.Errorf("%s: %w", a.name, err)
		}
		uploaded += wrote
		arts = append(arts, channel.Artifact{Name: a.name, Path: channel.BlobPath(sum), Size: a.n, SHA256: sum, PartitionSize: a.partition})
		ix, wrote, err := storeIndex(ctx, repo, sum, io.NewSectionReader(b.img, a.off, a.n))
		if err != nil {
			return nil, nil, 0, fmt.Errorf("%s: chunk index: %w", a.name, err)
		}
		uploaded += wrote
		indexes = append(indexes, ix)
	}
	return arts, indexes, uploaded, nil
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

// storeBlob writes r as the blob of its sha256 (channel.BlobPath) unless
// it is there already with those bytes.
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
	// Content-addressed: a blob of this name holds these bytes, unless
	// someone else wrote it (the name of an artifact can be known before
	// it is published: a reproducible build, a re-publish). Only bytes
	// read back with this sha256 are kept; anything else is replaced.
	if got, err := fileSum(dst); err == nil && got == sum {
		return sum, 0, nil
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", 0, err
	}
	return sum, n, os.Rename(tmp.Name(), dst)
}

// fileSum is the sha256 of the file at path.
func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// missingBytes is what a dry run's blobs in store add to repo: the bytes
// of those repo does not hold with that size (a blob is named by its
// sha256).
func missingBytes(repo, store string) int64 {
	dir := filepath.Join(store, filepath.FromSlash(channel.BlobsDir))
	entries, _ := os.ReadDir(dir)
	var n int64
	for _, e := range entries {
		st, err := e.Info()
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		if have, err := os.Stat(filepath.Join(repo, filepath.FromSlash(channel.BlobsDir), e.Name())); err == nil && have.Size() == st.Size() {
			continue
		}
		n += st.Size()
	}
	return n
}
