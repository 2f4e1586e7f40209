package publish

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"aead.dev/minisign"
	"github.com/pibake/pibake/internal/atomicfile"
	"github.com/pibake/pibake/updater/channel"
)

// HistoryFormat and CostFormat are the versions of the publisher's two
// records of a channel, at channel.HistoryPath and channel.CostPath.
// Devices never read either.
const (
	HistoryFormat = 1
	CostFormat    = 1
)

// DefaultHistory is how many earlier releases of a channel publish keeps
// in its history and prices an update from.
const DefaultHistory = 10

// maxHistorySize bounds the history file publish reads (ten releases of
// three artifacts take a few KiB).
const maxHistorySize = 4 << 20

// History lists a channel's releases, newest first: what devices in the
// field may still run. Releases with the same artifacts appear once (a
// re-publish with another rollout adds no new entry).
//
// The repository is plain files others may write, and what the history
// says decides which patches publish makes and signs, so publish signs
// it (channel.SignaturePath of channel.HistoryPath, with the channel's
// key) and reads only a history one of its keys signed.
type History struct {
	Format   int       `json:"format"`
	Channel  string    `json:"channel"`
	Releases []Release `json:"releases"`
}

// Release is one published release: its artifacts and their chunk indexes.
type Release struct {
	Serial    uint64               `json:"serial"`
	Version   string               `json:"version"`
	Boards    []string             `json:"boards,omitempty"` // empty in histories written before releases of several boards
	Artifacts []channel.Artifact   `json:"artifacts"`
	Indexes   []channel.ChunkIndex `json:"indexes,omitempty"`
}

// storedHistory is a channel's history as publish found it: empty when
// there is none or when it is not signed (then warning says so), and the
// newest serial it records (0 for none).
type storedHistory struct {
	*History
	signed  bool
	warning string
}

// newest is the highest serial the history records.
func (h *History) newest() uint64 {
	var n uint64
	for _, r := range h.Releases {
		n = max(n, r.Serial)
	}
	return n
}

// historyComment is the trusted comment of the history's signature: it
// binds the signature to the channel and the newest serial.
func historyComment(h *History) string {
	return fmt.Sprintf("pibake history channel=%s serial=%d", h.Channel, h.newest())
}

// readHistory reads a channel's history and checks its signature by one
// of keys. A missing file is an empty history; so is one without a
// signature (an earlier pibake wrote it unsigned, or someone without the
// key did), with a warning: publish then starts it again from the current
// release, which its signed documents vouch for. A signature that does
// not verify is an error: someone changed what the publisher signed.
func readHistory(repo, ch string, keys []minisign.PublicKey) (*storedHistory, error) {
	path := filepath.Join(repo, filepath.FromSlash(channel.HistoryPath(ch)))
	empty := &storedHistory{History: &History{Format: HistoryFormat, Channel: ch}}
	data, err := readBounded(path)
	if errors.Is(err, os.ErrNotExist) {
		return empty, nil
	}
	if err != nil {
		return nil, err
	}
	sig, err := readBounded(channel.SignaturePath(path))
	if errors.Is(err, os.ErrNotExist) {
		empty.warning = fmt.Sprintf("%s is not signed (an earlier pibake wrote it, or someone without the key): set aside; the history starts again from the current release, and no patch is made from the releases it listed", path)
		return empty, nil
	}
	if err != nil {
		return nil, err
	}
	var s minisign.Signature
	verified := s.UnmarshalText(sig) == nil && slices.ContainsFunc(keys, func(k minisign.PublicKey) bool {
		return k.ID() == s.KeyID && minisign.Verify(k, data, sig)
	})
	if !verified {
		return nil, fmt.Errorf("%s is not signed by this key or a --previous-key: someone without the key changed it (or the signature %s), and publish makes patches only from releases it recorded itself; remove it and its signature, and publish starts it again from the current release", path, filepath.Base(channel.SignaturePath(path)))
	}
	h, err := parseHistory(path, data, ch)
	if err != nil {
		return nil, err
	}
	if s.TrustedComment != historyComment(h) {
		return nil, fmt.Errorf("%s: its signature's trusted comment %q does not match it: remove it and its signature, and publish starts it again from the current release", path, s.TrustedComment)
	}
	return &storedHistory{History: h, signed: true}, nil
}

func readBounded(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > maxHistorySize {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d publish reads: remove it", path, st.Size(), maxHistorySize)
	}
	return os.ReadFile(path)
}

// parseHistory decodes a history strictly: this format, this channel,
// every path the blob of the sha256 next to it.
func parseHistory(path string, data []byte, ch string) (*History, error) {
	bad := func(why string) error {
		return fmt.Errorf("%s: %s: it is only the publisher's record of the channel's releases (devices never read it); remove it and publish starts it again from the current release", path, why)
	}
	h := &History{}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(h); err != nil {
		return nil, bad("malformed (" + err.Error() + ")")
	}
	if h.Format != HistoryFormat || h.Channel != ch {
		return nil, bad(fmt.Sprintf("format %d of channel %q, this pibake writes format %d of channel %q", h.Format, h.Channel, HistoryFormat, ch))
	}
	for _, r := range h.Releases {
		for _, a := range r.Artifacts {
			if !channel.IsBlobPath(a.Path) || a.Path != channel.BlobPath(a.SHA256) || a.Size <= 0 {
				return nil, bad(fmt.Sprintf("release %s: artifact %q at %q", r.Version, a.Name, a.Path))
			}
		}
		for _, ix := range r.Indexes {
			if !channel.IsBlobPath(ix.Path) || ix.Path != channel.BlobPath(ix.SHA256) || ix.Size <= 0 {
				return nil, bad(fmt.Sprintf("release %s: chunk index at %q", r.Version, ix.Path))
			}
		}
	}
	return h, nil
}

// signHistory returns the history's bytes and their signature.
func signHistory(h *History, key minisign.PrivateKey) (data, sig []byte, err error) {
	data, err = json.MarshalIndent(h, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	data = append(data, '\n')
	return data, minisign.SignWithComments(key, data, historyComment(h), "signature from pibake publish"), nil
}

// writeHistory replaces the history and its signature. The old signature
// goes first: a crash in between leaves a history without one (set aside
// with a warning by the next publish), never a signature over other bytes.
func writeHistory(path string, data, sig []byte) error {
	if err := os.Remove(channel.SignaturePath(path)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return err
	}
	return atomicfile.Write(channel.SignaturePath(path), sig, 0o644)
}

func sameArtifacts(a, b []channel.Artifact) bool {
	return slices.EqualFunc(a, b, func(x, y channel.Artifact) bool {
		return x.Name == y.Name && x.SHA256 == y.SHA256 && x.Board == y.Board
	})
}

// add puts r first and drops older entries with the same artifacts, then
// keeps at most keep+1 releases (the newest and keep earlier ones).
func (h *History) add(r Release, keep int) {
	out := []Release{r}
	for _, o := range h.Releases {
		if !sameArtifacts(o.Artifacts, r.Artifacts) && len(out) <= keep {
			out = append(out, o)
		}
	}
	h.Releases = out
}
