package bootinit

// The /etc overlay's upper layer lives on the data partition, so a file
// copied up once (an edit, a chmod, a package script) hides every later
// release's version of it. At every boot, before /etc is mounted, the init
// reconciles that layer with the release (EtcReconcile): the copies of the
// files this release changed since the release that booted last (by the
// two releases' lists, etcsum) are set aside, so the release's versions
// apply; copies of files it did not change keep the local edit; /etc/pibake
// is the image's own and never comes from the data partition. What is set
// aside stays in replaced/ for an administrator; if the very next boot
// returns to the release before (a failed trial's fallback, a rollback),
// the copies come back.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pibake/pibake/etcsum"
	"github.com/pibake/pibake/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// Records of the reconciliation, in the overlay's folder for /etc on the
// data partition (next to upper/ and work/).
const (
	// EtcListName is the list of the release that booted last.
	EtcListName = "release.sha256"
	// ReplacedDir holds what was set aside: one folder per boot that set
	// something aside, NNNN-VERSION/<path under /etc>, and its record
	// NNNN-VERSION.json.
	ReplacedDir = "replaced"
	// ImageOwned is the folder of /etc that only the image writes
	// (/etc/pibake): a copy of it on the data partition is always set
	// aside and never put back.
	ImageOwned = "pibake"
)

// DeviceOwned are the paths of /etc (relative, a folder covering what is
// under it) that each device makes its own, at first boot or by
// provisioning (provision's paths): their copy on the data partition is
// kept even when a release changes the file.
var DeviceOwned = []string{"hostname", "hosts", "localtime", "timezone", "machine-id",
	"wpa_supplicant/wpa_supplicant-wlan0.conf", "ssh/authorized_keys.d", "ssh/sshd_config.d/pibake-provision.conf"}

// accountFiles are merged rather than set aside when a release changes
// them (mergeAccounts): the release's entries, each replaced by the
// device's entry of the same name, then the device's own entries. A
// provisioned password survives a release that adds a system user.
var accountFiles = []string{"passwd", "group", "shadow", "gshadow"}

// EtcReconcile reconciles /etc's upper layer with the booting release.
type EtcReconcile struct {
	List    string // this release's list (etcsum.Path in its root); missing: an image that has none
	Lower   string // this release's /etc (before the overlay is mounted)
	Release string // this release's /etc/pibake/release, for its version
	Upper   string // the /etc overlay's upper layer
	Dir     string // where its records live: the /etc overlay's folder
	Log     func(format string, a ...any)
}

// batch is the record of one boot that set copies aside: moving from the
// release whose list has digest From to the one of To.
type batch struct {
	From, To string
	Paths    []string // relative to /etc, as set aside
	Restored bool     `json:",omitempty"`
}

// Run reconciles. It never fails the boot for a record it cannot read: a
// list that cannot be read counts as none (nothing is known to have
// changed) and is logged.
func (r EtcReconcile) Run() error {
	cur, curSum := r.readList(r.List)
	old, oldSum := r.readList(filepath.Join(r.Dir, EtcListName))
	undo := r.undoable(curSum, oldSum)
	var changed []string
	switch {
	case cur == nil:
		r.Log("%s: no list of this release's /etc: its copies on the data partition stay as they are", r.List)
	case old == nil:
		if n := r.count(); n > 0 {
			r.Log("/etc: no record of the release that booted before: the data partition's %d copies stay as they are", n)
		}
	case oldSum != curSum:
		changed = etcsum.Changed(old, cur)
	}
	var aside, merge []string
	for _, p := range append([]string{ImageOwned}, changed...) {
		h := r.hiding(p)
		switch {
		case h == "" || slices.ContainsFunc(aside, func(a string) bool { return h == a || strings.HasPrefix(h, a+"/") }):
		case under(h, DeviceOwned):
			r.Log("/etc/%s: this release changed it, but it is a setting of this device: the data partition's copy is kept", h)
		case slices.Contains(accountFiles, h) && r.regular(h):
			aside, merge = append(aside, h), append(merge, h)
		default:
			aside = append(aside, h)
		}
	}
	if len(aside) > 0 {
		batch, err := r.setAside(aside, oldSum, curSum)
		if err != nil {
			return err
		}
		for _, p := range merge {
			if err := r.merge(p, filepath.Join(batch, p)); err != nil {
				return err
			}
		}
	}
	if undo != "" {
		if err := r.restore(undo); err != nil {
			return err
		}
	}
	return r.record(cur)
}

// readList reads a list and the sha256 of its bytes; nil when there is
// none or it cannot be read.
func (r EtcReconcile) readList(path string) (etcsum.List, string) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ""
	}
	if err == nil {
		var l etcsum.List
		if l, err = etcsum.Parse(data); err == nil {
			sum := sha256.Sum256(data)
			return l, hex.EncodeToString(sum[:])
		}
	}
	r.Log("%s: %v: taken as no list", path, err)
	return nil, ""
}

