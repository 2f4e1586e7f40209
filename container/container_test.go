package container

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// file is one entry of a test layer.
type file struct {
	name, body string
	typ        byte
	link       string
}

func layer(t *testing.T, files ...file) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Typeflag: f.typ, Mode: 0o644, Size: int64(len(f.body)), Linkname: f.link, Uid: 1000, Gid: 1000}
		if f.typ == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Typeflag == tar.TypeDir {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(f.body))
	}
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// image makes a test image for a platform, marked by a file /arch.
func image(t *testing.T, arch string, layers ...v1.Layer) v1.Image {
	t.Helper()
	if len(layers) == 0 {
		layers = []v1.Layer{layer(t, file{name: "arch", body: arch})}
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Entrypoint = []string{"/bin/" + arch}
	cf.Config.Env = []string{"PATH=/bin"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func index(t *testing.T, imgs ...v1.Image) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, img := range imgs {
		cf, _ := img.ConfigFile()
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: cf.OS, Architecture: cf.Architecture}}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
}

// tree flattens img and returns name -> body (dirs as "/").
func tree(t *testing.T, img v1.Image) (map[string]string, []string) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := Flatten(img, t.TempDir(), &buf); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var order []string
	entries(t, &buf, func(h *tar.Header, b []byte) {
		switch h.Typeflag {
		case tar.TypeDir:
			out[h.Name] = "/"
		case tar.TypeLink:
			out[h.Name] = "link:" + h.Linkname
		case tar.TypeSymlink:
			out[h.Name] = "symlink:" + h.Linkname
		default:
			out[h.Name] = string(b)
			if h.Uid != 1000 {
				t.Errorf("%s lost its owner: uid %d", h.Name, h.Uid)
			}
		}
		order = append(order, h.Name)
	})
	return out, order
}

// entries calls f with each entry of the tar r and its body.
func entries(t *testing.T, r io.Reader, f func(h *tar.Header, body []byte)) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		f(h, b)
	}
}

func TestFlatten(t *testing.T) {
	img := image(t, "arm64",
		layer(t, file{name: "etc/", typ: tar.TypeDir}, file{name: "etc/a", body: "a1"}, file{name: "etc/b", body: "b1"},
			file{name: "var/cache/", typ: tar.TypeDir}, file{name: "var/cache/x", body: "x"}, file{name: "var/cache/sub/y", body: "y"},
			file{name: "bin/sh", body: "shell"}, file{name: "bin/ash", typ: tar.TypeLink, link: "bin/sh"}, file{name: "bin/dash", typ: tar.TypeSymlink, link: "sh"},
			file{name: "gone/deep/file", body: "z"}),
		layer(t, file{name: "etc/a", body: "a2"}, file{name: "etc/.wh.b"}, file{name: "var/cache/.wh..wh..opq"},
			file{name: "var/cache/new", body: "n"}, file{name: ".wh.gone"}),
	)
	got, order := tree(t, img)
	want := map[string]string{
		"etc/": "/", "etc/a": "a2", "var/": "/", "var/cache/": "/", "var/cache/new": "n",
		"bin/": "/", "bin/sh": "shell", "bin/ash": "link:bin/sh", "bin/dash": "symlink:sh",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s (whiteout not applied?)", k)
		}
	}
	for i := 1; i < len(order); i++ {
		if order[i-1] > order[i] {
			t.Errorf("not sorted: %s before %s", order[i-1], order[i])
		}
	}
	// A layer that climbs out of the root is refused.
	bad := image(t, "arm64", layer(t, file{name: "../../etc/passwd", body: "x"}))
	if _, err := Flatten(bad, t.TempDir(), io.Discard); err == nil || !strings.Contains(err.Error(), "leaves the root") {
		t.Errorf("path traversal: %v", err)
	}
}

