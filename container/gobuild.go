package container

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/pibake/pibake/internal/gocompile"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// GoBuild describes an image pibake builds from Go source: one static
// linux/arm64 binary at /app in an otherwise empty image (plus /tmp and
// the folders podman mounts onto), no registry and no Docker involved.
type GoBuild struct {
	Module  string   // folder of the go.mod
	Package string   // package path relative to Module, e.g. ./examples/hello
	Env     []string // extra environment for the image (KEY=value)
	User    string   // user the process runs as, default 65534:65534
	Ports   []string // exposed ports, e.g. 8080/tcp
	Epoch   int64    // creation time of the image and its files
}

// Build compiles the package and returns the OCI image. The bytes depend
// only on the source, the Go toolchain and Epoch.
func (g GoBuild) Build(ctx context.Context, tmpDir string) (v1.Image, error) {
	dir, err := os.MkdirTemp(tmpDir, "pibake-gobuild-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "app")
	if err := gocompile.Arm64(ctx, "go", g.Module, g.Package, bin, "-mod=mod"); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	mtime := time.Unix(g.Epoch, 0).UTC()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777},
		{Typeflag: tar.TypeReg, Name: "app", Mode: 0o755, Size: int64(len(data))},
	} {
		h.ModTime, h.Format = mtime, tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerData := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerData)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	user := g.User
	if user == "" {
		user = "65534:65534"
	}
	ports := map[string]struct{}{}
	for _, p := range g.Ports {
		ports[p] = struct{}{}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = Platform.OS, Platform.Architecture
	cf.Created = v1.Time{Time: mtime}
	cf.Config.Entrypoint = []string{"/app"}
	cf.Config.Env = append([]string{"PATH=/"}, g.Env...)
	cf.Config.User = user
	cf.Config.WorkingDir = "/"
	if len(ports) > 0 {
		cf.Config.ExposedPorts = ports
	}
	cf.History = []v1.History{{Created: v1.Time{Time: mtime}, CreatedBy: "pibake: go build " + g.Package}}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	return img, nil
}
