package publish

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"aead.dev/minisign"
	"github.com/pibake/pibake/updater/channel"
)

// channelState is what the repository holds of a channel before a
// publish: its current document (nil for none), its history (with the
// current release first), the serial the new document takes, and what
// publish warns of.
type channelState struct {
	prev     *channel.Document
	hist     *History
	serial   uint64
	warnings []string
}

// readChannel reads the channel's current document and history, each
// only if one of the keys signed it, and decides the new serial. A
// repository published before the history existed or was signed, or one
// whose history lost the current release, gets its history started from
// the current release.
func readChannel(o Options) (*channelState, error) {
	pub, _ := o.Key.Public().(minisign.PublicKey)
	keys := append([]minisign.PublicKey{pub}, o.PreviousKeys...)
	prev, byPrevious, err := current(o.Repo, o.Channel, keys)
	if err != nil {
		return nil, err
	}
	hist, err := readHistory(o.Repo, o.Channel, keys)
	if err != nil {
		return nil, err
	}
	st := &channelState{prev: prev, hist: hist.History}
	if hist.warning != "" {
		st.warnings = append(st.warnings, hist.warning)
	}
	var warning string
	if st.serial, warning, err = nextSerial(o, prev, byPrevious, hist); err != nil {
		return nil, err
	}
	if warning != "" {
		st.warnings = append(st.warnings, warning)
	}
	if prev != nil && (len(st.hist.Releases) == 0 || !sameArtifacts(st.hist.Releases[0].Artifacts, prev.Artifacts)) {
		st.hist.add(Release{Serial: prev.Serial, Version: prev.Version, Boards: prev.Boards, Artifacts: prev.Artifacts,
			Indexes: currentIndexes(o.Repo, prev, keys)}, keep(o.History))
	}
	return st, nil
}

// earlier are the releases of a history (one board's) a device may
// update from to arts, newest first and at most n: those with other
// artifacts, or, when the new release has the same bytes as every one,
// the current release (a device then fetches only the indexes).
func earlier(hist []Release, hasCurrent bool, arts []channel.Artifact, n int) []Release {
	var out []Release
	for _, r := range hist {
		if !sameArtifacts(r.Artifacts, arts) && len(out) < n {
			out = append(out, r)
		}
	}
	if len(out) == 0 && hasCurrent && len(hist) > 0 {
		out = hist[:1]
	}
	return out
}

func keep(n int) int {
	if n <= 0 {
		return DefaultHistory
	}
	return n
}

// current is the channel's document already published (nil for none),
// only if one of keys signed it (keys[0] is the publishing key's; true
// when only a previous key did): publish continues its serial, and the
// repository is plain files that others may write; an unsigned serial
// near the top of the range would end the channel for every device.
func current(repo, name string, keys []minisign.PublicKey) (*channel.Document, bool, error) {
	base := filepath.Join(repo, filepath.FromSlash(channel.DocumentPath(name)))
	data, err := os.ReadFile(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	sig, err := os.ReadFile(channel.SignaturePath(base))
	if err != nil {
		return nil, false, fmt.Errorf("channel %s has a document but no signature (%v): the repository was changed by hand; restore it from a backup", name, err)
	}
	if d, err := channel.VerifySigned(data, sig, keys[:1]); err == nil {
		return d, false, nil
	}
	d, err := channel.VerifySigned(data, sig, keys)
	if err != nil {
		return nil, false, fmt.Errorf("the current document of channel %s is not one this key signed (%w): publish continues serials only from its own documents; after a key rotation give the old public key with --previous-key (docs/updates.md)", name, err)
	}
	return d, true, nil
}

// currentIndexes are the chunk indexes of the channel's current release,
// from its signed chunk document; nil when there is none that verifies.
func currentIndexes(repo string, prev *channel.Document, keys []minisign.PublicKey) []channel.ChunkIndex {
	base := filepath.Join(repo, filepath.FromSlash(channel.ChunksPath(prev.Channel)))
	doc, err := os.ReadFile(base)
	if err != nil {
		return nil
	}
	sig, err := os.ReadFile(channel.SignaturePath(base))
	if err != nil {
		return nil
	}
	c, err := channel.VerifyChunks(doc, sig, prev, keys, nil)
	if err != nil {
		return nil
	}
	return c.Indexes
}