// hiding returns the entry of the upper layer that hides this release's
// p (relative to /etc): p itself (a copy, or a whiteout that deletes it),
// or a parent that is not a folder or is an opaque folder (both hide the
// release's whole folder). "" when nothing does.
func (r EtcReconcile) hiding(p string) string {
	parts := strings.Split(p, "/")
	for i := range parts {
		q := strings.Join(parts[:i+1], "/")
		fi, err := os.Lstat(filepath.Join(r.Upper, q))
		if err != nil {
			return ""
		}
		if i == len(parts)-1 || !fi.IsDir() || opaque(filepath.Join(r.Upper, q)) {
			return q
		}
	}
	return ""
}

// opaque reports whether overlayfs marked the upper folder opaque (it was
// removed and made again): the lower folder's entries are then hidden.
func opaque(dir string) bool {
	buf := make([]byte, 1)
	n, err := unix.Lgetxattr(dir, "trusted.overlay.opaque", buf)
	return err == nil && n == 1 && buf[0] == 'y'
}

// count is the number of entries in the upper layer.
func (r EtcReconcile) count() int {
	n := 0
	_ = filepath.WalkDir(r.Upper, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// setAside moves each of paths from the upper layer into a new batch and
// returns the batch's folder.
func (r EtcReconcile) setAside(paths []string, from, to string) (string, error) {
	id := fmt.Sprintf("%04d-%s", r.nextBatch(), releaseVersion(r.Release))
	dest := filepath.Join(r.Dir, ReplacedDir, id)
	for _, p := range paths {
		target := filepath.Join(dest, p)
		if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
			return "", fmt.Errorf("set aside /etc/%s: %w", p, err)
		}
		if err := os.Rename(filepath.Join(r.Upper, p), target); err != nil {
			return "", fmt.Errorf("set aside /etc/%s: %w", p, err)
		}
		why := "this release changed it"
		if p == ImageOwned {
			why = "the image's own folder never comes from the data partition"
		}
		r.Log("/etc/%s: %s: the data partition's copy is set aside in %s", p, why, target)
	}
	data, err := json.Marshal(batch{From: from, To: to, Paths: paths})
	if err != nil {
		return "", err
	}
	return dest, atomicfile.Write(dest+".json", data, 0o600)
}

// nextBatch is one more than the highest batch number so far.
func (r EtcReconcile) nextBatch() int {
	entries, _ := os.ReadDir(filepath.Join(r.Dir, ReplacedDir))
	n := 0
	for _, e := range entries {
		num, _, _ := strings.Cut(e.Name(), "-")
		if v, err := strconv.Atoi(num); err == nil {
			n = max(n, v)
		}
	}
	return n + 1
}

// undoable returns the record of the last batch if this boot undoes it:
// this release is the batch's From and the release that booted last its
// To (a failed trial's fallback, a rollback).
func (r EtcReconcile) undoable(curSum, oldSum string) string {
	if curSum == "" || oldSum == "" || curSum == oldSum {
		return ""
	}
	last := r.nextBatch() - 1
	matches, _ := filepath.Glob(filepath.Join(r.Dir, ReplacedDir, fmt.Sprintf("%04d-*.json", last)))
	if last < 1 || len(matches) != 1 {
		return ""
	}
	data, err := os.ReadFile(matches[0])
	var b batch
	if err != nil || json.Unmarshal(data, &b) != nil || b.Restored || b.From != curSum || b.To != oldSum {
		return ""
	}
	return matches[0]
}

// restore puts back the copies the batch recorded in record set aside,
// where nothing has taken their place (setAside has just moved the copies
// made on the release being left). Copies of the image's own folder never
// come back.
func (r EtcReconcile) restore(record string) error {
	data, err := os.ReadFile(record)
	var b batch
	if err != nil || json.Unmarshal(data, &b) != nil {
		return nil
	}
	dir := strings.TrimSuffix(record, ".json")
	for _, p := range b.Paths {
		back := filepath.Join(r.Upper, p)
		if _, err := os.Lstat(back); p == ImageOwned || err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(back), 0o755); err != nil {
			return fmt.Errorf("put back /etc/%s: %w", p, err)
		}
		if err := os.Rename(filepath.Join(dir, p), back); err != nil {
			r.Log("/etc/%s: cannot put the data partition's copy back: %v", p, err)
			continue
		}
		r.Log("/etc/%s: back on the release it was set aside from: the data partition's copy is put back", p)
	}
	b.Restored = true
	data, _ = json.Marshal(b)
	return atomicfile.Write(record, data, 0o600)
}

// record makes the moves durable, then keeps this release's list as the
// one that booted last (none: the release has no list, and the next one
// cannot know what changed).
func (r EtcReconcile) record(cur etcsum.List) error {
	if f, err := os.Open(r.Dir); err == nil {
		_ = unix.Syncfs(int(f.Fd()))
		f.Close()
	}
	path := filepath.Join(r.Dir, EtcListName)
	if cur == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("/etc records: %w", err)
		}
		return nil
	}
	data, err := os.ReadFile(r.List)
	if err != nil {
		return fmt.Errorf("/etc records: %w", err)
	}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return fmt.Errorf("/etc records: %w", err)
	}
	return nil
}

// releaseVersion is PIBAKE_VERSION of a release file, made safe as a file
// name; "unknown" without one.
func releaseVersion(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PIBAKE_VERSION="); ok && v != "" {
			return strings.Map(func(c rune) rune {
				if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._+-", c) {
					return c
				}
				return '_'
			}, v)
		}
	}
	return "unknown"
}
