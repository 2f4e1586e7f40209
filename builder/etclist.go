package builder

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pibake/pibake/builder/rootfs"
	"github.com/pibake/pibake/etcsum"
)

// etcList is the list of /etc (etcsum) of the root filesystem that spec
// makes from base, which the image carries at etcsum.Path: pibake-init
// compares it with the list of the release that booted before to set
// aside the data partition's copies of the files this release changed.
// It reads one extra pass of the root's tar, without the container trees
// (they live under /usr), hashing the entries under etc/.
func etcList(ctx context.Context, base *rootfs.Base, spec rootfs.Spec) ([]byte, error) {
	for _, t := range spec.Trees {
		if k := strings.Trim(t.Dest, "/"); k == "etc" || strings.HasPrefix(k, "etc/") {
			return nil, fmt.Errorf("etc list: a tree at %s is not listed", t.Dest)
		}
	}
	spec.Trees = nil
	pr, pw := io.Pipe()
	go func() {
		_, err := base.Write(ctx, spec, pw)
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	l := etcsum.List{}
	contents := map[string][]byte{} // regular files under etc/, for hard links
	tr := tar.NewReader(pr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return l.Marshal(), nil
		}
		if err != nil {
			return nil, fmt.Errorf("etc list: %w", err)
		}
		rel, ok := etcPath(h.Name)
		if !ok {
			continue
		}
		if strings.ContainsAny(rel, "\n\r") || !etcsum.Clean(rel) {
			return nil, fmt.Errorf("etc list: /etc/%q cannot be listed: rename it", rel)
		}
		switch h.Typeflag {
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				return nil, fmt.Errorf("etc list: /etc/%s: %w", rel, err)
			}
			contents[rel] = data
			l[rel] = etcsum.Digest(etcsum.File, h.Mode, h.Uid, h.Gid, data)
		case tar.TypeSymlink:
			l[rel] = etcsum.Digest(etcsum.Symlink, h.Mode, h.Uid, h.Gid, []byte(h.Linkname))
		case tar.TypeLink:
			// A hard link is the file it names: within /etc, its content;
			// elsewhere, its name (what it holds is not read).
			if target, ok := etcPath(h.Linkname); ok && contents[target] != nil {
				l[rel] = etcsum.Digest(etcsum.File, h.Mode, h.Uid, h.Gid, contents[target])
			} else {
				l[rel] = etcsum.Digest("hardlink", h.Mode, h.Uid, h.Gid, []byte(h.Linkname))
			}
		}
	}
}

// etcPath is a tar entry's path relative to /etc, if it is under it.
func etcPath(name string) (string, bool) {
	k := strings.Trim(strings.TrimPrefix(name, "./"), "/")
	return strings.CutPrefix(k, "etc/")
}
