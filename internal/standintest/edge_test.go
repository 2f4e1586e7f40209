package standintest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/builder"
	"github.com/pibake/pibake/builder/imagedef"
	"github.com/pibake/pibake/container"
	"github.com/pibake/pibake/internal/registrytest"
)

// TestEdgeDefinition: the derived definition names the registry's
// images, nginx as the proxy, and builds the backend and dashboard from
// source; it validates.
func TestEdgeDefinition(t *testing.T) {
	def := EdgeProject(t, "127.0.0.1:5999", "", nil)
	d, err := imagedef.Load(def, imagedef.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"redis":     "127.0.0.1:5999/essensyshub/essensys-redis:V.1.3.0",
		"mosquitto": "127.0.0.1:5999/essensyshub/essensys-mosquitto:V.1.3.0",
		"proxy":     "127.0.0.1:5999/essensyshub/essensys-proxy-nginx:V.1.3.0",
		"backend":   "go:examples/edge-backend",
		"dashboard": "go:examples/edge-dashboard",
	}
	for _, c := range d.Containers {
		got := c.Image
		if c.Build != nil {
			got = "go:" + c.Build.Go
		}
		if got != want[c.Name] {
			t.Errorf("container %s: %q, want %q", c.Name, got, want[c.Name])
		}
		delete(want, c.Name)
	}
	if len(want) > 0 {
		t.Errorf("containers missing: %v", want)
	}
}

// TestLockEdge: `pibake lock` of the edge definition, pointed at a real
// registry (TLS with a private CA, a password) holding the stand-ins,
// resolves its Debian packages and pins its three registry images to the
// pushed digests; the password is nowhere in the lock.
func TestLockEdge(t *testing.T) {
	if os.Getenv("PIBAKE_REAL") == "" && os.Getenv("PIBAKE_E2E") == "" {
		t.Skip("PIBAKE_REAL=1 builds the stand-in images (a bootstrap on the first run)")
	}
	reg := registrytest.Start(t)
	pushed := Push(t, reg, reg.Host)
	t.Setenv("HOME", t.TempDir())
	for _, v := range []string{"DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", container.EnvInsecure} {
		t.Setenv(v, "")
	}
	t.Setenv(container.EnvCA, reg.CAFile)
	t.Setenv(container.EnvAuthFile, reg.AuthFile(t, filepath.Join(t.TempDir(), "ci.json"), ""))
	def := EdgeProject(t, reg.Host, "", nil)
	path, lock, err := builder.Lock(context.Background(), builder.LockOptions{Definition: def, Epoch: 1796515200})
	if err != nil {
		t.Fatal(err)
	}
	if len(lock.Packages) < 100 || len(lock.Containers) != 3 {
		t.Fatalf("lock: %d packages, %d containers", len(lock.Packages), len(lock.Containers))
	}
	for _, c := range lock.Containers {
		p, ok := pushed[c.Name]
		if !ok || c.Image != p.Ref || c.Digest != p.Digest {
			t.Errorf("pinned %s %s %s, pushed %+v", c.Name, c.Image, c.Digest, p)
		}
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), reg.Password) {
		t.Error("the registry's password is in the lock")
	}
	t.Logf("locked %s: %d Debian packages, containers %+v", path, len(lock.Packages), lock.Containers)
}
