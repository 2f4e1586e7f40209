package agent

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/install"
)

// tornSource serves a repository folder, except that the first read of
// the channel document returns the document as it was before the last
// publish: what a device reads when its poll falls between publish
// writing the new signature and the new document.
type tornSource struct {
	install.Dir
	old   []byte
	reads atomic.Int32
}

func (s *tornSource) Open(ctx context.Context, path string, offset int64) (io.ReadCloser, error) {
	if path == channel.DocumentPath("stable") && s.reads.Add(1) == 1 {
		return io.NopCloser(bytes.NewReader(s.old[offset:])), nil
	}
	return s.Dir.Open(ctx, path, offset)
}

// TestFetchTornPair: a document and a signature of two publishes are read
// again, not taken for a forgery (which, recorded against the install in
// progress, the device's report would call a failed update).
func TestFetchTornPair(t *testing.T) {
	r := newRepo(t)
	d := newDevice()
	booted := d.boot.PowerOn()
	if err := d.agent(r, booted).AfterBoot(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.publish(t, "2.0", false)
	old, err := os.ReadFile(filepath.Join(r.dir, filepath.FromSlash(channel.DocumentPath("stable"))))
	if err != nil {
		t.Fatal(err)
	}
	r.publish(t, "3.0", false)
	a := d.agent(r, booted)
	src := &tornSource{Dir: install.Dir{Path: r.dir}, old: old}
	a.Source = src
	st, _ := d.store.Load()
	doc, err := a.Fetch(context.Background(), st)
	if err != nil {
		t.Fatalf("Fetch with a torn pair: %v", err)
	}
	if doc.Version != "3.0" || src.reads.Load() != 2 {
		t.Fatalf("Fetch gave %s after %d reads of the document, want 3.0 after 2", doc.Version, src.reads.Load())
	}
}
