package channel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"aead.dev/minisign"
)

// ChunksFormat is the version of the chunk document's layout.
const ChunksFormat = 1

// ChunkIndex names the chunk index (updater/chunks) of one artifact.
type ChunkIndex struct {
	Artifact string `json:"artifact"` // the artifact's sha256 (hex)
	Path     string `json:"path"`     // BlobPath(SHA256)
	Size     int64  `json:"size"`     // of the index file
	SHA256   string `json:"sha256"`   // of the index file
}

// PatchRef names a patch (updater/patch) that makes one artifact of the
// release from an artifact of an earlier one, which a device recognises
// in its running slot by its sha256 over its first FromSize bytes.
type PatchRef struct {
	Artifact string `json:"artifact"`  // the new artifact's sha256 (hex)
	From     string `json:"from"`      // the earlier artifact's sha256 (hex)
	FromSize int64  `json:"from_size"` // the earlier artifact's size
	Path     string `json:"path"`      // BlobPath(SHA256)
	Size     int64  `json:"size"`      // of the patch file, at most MaxPatchSize
	SHA256   string `json:"sha256"`    // of the patch file
}

// MaxPatchSize bounds a patch file (updater/patch.MaxSize, repeated here
// so that this package stays free of it; a test keeps them equal).
const MaxPatchSize = 32 << 20

// Chunks lists the chunk indexes of one release of a channel (the one of
// the channel document with the same serial) and the patches publish made
// from earlier releases. Patches is omitted when there are none.
type Chunks struct {
	Format  int          `json:"format"`
	Channel string       `json:"channel"`
	Serial  uint64       `json:"serial"`
	Indexes []ChunkIndex `json:"indexes"`
	Patches []PatchRef   `json:"patches,omitempty"`
}

func chunksComment(c *Chunks) string {
	return fmt.Sprintf("pibake chunks channel=%s serial=%d", c.Channel, c.Serial)
}

// validate checks c against the channel document d it belongs to.
func (c *Chunks) validate(d *Document) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: chunk document: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	switch {
	case c.Format != ChunksFormat:
		return bad("format %d, this agent reads format %d", c.Format, ChunksFormat)
	case c.Channel != d.Channel || c.Serial != d.Serial:
		return bad("for channel %s serial %d, the channel document is %s serial %d", c.Channel, c.Serial, d.Channel, d.Serial)
	}
	seen := map[string]bool{}
	for _, ix := range c.Indexes {
		known := slices.ContainsFunc(d.Artifacts, func(a Artifact) bool { return a.SHA256 == ix.Artifact })
		if !known || seen[ix.Artifact] {
			return bad("index for artifact %q unknown or repeated", ix.Artifact)
		}
		seen[ix.Artifact] = true
		if !reHex.MatchString(ix.SHA256) || ix.Size <= 0 || ix.Path != BlobPath(ix.SHA256) {
			return bad("index of %s: want a positive size, a sha256 and the path "+blobPattern, ix.Artifact)
		}
	}
	type pair struct{ to, from string }
	paired := map[pair]bool{}
	for _, p := range c.Patches {
		known := slices.ContainsFunc(d.Artifacts, func(a Artifact) bool { return a.SHA256 == p.Artifact })
		switch {
		case !known:
			return bad("patch for unknown artifact %q", p.Artifact)
		case !reHex.MatchString(p.From) || p.FromSize <= 0 || paired[pair{p.Artifact, p.From}]:
			return bad("patch of %s: want one patch per earlier artifact, with its sha256 and a positive size", p.Artifact)
		case !reHex.MatchString(p.SHA256) || p.Size <= 0 || p.Size > MaxPatchSize || p.Path != BlobPath(p.SHA256):
			return bad("patch of %s: want a size of 1 to %d bytes, a sha256 and the path "+blobPattern, p.Artifact, MaxPatchSize)
		}
		paired[pair{p.Artifact, p.From}] = true
	}
	return nil
}

// PatchesFor lists the patches that make the artifact with sha256 sum.
func (c *Chunks) PatchesFor(sum string) []PatchRef {
	var out []PatchRef
	for _, p := range c.Patches {
		if p.Artifact == sum {
			out = append(out, p)
		}
	}
	return out
}

// For returns the index of the artifact with sha256 sum, if listed.
func (c *Chunks) For(sum string) (ChunkIndex, bool) {
	for _, ix := range c.Indexes {
		if ix.Artifact == sum {
			return ix, true
		}
	}
	return ChunkIndex{}, false
}

// SignChunks validates c against d and returns its bytes and signature.
func SignChunks(c *Chunks, d *Document, key minisign.PrivateKey) (doc, sig []byte, err error) {
	if err := c.validate(d); err != nil {
		return nil, nil, err
	}
	doc, err = json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	doc = append(doc, '\n')
	return doc, minisign.SignWithComments(key, doc, chunksComment(c), "signature from pibake publish"), nil
}

// VerifyChunks checks a chunk document against a channel document d that
// the device already verified: signed by a key of trusted (none of
// revoked), for d's channel and serial, naming only d's artifacts.
func VerifyChunks(doc, sig []byte, d *Document, trusted []minisign.PublicKey, revoked []uint64) (*Chunks, error) {
	s, err := checkSignature(doc, sig, trusted, revoked)
	if err != nil {
		return nil, err
	}
	var c Chunks
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: chunk document: %v", ErrMalformed, err)
	}
	if err := c.validate(d); err != nil {
		return nil, err
	}
	if s.TrustedComment != chunksComment(&c) {
		return nil, fmt.Errorf("%w: trusted comment %q does not match the chunk document", ErrSignature, s.TrustedComment)
	}
	return &c, nil
}
