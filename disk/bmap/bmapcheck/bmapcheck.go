// Package bmapcheck checks an image against its block map, the way a
// flasher's read-back does: every mapped range that carries a sha256 is
// read and hashed. Only tests import it; the flasher has its own
// read-back over the device (flash.verify).
package bmapcheck

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/pibake/pibake/disk/bmap"
)

// Verify reads every mapped range of img and compares its sha256. A range
// that differs gives an error wrapping bmap.ErrMismatch.
func Verify(m *bmap.Map, img io.ReaderAt) error {
	buf := make([]byte, 1<<20)
	for _, r := range m.Ranges {
		if r.SHA256 == "" {
			continue
		}
		off, n := m.Span(r)
		h := sha256.New()
		if _, err := io.CopyBuffer(h, io.NewSectionReader(img, off, n), buf); err != nil {
			return fmt.Errorf("bmap: reading blocks %d-%d: %w", r.First, r.Last, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != r.SHA256 {
			return fmt.Errorf("blocks %d-%d (bytes %d-%d) have sha256 %s, the bmap says %s: %w", r.First, r.Last, off, off+n-1, got, r.SHA256, bmap.ErrMismatch)
		}
	}
	return nil
}
