// Package etcsum is the list of a release's /etc, one digest per file,
// that the build writes into the read-only root (Path) and the initramfs
// init reads at every boot. /etc is an overlay whose writable layer lives
// on the data partition: a file copied up there once (an edit, a chmod)
// hides every later release's version of it. Comparing the list of the
// release that booted last with this release's says which files the
// release changed; the init sets the data partition's copies of exactly
// those aside (bootinit's reconciliation), so a release's /etc changes
// apply and local edits of files it did not change are kept.
//
// The format: one line per entry, sorted by path, "<sha256 hex>  <path>"
// with the path relative to /etc (as sha256sum prints it). The digest
// covers what a release decides about the entry: its kind (file or
// symlink), mode, owner and content or target (Digest), so a change of
// any of them counts. Folders are not listed; paths never hold a newline.
// Standard library only: both the builder and pibake-init import it.
package etcsum

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// Path is where an image carries its list: under /usr, which no overlay
// covers.
const Path = "/usr/lib/pibake/etc.sha256"

// Kinds of entry.
const (
	File    = "file"
	Symlink = "symlink"
)

// List maps a path relative to /etc to its digest.
type List map[string]string

// Digest is an entry's digest: its kind, mode bits, owner, and content
// (a file) or target (a symlink).
func Digest(kind string, mode int64, uid, gid int, content []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "pibake-etc %s %o %d:%d\n", kind, mode&0o7777, uid, gid)
	h.Write(content)
	return hex.EncodeToString(h.Sum(nil))
}

// Marshal writes the list in its format.
func (l List) Marshal() []byte {
	paths := make([]string, 0, len(l))
	for p := range l {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	var b bytes.Buffer
	for _, p := range paths {
		fmt.Fprintf(&b, "%s  %s\n", l[p], p)
	}
	return b.Bytes()
}

// Parse reads a list strictly: every line a digest, two spaces and a
// clean relative path, sorted, none twice.
func Parse(data []byte) (List, error) {
	l := List{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	prev := ""
	for n := 1; sc.Scan(); n++ {
		sum, p, ok := strings.Cut(sc.Text(), "  ")
		if _, err := hex.DecodeString(sum); !ok || err != nil || len(sum) != 64 {
			return nil, fmt.Errorf("etc list line %d: want \"<sha256>  <path>\"", n)
		}
		if !Clean(p) {
			return nil, fmt.Errorf("etc list line %d: %q is not a clean path relative to /etc", n, p)
		}
		if n > 1 && p <= prev {
			return nil, fmt.Errorf("etc list line %d: %s is out of order or listed twice", n, p)
		}
		l[p], prev = sum, p
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("etc list: %w", err)
	}
	return l, nil
}

// Clean reports whether p is a path relative to /etc that names an entry
// inside it: no leading or trailing slash, no empty, "." or ".." part.
func Clean(p string) bool {
	if p == "" {
		return false
	}
	for part := range strings.SplitSeq(p, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}

// Changed returns, sorted, the paths whose entry differs between two
// releases' lists: changed, added or removed.
func Changed(old, cur List) []string {
	var out []string
	for p, d := range cur {
		if old[p] != d {
			out = append(out, p)
		}
	}
	for p := range old {
		if _, ok := cur[p]; !ok {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}
