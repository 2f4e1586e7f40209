package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Platform is the one platform pibake images run.
var Platform = v1.Platform{OS: "linux", Architecture: "arm64"}

// ErrNoArm64 means an image (or every entry of its index) is for another
// platform.
var ErrNoArm64 = errors.New("image has no linux/arm64 variant")

// ErrDigestMismatch means a registry answered a pinned digest with
// another manifest.
var ErrDigestMismatch = errors.New("manifest does not match the locked digest")

// Kind of an image reference in a definition.
type Kind int

// Kinds of image reference.
const (
	Registry      Kind = iota // docker.io/library/redis:7.4
	OCILayout                 // oci:path/to/layout[:tag]
	DockerArchive             // docker-archive:path/to/image.tar[:tag]
)

// Ref is a parsed image reference.
type Ref struct {
	Kind Kind
	Raw  string
	Path string // OCI layout folder or docker-archive file
	Tag  string // within a layout or archive, "" for the only one
}

// ParseRef reads an image reference as a definition writes it.
func ParseRef(s string) (Ref, error) {
	r := Ref{Raw: s}
	switch {
	case strings.HasPrefix(s, "oci:"):
		r.Kind = OCILayout
		r.Path, r.Tag = splitTag(strings.TrimPrefix(s, "oci:"))
	case strings.HasPrefix(s, "docker-archive:"):
		r.Kind = DockerArchive
		r.Path, r.Tag = splitTag(strings.TrimPrefix(s, "docker-archive:"))
	default:
		if _, err := name.ParseReference(s, name.StrictValidation); err != nil {
			if _, err2 := name.ParseReference(s); err2 != nil {
				return r, fmt.Errorf("image %q: %w (use a registry reference such as docker.io/library/redis:7.4, oci:FOLDER or docker-archive:FILE)", s, err2)
			}
		}
		r.Kind = Registry
	}
	if r.Kind != Registry && r.Path == "" {
		return r, fmt.Errorf("image %q names no path", s)
	}
	return r, nil
}

// splitTag splits "path:tag"; a colon inside the path's folders is not a tag.
func splitTag(s string) (string, string) {
	i := strings.LastIndex(s, ":")
	if i < 0 || strings.Contains(s[i+1:], "/") {
		return s, ""
	}
	return s[:i], s[i+1:]
}

// Resolved is an image chosen for linux/arm64.
type Resolved struct {
	Image  v1.Image
	Digest v1.Hash // of the arm64 image manifest
}

// Resolve finds the linux/arm64 image a reference names. For a registry
// reference, pinned (a digest from the lock) is fetched instead of the tag;
// paths of layouts and archives are relative to dir.
func Resolve(ctx context.Context, r Ref, pinned string, dir string) (*Resolved, error) {
	var img v1.Image
	var err error
	switch r.Kind {
	case Registry:
		img, err = fromRegistry(ctx, r.Raw, pinned)
	case OCILayout:
		img, err = fromLayout(filepath.Join(dir, r.Path), r.Tag)
	case DockerArchive:
		img, err = fromArchive(filepath.Join(dir, r.Path), r.Tag)
	}
	if err == nil {
		err = checkPlatform(img)
	}
	if errors.Is(err, ErrNoArm64) {
		return nil, fmt.Errorf("image %s: %w: use a tag built for linux/arm64 (a multi-arch image, or build one with --platform linux/arm64)", r.Raw, err)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", r.Raw, err)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", r.Raw, err)
	}
	if pinned != "" && d.String() != pinned {
		return nil, fmt.Errorf("image %s is now %s, the lock pins %s: run pibake lock if the change is wanted", r.Raw, d, pinned)
	}
	return &Resolved{Image: img, Digest: d}, nil
}

func checkPlatform(img v1.Image) error {
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	if cf.OS != Platform.OS || cf.Architecture != Platform.Architecture {
		return fmt.Errorf("%w: it is %s/%s", ErrNoArm64, cf.OS, cf.Architecture)
	}
	return nil
}

// fromRegistry fetches an image from a registry with the login and trust
// podman and docker would use for it (see settingsFromEnv).
func fromRegistry(ctx context.Context, raw, pinned string) (v1.Image, error) {
	s := settingsFromEnv()
	ref, err := name.ParseReference(raw, s.nameOptions(raw)...)
	if err != nil {
		return nil, err
	}
	if pinned != "" {
		if ref, err = name.NewDigest(ref.Context().Name()+"@"+pinned, s.nameOptions(raw)...); err != nil {
			return nil, err
		}
	}
	a, err := s.forRepo(ctx, ref.Context().Name())
	if err != nil {
		return nil, err
	}
	desc, err := remote.Get(ref, a.options(ctx)...)
	// go-containerregistry checks a manifest fetched by digest against
	// that digest; its error is plain text.
	if err != nil && pinned != "" && strings.Contains(err.Error(), "does not match requested digest") {
		return nil, fmt.Errorf("%w: registry %s served a manifest that is not the one the lock pins (%s): the registry, or a proxy or mirror on the way, changed what it serves; fix that, or run 'pibake lock' if the image was meant to change (%v)",
			ErrDigestMismatch, ref.Context().RegistryStr(), pinned, err)
	}
	if err != nil {
		return nil, a.explain(err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, a.explain(err)
		}
		return pickArm64(idx)
	}
	return desc.Image()
}

// pickArm64 chooses the linux/arm64 image of an index (any arm64 variant
// when none is exact).
func pickArm64(idx v1.ImageIndex) (v1.Image, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var found []string
	for _, d := range m.Manifests {
		if d.Platform == nil {
			continue
		}
		found = append(found, d.Platform.OS+"/"+d.Platform.Architecture)
		if d.Platform.OS == Platform.OS && d.Platform.Architecture == Platform.Architecture {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("%w: the index has %s", ErrNoArm64, strings.Join(found, ", "))
}

func fromLayout(dir, tag string) (v1.Image, error) {
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		return nil, fmt.Errorf("%s is not an OCI layout folder (no index.json)", dir)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var cands []v1.Descriptor
	for _, d := range m.Manifests {
		if tag == "" || d.Annotations["org.opencontainers.image.ref.name"] == tag {
			cands = append(cands, d)
		}
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("%s has no image tagged %q", dir, tag)
	}
	// One entry that is itself an index (a multi-arch image), or entries
	// that are images for several platforms.
	if len(cands) == 1 && cands[0].MediaType.IsIndex() {
		sub, err := idx.ImageIndex(cands[0].Digest)
		if err != nil {
			return nil, err
		}
		return pickArm64(sub)
	}
	var found []string
	for _, d := range cands {
		if !d.MediaType.IsImage() {
			continue
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		if cf.OS == Platform.OS && cf.Architecture == Platform.Architecture {
			return img, nil
		}
		found = append(found, cf.OS+"/"+cf.Architecture)
	}
	return nil, fmt.Errorf("%w: %s has %s", ErrNoArm64, dir, strings.Join(found, ", "))
}

func fromArchive(file, tag string) (v1.Image, error) {
	if _, err := os.Stat(file); err != nil {
		return nil, err
	}
	var t *name.Tag
	if tag != "" {
		tt, err := name.NewTag(tag)
		if err != nil {
			return nil, err
		}
		t = &tt
	}
	return tarball.ImageFromPath(file, t)
}
