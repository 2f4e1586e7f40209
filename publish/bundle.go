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
	"strings"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/internal/atomicfile"
	"github.com/pibake/pibake/updater/channel"
)

// BundleWarn is how much life a bundle's channel document should have
// left: Bundle warns when it has less. A bundle is carried (a USB stick,
// a service visit) to devices that may be installed weeks later, and a
// device refuses the whole bundle once its document has expired.
const BundleWarn = 7 * 24 * time.Hour

// BundleOptions configure a Bundle.
type BundleOptions struct {
	Repo    string // repository folder
	Channel string
	Out     string // the tar file to write
	Now     time.Time
	// Expires, if not 0, gives the bundle a document of its own: the
	// channel's current document (verified with Key) with this life from
	// Now, signed with Key. The repository is not changed. 0 packs the
	// published document as it is.
	Expires time.Duration
	Key     minisign.PrivateKey
	// Force allows an Expires shorter than MinExpires.
	Force bool
}

// BundleResult is what Bundle packed.
type BundleResult struct {
	Document *channel.Document `json:"document"`
	Size     int64             `json:"size"`
	// Resigned: the bundle carries a document Bundle signed (Expires).
	Resigned bool     `json:"resigned"`
	Warnings []string `json:"warnings,omitempty"`
}

// Bundle packs a channel's current release, its signed document and the
// artifacts it names, into one uncompressed tar file for offline updates:
// `pibake-updater install FILE` reads it in place. The tar is the same
// bytes for the same repository content (sorted, fixed times and owners).
//
// A device refuses a bundle whose document has expired, so Bundle refuses
// one already expired and warns when less than BundleWarn is left;
// Options.Expires gives the bundle a document of its own with a longer
// life (docs/updates.md, "Offline updates").
func Bundle(ctx context.Context, o BundleOptions) (*BundleResult, error) {
	name, repo, out := o.Channel, o.Repo, o.Out
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
	res := &BundleResult{Document: &d}
	files := []bundled{{path: channel.DocumentPath(name)}, {path: channel.SignaturePath(channel.DocumentPath(name))}}
	if o.Expires != 0 {
		doc, sig, nd, err := resign(o, raw, docPath)
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		files[0].data, files[1].data = doc, sig
		res.Document, res.Resigned = nd, true
	}
	if err := checkBundleLife(res, o.Now); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	d = *res.Document
	// Each artifact is checked against the document's sha256 as it is
	// packed: the device would refuse a blob someone changed in the
	// repository, after carrying the whole bundle to it.
	for _, a := range d.Artifacts {
		files = append(files, bundled{path: a.Path, size: a.Size, sha256: a.SHA256})
	}
	if err := atomicfile.CheckReplace(out, "a pibake bundle", isBundle); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
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
	if st, err := os.Stat(out); err == nil {
		res.Size = st.Size()
	}
	return res, nil
}

// checkBundleLife refuses a bundle whose document has expired at now
// and warns when less than BundleWarn is left.
func checkBundleLife(res *BundleResult, now time.Time) error {
	d := res.Document
	left := d.Expires.Sub(now)
	switch {
	case left <= 0:
		return fmt.Errorf("the channel document of %s (%s %s, serial %d) expired at %s: %w: every device refuses this bundle; publish the channel again, or give the bundle a document of its own (--expires with --key)",
			d.Channel, d.Image, d.Version, d.Serial, d.Expires.UTC().Format(time.RFC3339), channel.ErrExpired)
	case left < BundleWarn:
		res.Warnings = append(res.Warnings, fmt.Sprintf("the bundle's channel document expires at %s, in %s: a device refuses the bundle after that; give it a document of its own with --expires (and --key)",
			d.Expires.UTC().Format(time.RFC3339), left.Round(time.Minute)))
	}
	return nil
}

// resign verifies the channel's document (raw, read from path) with the
// bundle's key and signs a copy of it that lives o.Expires from o.Now:
// same channel, serial and artifacts, so a device treats it as the
// release it is.
func resign(o BundleOptions, raw []byte, path string) (doc, sig []byte, d *channel.Document, err error) {
	if err := checkExpires(Options{Expires: o.Expires, Force: o.Force}); err != nil {
		return nil, nil, nil, err
	}
	pub, ok := o.Key.Public().(minisign.PublicKey)
	if !ok || o.Key.ID() == 0 {
		return nil, nil, nil, fmt.Errorf("--expires gives the bundle a document of its own, signed with --key: give the channel's signing key")
	}
	oldSig, err := os.ReadFile(channel.SignaturePath(path))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s has no signature (%v): publish the channel again", path, err)
	}
	d, err = channel.VerifySigned(raw, oldSig, []minisign.PublicKey{pub})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s is not signed by --key (%w): a bundle re-signs only what its key published", path, err)
	}
	d.Expires = o.Now.Add(o.Expires).UTC().Truncate(time.Second)
	// Waves that begin after the new expiry never apply before it: left
	// out (the first always applies, whatever its time).
	for len(d.Waves) > 1 && !d.Waves[len(d.Waves)-1].From.Before(d.Expires) {
		d.Waves = d.Waves[:len(d.Waves)-1]
	}
	if len(d.Waves) == 1 && !d.Waves[0].From.Before(d.Expires) {
		d.Waves = nil
	}
	doc, sig, err = channel.Sign(d, o.Key)
	return doc, sig, d, err
}

// bundled is a file to pack; an artifact has the size and sha256 its
// document gives. A file with data is packed from it, not from the
// repository.
type bundled struct {
	path   string
	size   int64
	sha256 string
	data   []byte
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
	if b.data != nil {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b.data)), ModTime: time.Unix(0, 0), Format: tar.FormatUSTAR}); err != nil {
			return err
		}
		_, err := tw.Write(b.data)
		return err
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

// isBundle says whether f is an earlier bundle: a tar whose first entry
// is under channel.ChannelsDir, as every bundle's is.
func isBundle(f *os.File) bool {
	h, err := tar.NewReader(f).Next()
	return err == nil && strings.HasPrefix(h.Name, channel.ChannelsDir+"/")
}
