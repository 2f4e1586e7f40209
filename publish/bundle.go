package publish

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/pibake/pibake/updater/channel"
)

// Bundle packs a channel's current release, its signed document and the
// artifacts it names, into one uncompressed tar file for offline updates:
// `pibake-updater install FILE` reads it in place. The tar is the same
// bytes for the same repository content (sorted, fixed times and owners).
// It returns the channel document it packed.
func Bundle(ctx context.Context, repo, name, out string) (*channel.Document, error) {
	docPath := filepath.Join(repo, filepath.FromSlash(channel.DocumentPath(name)))
	raw, err := os.ReadFile(docPath)
	if err != nil {
		return nil, fmt.Errorf("bundle: channel %s in %s: %w", name, repo, err)
	}
	var d channel.Document
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("bundle: %s is unreadable (%v): publish the channel again", docPath, err)
	}
	// Only the paths a valid document can name (channel.BlobPath)
	// are packed: a document edited in the repository cannot pull other
	// files of this machine into the bundle.
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("bundle: %s: %w: publish the channel again", docPath, err)
	}
	// Each artifact is checked against the document's sha256 as it is
	// packed: the device would refuse a blob someone changed in the
	// repository, after carrying the whole bundle to it.
	files := []bundled{{path: channel.DocumentPath(name)}, {path: channel.SignaturePath(channel.DocumentPath(name))}}
	for _, a := range d.Artifacts {
		files = append(files, bundled{path: a.Path, size: a.Size, sha256: a.SHA256})
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 1<<20)
	tw := tar.NewWriter(bw)
	dirs := map[string]bool{}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			tmp.Close()
			return nil, err
		}
		if err := addFile(tw, repo, f, dirs); err != nil {
			tmp.Close()
			return nil, fmt.Errorf("bundle: %w", err)
		}
	}
	err = tw.Close()
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), out)
	}
	if err != nil {
		return nil, fmt.Errorf("bundle: write %s: %w", out, err)
	}
	return &d, nil
}

// bundled is a file to pack; an artifact has the size and sha256 its
// document gives.
type bundled struct {
	path   string
	size   int64
	sha256 string
}

func addFile(tw *tar.Writer, repo string, b bundled, dirs map[string]bool) error {
	name := b.path
	var parents []string
	for d := filepath.ToSlash(filepath.Dir(name)); d != "." && !dirs[d]; d = filepath.ToSlash(filepath.Dir(d)) {
		parents = append([]string{d}, parents...)
	}
	for _, d := range parents {
		dirs[d] = true
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: time.Unix(0, 0), Format: tar.FormatUSTAR}); err != nil {
			return err
		}
	}
	f, err := os.Open(filepath.Join(repo, filepath.FromSlash(name)))
	if err != nil {
		return fmt.Errorf("%w: the repository is incomplete", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if b.sha256 != "" && st.Size() != b.size {
		return fmt.Errorf("%s is %d bytes, the channel document says %d: %w: publish the channel again", name, st.Size(), b.size, errCorrupt)
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: st.Size(), ModTime: time.Unix(0, 0), Format: tar.FormatUSTAR}); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tw, h), f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); b.sha256 != "" && got != b.sha256 {
		return fmt.Errorf("%s has sha256 %s, the channel document says %s: %w: publish the channel again", name, got, b.sha256, errCorrupt)
	}
	return nil
}
