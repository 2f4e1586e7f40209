// Package container turns OCI images into what a pibake image carries: the
// linux/arm64 variant of each image, resolved from a registry, an OCI
// layout folder, a docker-archive file or Go source built by pibake,
// flattened into a plain directory tree that goes into the slot's
// read-only root filesystem, plus a Quadlet unit that runs it with podman
// (Rootfs=, no image store). An update therefore switches the OS and the
// containers together, a rollback brings the old containers back, and the
// first boot copies nothing.
package container

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Whiteout markers of the OCI layer format.
const (
	whPrefix = ".wh."
	whOpaque = ".wh..wh..opq"
)

type fentry struct {
	hdr tar.Header
	off int64 // of the data in the spool file
}

// flatTree is the tree the layers applied so far make, keyed by relative
// path; regular files' data is in spool.
type flatTree struct {
	entries  map[string]*fentry
	spool    *os.File
	spoolLen int64
}

// layerChanges is what one layer does to the tree below it.
type layerChanges struct {
	added              []*fentry
	whiteouts, opaques []string
}

// Flatten applies the image's layers in order (whiteouts and opaque
// folders included) and writes the resulting tree to w as a tar with
// relative names, sorted so that every folder comes before its contents.
// Owners, modes, links and extended attributes are kept; times are left
// for the caller to clamp. Layer data is spooled to a temporary file in
// tmpDir, not held in memory.
func Flatten(img v1.Image, tmpDir string, w io.Writer) (int, error) {
	layers, err := img.Layers()
	if err != nil {
		return 0, fmt.Errorf("container layers: %w", err)
	}
	spool, err := os.CreateTemp(tmpDir, "pibake-flatten-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	t := &flatTree{entries: map[string]*fentry{}, spool: spool}
	for i, l := range layers {
		ch, err := t.read(l)
		if err != nil {
			return 0, fmt.Errorf("layer %d: %w", i, err)
		}
		t.apply(ch)
	}
	return t.write(w)
}

// read reads one layer's entries, spooling the data of its files.
func (t *flatTree) read(l v1.Layer) (layerChanges, error) {
	var ch layerChanges
	rc, err := l.Uncompressed()
	if err != nil {
		return ch, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return ch, nil
		}
		if err != nil {
			return ch, err
		}
		k, err := clean(h.Name)
		if err != nil {
			return ch, err
		}
		if k == "" {
			continue // the layer's root folder
		}
		dir, base := path.Split(k)
		dir = strings.TrimSuffix(dir, "/")
		switch {
		case base == whOpaque:
			ch.opaques = append(ch.opaques, dir)
			continue
		case strings.HasPrefix(base, whPrefix):
			ch.whiteouts = append(ch.whiteouts, path.Join(dir, strings.TrimPrefix(base, whPrefix)))
			continue
		}
		e := &fentry{hdr: *h, off: t.spoolLen}
		e.hdr.Name = k
		if h.Typeflag == tar.TypeLink {
			if e.hdr.Linkname, err = clean(h.Linkname); err != nil {
				return ch, err
			}
		}
		if h.Typeflag == tar.TypeReg {
			n, err := io.Copy(t.spool, tr)
			if err != nil {
				return ch, fmt.Errorf("%s: %w", k, err)
			}
			t.spoolLen += n
		}
		ch.added = append(ch.added, e)
	}
}

// apply puts a layer over the tree: its whiteouts hide what the layers
// below it hold, then its entries replace theirs.
func (t *flatTree) apply(ch layerChanges) {
	for _, d := range ch.opaques {
		removeUnder(t.entries, d)
	}
	for _, p := range ch.whiteouts {
		delete(t.entries, p)
		removeUnder(t.entries, p)
	}
	for _, e := range ch.added {
		if old, ok := t.entries[e.hdr.Name]; ok && old.hdr.Typeflag == tar.TypeDir && e.hdr.Typeflag != tar.TypeDir {
			removeUnder(t.entries, e.hdr.Name) // a file replaces a folder
		}
		t.entries[e.hdr.Name] = e
	}
}

// write writes the tree as a sorted tar, adding the folders no layer
// named, and returns the number of entries.
func (t *flatTree) write(w io.Writer) (int, error) {
	tree := t.entries
	keys := make([]string, 0, len(tree))
	for k := range tree {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tw := tar.NewWriter(w)
	made := map[string]bool{}
	n := 0
	for _, k := range keys {
		for _, p := range parentsOf(k) {
			if _, ok := tree[p]; !ok && !made[p] {
				made[p] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: 0o755, Format: tar.FormatPAX}); err != nil {
					return n, err
				}
				n++
			}
		}
		e := tree[k]
		h := e.hdr
		if h.Typeflag == tar.TypeLink {
			if _, ok := tree[h.Linkname]; !ok {
				continue // its target was deleted by a later layer
			}
		}
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			return n, fmt.Errorf("flatten %s: %w", k, err)
		}
		if h.Typeflag == tar.TypeReg && h.Size > 0 {
			if _, err := io.Copy(tw, io.NewSectionReader(t.spool, e.off, h.Size)); err != nil {
				return n, fmt.Errorf("flatten %s: %w", k, err)
			}
		}
		n++
	}
	return n, tw.Close()
}

// clean makes a layer path relative and refuses one that climbs out.
func clean(name string) (string, error) {
	k := path.Clean("/" + name)
	if strings.Contains(name, "..") {
		for _, part := range strings.Split(name, "/") {
			if part == ".." {
				return "", fmt.Errorf("layer entry %q leaves the root: refused", name)
			}
		}
	}
	return strings.TrimPrefix(k, "/"), nil
}

func removeUnder(tree map[string]*fentry, dir string) {
	prefix := dir + "/"
	if dir == "" {
		prefix = ""
	}
	for k := range tree {
		if strings.HasPrefix(k, prefix) && k != dir {
			delete(tree, k)
		}
	}
}

func parentsOf(k string) []string {
	var out []string
	for d := path.Dir(k); d != "." && d != "/"; d = path.Dir(d) {
		out = append([]string{d}, out...)
	}
	return out
}
