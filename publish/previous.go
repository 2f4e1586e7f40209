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
// current release first), and the serial the new document takes.
type channelState struct {
	prev   *channel.Document
	hist   *History
	serial uint64
}

// readChannel reads the channel's current document and history. A
// repository published before the history existed, or one whose history
// lost the current release, gets its history started from the current
// release.
func readChannel(o Options) (*channelState, error) {
	prev, err := current(o.Repo, o.Channel, o.Key, o.PreviousKeys)
	if err != nil {
		return nil, err
	}
	hist, err := readHistory(o.Repo, o.Channel)
	if err != nil {
		return nil, err
	}
	st := &channelState{prev: prev, hist: hist, serial: 1}
	if prev == nil {
		return st, nil
	}
	st.serial = prev.Serial + 1
	if len(hist.Releases) == 0 || !sameArtifacts(hist.Releases[0].Artifacts, prev.Artifacts) {
		pub, _ := o.Key.Public().(minisign.PublicKey)
		hist.add(Release{Serial: prev.Serial, Version: prev.Version, Artifacts: prev.Artifacts,
			Indexes: currentIndexes(o.Repo, prev, append([]minisign.PublicKey{pub}, o.PreviousKeys...))}, keep(o.History))
	}
	return st, nil
}

// earlier are the releases of the history a device may update from to
// arts, newest first and at most n: those with other artifacts, or, when
// the new release has the same bytes as every one, the current release
// (a device then fetches only the indexes).
func (st *channelState) earlier(arts []channel.Artifact, n int) []Release {
	var earlier []Release
	for _, r := range st.hist.Releases {
		if !sameArtifacts(r.Artifacts, arts) && len(earlier) < n {
			earlier = append(earlier, r)
		}
	}
	if len(earlier) == 0 && st.prev != nil {
		earlier = st.hist.Releases[:1]
	}
	return earlier
}

func keep(n int) int {
	if n <= 0 {
		return DefaultHistory
	}
	return n
}

// current is the channel's document already published (nil for none),
// only if it is signed by this key: publish continues its serial, and the
// repository is plain files that others may write; an unsigned serial
// near the top of the range would end the channel for every device.
func current(repo, name string, key minisign.PrivateKey, previous []minisign.PublicKey) (*channel.Document, error) {
	base := filepath.Join(repo, filepath.FromSlash(channel.DocumentPath(name)))
	data, err := os.ReadFile(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sig, err := os.ReadFile(channel.SignaturePath(base))
	if err != nil {
		return nil, fmt.Errorf("channel %s has a document but no signature (%v): the repository was changed by hand; restore it from a backup", name, err)
	}
	pub, _ := key.Public().(minisign.PublicKey)
	d, err := channel.VerifySigned(data, sig, append([]minisign.PublicKey{pub}, previous...))
	if err != nil {
		return nil, fmt.Errorf("the current document of channel %s is not one this key signed (%w): publish continues serials only from its own documents; after a key rotation give the old public key with --previous-key (docs/updates.md)", name, err)
	}
	return d, nil
}
