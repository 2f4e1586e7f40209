package release

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpen: a .zst reads back as the image it holds, at any offset; a
// cut one, an empty file and a folder are refused with a clear error.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	img, written := testImage(t, dir)
	if _, err := Write(context.Background(), dir, filepath.Base(img), written); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(img)
	zst := filepath.Join(dir, Name(filepath.Base(img))+ZstSuffix)
	for _, p := range []string{img, zst} {
		im, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if im.Size() != int64(len(want)) {
			t.Errorf("%s: size %d, want %d", p, im.Size(), len(want))
		}
		for _, off := range []int64{0, 510, int64(len(want)) / 2, int64(len(want)) - 4096} {
			got := make([]byte, 4096)
			n, err := im.ReadAt(got, off)
			if err != nil && !(errors.Is(err, io.EOF) && off+int64(n) == int64(len(want))) {
				t.Errorf("%s at %d: %v", p, off, err)
			}
			if !bytes.Equal(got[:n], want[off:off+int64(n)]) {
				t.Errorf("%s at %d: other bytes", p, off)
			}
		}
		got, err := io.ReadAll(io.NewSectionReader(im, 0, im.Size()))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: read whole: %v", p, err)
		}
		im.Close()
	}
	data, _ := os.ReadFile(zst)
	cut := filepath.Join(dir, "cut.img.zst")
	os.WriteFile(cut, data[:len(data)/2], 0o644)
	im, err := Open(cut)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := im.ReadAt(make([]byte, 10), im.Size()-10); !errors.Is(err, ErrDamaged) {
		t.Errorf("the end of a cut .zst: %v", err)
	}
	im.Close()
	empty := filepath.Join(dir, "empty.img.zst")
	os.WriteFile(empty, nil, 0o644)
	for p, want := range map[string]string{empty: "is empty", dir: "is a folder"} {
		if _, err := Open(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%s): %v, want %q", p, err, want)
		}
	}
}
