package sbom

import (
	"fmt"
	"path"
	"sort"
	"strings"

	ggname "github.com/google/go-containerregistry/pkg/name"

	"github.com/pibake/pibake/container"
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
	case strings.HasPrefix(source, "oci:"), strings.HasPrefix(source, "docker-archive:"):
		ref, err := container.ParseRef(source)
		if err != nil {
			return r, fmt.Errorf("sbom: container %s: %w (%w)", name, ErrSource, err)
		}
		r.Tag = ref.Tag
		return r, nil
	}
	repo, tag, err := registryRepository(source)
	if err != nil {
		return r, fmt.Errorf("sbom: container %s: %w (%w)", name, ErrSource, err)
	}
	r.Repository, r.Tag = repo, tag
	r.Name = strings.ToLower(path.Base(repo))
	return r, nil
}

// registryRepository names a registry image's repository as docker does,
// with go-containerregistry's parser: docker.io/library/redis for redis:7.
// A digest in the source is left out (the one that matters is the arm64
// image's, passed apart). The parser refuses upper case in a repository
// path, which a package URL keeps as written: the source is parsed
// lower-cased, and where the name the parser gives ends with the source's
// own spelling, that spelling is kept; so is the tag's.
func registryRepository(source string) (repository, tag string, err error) {
	src, _, _ := strings.Cut(source, "@")
	t, err := ggname.NewTag(asciiLower(src), ggname.WithDefaultTag(""))
	if err != nil {
		return "", "", err
	}
	base := src
	if tag = t.TagStr(); tag != "" {
		tag = src[len(src)-len(tag):] // lower-casing ASCII keeps the offsets
		base = src[:len(src)-len(tag)-1]
	}
	reg := t.RegistryStr()
	if reg == ggname.DefaultRegistry {
		reg = "docker.io" // how docker and the purl spec write Docker Hub
	}
	repository = reg + "/" + t.RepositoryStr()
	if strings.HasSuffix(repository, asciiLower(base)) {
		repository = repository[:len(repository)-len(base)] + base
	}
	return repository, tag, nil
}

// asciiLower lower-cases A to Z only, so that every byte keeps its offset.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
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
