package agent

// What the agent trusts and where it comes from. The keys, the revoked
// key IDs, the image, the board, the build time and the health checks are
// the image's (Config, from the read-only root). The state file on the
// data partition is authenticated by the store (state.File's device key
// on bootsel); a state that fails (ErrUntrusted), cannot be read
// (ErrCorrupt) or is gone is never acted on: the agent rebuilds it from
// what it can verify (recoverState). The floor of each channel's serials
// is the higher of the state's and that of the signed document the agent
// kept on bootsel when it last committed from the channel (Keep), so a
// lost state never lowers it.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/state"
)

// Keep is where the agent keeps, out of the data partition's reach (a
// folder on bootsel: state.Keep), the signed document of the release it
// last committed from each channel.
type Keep interface {
	SaveCommitted(channel string, s state.Signed) error
	Committed() (map[string]state.Signed, error)
}

// sealer is a store that authenticates what it saves once sealed
// (state.File.Seal makes the device key; made says it did just now).
type sealer interface{ Seal() (made bool, err error) }

// seal has the store authenticate the state from now on. The agent calls
// it when it runs as the committed slot, so that an older agent, which
// cannot authenticate, runs again only as a fallback. made: the key was
// made now, and the state on disk has no MAC yet until the next save.
func (a *Agent) seal() (made bool, err error) {
	s, ok := a.Store.(sealer)
	if !ok {
		return false, nil
	}
	if made, err = s.Seal(); err != nil {
		return false, fmt.Errorf("seal the updater state: %w", err)
	}
	return made, nil
}

// kept returns the kept documents that verify with the image's keys and
// name this image and board, by channel: each the release this device
// last committed from that channel.
func (a *Agent) kept() map[string]*channel.Document {
	if a.Keep == nil {
		return nil
	}
	docs, err := a.Keep.Committed()
	if err != nil {
		a.log().Warn("cannot read the kept channel documents", "err", err)
		return nil
	}
	out := map[string]*channel.Document{}
	for ch, s := range docs {
		d, err := channel.VerifySigned(s.Document, s.Signature, a.Trusted)
		if err == nil && (d.Channel != ch || (a.Image != "" && d.Image != a.Image) || !slices.Contains(d.Boards, a.Board)) {
			err = fmt.Errorf("it is %s on channel %s for %v", d.Image, d.Channel, d.Boards)
		}
		if err != nil {
			a.log().Warn("a kept channel document does not verify: ignored", "channel", ch, "err", err)
			continue
		}
		out[ch] = d
	}
	return out
}

// keepSigned keeps s as the document of the release committed from ch.
func (a *Agent) keepSigned(ch string, s *state.Signed) error {
	if a.Keep == nil || s == nil {
		return nil
	}
	if err := a.Keep.SaveCommitted(ch, *s); err != nil {
		return fmt.Errorf("keep the committed document of channel %s: %w", ch, err)
	}
	return nil
}

// verify is Fetch's check of the channel document: a trusted, unrevoked
// key's signature, channel and image, board, expiry at expiryClock, and a
// serial above st's floor (Load raised it to the kept documents'). The
// bytes of a document that verifies are remembered for the trial (arm)
// and for adopt, which keep them when the release commits. A genuine
// document at the floor itself (nothing new) is kept if the keep has
// none that high for the channel: an agent that took over from one that
// kept nothing has its floor on bootsel from its first check on.
func (a *Agent) verify(doc, sig []byte, st state.State) (*channel.Document, error) {
	floor := st.Serials[a.Channel]
	c := channel.Check{Trusted: a.Trusted, Board: a.Board, Channel: a.Channel, Image: a.Image, Revoked: a.Revoked,
		Now: a.expiryClock(), LastSerial: floor, Reinstall: degraded(st)}
	d, err := channel.Verify(doc, sig, c)
	if err == nil {
		a.signed = &state.Signed{Document: doc, Signature: sig}
		return d, nil
	}
	if errors.Is(err, channel.ErrReplay) && floor > 0 {
		c.Reinstall = true
		if _, rerr := channel.Verify(doc, sig, c); rerr == nil {
			if k, ok := a.kept()[a.Channel]; !ok || k.Serial < floor {
				if kerr := a.keepSigned(a.Channel, &state.Signed{Document: doc, Signature: sig}); kerr != nil {
					a.log().Warn("cannot keep the channel's document", "err", kerr)
				}
			}
		}
	}
	return nil, err
}

// recoverState rebuilds the state when the stored one cannot be trusted:
// the serials from the kept documents, each slot's release if it holds
// a kept document's artifacts byte for byte (the read-back every install
// ends with), and the running slot as the committed one. It never
// reboots and never takes the running slot out of the rotation (the boot
// loader started it, and the data partition cannot change that): a slot
// it cannot identify runs on as "unidentified" ("as flashed" on a device
// that never kept a document), the other slot stays in the rotation only
// if identified. What the lost state alone knew (a trial, an install in
// progress, failed versions, a degraded flag) is gone: a failed release
// may be tried once more, an install starts again.
func (a *Agent) recoverState(ctx context.Context, cause error) (state.State, error) {
	kept := a.kept()
	st := state.State{Format: state.Format, Serials: map[string]uint64{}, Slots: map[string]state.Release{}}
	for ch, d := range kept {
		st.Serials[ch] = d.Serial
	}
	for _, s := range bootchain.Slots() {
		if rel, ok := a.identify(ctx, s, kept); ok {
			st.Slots[string(s)] = rel
		}
	}
	booted := string(a.Booted)
	if _, ok := st.Slots[booted]; !ok {
		what := "unidentified"
		if len(kept) == 0 {
			what = state.AsFlashed
		}
		st.Slots[booted] = state.Release{Image: a.Image, Version: what}
	}
	st.Committed = booted
	st.LastError = fmt.Sprintf("the state on the data partition was not trusted (%v): rebuilt from the kept signed documents and what the slots hold", cause)
	a.log().Warn("updater state rebuilt", "serials", st.Serials, "slots", st.Slots)
	if err := a.Store.Save(st); err != nil {
		return st, err
	}
	return st, nil
}

// identify returns the release of a kept document whose artifacts slot s
// holds byte for byte.
func (a *Agent) identify(ctx context.Context, s bootchain.Slot, kept map[string]*channel.Document) (state.Release, bool) {
	if a.Running == nil || len(kept) == 0 {
		return state.Release{}, false
	}
	boot, root, err := a.Running(s)
	if err != nil {
		a.log().Warn("cannot read a slot to identify what it holds", "slot", s, "err", err)
		return state.Release{}, false
	}
	defer closeAll(boot, root)
	channels := make([]string, 0, len(kept))
	for ch := range kept {
		channels = append(channels, ch)
	}
	sort.Strings(channels)
	for _, ch := range channels {
		d := kept[ch]
		arts, err := slotArtifacts(d, a.Board, s)
		if err != nil {
			continue
		}
		holds := true
		for _, art := range arts {
			if install.Verify(ctx, art, beatReader{partitionOf(art, boot, root), a.Beat}) != nil {
				holds = false
				break
			}
		}
		if holds {
			return state.Release{Image: d.Image, Version: d.Version, Serial: d.Serial, Channel: ch}, true
		}
	}
	return state.Release{}, false
}
