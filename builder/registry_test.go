package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/builder/imagedef"
	"github.com/pibake/pibake/container"
	"github.com/pibake/pibake/internal/registrytest"
)

// TestLockAndPullFromPrivateRegistry: `pibake lock --containers` pins a
// definition's images from Debian's docker-registry behind TLS (a private
// CA) and a password, the multi-arch one to its arm64 image, and the
// build's container stage pulls and flattens them at those digests. A
// wrong password or no login fails naming the registry and leaves the
// lock as it was; the password is in no lock, tree, unit or error.
func TestLockAndPullFromPrivateRegistry(t *testing.T) {
	start := time.Now()
	reg := registrytest.Start(t)
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, v := range []string{"DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", container.EnvInsecure} {
		t.Setenv(v, "")
	}
	t.Setenv(container.EnvCA, reg.CAFile)
	backend := registrytest.Image(t, "arm64", map[string]string{"bin/serve": "backend 1.2.3"})
	backendDigest := reg.Push(t, "essensys/backend:1.2.3", backend)
	armDash := registrytest.Image(t, "arm64", map[string]string{"bin/serve": "dashboard"})
	reg.Push(t, "essensys/dashboard:1.0.0", registrytest.Index(t, registrytest.Image(t, "amd64", nil), armDash))
	dashDigest, _ := armDash.Digest()

	repo := writeRepo(t, "file:///nowhere")
	def := filepath.Join(repo, "images", "small.yaml")
	b, _ := os.ReadFile(def)
	extra := "containers:\n  - name: backend\n    image: " + reg.Host + "/essensys/backend:1.2.3\n  - name: dashboard\n    image: " + reg.Host + "/essensys/dashboard:1.0.0\n    after: [backend]\n"
	os.WriteFile(def, []byte(strings.Replace(string(b), "environments:", extra+"environments:", 1)), 0o644)
	lockPath := LockPath(def)
	old := (&debian.Lock{Format: debian.LockFormat, Image: "small", Suite: "trixie", SourceDateEpoch: 1700000000}).Marshal()
	os.WriteFile(lockPath, old, 0o644)
	lock := func() (*debian.Lock, error) {
		_, l, err := Lock(context.Background(), LockOptions{Definition: def, CacheDir: t.TempDir(), ContainersOnly: true})
		return l, err
	}
	wrong := "not-" + reg.Password
	var outputs [][]byte

	t.Setenv(container.EnvAuthFile, reg.AuthFile(t, filepath.Join(t.TempDir(), "ci.json"), wrong))
	for _, what := range []string{"wrong password", "no login"} {
		if what == "no login" {
			t.Setenv(container.EnvAuthFile, "")
		}
		_, err := lock()
		if !errors.Is(err, container.ErrRegistryAuth) || !strings.Contains(err.Error(), "container backend") || !strings.Contains(err.Error(), reg.Host) {
			t.Fatalf("lock, %s: %v", what, err)
		}
		t.Logf("lock, %s: %v", what, err)
		outputs = append(outputs, []byte(err.Error()))
		if now, _ := os.ReadFile(lockPath); !bytes.Equal(now, old) {
			t.Fatalf("lock, %s: the lock file changed", what)
		}
	}

	// The login as CI writes it from a secret.
	t.Setenv(container.EnvAuthFile, reg.AuthFile(t, filepath.Join(t.TempDir(), "ci.json"), ""))
	t.Logf("registry up, images pushed, two failed locks: %v", time.Since(start).Round(time.Millisecond))
	l, err := lock()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("locked: %v", time.Since(start).Round(time.Millisecond))
	if len(l.Containers) != 2 || l.Containers[0].Digest != backendDigest.String() || l.Containers[1].Digest != dashDigest.String() {
		t.Fatalf("pins %+v, want backend %s and dashboard's arm64 image %s", l.Containers, backendDigest, dashDigest)
	}
	locked, _ := os.ReadFile(lockPath)
	outputs = append(outputs, locked)

	// The build's container stage, on the lock just written.
	loaded, err := imagedef.Load(def, imagedef.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bd := &build{def: loaded, lock: l, lockPath: lockPath, cache: debian.Cache{Dir: t.TempDir()}, staging: t.TempDir()}
	if _, err := bd.prepareContainers(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"backend 1.2.3", "dashboard"} {
		c := bd.containers[i]
		if c.digest != l.Containers[i].Digest {
			t.Errorf("%s: built from %s, the lock pins %s", c.name, c.digest, l.Containers[i].Digest)
		}
		tree, _ := os.ReadFile(c.tree)
		if got := tarFile(t, tree, "bin/serve"); got != want || tarFile(t, tree, "arch") != "arm64" {
			t.Errorf("%s: pulled tree holds %q", c.name, got)
		}
		outputs = append(outputs, tree, c.unit)
	}
	for _, o := range outputs {
		if bytes.Contains(o, []byte(reg.Password)) {
			t.Errorf("the password is in an output: %.300s", o)
		}
	}
	t.Logf("%s: lock and pull in %v", reg.Version, time.Since(start).Round(time.Millisecond))
}

// tarFile is the content of name in a tar.
func tarFile(t *testing.T, data []byte, name string) string {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			b, _ := io.ReadAll(tr)
			return string(b)
		}
	}
}
