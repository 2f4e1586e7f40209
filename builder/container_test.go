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
	"github.com/pibake/pibake/manifest"
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

// containerRepo is a test repository whose small.yaml carries a Go
// container (web) and a service container (redis) pulled from a
// multi-arch index in an in-process registry on loopback, on a synthetic
// base that holds pkgs. head is put at the top of the definition.
func containerRepo(t *testing.T, head string, pkgs ...testbase.Package) (fx *fixture, def, base string, armDigest v1.Hash) {
	t.Helper()
	fx = newFixture(t)
	lock, _, err := debian.ReadLock(writeLock(t, fx.lock))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := debian.BaseKey(context.Background(), lock, debian.BaseOptions{Variant: "minbase"})
	base = debian.Cache{Dir: fx.cache}.BasePath(key)
	pkgs = append([]testbase.Package{{Name: "systemd-sysv", Version: "257.9-1", Arch: "arm64"}}, pkgs...)
	if err := testbase.Write(base, pkgs); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
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
	armDigest, _ = arm.Digest()

	repo := fx.repo(t)
	for p, data := range map[string]string{
		"go.mod":                        "module example.com/app\n\ngo 1.22\n",
		"app/main.go":                   "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"app\") }\n",
		"services/redis.container.yaml": "image: " + host + "/edge/redis:7\nvolumes: [\"redis-data:/srv/data\"]\nhealth:\n  command: [/usr/bin/server, --ping]\n",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(repo, p)), 0o755)
		os.WriteFile(filepath.Join(repo, p), []byte(data), 0o644)
	}
	def = filepath.Join(repo, "images", "small.yaml")
	b, _ := os.ReadFile(def)
	extra := "containers:\n  - name: web\n    build: {go: app}\n    ports: [\"8080:8080\"]\n    volumes: [\"web-data:/data:U\"]\n    after: [redis]\n  - service: redis\n" +
		"updater:\n  server: http://10.0.2.100:8080\n  keys: [\"" + testKey(t) + "\"]\n  health:\n    units: [hello.service]\n"
	os.WriteFile(def, []byte(head+strings.Replace(string(b), "environments:", extra+"environments:", 1)), 0o644)
	return fx, def, base, armDigest
}

