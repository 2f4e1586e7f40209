package fleetsim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/disk/fat"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/disk/mbr"
	"github.com/pibake/pibake/manifest"
	"github.com/pibake/pibake/publish"
	"github.com/pibake/pibake/updater/channel"
)

// The simulated fleet's image, board and channel.
const (
	Image   = "simbox"
	Board   = "pi4"
	Channel = "stable"
)

// simLayout is the smallest pibake layout: a 36 MiB FAT32 boot slot
// (mostly free, so its artifact is the FAT without its free tail) and
// a 4 MiB root slot holding a few KiB.
var simLayout = layout.Sizes{Bootsel: 36 << 20, Boot: 36 << 20, Root: 4 << 20, Data: 4 << 20}

// rootOf is the root filesystem of version: a few KiB that name it.
func rootOf(version string) []byte {
	return []byte(strings.Repeat("root filesystem of "+Image+" "+version+"\n", 100))
}

// RootHolds says whether a root partition's first bytes are version's
// root filesystem: the simulated health checks read what really booted.
func RootHolds(r io.ReaderAt, version string) bool {
	want := rootOf(version)
	got := make([]byte, len(want))
	n, _ := r.ReadAt(got, 0)
	return n == len(want) && string(got) == string(want)
}

// WriteBuild writes a build output folder of version into dir (as
// pibake build lays one out: the image with the pibake layout and its
// manifest) and returns it.
func WriteBuild(dir, version string, built time.Time) (string, error) {
	lay, err := layout.Compute(simLayout)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	img := filepath.Join(dir, Image+".img")
	f, err := os.Create(img)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := f.Truncate(lay.DiskSize); err != nil {
		return "", err
	}
	if err := mbr.Write(f, lay.MBR(0x51e5b0c5), uint64(lay.DiskSize/mbr.SectorSize)); err != nil {
		return "", err
	}
	root := rootOf(version)
	for _, p := range lay.Parts {
		switch p.Name {
		case layout.Bootsel, layout.BootA, layout.BootB:
			files := []fat.File{{Path: "vmlinuz", Data: []byte("kernel of " + version)}, {Path: "cmdline.txt", Data: []byte("root=" + p.Name)}}
			if err := fat.Write(io.NewOffsetWriter(f, p.Offset), fat.Options{Size: p.Size, Label: "PIBOOT", Time: built}, files, nil); err != nil {
				return "", fmt.Errorf("fleetsim: boot filesystem of %s: %w", version, err)
			}
		case layout.RootA, layout.RootB:
			if _, err := f.WriteAt(root, p.Offset); err != nil {
				return "", err
			}
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	m := manifest.Manifest{Format: manifest.Format, Image: Image, Version: version, Board: Board, Bootloader: string(bootchain.UBoot),
		Disk: manifest.Disk{File: Image + ".img", Size: lay.DiskSize, SHA256: hex.EncodeToString(h.Sum(nil))}, Rootfs: manifest.Rootfs{Size: int64(len(root))}}
	if _, err := manifest.Write(dir, &m); err != nil {
		return "", err
	}
	return dir, nil
}

// Repo is an update repository folder with its signing key.
type Repo struct {
	Dir string
	Key minisign.PrivateKey
	Pub minisign.PublicKey
	// Work holds the build folders.
	Work string
}

// Publish builds version and publishes it to the channel with the real
// publish code at now, in waves if any (publish.ParseWaves' syntax).
func (r *Repo) Publish(ctx context.Context, version, waves string, now time.Time) (*channel.Document, error) {
	dir, err := WriteBuild(filepath.Join(r.Work, version), version, now)
	if err != nil {
		return nil, err
	}
	o := publish.Options{Repo: r.Dir, Channel: Channel, Build: dir, Key: r.Key, Expires: 30 * 24 * time.Hour, Rollout: 1, Now: now}
	if waves != "" {
		if o.Waves, err = publish.ParseWaves(waves); err != nil {
			return nil, err
		}
		o.Rollout = o.Waves[0].Fraction
	}
	res, err := publish.Publish(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("fleetsim: publish %s: %w", version, err)
	}
	return res.Document, nil
}

// Halt re-signs the channel halted at now (what pibake rollout halt does).
func (r *Repo) Halt(now time.Time) (*channel.Document, error) {
	d, _, err := publish.Halt(publish.RolloutOptions{Repo: r.Dir, Channel: Channel, Key: r.Key, Now: now})
	return d, err
}

// Current is the channel's current document, verified with the key.
func (r *Repo) Current() (*channel.Document, error) {
	return publish.Current(r.Dir, Channel, []minisign.PublicKey{r.Pub})
}