// TestRegistry pulls from an in-process registry on loopback: a multi-arch
// index gives its arm64 image, pinned by digest; an amd64-only image is
// refused.
func TestRegistry(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	arm, amd := image(t, "arm64"), image(t, "amd64")
	multi, _ := name.ParseReference(host + "/edge/multi:1")
	if err := remote.WriteIndex(multi, index(t, amd, arm)); err != nil {
		t.Fatal(err)
	}
	only, _ := name.ParseReference(host + "/edge/amd64only:1")
	if err := remote.Write(only, amd); err != nil {
		t.Fatal(err)
	}
	armDigest, _ := arm.Digest()

	ref, err := ParseRef(host + "/edge/multi:1")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Resolve(context.Background(), ref, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Digest != armDigest {
		t.Errorf("picked %s, want the arm64 image %s", r.Digest, armDigest)
	}
	got, _ := tree(t, r.Image)
	if got["arch"] != "arm64" {
		t.Errorf("flattened tree holds arch %q", got["arch"])
	}
	// Pinned: the digest is fetched even after the tag moved.
	if err := remote.Write(multi, image(t, "arm64", layer(t, file{name: "arch", body: "moved"}))); err != nil {
		t.Fatal(err)
	}
	r, err = Resolve(context.Background(), ref, armDigest.String(), "")
	if err != nil || r.Digest != armDigest {
		t.Fatalf("pinned pull: %v", err)
	}
	// Unpinned, the tag gives the new image.
	if r, err := Resolve(context.Background(), ref, "", ""); err != nil || r.Digest == armDigest {
		t.Fatalf("unpinned pull after the tag moved: %v", err)
	}
	ref, _ = ParseRef(host + "/edge/amd64only:1")
	if _, err := Resolve(context.Background(), ref, "", ""); !errors.Is(err, ErrNoArm64) {
		t.Errorf("amd64-only image: %v", err)
	}
	idxOnly, _ := name.ParseReference(host + "/edge/noarm:1")
	remote.WriteIndex(idxOnly, index(t, amd))
	ref, _ = ParseRef(host + "/edge/noarm:1")
	if _, err := Resolve(context.Background(), ref, "", ""); !errors.Is(err, ErrNoArm64) || !strings.Contains(err.Error(), "linux/amd64") {
		t.Errorf("index without arm64: %v", err)
	}
}

func TestLayoutAndArchive(t *testing.T) {
	dir := t.TempDir()
	arm, amd := image(t, "arm64"), image(t, "amd64")
	p, err := layout.Write(filepath.Join(dir, "multi"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(index(t, amd, arm), layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "1.0"})); err != nil {
		t.Fatal(err)
	}
	want, _ := arm.Digest()
	for _, s := range []string{"oci:multi", "oci:multi:1.0"} {
		ref, err := ParseRef(s)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Resolve(context.Background(), ref, "", dir)
		if err != nil || r.Digest != want {
			t.Fatalf("%s: %v", s, err)
		}
	}
	ref, _ := ParseRef("oci:multi:2.0")
	if _, err := Resolve(context.Background(), ref, "", dir); err == nil {
		t.Error("missing tag accepted")
	}
	ref, _ = ParseRef("oci:nothere")
	if _, err := Resolve(context.Background(), ref, "", dir); err == nil || !strings.Contains(err.Error(), "not an OCI layout") {
		t.Errorf("missing layout: %v", err)
	}
	// A docker-archive file, and a pin it no longer matches.
	tag, _ := name.NewTag("edge/app:1")
	if err := tarball.WriteToFile(filepath.Join(dir, "app.tar"), tag, arm); err != nil {
		t.Fatal(err)
	}
	ref, _ = ParseRef("docker-archive:app.tar")
	if _, err := Resolve(context.Background(), ref, want.String(), dir); err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve(context.Background(), ref, "sha256:"+strings.Repeat("0", 64), dir); err == nil || !strings.Contains(err.Error(), "pibake lock") {
		t.Errorf("stale pin: %v", err)
	}
	tarball.WriteToFile(filepath.Join(dir, "amd.tar"), tag, amd)
	ref, _ = ParseRef("docker-archive:amd.tar")
	if _, err := Resolve(context.Background(), ref, "", dir); !errors.Is(err, ErrNoArm64) {
		t.Errorf("amd64 archive: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "junk.tar"), []byte("junk"), 0o644)
	ref, _ = ParseRef("docker-archive:junk.tar")
	if _, err := Resolve(context.Background(), ref, "", dir); err == nil {
		t.Error("junk archive accepted")
	}
}

func TestUnit(t *testing.T) {
	img := image(t, "arm64")
	cf, _ := img.ConfigFile()
	cf.Config.Cmd = []string{"--serve"}
	cf.Config.User = "65534:65534"
	u := string(Unit(Spec{Name: "hello", Ports: []string{"8080:8080"}, Volumes: []string{"hello-data:/data"},
		Environment: map[string]string{"GREETING": "hi there", "B": "100%"}, Command: []string{"--listen", ":8080"},
		Health: &Health{Command: []string{"/app", "-check"}, Interval: 5e9, Retries: 3}, After: []string{"redis"}}, cf))
	for _, want := range []string{
		"Rootfs=/usr/lib/pibake/containers/hello/rootfs:O\n", "User=65534:65534\n", "PublishPort=8080:8080\n",
		"Volume=hello-data:/data\n", `Environment="GREETING=hi there"` + "\n", `Environment="B=100%%"` + "\n", "Environment=PATH=/bin\n",
		`HealthCmd=["/app","-check"]` + "\n", "HealthInterval=5s\n", "HealthRetries=3\n", "Notify=healthy\n",
		"Exec=/bin/arm64 --listen :8080\n", "After=redis.service\nRequires=redis.service\n", "WantedBy=multi-user.target\n",
	} {
		if !strings.Contains(u, want) {
			t.Errorf("unit lacks %q:\n%s", want, u)
		}
	}
}
