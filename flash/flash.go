// Package flash writes a pibake image (NAME.img or NAME.img.zst) to a
// disk, once it has read what the image says of itself (ReadImage: its
// partition table is pibake's layout, its boot slot A's pibake.json
// names image, version, board and environment): only the blocks its bmap lists (every block when there is none),
// each run checked against the map's sha256 as it is written and again by
// reading the disk back past the page cache, then optionally places a
// provisioning file on the bootsel partition.
//
// It refuses, before opening the target: a file that is not a pibake
// image (a folder, a block map, a manifest, an empty or foreign file),
// and for a card an image of an emulated board (qemu). It refuses,
// before writing a byte: a disk that is mounted or has a
// mounted partition (/proc/self/mountinfo) or that another holder has
// open exclusively (O_EXCL), a partition instead of a whole disk, the
// disk that holds / (unless Force), a disk smaller than the image, a
// bmap whose image size differs from the image's, and, without a bmap,
// an image shorter than what declares its size: the manifest.json next
// to it that names it, else its own partition table (a raw image cut
// short by an interrupted download is not "verified" onto a card). A
// range whose bytes do not match the bmap (or, without one, an image
// whose sha256 is not its manifest's), or a .zst that is cut or damaged,
// stops with an error that says the disk holds a partial image.
//
// The target is a block device (a whole disk, or a loop device), or a
// regular file outside /dev, grown to the image's size (an image file
// for tests or a copy). Under /dev, by its path or through a symlink,
// only a block device is accepted: a regular file there is in RAM
// (/dev/shm), not on a card.
package flash

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/pibake/pibake/disk/bmap"
	"github.com/pibake/pibake/release"
)

// Sentinel errors callers and tests branch on.
var (
	ErrMounted  = errors.New("the disk is in use")
	ErrRootDisk = errors.New("the disk holds the running system's /")
	ErrTooSmall = errors.New("the disk is smaller than the image")
	ErrDamaged  = release.ErrDamaged
	ErrNotDisk  = errors.New("not a whole disk")
	// ErrMismatch is bmap.ErrMismatch: image and map disagree.
	ErrMismatch = bmap.ErrMismatch
)

// Options configure one Flash.
type Options struct {
	Image  string // NAME.img or NAME.img.zst
	Bmap   string // "" looks for NAME.bmap (or NAME.img.bmap) next to Image
	NoBmap bool   // write every block even if a bmap is there
	Device string // a block device, or a regular file outside /dev
	Force  bool   // allow the disk that holds /
	// Provision, if not nil, is placed as ProvisionName in the root of the
	// bootsel partition after the image is written and verified.
	Provision []byte
	// Time stamps the provisioning file's directory entry.
	Time     time.Time
	Progress io.Writer // nil means none
	Terminal bool      // Progress is a terminal: one redrawn bar
	// Announce, if not nil, gets one line before the target is opened:
	// the image's name, version, board and environment, and the target.
	Announce io.Writer
	Log      *slog.Logger

	host host // /proc and /sys; the zero value is the real ones
}

// Result says what Flash did.
type Result struct {
	Info      *ImageInfo // what the image says of itself
	ImageSize int64
	Bmap      string // the map used, "" if none
	Written   int64  // bytes written to the device
	Verify    string // how the read-back bypassed the page cache
	Elapsed   time.Duration
}

