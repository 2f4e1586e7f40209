// Package sbomcheck checks an SPDX document pibake wrote with an
// independent reader: SPDX's own Go tools (github.com/spdx/tools-golang)
// parse it, check its relationships, and find what it describes; then
// every package the build had must be there with its version, checksum
// and package URL. Only tests import it: the pibake binary does not link
// tools-golang.
package sbomcheck

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/pibake/pibake/sbom"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdxlib"
)

// Check returns every problem found, joined, or nil.
func Check(data []byte, image sbom.Image, debs []sbom.Deb, containers []sbom.Container) error {
	doc, err := spdxjson.Read(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("tools-golang cannot read the document: %w", err)
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.SPDXIdentifier != "DOCUMENT" {
		bad("header: version %q, data license %q, id %q", doc.SPDXVersion, doc.DataLicense, doc.SPDXIdentifier)
	}
	if doc.DocumentName == "" || !strings.Contains(doc.DocumentNamespace, "://") || strings.Contains(doc.DocumentNamespace, "#") {
		bad("name %q / namespace %q: a name and a URI without '#' are required", doc.DocumentName, doc.DocumentNamespace)
	}
	if doc.CreationInfo == nil || doc.CreationInfo.Created == "" || len(doc.CreationInfo.Creators) == 0 {
		bad("creationInfo needs created and creators")
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		bad("relationships: %v", err)
	}
	described, err := spdxlib.GetDescribedPackageIDs(doc)
	if err != nil || len(described) != 1 {
		bad("described packages %v (%v), want the image alone", described, err)
	}
	byID := map[string]*spdx.Package{}
	for _, p := range doc.Packages {
		if p.PackageName == "" || p.PackageDownloadLocation == "" {
			bad("package %s lacks a name or downloadLocation", p.PackageSPDXIdentifier)
		}
		if _, dup := byID[string(p.PackageSPDXIdentifier)]; dup {
			bad("SPDX id %s used twice", p.PackageSPDXIdentifier)
		}
		byID[string(p.PackageSPDXIdentifier)] = p
	}
	contains := map[string]string{} // related id -> relationship type from/to the image
	var imageID string
	if len(described) == 1 {
		imageID = string(described[0])
		im := byID[imageID]
		if im == nil || im.PackageName != image.Name || im.PackageVersion != image.Version || sha(im) != image.SHA256 {
			bad("described package %+v is not image %s %s sha256 %s", im, image.Name, image.Version, image.SHA256)
		}
	}
	for _, r := range doc.Relationships {
		a, b := string(r.RefA.ElementRefID), string(r.RefB.ElementRefID)
		switch {
		case a == imageID && r.Relationship == "CONTAINS":
			contains[b] = "CONTAINS"
		case b == imageID && r.Relationship == "OTHER":
			contains[a] = "OTHER"
		}
	}
	find := func(name, version, purl string) *spdx.Package {
		for _, p := range doc.Packages {
			if p.PackageName == name && p.PackageVersion == version && purlOf(p) == purl {
				return p
			}
		}
		return nil
	}
	for _, d := range debs {
		purl := sbom.DebPURL(d.Name, d.Version, d.Arch)
		p := find(d.Name, d.Version, purl)
		if p == nil {
			bad("Debian package %s %s (%s) is missing (no package named so with purl %s)", d.Name, d.Version, d.Arch, purl)
			continue
		}
		if sha(p) != d.SHA256 {
			bad("Debian package %s: sha256 %s, the lock has %s", d.Name, sha(p), d.SHA256)
		}
		want := "CONTAINS"
		if d.Unused {
			want = "OTHER"
		}
		if got := contains[string(p.PackageSPDXIdentifier)]; got != want {
			bad("Debian package %s: relationship to the image %q, want %q", d.Name, got, want)
		}
	}
	for _, c := range containers {
		ref, err := sbom.ParseContainer(c.Name, c.Source, c.Digest)
		if err != nil {
			bad("container %s: %v", c.Name, err)
			continue
		}
		p := find(c.Name, ref.Tag, ref.PURL())
		if p == nil {
			bad("container %s (%s) is missing (purl %s)", c.Name, c.Source, ref.PURL())
			continue
		}
		if "sha256:"+sha(p) != c.Digest {
			bad("container %s: checksum %s, digest %s", c.Name, sha(p), c.Digest)
		}
		if contains[string(p.PackageSPDXIdentifier)] != "CONTAINS" {
			bad("container %s: the image does not CONTAIN it", c.Name)
		}
	}
	if n := 1 + len(debs) + len(containers); len(doc.Packages) != n {
		bad("%d packages, want %d (the image, %d Debian packages, %d containers)", len(doc.Packages), n, len(debs), len(containers))
	}
	return errors.Join(errs...)
}

func sha(p *spdx.Package) string {
	for _, c := range p.PackageChecksums {
		if c.Algorithm == "SHA256" {
			return c.Value
		}
	}
	return ""
}

func purlOf(p *spdx.Package) string {
	for _, r := range p.PackageExternalReferences {
		if r.RefType == "purl" && r.Category == "PACKAGE-MANAGER" {
			return r.Locator
		}
	}
	return ""
}
