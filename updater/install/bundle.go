package install

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/pibake/pibake/updater/channel"
)

// Bundle reads a repository packed into one uncompressed tar file (what
// `pibake bundle` writes) for offline updates from a file or USB stick.
// The tar is indexed once; each file is then read in place, so a bundle
// of any size costs no extra space on the device.
type Bundle struct {
	path  string
	files map[string]section
}

type section struct{ off, size int64 }

// OpenBundle indexes the tar file at p.
func OpenBundle(p string) (*Bundle, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("update bundle: %w", err)
	}
	defer f.Close()
	b := &Bundle{path: p, files: map[string]section{}}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("update bundle %s is not a readable tar file (%v): copy it again", p, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		// archive/tar has read exactly the header blocks: the file's
		// data starts at the current offset.
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, fmt.Errorf("update bundle %s: %w", p, err)
		}
		b.files[path.Clean(strings.TrimPrefix(h.Name, "./"))] = section{off, h.Size}
	}
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("update bundle: %w", err)
	}
	for name, s := range b.files {
		if s.off+s.size > st.Size() {
			return nil, fmt.Errorf("update bundle %s is truncated: %s needs %d bytes, the file ends at %d: copy it again", p, name, s.off+s.size, st.Size())
		}
	}
	if len(b.Channels()) == 0 {
		return nil, fmt.Errorf("update bundle %s holds no %s: make it with pibake bundle", p, channel.DocumentPath("*"))
	}
	return b, nil
}

func (b *Bundle) String() string { return b.path }

// Channels lists the channels the bundle carries.
func (b *Bundle) Channels() []string {
	var out []string
	for name := range b.files {
		if c, ok := channel.DocumentName(name); ok {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

// Open implements Source.
func (b *Bundle) Open(_ context.Context, name string, offset int64) (io.ReadCloser, error) {
	s, ok := b.files[path.Clean(name)]
	if !ok {
		return nil, fmt.Errorf("%s in bundle %s: %w", name, b.path, ErrNotFound)
	}
	f, err := os.Open(b.path)
	if err != nil {
		return nil, fmt.Errorf("update bundle: %w", err)
	}
	if offset > s.size {
		offset = s.size
	}
	return readCloser{io.NewSectionReader(f, s.off+offset, s.size-offset), f}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// ErrNoChannel means a bundle does not carry the channel asked for.
var ErrNoChannel = errors.New("the bundle does not carry this channel")
