package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/internal/testbase"
	"github.com/pibake/pibake/updater/channel"
)

// stand-in image for a platform: /arch names it, /srv/data is owned by 999.
func standIn(t *testing.T, arch string) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "arch", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(arch))},
		{Name: "srv/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "srv/data/", Typeflag: tar.TypeDir, Mode: 0o750, Uid: 999, Gid: 999},
	} {
		tw.WriteHeader(h)
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(arch))
		}
	}
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, _ := mutate.AppendLayers(empty.Image, l)
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Entrypoint = []string{"/usr/bin/server"}
	cf.Config.Cmd = []string{"--port", "6379"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestBuildWithContainers pulls a multi-arch stand-in image from an
// in-process registry on loopback, builds a Go container from source, and
// checks what lands in the image: the arm64 tree with its owners, the
// Quadlet units, podman's configuration, the health gate and the manifest.
func TestBuildWithContainers(t *testing.T) {
	need(t, "unsquashfs", "go")
	fx := newFixture(t)
	// The same base, with podman in it.
	lock, _, err := debian.ReadLock(writeLock(t, fx.lock))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := debian.BaseKey(context.Background(), lock, "minbase")
	if err := testbase.Write(debian.Cache{Dir: fx.cache}.BasePath(key), []testbase.Package{{Name: "systemd-sysv", Version: "257.9-1", Arch: "arm64"}, {Name: "podman", Version: "5.4.2", Arch: "arm64"}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	arm := standIn(t, "arm64")
	var adds []mutate.IndexAddendum
	for _, img := range []v1.Image{standIn(t, "amd64"), arm} {
		cf, _ := img.ConfigFile()
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: cf.Architecture}}})
	}
	ref, _ := name.ParseReference(host + "/edge/redis:7")
	if err := remote.WriteIndex(ref, mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)); err != nil {
		t.Fatal(err)
	}
	armDigest, _ := arm.Digest()

	repo := fx.repo(t)
	for p, data := range map[string]string{
		"go.mod":                        "module example.com/app\n\ngo 1.22\n",
		"app/main.go":                   "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"app\") }\n",
		"services/redis.container.yaml": "image: " + host + "/edge/redis:7\nvolumes: [\"redis-data:/srv/data\"]\nhealth:\n  command: [/usr/bin/server, --ping]\n",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(repo, p)), 0o755)
		os.WriteFile(filepath.Join(repo, p), []byte(data), 0o644)
	}
	def := filepath.Join(repo, "images", "small.yaml")
	b, _ := os.ReadFile(def)
	extra := "containers:\n  - name: web\n    build: {go: app}\n    ports: [\"8080:8080\"]\n    after: [redis]\n  - service: redis\n" +
		"updater:\n  server: http://10.0.2.100:8080\n  keys: [\"" + testKey(t) + "\"]\n  health:\n    units: [hello.service]\n"
	os.WriteFile(def, []byte(strings.Replace(string(b), "environments:", extra+"environments:", 1)), 0o644)

	out := filepath.Join(t.TempDir(), "out")
	if _, err := Build(context.Background(), Options{Definition: def, Board: "qemu", OutDir: out, CacheDir: fx.cache}); err == nil || !strings.Contains(err.Error(), "not pinned") {
		t.Fatalf("build with an unpinned image: %v", err)
	}
	if _, l, err := Lock(context.Background(), LockOptions{Definition: def, CacheDir: fx.cache, ContainersOnly: true}); err != nil || len(l.Containers) != 1 || l.Containers[0].Digest != armDigest.String() {
		t.Fatalf("lock --containers: %+v %v", l, err)
	}
	res, err := Build(context.Background(), Options{Definition: def, Board: "qemu", OutDir: out, CacheDir: fx.cache})
	if err != nil {
		t.Fatal(err)
	}
	root := extractRoot(t, res.Image)
	cat := func(p string) string {
		out, err := exec.Command("unsquashfs", "-cat", root, p).Output()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return string(out)
	}
	if got := cat("/usr/lib/pibake/containers/redis/rootfs/arch"); got != "arm64" {
		t.Errorf("redis tree holds %q, want the arm64 image", got)
	}
	ls, _ := exec.Command("unsquashfs", "-lln", root, "/usr/lib/pibake/containers").Output()
	if !regexpLine(string(ls), `drwxr-x--- 999/999 .* squashfs-root/usr/lib/pibake/containers/redis/rootfs/srv/data`) || !regexpLine(string(ls), `-rwxr-xr-x 0/0 .* squashfs-root/usr/lib/pibake/containers/web/rootfs/app`) {
		t.Errorf("container trees:\n%s", ls)
	}
	unit := cat("/usr/share/containers/systemd/redis.container")
	for _, want := range []string{"Rootfs=/usr/lib/pibake/containers/redis/rootfs:O", "Exec=/usr/bin/server --port 6379", "Volume=redis-data:/srv/data", `HealthCmd=["/usr/bin/server","--ping"]`, "Notify=healthy"} {
		if !strings.Contains(unit, want) {
			t.Errorf("redis.container lacks %q:\n%s", want, unit)
		}
	}
	if web := cat("/usr/share/containers/systemd/web.container"); !strings.Contains(web, "After=redis.service") || !strings.Contains(web, "Exec=/app") || !strings.Contains(web, "User=65534:65534") {
		t.Errorf("web.container:\n%s", web)
	}
	if sc := cat("/etc/containers/storage.conf"); !strings.Contains(sc, `graphroot = "/data/containers/storage"`) {
		t.Errorf("storage.conf:\n%s", sc)
	}
	if u := cat("/etc/pibake/updater.yaml"); !strings.Contains(u, "- web.service") || !strings.Contains(u, "- redis.service") || !strings.Contains(u, "- hello.service") {
		t.Errorf("the health gate does not wait for the containers:\n%s", u)
	}
	raw, _ := os.ReadFile(filepath.Join(out, "manifest.json"))
	var m Manifest
	json.Unmarshal(raw, &m)
	if len(m.Containers) != 2 || m.Containers[1].Digest != armDigest.String() || m.Containers[0].Source != "go:app" || m.Containers[0].Bytes == 0 {
		t.Errorf("manifest containers %+v", m.Containers)
	}
	for _, c := range m.Containers {
		t.Logf("container %s: %d bytes of tree, %d entries, %s", c.Name, c.Bytes, c.Entries, c.Digest)
	}
	// Same inputs, same image: rebuild and compare.
	res2, err := Build(context.Background(), Options{Definition: def, Board: "qemu", OutDir: filepath.Join(t.TempDir(), "out2"), CacheDir: fx.cache})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Manifest.Disk.SHA256 != res.Manifest.Disk.SHA256 {
		t.Error("two builds with containers differ")
	}
}

// testKey is a public key to trust, in minisign's text form.
func testKey(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	pub, _, err := channel.GenerateKeyFiles(dir, "fleet", "")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return lines[len(lines)-1]
}

func regexpLine(text, pattern string) bool {
	return regexp.MustCompile(`(?m)^` + pattern + `$`).MatchString(text)
}
