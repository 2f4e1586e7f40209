package standintest

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// layerTar rewrites the bootstrapped tree as a layer: paths without the
// leading "./", only folders, files and links (the device nodes
// mmdebstrap leaves in /dev are podman's business), nothing under /dev,
// /proc, /sys, /run or /tmp, times clamped to epoch, owners by number.
func layerTar(treeTar string, epoch int64) ([]byte, error) {
	f, err := os.Open(treeTar)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	clamp := time.Unix(epoch, 0).UTC()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", treeTar, err)
		}
		name := strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")
		if name == "" || skipped(name) {
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir, tar.TypeReg, tar.TypeSymlink, tar.TypeLink:
		default:
			continue
		}
		out := &tar.Header{Typeflag: h.Typeflag, Name: name, Linkname: h.Linkname, Mode: h.Mode, Uid: h.Uid, Gid: h.Gid, Size: h.Size, ModTime: h.ModTime, Format: tar.FormatPAX}
		if h.Typeflag == tar.TypeLink {
			out.Linkname = strings.TrimPrefix(strings.TrimPrefix(h.Linkname, "./"), "/")
		}
		if out.ModTime.After(clamp) {
			out.ModTime = clamp
		}
		if len(h.PAXRecords) > 0 {
			for k, v := range h.PAXRecords {
				if strings.HasPrefix(k, "SCHILY.xattr.security.capability") {
					out.PAXRecords = map[string]string{k: v}
				}
			}
		}
		if err := tw.WriteHeader(out); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, tr); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// skipped is what is below the folders whose content a container gets
// from its runtime: the folders stay, empty.
func skipped(name string) bool {
	for _, d := range []string{"dev/", "proc/", "sys/", "run/", "tmp/"} {
		if strings.HasPrefix(name, d) && len(name) > len(d) {
			return true
		}
	}
	return false
}

// Build makes the three stand-in images from the tree (Tree), keyed by
// Image.Name. The layer is one and the same in all three.
func Build(ctx context.Context, log *slog.Logger) (map[string]v1.Image, error) {
	if log == nil {
		log = discard()
	}
	tree, lock, err := Tree(ctx, log)
	if err != nil {
		return nil, err
	}
	data, err := layerTar(tree, lock.SourceDateEpoch)
	if err != nil {
		return nil, fmt.Errorf("stand-ins: layer: %w", err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: time.Unix(lock.SourceDateEpoch, 0).UTC()}
	out := map[string]v1.Image{}
	for _, im := range Images {
		cf, err := base.ConfigFile()
		if err != nil {
			return nil, err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Created = "linux", "arm64", created
		cf.Config.Cmd = im.Cmd
		cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
		cf.Config.ExposedPorts = map[string]struct{}{im.Port: {}}
		cf.Config.Labels = map[string]string{"org.opencontainers.image.description": "pibake test stand-in: Debian's " + strings.Join(Packages, ", ") + "; runs " + im.Cmd[0]}
		img, err := mutate.ConfigFile(base, cf)
		if err != nil {
			return nil, err
		}
		out[im.Name] = img
	}
	return out, nil
}

// Registry is where stand-ins are pushed: internal/registrytest's.
type Registry interface {
	Push(t testing.TB, repoTag string, what remote.Taggable) v1.Hash
}

// Pushed is a stand-in in a registry.
type Pushed struct {
	Image
	Ref    string // HOST:PORT/REPO:TAG
	Digest string
}

// Push builds the stand-ins and pushes them to reg on host (HOST:PORT),
// keyed by Image.Name.
func Push(t testing.TB, reg Registry, host string) map[string]Pushed {
	t.Helper()
	started := time.Now()
	imgs, err := Build(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Pushed{}
	for _, im := range Images {
		d := reg.Push(t, im.Repo+":"+im.Tag, imgs[im.Name])
		out[im.Name] = Pushed{Image: im, Ref: host + "/" + im.Repo + ":" + im.Tag, Digest: d.String()}
	}
	t.Logf("stand-in images built and pushed to %s in %s", host, time.Since(started).Round(time.Second))
	return out
}
