// Package sbom writes the software bill of materials of a built image as
// an SPDX 2.3 JSON document: the image is the described package, and it
// CONTAINS every Debian package and every container image it carries.
//
// The document is a pure function of its input: no clock (Created comes
// from the build's SOURCE_DATE_EPOCH), SPDX identifiers and the document
// namespace derived from content, packages in a fixed order. Two builds
// of the same inputs write the same bytes.
//
// Limits: no license data (every license field is NOASSERTION: the lock
// does not record Debian's copyright files), no per-file entries
// (filesAnalyzed is false), no container layer breakdown.
package sbom

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Version is the SPDX version this package writes.
const Version = "SPDX-2.3"

// NamespaceBase prefixes every documentNamespace. The .invalid top-level
// domain (RFC 2606) never resolves: the namespace names the document, it
// is not a place to download it from.
const NamespaceBase = "https://pibake.invalid/spdx/"

// Image is the built image: the document's described package.
type Image struct {
	Name    string // image name of the definition, e.g. demo
	Version string // version of the definition
	Board   string
	File    string // e.g. demo.img
	SHA256  string // of the whole disk image, hex
}

// Deb is one Debian package of the lock.
type Deb struct {
	Name, Version, Arch string
	SHA256              string // of the .deb, hex
	// Unused marks a locked package whose files this image does not
	// carry (a boot package of another board): it is listed, related
	// as OTHER instead of CONTAINS.
	Unused bool
	// Archive is the archive it was locked from (trixie-security), ""
	// for Input.Suite.
	Archive string
}

// Container is one container image the image carries.
type Container struct {
	Name   string // the container's name in the definition
	Source string // as the definition gives it: registry reference, oci:DIR[:tag], docker-archive:FILE[:tag] or go:PKG
	Digest string // sha256:... of the linux/arm64 image manifest
}

// Input is everything the document says.
type Input struct {
	Image      Image
	Epoch      int64  // SOURCE_DATE_EPOCH of the build: the document's creation time
	Suite      string // Debian suite, for the package comments
	Creator    string // "Tool: pibake-VERSION"; "" means "Tool: pibake"
	Debs       []Deb
	Containers []Container
}

// Marshal renders the SPDX document as indented JSON ending in a newline.
func Marshal(in Input) ([]byte, error) {
	doc, err := build(in)
	if err != nil {
		return nil, err
	}
	// The namespace is the hash of the document without it: it changes
	// exactly when the content does.
	body, err := encode(doc)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	doc.DocumentNamespace = NamespaceBase + idPart(in.Image.Name) + "-" + idPart(in.Image.Version) + "-" + hex.EncodeToString(sum[:16])
	return encode(doc)
}

func encode(doc *document) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	return b.Bytes(), nil
}

// The JSON shape of SPDX 2.3 (only the fields written here).
type document struct {
	SPDXVersion       string         `json:"spdxVersion"`
	DataLicense       string         `json:"dataLicense"`
	SPDXID            string         `json:"SPDXID"`
	Name              string         `json:"name"`
	DocumentNamespace string         `json:"documentNamespace"`
	CreationInfo      creationInfo   `json:"creationInfo"`
	DocumentDescribes []string       `json:"documentDescribes"`
	Packages          []pkg          `json:"packages"`
	Relationships     []relationship `json:"relationships"`
}

type creationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type pkg struct {
	Name             string        `json:"name"`
	SPDXID           string        `json:"SPDXID"`
	VersionInfo      string        `json:"versionInfo,omitempty"`
	PackageFileName  string        `json:"packageFileName,omitempty"`
	Supplier         string        `json:"supplier,omitempty"`
	DownloadLocation string        `json:"downloadLocation"`
	FilesAnalyzed    bool          `json:"filesAnalyzed"`
	Checksums        []checksum    `json:"checksums,omitempty"`
	LicenseConcluded string        `json:"licenseConcluded"`
	LicenseDeclared  string        `json:"licenseDeclared"`
	CopyrightText    string        `json:"copyrightText"`
	Description      string        `json:"description,omitempty"`
	Comment          string        `json:"comment,omitempty"`
	ExternalRefs     []externalRef `json:"externalRefs,omitempty"`
	Purpose          string        `json:"primaryPackagePurpose,omitempty"`
	BuiltDate        string        `json:"builtDate,omitempty"`
}