// FindBmap returns the block map next to image: NAME.bmap, then
// NAME.img.bmap (bmaptool's habit), or "" if there is none.
func FindBmap(image string) string {
	base := strings.TrimSuffix(image, ".zst")
	for _, p := range []string{strings.TrimSuffix(base, ".img") + ".bmap", base + ".bmap"} {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// Flash writes opts.Image to opts.Device.
func Flash(ctx context.Context, opts Options) (*Result, error) {
	start := time.Now()
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	info, err := ReadImage(opts.Image)
	if err != nil {
		return nil, err
	}
	if err := checkBoard(info, isBlock(opts.Device)); err != nil {
		return nil, err
	}
	res := &Result{Info: info}
	if opts.Announce != nil {
		fmt.Fprintf(opts.Announce, "writing %s to %s: %s\n", opts.Image, opts.Device, info)
	}
	src, err := openSource(opts.Image)
	if err != nil {
		return nil, err
	}
	defer src.Close()

	m, raw, err := imageMap(opts, src, res)
	if err != nil {
		return nil, err
	}
	res.ImageSize = m.ImageSize

	dev, err := openDevice(opts.Device, opts.Image, m.ImageSize, opts.Force, opts.host)
	if err != nil {
		return nil, err
	}
	defer dev.f.Close()
	log.Info("flashing", "image", opts.Image, "bmap", res.Bmap, "device", opts.Device, "mapped", m.MappedBytes(), "size", m.ImageSize)

	prog := newProgress(opts.Progress, opts.Terminal, "write", m.MappedBytes())
	sums, err := write(ctx, src, dev.f, m, prog)
	prog.done()
	res.Written = prog.n
	if err != nil {
		return res, fmt.Errorf("flash %s: %w; %s now holds a partial image: flash it again", opts.Device, err, opts.Device)
	}
	if err := dev.f.Sync(); err != nil {
		return res, fmt.Errorf("flash %s: sync: %w", opts.Device, err)
	}
	if err := raw.checkWritten(dev.f, sums, opts.Device, m.ImageSize); err != nil {
		return res, fmt.Errorf("%w; %s now holds an image that is not the build's: flash it again", err, opts.Device)
	}

	prog = newProgress(opts.Progress, opts.Terminal, "verify", m.MappedBytes())
	res.Verify, err = verify(ctx, dev, m, sums, prog)
	prog.done()
	if err != nil {
		return res, fmt.Errorf("flash %s: verify: %w", opts.Device, err)
	}
	if opts.Provision != nil {
		if err := PutProvision(dev.f, m.ImageSize, opts.Provision, opts.Time); err != nil {
			return res, fmt.Errorf("flash %s: %w", opts.Device, err)
		}
		if err := dev.f.Sync(); err != nil {
			return res, fmt.Errorf("flash %s: sync: %w", opts.Device, err)
		}
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// imageMap is the map the image is written by: its bmap, checked
// against the image's size, or without one every block, once the image
// is checked against what declares its size (manifest.json, else its
// partition table). raw is that declaration (nil with a bmap).
func imageMap(opts Options, src *source, res *Result) (*bmap.Map, *declared, error) {
	if !opts.NoBmap {
		res.Bmap = opts.Bmap
		if res.Bmap == "" {
			res.Bmap = FindBmap(opts.Image)
		}
	}
	if res.Bmap == "" {
		if src.size < 0 {
			return nil, nil, fmt.Errorf("flash: %s does not record its size and there is no bmap next to it: pass --bmap FILE", opts.Image)
		}
		raw := manifestFor(opts.Image)
		if err := raw.checkSize(opts.Image, src.size); err != nil {
			return nil, nil, err
		}
		if raw.size < 0 && src.at != nil {
			if err := checkTable(src.at, opts.Image, src.size); err != nil {
				return nil, nil, err
			}
		}
		return bmap.Full(src.size), &raw, nil
	}
	data, err := os.ReadFile(res.Bmap)
	if err != nil {
		return nil, nil, fmt.Errorf("flash: bmap: %w", err)
	}
	m, err := bmap.Parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("flash: %s: %w (pass --bmap FILE with the image's own map, or --no-bmap to write every block)", res.Bmap, err)
	}
	if src.size >= 0 && src.size != m.ImageSize {
		return nil, nil, fmt.Errorf("flash: %s is %d bytes but %s is the map of a %d-byte image: %w; use the bmap built with this image", opts.Image, src.size, res.Bmap, m.ImageSize, ErrMismatch)
	}
	return m, nil, nil
}

// checkWritten checks an image written without a bmap (sums is its one
// range's sha256 as written) against its manifest's sha256, or, for a
// compressed one with no manifest, the partition table it put on the
// disk against its size. Nothing to check with a bmap (raw nil): every
// range was checked against the map's sha256.
func (raw *declared) checkWritten(disk io.ReaderAt, sums []string, name string, size int64) error {
	switch {
	case raw == nil:
		return nil
	case raw.sha256 != "":
		if sums[0] != raw.sha256 {
			return fmt.Errorf("flash: the image written has sha256 %s, %s says %s: %w (the image was changed or damaged; compare SHA256SUMS)", sums[0], raw.by, raw.sha256, ErrMismatch)
		}
		return nil
	}
	return checkTable(disk, name, size)
}

// source is the image as a stream: a plain file or a zstd decoder.
type source struct {
	r     io.Reader
	at    io.ReaderAt // the file, when it is not compressed
	size  int64       // -1 if unknown
	zst   bool
	name  string
	close func()
}

func (s *source) Close() { s.close() }

func openSource(path string) (*source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("flash: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("flash: %w", err)
	}
	if !strings.HasSuffix(path, ".zst") {
		return &source{r: f, at: f, size: st.Size(), name: path, close: func() { f.Close() }}, nil
	}
	s := &source{size: -1, zst: true, name: path}
	var hdr zstd.Header
	head := make([]byte, zstd.HeaderMaxSize)
	n, _ := io.ReadFull(f, head)
	if err := hdr.Decode(head[:n]); err != nil {
		f.Close()
		return nil, fmt.Errorf("flash: %s is not zstd-compressed (%v): %w", path, err, ErrDamaged)
	}
	if hdr.HasFCS {
		s.size = int64(hdr.FrameContentSize)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	dec, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxWindow(64<<20))
	if err != nil {
		f.Close()
		return nil, err
	}
	s.r = dec
	s.close = func() { dec.Close(); f.Close() }
	return s, nil
}

// readErr names a failed read of the image.
func (s *source) readErr(off int64, err error) error {
	if s.zst {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%s at byte %d of the image: %v: %w; download it again (compare SHA256SUMS)", s.name, off, err, ErrDamaged)
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%s ends at byte %d, before the bmap's last range: %w", s.name, off, ErrMismatch)
	}
	return fmt.Errorf("reading %s at %d: %w", s.name, off, err)
}

// write streams the image and writes the mapped ranges, hashing each; it
// returns every range's sha256 as written.
func write(ctx context.Context, src *source, dst io.WriterAt, m *bmap.Map, prog *progress) ([]string, error) {
	buf := make([]byte, 1<<20)
	var pos int64
	sums := make([]string, len(m.Ranges))
	for i, r := range m.Ranges {
		off, n := m.Span(r)
		if skip := off - pos; skip > 0 {
			if k, err := io.CopyBuffer(io.Discard, io.LimitReader(src.r, skip), buf); err != nil || k < skip {
				return nil, src.readErr(pos+k, orEOF(err))
			}
			pos = off
		}
		h := sha256.New()
		for left := n; left > 0; {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			chunk := buf[:min(left, int64(len(buf)))]
			k, err := io.ReadFull(src.r, chunk)
			if err != nil {
				return nil, src.readErr(pos+int64(k), err)
			}
			h.Write(chunk)
			if _, err := dst.WriteAt(chunk, pos); err != nil {
				return nil, fmt.Errorf("writing at byte %d: %w", pos, err)
			}
			pos += int64(k)
			left -= int64(k)
			prog.add(int64(k))
		}
		sums[i] = hex.EncodeToString(h.Sum(nil))
		if r.SHA256 != "" && sums[i] != r.SHA256 {
			return nil, fmt.Errorf("blocks %d-%d (bytes %d-%d) of the image have sha256 %s, the bmap says %s: %w: the bmap is another image's, or the image was changed or damaged (compare SHA256SUMS)", r.First, r.Last, off, off+n-1, sums[i], r.SHA256, ErrMismatch)
		}
	}
	// Read the rest: the decoder checks the frame's checksum at its end,
	// and the image must be exactly the map's size.
	k, err := io.CopyBuffer(io.Discard, src.r, buf)
	if err != nil {
		return nil, src.readErr(pos+k, err)
	}
	if pos+k != m.ImageSize {
		return nil, fmt.Errorf("%s holds %d bytes, the bmap maps a %d-byte image: %w", src.name, pos+k, m.ImageSize, ErrMismatch)
	}
	return sums, nil
}

func orEOF(err error) error {
	if err == nil {
		return io.ErrUnexpectedEOF
	}
	return err
}

// isBlock says whether path is (or leads to) a block device: a card.
func isBlock(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0
}

// device is the opened target.
type device struct {
	f     *os.File
	path  string
	block bool
	size  int64
}

func openDevice(path, image string, imageSize int64, force bool, h host) (*device, error) {
	st, err := os.Stat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("flash: %w", err)
	}
	if err := checkTarget(path, st); err != nil {
		return nil, err
	}
	if err == nil && st.Mode()&os.ModeDevice != 0 {
		if st.Mode()&os.ModeCharDevice != 0 {
			return nil, fmt.Errorf("flash: %s is a character device, not a disk: %w", path, ErrNotDisk)
		}
		if err := h.check(path, st, force); err != nil {
			return nil, err
		}
		f, err := openExclusive(path)
		if err != nil {
			return nil, err
		}
		size, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("flash: size of %s: %w", path, err)
		}
		if size < imageSize {
			f.Close()
			return nil, fmt.Errorf("flash: %s has %d bytes (%d MiB), the image needs %d (%d MiB): %w; use a larger card", path, size, size>>20, imageSize, (imageSize+1<<20-1)>>20, ErrTooSmall)
		}
		return &device{f: f, path: path, block: true, size: size}, nil
	}
	if err == nil && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("flash: %s is neither a block device nor a regular file: %w", path, ErrNotDisk)
	}
	if err == nil {
		if ist, ierr := os.Stat(image); ierr == nil && os.SameFile(st, ist) {
			return nil, fmt.Errorf("flash: %s is the image itself", path)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("flash: %w", err)
	}
	if fst, err := f.Stat(); err == nil && fst.Size() < imageSize {
		if err := f.Truncate(imageSize); err != nil {
			f.Close()
			return nil, fmt.Errorf("flash: grow %s to %d bytes: %w", path, imageSize, err)
		}
	}
	return &device{f: f, path: filepath.Clean(path), size: max(imageSize, 0)}, nil
}
