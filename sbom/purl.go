package sbom

import (
	"fmt"
	"sort"
	"strings"
)

// Package URLs (purl) as the purl specification's deb and oci types
// define them: pkg:deb/debian/NAME@VERSION?arch=ARCH and
// pkg:oci/NAME@sha256%3AHEX?arch=arm64&repository_url=...&tag=....

// DebPURL is the package URL of a Debian binary package.
func DebPURL(name, version, arch string) string {
	// The spec's own example keeps an epoch's colon and encodes '+':
	// pkg:deb/debian/attr@1:2.4.47-2%2Bb1?arch=amd64.
	return "pkg:deb/debian/" + escape(strings.ToLower(name), "") + "@" + escape(version, ":") + qualifiers(map[string]string{"arch": arch})
}

// OCIRef names a container image for its package URL.
type OCIRef struct {
	Name       string // last path element of the repository, lowercased; the container's name for local sources
	Repository string // registry/path for registry images, "" for local sources
	Tag        string
	Digest     string // sha256:...
}

// PURL is the image's package URL; arch is always arm64 (pibake picks
// the linux/arm64 image of an index).
func (r OCIRef) PURL() string {
	q := map[string]string{"arch": "arm64"}
	if r.Repository != "" {
		q["repository_url"] = r.Repository
	}
	if r.Tag != "" {
		q["tag"] = r.Tag
	}
	return "pkg:oci/" + escape(r.Name, "") + "@" + escape(r.Digest, "") + qualifiers(q)
}

// ParseContainer names a container from its source as the definition
// gives it (see Container.Source) and its digest.
func ParseContainer(name, source, digest string) (OCIRef, error) {
	if !strings.HasPrefix(digest, "sha256:") || !isHex(strings.TrimPrefix(digest, "sha256:"), 64) {
		return OCIRef{}, fmt.Errorf("sbom: container %s: digest %q is not sha256:<64 hex>: %w", name, digest, ErrSource)
	}
	r := OCIRef{Name: strings.ToLower(name), Digest: digest}
	switch {
	case source == "":
		return r, fmt.Errorf("sbom: container %s has no source: %w", name, ErrSource)
	case strings.HasPrefix(source, "go:"):
		return r, nil // built by pibake from source: no registry, no tag
	case strings.HasPrefix(source, "oci:"):
		_, r.Tag = splitTag(strings.TrimPrefix(source, "oci:"))
		return r, nil
	case strings.HasPrefix(source, "docker-archive:"):
		_, r.Tag = splitTag(strings.TrimPrefix(source, "docker-archive:"))
		return r, nil
	}
	repo := source
	if i := strings.IndexByte(repo, '@'); i >= 0 {
		repo = repo[:i] // the digest that matters is the arm64 one passed in
	}
	repo, r.Tag = splitTag(repo)
	parts := strings.Split(repo, "/")
	// Docker's convention: a first element without '.' or ':' (and not
	// localhost) is a Docker Hub path; a single element is an official
	// image under library/.
	if len(parts) == 1 || (!strings.ContainsAny(parts[0], ".:") && parts[0] != "localhost") {
		if len(parts) == 1 {
			parts = append([]string{"library"}, parts...)
		}
		parts = append([]string{"docker.io"}, parts...)
	}
	r.Repository = strings.Join(parts, "/")
	r.Name = strings.ToLower(parts[len(parts)-1])
	return r, nil
}

// splitTag splits "path:tag"; a colon followed by a '/' later (a
// registry port) is not a tag.
func splitTag(s string) (string, string) {
	i := strings.LastIndex(s, ":")
	if i < 0 || strings.Contains(s[i+1:], "/") {
		return s, ""
	}
	return s[:i], s[i+1:]
}

// qualifiers renders ?k=v&... sorted by key, as the canonical form wants.
func qualifiers(q map[string]string) string {
	var keys []string
	for k, v := range q {
		if v != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return ""
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(k + "=" + escape(q[k], "/:"))
	}
	return b.String()
}

// escape percent-encodes every byte but RFC 3986's unreserved characters
// and those in keep.
func escape(s, keep string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_', c == '~', strings.IndexByte(keep, c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}
