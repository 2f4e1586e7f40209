package publish

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/updater/channel"
)

// ErrNoRelease is the refusal to halt, resume or describe a channel that
// has no document.
var ErrNoRelease = errors.New("the channel has no release")

// RolloutOptions say which channel pibake rollout acts on, and with
// which key.
type RolloutOptions struct {
	Repo    string
	Channel string
	Key     minisign.PrivateKey
	// PreviousKeys: as Options.PreviousKeys.
	PreviousKeys []minisign.PublicKey
	Now          time.Time
}

// Current is the channel's current document, only if one of keys signed
// it: what pibake rollout status shows and rollout watch judges.
func Current(repo, name string, keys []minisign.PublicKey) (*channel.Document, error) {
	if err := channel.CheckName(name); err != nil {
		return nil, err
	}
	d, _, err := current(repo, name, keys)
	if err == nil && d == nil {
		err = fmt.Errorf("%w: %s has no %s: publish a build first", ErrNoRelease, repo, channel.DocumentPath(name))
	}
	return d, err
}

// Halt re-signs the channel's current document with the next serial and
// the halted mark: a device that has not committed the release does not
// start it; one that did keeps it. Halting a halted channel changes
// nothing and returns its document with changed false.
func Halt(o RolloutOptions) (d *channel.Document, changed bool, err error) {
	return setHalted(o, true)
}

// Resume re-signs the channel's current document with the next serial
// and without the halted mark. The waves keep their times: a resume
// after the last wave's time opens the release to its last fraction at
// once.
func Resume(o RolloutOptions) (d *channel.Document, changed bool, err error) {
	return setHalted(o, false)
}

// setHalted re-signs the current document with halted, with the next
// serial: the chunk document follows the new serial, the history records
// it, the cost report moves to it, and the channel document is written
// last, as Publish writes them. The artifacts, boards, waves and expiry
// stay as they were.
func setHalted(o RolloutOptions, halted bool) (*channel.Document, bool, error) {
	verb := map[bool]string{true: "halt", false: "resume"}[halted]
	po := Options{Repo: o.Repo, Channel: o.Channel, Key: o.Key, PreviousKeys: o.PreviousKeys, Now: o.Now}
	if err := channel.CheckName(o.Channel); err != nil {
		return nil, false, fmt.Errorf("rollout %s: %w", verb, err)
	}
	st, err := readChannel(po)
	if err != nil {
		return nil, false, fmt.Errorf("rollout %s: read channel %s: %w", verb, o.Channel, err)
	}
	if st.prev == nil {
		return nil, false, fmt.Errorf("rollout %s: %w: %s has no %s", verb, ErrNoRelease, o.Repo, channel.DocumentPath(o.Channel))
	}
	if st.prev.Halted == halted {
		return st.prev, false, nil
	}
	if !o.Now.Before(st.prev.Expires) {
		return nil, false, fmt.Errorf("rollout %s: channel %s serial %d expired at %s: devices refuse it whatever it says; publish the release again", verb, o.Channel, st.prev.Serial, st.prev.Expires.Format(time.RFC3339))
	}
	d := *st.prev
	d.Serial, d.Halted = st.serial, halted
	pub, _ := o.Key.Public().(minisign.PublicKey)
	keys := append([]minisign.PublicKey{pub}, o.PreviousKeys...)
	chunks := currentChunks(o.Repo, st.prev, keys)
	st.hist.add(Release{Serial: d.Serial, Version: d.Version, Boards: d.Boards, Artifacts: d.Artifacts, Indexes: chunks.Indexes}, DefaultHistory)
	docs, err := sign(&d, chunks.Indexes, chunks.Patches, st.hist, o.Key)
	if err != nil {
		return nil, false, fmt.Errorf("rollout %s: sign: %w", verb, err)
	}
	if err := docs.write(o.Repo, o.Channel, movedCost(o.Repo, &d)); err != nil {
		return nil, false, fmt.Errorf("rollout %s: write channel %s: %w", verb, o.Channel, err)
	}
	return &d, true, nil
}

// currentChunks is the chunk document of the channel's current release
// if one of keys signed it, else an empty one (devices then download the
// artifacts in full, as they would have).
func currentChunks(repo string, prev *channel.Document, keys []minisign.PublicKey) *channel.Chunks {
	base := filepath.Join(repo, filepath.FromSlash(channel.ChunksPath(prev.Channel)))
	doc, err := os.ReadFile(base)
	if err != nil {
		return &channel.Chunks{}
	}
	sig, err := os.ReadFile(channel.SignaturePath(base))
	if err != nil {
		return &channel.Chunks{}
	}
	c, err := channel.VerifyChunks(doc, sig, prev, keys, nil)
	if err != nil {
		return &channel.Chunks{}
	}
	return c
}

// movedCost is the channel's cost report moved to d's serial when it is
// the report of d's release, else one with its full size only.
func movedCost(repo string, d *channel.Document) CostReport {
	fresh := costReport(d, nil)
	b, err := os.ReadFile(filepath.Join(repo, filepath.FromSlash(channel.CostPath(d.Channel))))
	if err != nil {
		return fresh
	}
	var c CostReport
	if json.Unmarshal(b, &c) != nil || c.Format != CostFormat || c.Channel != d.Channel || c.Version != d.Version || c.Full != fresh.Full {
		return fresh
	}
	c.Serial = d.Serial
	return c
}