type checksum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"checksumValue"`
}

type externalRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type relationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
	Comment string `json:"comment,omitempty"`
}

const noAssertion = "NOASSERTION"

// ImageID is the SPDX identifier of the described image package.
const ImageID = "SPDXRef-image"

func build(in Input) (*document, error) {
	im := in.Image
	if im.Name == "" || im.File == "" || !isHex(im.SHA256, 64) {
		return nil, fmt.Errorf("sbom: image %q (file %q, sha256 %q) lacks a name, file or sha256: the build writes the SBOM after the image", im.Name, im.File, im.SHA256)
	}
	created := time.Unix(in.Epoch, 0).UTC().Format(time.RFC3339)
	creator := in.Creator
	if creator == "" {
		creator = "Tool: pibake"
	}
	doc := &document{
		SPDXVersion: Version, DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT",
		Name:              im.Name + "-" + im.Version + "-" + im.Board,
		CreationInfo:      creationInfo{Created: created, Creators: []string{creator}},
		DocumentDescribes: []string{ImageID},
	}
	doc.Packages = append(doc.Packages, pkg{
		Name: im.Name, SPDXID: ImageID, VersionInfo: im.Version, PackageFileName: im.File,
		Supplier: noAssertion, DownloadLocation: noAssertion,
		Checksums:        []checksum{{"SHA256", im.SHA256}},
		LicenseConcluded: noAssertion, LicenseDeclared: noAssertion, CopyrightText: noAssertion,
		Description: fmt.Sprintf("pibake A/B disk image %s %s for board %s", im.Name, im.Version, im.Board),
		Purpose:     "OPERATING-SYSTEM", BuiltDate: created,
	})
	doc.Relationships = append(doc.Relationships, relationship{Element: "SPDXRef-DOCUMENT", Type: "DESCRIBES", Related: ImageID})

	debs := append([]Deb(nil), in.Debs...)
	sort.Slice(debs, func(i, j int) bool {
		a, b := debs[i], debs[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Arch != b.Arch {
			return a.Arch < b.Arch
		}
		return a.Version < b.Version
	})
	seen := map[string]bool{ImageID: true}
	for _, d := range debs {
		if d.Name == "" || d.Version == "" || d.Arch == "" || !isHex(d.SHA256, 64) {
			return nil, fmt.Errorf("sbom: Debian package %q %q %q has no name, version, arch or sha256: run 'pibake lock' to regenerate the lock", d.Name, d.Version, d.Arch)
		}
		id := "SPDXRef-deb-" + idPart(d.Name) + "-" + shortHash("deb", d.Name, d.Version, d.Arch)
		if seen[id] {
			return nil, fmt.Errorf("sbom: Debian package %s %s (%s) is listed twice", d.Name, d.Version, d.Arch)
		}
		seen[id] = true
		comment := "locked Debian package"
		if from := cmp.Or(d.Archive, in.Suite); from != "" {
			comment += " from " + from
		}
		doc.Packages = append(doc.Packages, pkg{
			Name: d.Name, SPDXID: id, VersionInfo: d.Version, PackageFileName: debFileName(d),
			Supplier: "Organization: Debian", DownloadLocation: noAssertion,
			Checksums:        []checksum{{"SHA256", d.SHA256}},
			LicenseConcluded: noAssertion, LicenseDeclared: noAssertion, CopyrightText: noAssertion,
			Comment:      comment,
			ExternalRefs: []externalRef{{"PACKAGE-MANAGER", "purl", DebPURL(d.Name, d.Version, d.Arch)}},
		})
		r := relationship{Element: ImageID, Type: "CONTAINS", Related: id}
		if d.Unused {
			r = relationship{Element: id, Type: "OTHER", Related: ImageID, Comment: "locked for another board's boot files; not in this image"}
		}
		doc.Relationships = append(doc.Relationships, r)
	}

	cs := append([]Container(nil), in.Containers...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	for _, c := range cs {
		ref, err := ParseContainer(c.Name, c.Source, c.Digest)
		if err != nil {
			return nil, err
		}
		id := "SPDXRef-oci-" + idPart(c.Name) + "-" + shortHash("oci", c.Name, c.Digest)
		if seen[id] {
			return nil, fmt.Errorf("sbom: container %s is listed twice", c.Name)
		}
		seen[id] = true
		hexDigest := strings.TrimPrefix(c.Digest, "sha256:")
		doc.Packages = append(doc.Packages, pkg{
			Name: c.Name, SPDXID: id, VersionInfo: ref.Tag,
			Supplier: noAssertion, DownloadLocation: noAssertion,
			Checksums:        []checksum{{"SHA256", hexDigest}},
			LicenseConcluded: noAssertion, LicenseDeclared: noAssertion, CopyrightText: noAssertion,
			Comment:      "container image (linux/arm64 manifest digest " + c.Digest + ") from " + c.Source,
			ExternalRefs: []externalRef{{"PACKAGE-MANAGER", "purl", ref.PURL()}},
			Purpose:      "CONTAINER",
		})
		doc.Relationships = append(doc.Relationships, relationship{Element: ImageID, Type: "CONTAINS", Related: id})
	}
	return doc, nil
}

func debFileName(d Deb) string {
	v := d.Version
	if i := strings.IndexByte(v, ':'); i >= 0 {
		v = v[i+1:]
	}
	return d.Name + "_" + v + "_" + d.Arch + ".deb"
}

// idPart keeps what an SPDX identifier allows (letters, digits, '.', '-').
func idPart(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

// shortHash keeps identifiers unique when idPart maps two names to one
// (libstdc++6 and libstdc--6).
func shortHash(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:6])
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// ErrSource means a container's source or digest cannot be named.
var ErrSource = errors.New("container source cannot be named in the SBOM")
