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

// blobStore is where publish puts the new blobs: the repository; or, in
// a dry run (dry not nil), nowhere: a blob is hashed and kept as the
// reader it came from (a section of the build's image, or bytes in
// memory), so the cost is computed from it without a copy, and it counts
// as new unless the repository holds a blob of its name and size.
type blobStore struct {
	repo     string
	dry      map[string]sizedReaderAt
	progress io.Writer // Options.Progress
}

// sizedReaderAt is a blob's bytes: an *io.SectionReader or a *bytes.Reader.
type sizedReaderAt interface {
	io.ReaderAt
	Size() int64
}

// put stores r as the blob of its sha256; it returns the sha256 and the
// bytes that are (or, in a dry run, would be) new in the repository.
func (s *blobStore) put(ctx context.Context, r sizedReaderAt) (string, int64, error) {
	if s.dry == nil {
		return storeBlob(ctx, s.repo, io.NewSectionReader(r, 0, r.Size()))
	}
	sum, err := readerSHA256(ctx, io.NewSectionReader(r, 0, r.Size()))
	if err != nil {
		return "", 0, err
	}
	s.dry[sum] = r
	if st, err := os.Stat(filepath.Join(s.repo, filepath.FromSlash(channel.BlobPath(sum)))); err == nil && st.Size() == r.Size() {
		return sum, 0, nil
	}
	return sum, r.Size(), nil
}

// open returns a blob put before, checked against the size and sha256
// the documents will sign (openBlob; in a dry run, put hashed it), and
// what closes it.
func (s *blobStore) open(path string, size int64, sum string) (io.ReaderAt, func(), error) {
	if s.dry != nil {
		r, ok := s.dry[sum]
		if !ok || r.Size() != size {
			return nil, nil, fmt.Errorf("%s: %w: not the blob put", path, errCorrupt)
		}
		return r, func() {}, nil
	}
	f, err := openBlob(s.repo, channel.Artifact{Path: path, Size: size, SHA256: sum})
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

// store writes each of the build's artifacts and its chunk index as
// blobs, those not in the repository already, and returns them in the
// build's order with the bytes it wrote.
func (b *build) store(ctx context.Context, bs *blobStore) ([]channel.Artifact, []channel.ChunkIndex, int64, error) {
	var arts []channel.Artifact
	var indexes []channel.ChunkIndex
	var uploaded int64
	for _, a := range b.parts {
		sum, wrote, err := bs.put(ctx, io.NewSectionReader(b.img, a.off, a.n))
		if err != nil {
			return nil, nil, 0, fmt.Errorf("%s: %w", a.name, err)
		}
		uploaded += wrote
		arts = append(arts, channel.Artifact{Name: a.name, Path: channel.BlobPath(sum), Size: a.n, SHA256: sum, PartitionSize: a.partition})
		ix, wrote, err := storeIndex(ctx, bs, sum, io.NewSectionReader(b.img, a.off, a.n))
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
func storeIndex(ctx context.Context, bs *blobStore, artifact string, r io.Reader) (channel.ChunkIndex, int64, error) {
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
	sum, wrote, err := bs.put(ctx, bytes.NewReader(b))
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
