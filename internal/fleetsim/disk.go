package fleetsim

import (
	"errors"
	"io"
	"sync"
)

// pageSize is the unit a Part stores.
const pageSize = 4096

// pages interns the content of every page written by any Part: ten
// thousand devices holding the same release share its pages, so a fleet
// costs memory per release, not per device.
var pages sync.Map // string -> string

func intern(b []byte) string {
	if v, ok := pages.Load(string(b)); ok {
		return v.(string)
	}
	s := string(b)
	v, _ := pages.LoadOrStore(s, s)
	return v.(string)
}

// Part is a partition of a simulated device: size bytes, zero until
// written, stored as its written pages (a page of zeros is not stored).
// It is an install.Target and an agent.Readable. Writes reach it at
// once: power cuts are the campaign tests' business (updater/agent),
// not the fleet's.
type Part struct {
	mu    sync.Mutex
	size  int64
	pages map[int64]string
}

// NewPart returns a partition of size bytes holding init at its start.
func NewPart(size int64, init []byte) *Part {
	p := &Part{size: size, pages: map[int64]string{}}
	_, _ = p.WriteAt(init, 0)
	return p
}

// Size implements install.Target.
func (p *Part) Size() int64 { return p.size }

// Sync implements install.Target.
func (p *Part) Sync() error { return nil }

// WriteAt implements io.WriterAt.
func (p *Part) WriteAt(b []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(b)) > p.size {
		return 0, errors.New("fleetsim: write past the end of the partition")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	buf := make([]byte, pageSize)
	for n := 0; n < len(b); {
		at := off + int64(n)
		i, in := at/pageSize, int(at%pageSize)
		clear(buf)
		copy(buf, p.pages[i])
		c := copy(buf[in:], b[n:])
		n += c
		if zero(buf) {
			delete(p.pages, i)
		} else {
			p.pages[i] = intern(buf)
		}
	}
	return len(b), nil
}

// ReadAt implements io.ReaderAt.
func (p *Part) ReadAt(b []byte, off int64) (int, error) {
	if off >= p.size {
		return 0, io.EOF
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	want := len(b)
	if int64(want) > p.size-off {
		b = b[:p.size-off]
	}
	for n := 0; n < len(b); {
		at := off + int64(n)
		i, in := at/pageSize, int(at%pageSize)
		page := p.pages[i]
		end := min(len(b), n+pageSize-in)
		if page == "" {
			clear(b[n:end])
		} else {
			copy(b[n:end], page[in:])
		}
		n = end
	}
	if len(b) < want {
		return len(b), io.EOF
	}
	return len(b), nil
}

func zero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
