// Package imager writes a Raspberry Pi Imager repository: the os_list
// JSON that Imager reads from a custom repository URL (rpi-imager
// --repo URL), with one entry per pibake build.
//
// The shape follows Imager's own reader (src/oslistmodel.cpp,
// src/hwlistmodel.cpp, src/imagewriter.cpp) and its schema
// (doc/json-schema/os-list-schema.json): a top-level "os_list" array of
// entries, and an "imager" object whose "devices" list is what Imager
// offers in its device step and filters the entries by (an entry is
// shown for a device when one of its "devices" tags is one of the
// device's "tags").
//
// Limits: every entry downloads NAME.img.zst (Imager decompresses zstd
// since 1.7); each build is read whole once, decompressed, to prove the
// .img.zst is the image its manifest.json describes.
package imager

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/pibake/pibake/manifest"
)

// InitFormats are the init_format values an entry may have: those of
// Imager's (oslistmodel.cpp VALID_INIT_FORMATS; any other makes it drop
// the entry) whose files a pibake device reads. "" and "none" write
// nothing; cloudinit and cloudinit-rpi write the cloud-init NoCloud files
// (user-data, network-config, meta-data) that the device applies and
// erases at first boot (provision, docs/provisioning.md).
var InitFormats = []string{"", "none", "cloudinit", "cloudinit-rpi"}

// unreadFormats are Imager's other formats, with the file each writes to
// the first FAT partition: a pibake device never runs or erases it.
var unreadFormats = map[string]string{"systemd": "firstrun.sh", "rpi-preseed": "rpi-preseed.toml"}

// ErrNoCompressed means a build folder has no NAME.img.zst.
var ErrNoCompressed = errors.New("no compressed image")

// ErrMismatch means a build folder's files disagree with its manifest.json.
var ErrMismatch = errors.New("does not match manifest.json")

// Device is an entry of imager.devices.
type Device struct {
	Name         string   `json:"name"`
	Description  string   `json:"description"`
	Tags         []string `json:"tags"`
	MatchingType string   `json:"matching_type"`
	Architecture string   `json:"architecture"`
}

// boardDevices maps pibake's boards to Imager's device tags. Imager
// matches a tag's prefix to the SoC (hwlistmodel.cpp tagsMatchChip:
// "pi5-" BCM2712, "pi4-" BCM2711, "pi3-" BCM2837); the -64bit suffix
// names the arm64 flavour. pibake's pi3 board also covers the Zero 2 W.
var boardDevices = map[string]Device{
	"pi3": {Name: "Raspberry Pi 3", Description: "Pi 3 B/B+/A+ and Zero 2 W, 64-bit", Tags: []string{"pi3-64bit"}},
	"pi4": {Name: "Raspberry Pi 4", Description: "Pi 4 B, Pi 400, CM4, 64-bit", Tags: []string{"pi4-64bit"}},
	"pi5": {Name: "Raspberry Pi 5", Description: "Pi 5, 64-bit", Tags: []string{"pi5-64bit"}},
}

// OS is one entry of os_list.
type OS struct {
	Name                string   `json:"name"`
	Description         string   `json:"description"`
	Icon                string   `json:"icon"`
	URL                 string   `json:"url"`
	ExtractSize         int64    `json:"extract_size"`
	ExtractSHA256       string   `json:"extract_sha256"`
	ImageDownloadSize   int64    `json:"image_download_size"`
	ImageDownloadSHA256 string   `json:"image_download_sha256"`
	ReleaseDate         string   `json:"release_date"`
	Devices             []string `json:"devices"`
	InitFormat          string   `json:"init_format"`
	Architecture        string   `json:"architecture"`
}

// List is the whole repository document.
type List struct {
	Imager struct {
		Devices []Device `json:"devices"`
	} `json:"imager"`
	OSList []OS `json:"os_list"`
}

// Options say how to describe the builds.
type Options struct {
	// BaseURL is where the .img.zst files are served; an entry's url is
	// BaseURL/NAME.img.zst. {build} in it is replaced by the build
	// folder's name, for several builds of one image (one per board).
	BaseURL     string
	Icon        string // URL of the icon Imager shows; "" for none
	Description string // "" means "pibake image NAME VERSION for BOARD"
	InitFormat  string // one of InitFormats
}

// Make reads each build folder and returns the repository document.
func Make(builds []string, o Options) (*List, error) {
	if err := checkOptions(o); err != nil {
		return nil, err
	}
	l := &List{}
	urls := map[string]string{}
	boards := map[string]bool{}
	for _, dir := range builds {
		e, board, err := entry(dir, o)
		if err != nil {
			return nil, err
		}
		if prev, ok := urls[e.URL]; ok {
			return nil, fmt.Errorf("imager: %s and %s would both be served as %s: put {build} in --base-url (e.g. https://host/images/{build}) and upload each build folder under its own name", prev, dir, e.URL)
		}
		urls[e.URL] = dir
		boards[board] = true
		l.OSList = append(l.OSList, e)
	}
	var names []string
	for b := range boards {
		names = append(names, b)
	}
	sort.Strings(names)
	for _, b := range names {
		d := boardDevices[b]
		d.MatchingType, d.Architecture = "exclusive", "armv8"
		l.Imager.Devices = append(l.Imager.Devices, d)
	}
	return l, nil
}