// TestBuildWithContainers pulls a multi-arch stand-in image from an
// in-process registry on loopback, builds a Go container from source, and
// checks what lands in the image: the arm64 tree with its owners, the
// Quadlet units, podman's configuration, the health gate and the manifest.
func TestBuildWithContainers(t *testing.T) {
	need(t, "unsquashfs", "go")
	// The same base, with podman in it.
	fx, def, _, armDigest := containerRepo(t, "", testbase.Package{Name: "podman", Version: "5.4.2", Arch: "arm64"})

	out := filepath.Join(t.TempDir(), "out")
	if _, err := Build(context.Background(), Options{Definition: def, Board: "qemu", OutDir: out, CacheDir: fx.cache}); err == nil || !strings.Contains(err.Error(), "not pinned") || !strings.HasPrefix(err.Error(), "build small: containers: ") {
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
	cat := catter(t, root)
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
	if u := cat("/usr/lib/pibake/updater.yaml"); !strings.Contains(u, "- web.service") || !strings.Contains(u, "- redis.service") || !strings.Contains(u, "- hello.service") {
		t.Errorf("the health gate does not wait for the containers:\n%s", u)
	}
	raw, _ := os.ReadFile(filepath.Join(out, "manifest.json"))
	var m manifest.Manifest
	json.Unmarshal(raw, &m)
	if len(m.Containers) != 2 || m.Containers[1].Digest != armDigest.String() || m.Containers[0].Source != "go:app" || m.Containers[0].Bytes == 0 {
		t.Errorf("manifest containers %+v", m.Containers)
	}
	for _, c := range m.Containers {
		t.Logf("container %s: %d bytes of tree, %d entries, %s", c.Name, c.Bytes, c.Entries, c.Digest)
	}
	checkSBOM(t, out, LockPath(def))
	sameRebuild(t, fx, def, res, "two builds with containers differ")
}

// TestBuildWithDocker builds the same containers for the docker runtime
// and checks the image carries each as a docker-archive of the arm64
// image (health check in its config), a service that runs it by image
// ID, the loader, dockerd's configuration and the health gate.
func TestBuildWithDocker(t *testing.T) {
	need(t, "unsquashfs", "go")
	fx, def, base, armDigest := containerRepo(t, "container_runtime: docker\n", testbase.Package{Name: "podman", Version: "5.4.2", Arch: "arm64"})
	if _, _, err := Lock(context.Background(), LockOptions{Definition: def, CacheDir: fx.cache, ContainersOnly: true}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := Build(context.Background(), Options{Definition: def, Board: "qemu", OutDir: out, CacheDir: fx.cache}); err == nil || !strings.Contains(err.Error(), "docker.io and docker-cli") || !strings.HasPrefix(err.Error(), "build small: rootfs: ") {
		t.Fatalf("docker runtime on a base without docker: %v", err)
	}
	if err := testbase.Write(base, []testbase.Package{{Name: "systemd-sysv", Version: "257.9-1", Arch: "arm64"}, {Name: "docker.io", Version: "26.1.5", Arch: "arm64"}, {Name: "docker-cli", Version: "26.1.5", Arch: "arm64"}}); err != nil {
		t.Fatal(err)
	}
	res, err := Build(context.Background(), Options{Definition: def, Board: "qemu", OutDir: out, CacheDir: fx.cache})
	if err != nil {
		t.Fatal(err)
	}
	root := extractRoot(t, res.Image)
	cat := catter(t, root)
	var m manifest.Manifest
	raw, _ := os.ReadFile(filepath.Join(out, "manifest.json"))
	json.Unmarshal(raw, &m)
	if len(m.Containers) != 2 || m.Containers[1].Digest != armDigest.String() || m.Containers[1].Runtime != "docker" || !strings.HasPrefix(m.Containers[1].ImageID, "sha256:") {
		t.Fatalf("manifest containers %+v", m.Containers)
	}
	id := m.Containers[1].ImageID
	if got := cat("/usr/lib/pibake/containers/redis/docker/id"); got != id+"\n" {
		t.Errorf("redis image id file %q, manifest says %s", got, id)
	}
	var dm []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal([]byte(cat("/usr/lib/pibake/containers/redis/docker/image/manifest.json")), &dm); err != nil || len(dm) != 1 || len(dm[0].Layers) != 1 {
		t.Fatalf("docker-archive manifest %+v %v", dm, err)
	}
	if "sha256:"+strings.TrimPrefix(dm[0].Config, "blobs/sha256/") != id || dm[0].RepoTags[0] != "pibake.local/redis:"+strings.TrimPrefix(id, "sha256:")[:12] {
		t.Errorf("docker-archive manifest %+v, image id %s", dm, id)
	}
	if cfg := cat("/usr/lib/pibake/containers/redis/docker/image/" + dm[0].Config); !strings.Contains(cfg, `"Healthcheck":{"Test":["CMD","/usr/bin/server","--ping"]}`) || !strings.Contains(cfg, `"architecture":"arm64"`) {
		t.Errorf("redis image config:\n%s", cfg)
	}
	// The layer is stored uncompressed: the stand-in's own files.
	tr := tar.NewReader(strings.NewReader(cat("/usr/lib/pibake/containers/redis/docker/image/" + dm[0].Layers[0])))
	if h, err := tr.Next(); err != nil || h.Name != "arch" {
		t.Fatalf("redis layer: %v %v", h, err)
	} else if b, _ := io.ReadAll(tr); string(b) != "arm64" {
		t.Errorf("redis layer holds %q, want the arm64 image", b)
	}
	unit := cat("/etc/systemd/system/redis.service")
	for _, want := range []string{"Requires=pibake-docker-images.service", "ExecStart=/usr/bin/docker run --rm --name redis --pull never --volume redis-data:/srv/data " + id + "\n", "ExecStartPost=/usr/lib/pibake/docker/wait-healthy redis"} {
		if !strings.Contains(unit, want) {
			t.Errorf("redis.service lacks %q:\n%s", want, unit)
		}
	}
	if web := cat("/etc/systemd/system/web.service"); !strings.Contains(web, "After=redis.service") || !strings.Contains(web, "ExecStartPre=+/usr/lib/pibake/docker/volume web-data 65534:65534\n") || !strings.Contains(web, "--publish 8080:8080 --volume web-data:/data ") {
		t.Errorf("web.service:\n%s", web)
	}
	for _, p := range []string{"/etc/systemd/system/multi-user.target.wants/redis.service", "/etc/systemd/system/multi-user.target.wants/pibake-docker-images.service"} {
		if err := exec.Command("unsquashfs", "-lls", root, p).Run(); err != nil {
			t.Errorf("%s is not enabled", p)
		}
	}
	if d := cat("/etc/docker/daemon.json"); !strings.Contains(d, `"data-root": "/data/docker"`) {
		t.Errorf("daemon.json:\n%s", d)
	}
	if l := cat("/usr/lib/pibake/docker/load-images"); !strings.Contains(l, "docker load") {
		t.Errorf("load-images:\n%s", l)
	}
	if u := cat("/usr/lib/pibake/updater.yaml"); !strings.Contains(u, "- web.service") || !strings.Contains(u, "- redis.service") {
		t.Errorf("the health gate does not wait for the containers:\n%s", u)
	}
	if ls, _ := exec.Command("unsquashfs", "-lln", root, "/usr/share/containers/systemd").CombinedOutput(); strings.Contains(string(ls), ".container") {
		t.Errorf("docker image carries Quadlet units:\n%s", ls)
	}
	for _, c := range m.Containers {
		t.Logf("container %s: %d bytes of docker-archive, %d entries, image %s", c.Name, c.Bytes, c.Entries, c.ImageID)
	}
	sameRebuild(t, fx, def, res, "two docker builds differ")
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

// sameRebuild builds def again into a new folder: same inputs, same image.
func sameRebuild(t *testing.T, fx *fixture, def string, res *Result, msg string) {
	t.Helper()
	res2, err := Build(context.Background(), Options{Definition: def, Board: "qemu", OutDir: filepath.Join(t.TempDir(), "out2"), CacheDir: fx.cache})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Manifest.Disk.SHA256 != res.Manifest.Disk.SHA256 {
		t.Error(msg)
	}
}

// catter returns a function that reads a file of a squashfs.
func catter(t *testing.T, root string) func(string) string {
	return func(p string) string {
		t.Helper()
		out, err := exec.Command("unsquashfs", "-cat", root, p).Output()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return string(out)
	}
}

func regexpLine(text, pattern string) bool {
	return regexp.MustCompile(`(?m)^` + pattern + `$`).MatchString(text)
}
