package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/pibake/pibake/updater/channel"
)

// MinExpires is the shortest life publish gives a channel document
// without Options.Force. A device polls every 15 minutes by default (an
// image may set hours), a device that was off or offline catches up when
// it is back, and a device's clock may be off by minutes (or hours before
// it has synchronised): a document that expires within a day is refused
// by devices that merely have not polled yet, and the fleet sits on its
// current release until the next publish. A day is the least that
// survives a device's night offline; the default is 30 days.
const MinExpires = 24 * time.Hour

// Refusals of a publish, before anything is written; each names the flag
// that overrides it (--force, --allow-downgrade).
var (
	ErrExpires      = errors.New("the channel document would expire too soon")
	ErrNotNewer     = errors.New("the version is not newer than the channel's")
	ErrOtherBoard   = errors.New("the build is for another board than the channel's devices")
	ErrOtherChannel = errors.New("the build's devices follow another channel")
)

// checkChannel refuses, unless Force, to publish a build onto a channel
// its own signed configuration does not name (manifest.Channels): every
// device of the channel would install it and from then on follow the
// build's channel, as a preprod build published to prod moves the prod
// fleet onto preprod. A build that records no channels (an image without
// an updater, a manifest from before the field) passes.
func checkChannel(o Options, builds []*build) error {
	for _, b := range builds {
		if len(b.m.Channels) == 0 || slices.Contains(b.m.Channels, o.Channel) || o.Force {
			continue
		}
		env := ""
		if b.m.Env != "" && b.m.Env != "default" {
			env = " (environment " + b.m.Env + ")"
		}
		return fmt.Errorf("%s %s for %s%s follows channel %s, not %s: %w: each device of channel %s would install it and from then on follow %s; publish it to %s, or build it for %s (its environment's --env, or updater.channel/updater.channels in the definition), or pass --force",
			b.m.Image, b.m.Version, b.m.Board, env, strings.Join(b.m.Channels, ", "), o.Channel, ErrOtherChannel, o.Channel, b.m.Channels[0], b.m.Channels[0], o.Channel)
	}
	return nil
}

// checkExpires refuses a document that expires at once or in the past
// (whatever Force says: every device refuses it), and one that lives
// less than MinExpires unless Force.
func checkExpires(o Options) error {
	switch {
	case o.Expires <= 0:
		return fmt.Errorf("--expires %s: %w: a document that expires at once or in the past is refused by every device (ErrExpired); give a duration such as 720h (30 days, the default)", o.Expires, ErrExpires)
	case o.Expires < MinExpires && !o.Force:
		return fmt.Errorf("--expires %s: %w: it is shorter than %s, and a device that polls after it expires (one that was off or offline, or whose clock is behind or ahead) refuses it and stays on its release; give at least %s, or --force for a short-lived test channel", o.Expires, ErrExpires, MinExpires, MinExpires)
	}
	return nil
}

// checkRelease refuses a build the channel's devices would refuse or
// should not get: one of another board than the channel's current
// release (a channel carries one board; its first build sets it) unless
// Force, and a version not newer than the current one unless
// AllowDowngrade. The same version with the same bytes is a re-publish
// (a new rollout or expiry) and passes.
func checkRelease(ctx context.Context, o Options, builds []*build, prev *channel.Document) error {
	if prev == nil {
		return nil
	}
	b, given := builds[0], boards(builds)
	var dropped []string
	for _, pb := range prev.Boards {
		if !slices.Contains(given, pb) {
			dropped = append(dropped, pb)
		}
	}
	if len(dropped) > 0 && !o.Force {
		return fmt.Errorf("%s %s is a build for %s, and channel %s carries %s (its current release, %s %s): %w: the channel's %s devices refuse it (ErrBoardMismatch) and get no update; give a build for %s too (several build folders of one version make one release), or publish to a channel of its own, or pass --force to leave the channel's %s devices without updates",
			b.m.Image, b.m.Version, strings.Join(given, ", "), o.Channel, strings.Join(prev.Boards, ", "), prev.Image, prev.Version, ErrOtherBoard, strings.Join(dropped, ", "), strings.Join(dropped, ", "), strings.Join(dropped, ", "))
	}
	c := CompareVersions(b.m.Version, prev.Version)
	if c > 0 || o.AllowDowngrade {
		return nil
	}
	if c == 0 {
		same, err := sameBytes(ctx, builds, prev)
		if err != nil || same {
			return err
		}
		return fmt.Errorf("%s %s has other bytes than the %s %s channel %s carries (serial %d): %w: a device that runs %s installs it anyway, and one on which %s failed never tries it; give the build a new version, or pass --allow-downgrade (%s)",
			b.m.Image, b.m.Version, prev.Image, prev.Version, o.Channel, prev.Serial, ErrNotNewer, prev.Version, prev.Version, downgradeRule)
	}
	return fmt.Errorf("%s %s is older than %s, the current release of channel %s (serial %d): %w: devices compare serials, not versions, so all of them would install it; to roll the fleet back on purpose pass --allow-downgrade (%s)",
		b.m.Image, b.m.Version, prev.Version, o.Channel, prev.Serial, ErrNotNewer, downgradeRule)
}

// downgradeRule is what --allow-downgrade does to the fleet.
const downgradeRule = "the release gets the next serial, above every device's floor: each device installs it like any update (except one on which that version failed before), commits it, and from then on refuses every document of a lower serial, the newer release's included; to go forward again publish the newer build again, it gets the serial after (docs/updates.md, \"Versions and serials\")"

// sameBytes says whether the builds of d's boards have d's artifacts
// for their board (a board d does not carry is new: it changes nothing
// for d's devices).
func sameBytes(ctx context.Context, builds []*build, d *channel.Document) (bool, error) {
	for _, b := range builds {
		if !slices.Contains(d.Boards, b.m.Board) {
			continue
		}
		if same, err := b.sameBytes(ctx, d.ArtifactsFor(b.m.Board)); err != nil || !same {
			return false, err
		}
	}
	return true, nil
}

// sameBytes says whether the build's artifacts are arts.
func (b *build) sameBytes(ctx context.Context, arts []channel.Artifact) (bool, error) {
	if len(b.parts) != len(arts) {
		return false, nil
	}
	for i, p := range b.parts {
		a := arts[i]
		if a.Name != p.name || a.Size != p.n {
			return false, nil
		}
		sum, err := readerSHA256(ctx, io.NewSectionReader(b.img, p.off, p.n))
		if err != nil {
			return false, err
		}
		if sum != a.SHA256 {
			return false, nil
		}
	}
	return true, nil
}
