package agent

// The running slot as the base of a delta update, and the partitions of
// a slot in general: which one an artifact goes to, how they are read
// (feeding the watchdog) and closed.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/install"
)

// Readable is a partition read for its chunks.
type Readable interface {
	io.ReaderAt
	Size() int64
}

// Running opens the booted slot's boot and root partitions for reading.
type Running func(s bootchain.Slot) (boot, root Readable, err error)

// partitionOf picks, of a slot's boot and root partitions, the one art
// goes to.
func partitionOf[P any](art channel.Artifact, boot, root P) P {
	if art.Name == "root" {
		return root
	}
	return boot
}

// closeAll closes the partitions that can be closed.
func closeAll(parts ...any) {
	for _, p := range parts {
		if c, ok := p.(io.Closer); ok {
			_ = c.Close()
		}
	}
}

// beatReader feeds the watchdog while a partition is read: reading a
// root partition takes seconds to minutes, and it is progress.
type beatReader struct {
	r    io.ReaderAt
	beat func()
}

func (b beatReader) ReadAt(p []byte, off int64) (int, error) {
	if b.beat != nil {
		b.beat()
	}
	return b.r.ReadAt(p, off)
}

// beatTarget feeds the watchdog on every read of a partition being
// written: its read-back against the signed sha256 takes seconds to
// minutes on a slow card, and it is progress.
type beatTarget struct {
	install.Target
	beat func()
}

func (b beatTarget) ReadAt(p []byte, off int64) (int, error) {
	if b.beat != nil {
		b.beat()
	}
	return b.Target.ReadAt(p, off)
}

// squashfsLength is the length of the squashfs at the start of r, from its
// superblock (magic "hsqs", bytes_used at offset 40), rounded up to 4 KiB;
// false when r holds none or the length does not fit r. Only a bound on
// what is read: every chunk copied from r is checked against the signed
// index, so a wrong length costs downloads, never correctness.
func squashfsLength(r Readable) (int64, bool) {
	var sb [48]byte
	if _, err := r.ReadAt(sb[:], 0); err != nil || string(sb[:4]) != "hsqs" {
		return 0, false
	}
	used := binary.LittleEndian.Uint64(sb[40:])
	n := (int64(used) + 4095) &^ 4095
	if used == 0 || used > uint64(r.Size()) || n > r.Size() {
		return 0, false
	}
	return n, true
}

// matchPatch hashes r (of size bytes) once, up to the largest FromSize
// of refs, and returns the patch made from what r holds.
func matchPatch(ctx context.Context, r io.ReaderAt, size int64, refs []channel.PatchRef) (channel.PatchRef, error) {
	var sizes []int64
	for _, p := range refs {
		sizes = append(sizes, p.FromSize)
	}
	sums, err := prefixSums(ctx, r, size, sizes)
	if err != nil {
		return channel.PatchRef{}, err
	}
	for _, p := range refs {
		if sums[p.FromSize] == p.From {
			return p, nil
		}
	}
	return channel.PatchRef{}, fmt.Errorf("it matches none of the %d patches", len(refs))
}

// prefixSums reads r (of size bytes) once, up to the largest of sizes,
// and returns the sha256 (hex) of its first n bytes for each n of sizes
// that fits.
func prefixSums(ctx context.Context, r io.ReaderAt, size int64, sizes []int64) (map[int64]string, error) {
	want := map[int64]bool{}
	var end int64
	for _, n := range sizes {
		if n > 0 && n <= size {
			want[n] = true
			end = max(end, n)
		}
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	sums := map[int64]string{}
	for at := int64(0); at < end; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(int64(len(buf)), end-at)
		for s := range want { // stop at every size on the way
			if s > at && s-at < n {
				n = s - at
			}
		}
		if _, err := r.ReadAt(buf[:n], at); err != nil {
			return nil, fmt.Errorf("read the running slot at %d: %w", at, err)
		}
		h.Write(buf[:n])
		at += n
		if want[at] {
			sums[at] = hex.EncodeToString(h.Sum(nil))
		}
	}
	return sums, nil
}
