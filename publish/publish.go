// Package publish adds a built image to an update repository: plain files
// any static HTTP server, CDN or bucket can serve, named by the table in
// updater/channel (repo.go): content-addressed blobs, and per channel its
// signed document, its signed chunk document, and the publisher's history
// (signed too: it decides which patches publish makes) and cost records.
//
// The repository is plain files others may write (a shared bucket), so
// publish acts on nothing there it did not verify: documents and history
// only if its key (or a previous key) signed them, a blob only once its
// bytes hash to its name, a serial only if the signed history records it.
//
// A release has two artifacts, written by a device into its inactive slot:
// "boot" (the boot partition's FAT filesystem, trailing free space cut off)
// and "root" (the squashfs). Both slots of an image hold the same bytes, so
// one artifact fits either slot.
package publish

import (
	"context"
	"fmt"
	"io"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/updater/channel"
)

// Options configure a publish.
type Options struct {
	Repo    string // repository folder
	Channel string
	Build   string // a build output folder: manifest.json and the image
	// Builds, if not empty, replaces Build: the build folders of one
	// image and version, one per board, published as one release.
	Builds  []string
	Key     minisign.PrivateKey
	Expires time.Duration // from Now
	Rollout float64
	// Waves, if any, widen the rollout on schedule from Now; Rollout is
	// then the first wave's fraction.
	Waves []WaveSpec
	Now   time.Time
	// PreviousKeys are public keys whose documents publish may also
	// continue the serial from: the old key, on the first publish after
	// a key rotation.
	PreviousKeys []minisign.PublicKey
	// History is how many earlier releases publish keeps and prices an
	// update from (0: DefaultHistory).
	History int
	// SerialFrom, if not 0, is the serial the new document follows (it
	// gets SerialFrom+1) instead of the current document's: to go on
	// past a current document publish refuses to continue from, or to
	// recover after a leaked key's serial (docs/updates.md).
	SerialFrom uint64
	// Force publishes a document that lives less than MinExpires, a
	// build of another board than the channel's current release, and a
	// build whose devices follow another channel (manifest.Channels).
	Force bool
	// AllowDowngrade publishes a version not newer than the channel's
	// current one (a roll back: it gets the next serial).
	AllowDowngrade bool
	// DryRun checks the build and the channel and prices the update from
	// each earlier release, and signs and writes nothing: the artifacts
	// are read from the build's image, the indexes and patches made in
	// memory.
	DryRun bool
	// Progress, if not nil, gets a line as each patch is encoded (it
	// takes seconds each, and a channel keeps several earlier releases).
	Progress io.Writer
}

// Result is what was published (with DryRun: what would be).
type Result struct {
	DryRun   bool              `json:"dry_run"`
	Document *channel.Document `json:"document"`
	// Uploaded is the bytes of new blobs written (with DryRun: the
	// bytes of blobs the repository does not hold yet).
	Uploaded int64 `json:"uploaded_bytes"`
	// Chunks are the artifacts' chunk indexes (channel.ChunksPath).
	Chunks []channel.ChunkIndex `json:"chunk_indexes"`
	// Patches are the patches from earlier releases in the chunk document.
	Patches []channel.PatchRef `json:"patches"`
	// Delta is what a device running each earlier release of the
	// channel's history downloads for this one, newest first (also
	// written to channel.CostPath).
	Delta []Cost `json:"from"`
	// Warnings are what the publisher should read: a history set aside,
	// a serial continued from a previous key's document.
	Warnings []string `json:"warnings,omitempty"`
}

// Publish verifies the build against its manifest, stores its artifacts and
// signs a new channel document whose serial follows the current one.
//
// Its steps, in the order they touch the repository: check the expiry,
// read and check the build (build.go), read the channel's current
// document and history (previous.go, history.go), each only if its key
// signed it, decide the serial (serial.go) and refuse a build of another
// board, channel or an older version (guard.go): nothing is written before these
// pass. Then store its artifacts and their chunk indexes as blobs
// (store.go); price the update from each earlier release and store the
// patches that make it cheaper, from blobs whose sha256 it checked
// (cost.go); sign, then write the chunk document, the cost report, the
// signed history, and last the channel document (write.go). An error names the step that failed.
func Publish(ctx context.Context, o Options) (*Result, error) {
	if err := channel.CheckName(o.Channel); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if err := checkExpires(o); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	builds, closeBuilds, err := readBuilds(ctx, o.buildDirs())
	if err != nil {
		return nil, fmt.Errorf("publish: read the build: %w", err)
	}
	defer closeBuilds()
	if err := checkChannel(o, builds); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	b := builds[0]
	st, err := readChannel(o)
	if err != nil {
		return nil, fmt.Errorf("publish: read the channel: %w", err)
	}
	if err := checkRelease(ctx, o, builds, st.prev); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	res := &Result{DryRun: o.DryRun, Warnings: st.warnings}
	bs := &blobStore{repo: o.Repo, progress: o.Progress}
	if o.DryRun {
		bs.dry = map[string]sizedReaderAt{}
	}
	arts, indexes, uploaded, err := storeBuilds(ctx, bs, builds)
	if err != nil {
		return nil, fmt.Errorf("publish: store the artifacts: %w", err)
	}
	res.Uploaded += uploaded
	var stored int64
	if res.Delta, res.Patches, stored, err = st.boardCosts(ctx, bs, boards(builds), arts, indexes, keep(o.History)); err != nil {
		return nil, fmt.Errorf("publish: the cost of an update: %w", err)
	}
	res.Uploaded += stored
	d := &channel.Document{Format: channel.Format, Channel: o.Channel, Image: b.m.Image, Version: b.m.Version, Serial: st.serial,
		Expires: o.Now.Add(o.Expires).UTC().Truncate(time.Second), Boards: boards(builds), Rollout: o.Rollout, Artifacts: arts}
	if len(o.Waves) > 0 {
		d.Waves, d.Rollout = channelWaves(o.Waves, o.Now), o.Waves[0].Fraction
	}
	res.Chunks, res.Document = indexes, d
	if o.DryRun {
		return res, d.Validate()
	}
	st.hist.add(Release{Serial: d.Serial, Version: d.Version, Boards: d.Boards, Artifacts: arts, Indexes: indexes}, keep(o.History))
	docs, err := sign(d, indexes, res.Patches, st.hist, o.Key)
	if err != nil {
		return nil, fmt.Errorf("publish: sign: %w", err)
	}
	if err := docs.write(o.Repo, o.Channel, costReport(d, res.Delta)); err != nil {
		return nil, fmt.Errorf("publish: write channel %s: %w", o.Channel, err)
	}
	return res, nil
}