// Marshal renders the document as indented JSON.
func (l *List) Marshal() ([]byte, error) {
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

func checkOptions(o Options) error {
	u, err := url.Parse(strings.ReplaceAll(o.BaseURL, "{build}", "x"))
	if o.BaseURL == "" || err != nil || u.Scheme == "" || u.Host == "" && u.Scheme != "file" {
		return fmt.Errorf("imager: --base-url %q: want the absolute URL the .img.zst files are served from, e.g. https://images.example.com/pibake", o.BaseURL)
	}
	for _, f := range InitFormats {
		if o.InitFormat == f {
			return nil
		}
	}
	if file, ok := unreadFormats[o.InitFormat]; ok {
		return fmt.Errorf("imager: --init-format %s: Imager would write its settings (the password hash, the Wi-Fi passphrase) as %s to bootsel, which a pibake device neither runs nor reads: nothing would apply, and the file would stay on the card, never erased; want cloudinit-rpi (the device applies the cloud-init files and erases them) or none", o.InitFormat, file)
	}
	return fmt.Errorf("imager: --init-format %q: Imager drops entries with it; want one of %s", o.InitFormat, strings.Join(InitFormats[1:], ", "))
}

func entry(dir string, o Options) (OS, string, error) {
	mpath := filepath.Join(dir, manifest.FileName)
	m, err := manifest.Read(dir)
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return OS{}, "", fmt.Errorf("imager: %s is not a build folder (pibake build --out writes one): %w", dir, err)
	} else if err != nil {
		return OS{}, "", fmt.Errorf("imager: %w", err)
	}
	if m.Format != manifest.Format || m.Image == "" || m.Disk.File == "" || len(m.Disk.SHA256) != 64 || m.Disk.Size <= 0 {
		return OS{}, "", fmt.Errorf("imager: %s: format %d with image %q, disk %q: not a manifest this pibake reads (format %d); rebuild", mpath, m.Format, m.Image, m.Disk.File, manifest.Format)
	}
	dev, ok := boardDevices[m.Board]
	if !ok {
		return OS{}, "", fmt.Errorf("imager: %s is a build for board %q, which Raspberry Pi Imager has no device for: build for %s", dir, m.Board, strings.Join(sortedBoards(), ", "))
	}
	if st, err := os.Stat(filepath.Join(dir, m.Disk.File)); err == nil && st.Size() != m.Disk.Size {
		return OS{}, "", fmt.Errorf("imager: %s: %s is %d bytes, manifest.json says %d: %w; rebuild", dir, m.Disk.File, st.Size(), m.Disk.Size, ErrMismatch)
	}
	zname := m.Disk.File + ".zst"
	zpath := filepath.Join(dir, zname)
	zsum, zsize, sum, size, err := hashCompressed(zpath)
	if errors.Is(err, os.ErrNotExist) {
		return OS{}, "", fmt.Errorf("imager: %s: %w %s: Imager downloads the zstd-compressed image; a build that writes it, or 'zstd -T0 -19 %s', makes it", dir, ErrNoCompressed, zname, filepath.Join(dir, m.Disk.File))
	}
	if err != nil {
		return OS{}, "", fmt.Errorf("imager: %s: %w", zpath, err)
	}
	if sum != m.Disk.SHA256 || size != m.Disk.Size {
		return OS{}, "", fmt.Errorf("imager: %s decompresses to %d bytes with sha256 %s, but manifest.json describes %s as %d bytes with sha256 %s: %w; compress the image again or rebuild", zpath, size, sum, m.Disk.File, m.Disk.Size, m.Disk.SHA256, ErrMismatch)
	}
	desc := o.Description
	if desc == "" {
		desc = fmt.Sprintf("pibake image %s %s for %s", m.Image, m.Version, dev.Name)
		if m.Env != "" && m.Env != "default" {
			desc += ", environment " + m.Env
		}
	}
	base := strings.TrimRight(strings.ReplaceAll(o.BaseURL, "{build}", url.PathEscape(filepath.Base(filepath.Clean(dir)))), "/")
	return OS{
		Name: fmt.Sprintf("%s %s (%s)", m.Image, m.Version, m.Board), Description: desc, Icon: o.Icon,
		URL:         base + "/" + url.PathEscape(zname),
		ExtractSize: size, ExtractSHA256: sum, ImageDownloadSize: zsize, ImageDownloadSHA256: zsum,
		ReleaseDate: time.Unix(m.SourceDateEpoch, 0).UTC().Format("2006-01-02"),
		Devices:     dev.Tags, InitFormat: o.InitFormat, Architecture: "armv8",
	}, m.Board, nil
}

// hashCompressed reads a .zst once: the sha256 and size of the file and
// of what it decompresses to.
func hashCompressed(path string) (zsum string, zsize int64, sum string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, "", 0, err
	}
	defer f.Close()
	zh := sha256.New()
	counted := &countReader{r: io.TeeReader(f, zh)}
	dec, err := zstd.NewReader(counted, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return "", 0, "", 0, err
	}
	defer dec.Close()
	h := sha256.New()
	size, err = io.Copy(h, dec)
	if err != nil {
		return "", 0, "", 0, fmt.Errorf("not a zstd stream pibake can read (%v): compress the image again", err)
	}
	// The decoder may stop at the end of the frame; hash what follows.
	if _, err := io.Copy(io.Discard, counted); err != nil {
		return "", 0, "", 0, err
	}
	return hex.EncodeToString(zh.Sum(nil)), counted.n, hex.EncodeToString(h.Sum(nil)), size, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func sortedBoards() []string {
	var b []string
	for k := range boardDevices {
		b = append(b, k)
	}
	sort.Strings(b)
	return b
}
