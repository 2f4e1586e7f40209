package container

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/pibake/pibake/internal/registrytest"
)

// cleanRegistryEnv points every place credentials and CAs are read from
// at empty folders, so the host's own logins never leak into a test.
func cleanRegistryEnv(t *testing.T) (home string) {
	t.Helper()
	home = t.TempDir()
	t.Setenv("HOME", home)
	for _, v := range []string{"DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", EnvAuthFile, EnvCA, EnvInsecure} {
		t.Setenv(v, "")
	}
	return home
}

// TestRealRegistry resolves and pulls from Debian's docker-registry with
// TLS from a private CA and a password: the names a team uses, a
// multi-arch index, the places podman and docker keep logins and CAs,
// and the errors of a missing CA, a wrong CA, no login and a wrong
// password, none of which shows the password.
func TestRealRegistry(t *testing.T) {
	start := time.Now()
	reg := registrytest.Start(t)
	t.Logf("%s started in %v", reg.Version, time.Since(start).Round(time.Millisecond))
	home := cleanRegistryEnv(t)
	backend := registrytest.Image(t, "arm64", map[string]string{"bin/serve": "backend 1.2.3"})
	armDash := registrytest.Image(t, "arm64", map[string]string{"bin/serve": "dashboard"})
	amdDash := registrytest.Image(t, "amd64", map[string]string{"bin/serve": "dashboard"})
	backendDigest := reg.Push(t, "essensys/backend:1.2.3", backend)
	reg.Push(t, "essensys/dashboard:1.0.0", registrytest.Index(t, amdDash, armDash))
	reg.Push(t, "essensys/tool:1", amdDash)
	armDashDigest, _ := armDash.Digest()

	resolve := func(repoTag, pinned string) (*Resolved, error) {
		ref, err := ParseRef(reg.Host + "/" + repoTag)
		if err != nil {
			t.Fatal(err)
		}
		return Resolve(context.Background(), ref, pinned, "")
	}
	var messages []string
	wantErr := func(what string, err error, sentinel error, parts ...string) {
		t.Helper()
		if err == nil || !errors.Is(err, sentinel) {
			t.Fatalf("%s: %v, want %v", what, err, sentinel)
		}
		for _, p := range append(parts, reg.Host) {
			if !strings.Contains(err.Error(), p) {
				t.Errorf("%s: the error does not say %q:\n%v", what, p, err)
			}
		}
		messages = append(messages, err.Error())
		t.Logf("%s: %v", what, err)
	}

	// Nothing configured: the private CA is unknown.
	_, err := resolve("essensys/backend:1.2.3", "")
	wantErr("no CA", err, ErrRegistryTrust, "certs.d/"+reg.Host, EnvCA)

	// A CA that signed something else.
	other, err := registrytest.OtherCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvCA, other)
	_, err = resolve("essensys/backend:1.2.3", "")
	wantErr("wrong CA", err, ErrRegistryTrust, other)

	// The CA where podman looks for a rootless user's: no login yet.
	t.Setenv(EnvCA, "")
	certs := filepath.Join(home, ".config", "containers", "certs.d", reg.Host)
	os.MkdirAll(certs, 0o755)
	ca, _ := os.ReadFile(reg.CAFile)
	os.WriteFile(filepath.Join(certs, "ca.crt"), ca, 0o644)
	_, err = resolve("essensys/backend:1.2.3", "")
	wantErr("no login", err, ErrRegistryAuth, "found none", "podman login "+reg.Host, EnvAuthFile)

	// CI's auth file, with a wrong password.
	wrong := "not-the-" + reg.Password
	ciFile := reg.AuthFile(t, filepath.Join(t.TempDir(), "ci-auth.json"), wrong)
	t.Setenv(EnvAuthFile, ciFile)
	_, err = resolve("essensys/backend:1.2.3", "")
	wantErr("wrong password", err, ErrRegistryAuth, "refused", ciFile, reg.User)

	// CI's auth file named but absent.
	t.Setenv(EnvAuthFile, filepath.Join(t.TempDir(), "absent.json"))
	if _, err = resolve("essensys/backend:1.2.3", ""); err == nil || !strings.Contains(err.Error(), "absent.json") {
		t.Fatalf("absent %s: %v", EnvAuthFile, err)
	}
	messages = append(messages, err.Error())

	// podman login's file: lock resolves the tag, build pulls the pin.
	t.Setenv(EnvAuthFile, "")
	reg.AuthFile(t, filepath.Join(home, ".config", "containers", "auth.json"), "")
	r, err := resolve("essensys/backend:1.2.3", "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Digest != backendDigest {
		t.Errorf("backend resolved to %s, pushed %s", r.Digest, backendDigest)
	}
	r, err = resolve("essensys/backend:1.2.3", backendDigest.String())
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, r.Image, "backend 1.2.3")

	// docker login's file, in DOCKER_CONFIG; the multi-arch index gives
	// its arm64 image; an amd64-only image is refused.
	os.Remove(filepath.Join(home, ".config", "containers", "auth.json"))
	dockerDir := t.TempDir()
	reg.AuthFile(t, filepath.Join(dockerDir, "config.json"), "")
	t.Setenv("DOCKER_CONFIG", dockerDir)
	if r, err = resolve("essensys/dashboard:1.0.0", ""); err != nil || r.Digest != armDashDigest {
		t.Fatalf("multi-arch index: %v, got %v want the arm64 image %s", err, r, armDashDigest)
	}
	r, err = resolve("essensys/dashboard:1.0.0", armDashDigest.String())
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, r.Image, "dashboard")
	_, err = resolve("essensys/tool:1", "")
	wantErr("amd64 only", err, ErrNoArm64, "linux/amd64")

	for _, m := range messages {
		if strings.Contains(m, reg.Password) || strings.Contains(m, wrong) {
			t.Errorf("an error shows the password: %s", m)
		}
	}
	if hits := reg.Stored(t, reg.Password); len(hits) > 0 {
		t.Errorf("the password was pushed into the registry: %v", hits)
	}
	t.Logf("whole test: %v", time.Since(start).Round(time.Millisecond))
}

// checkTree flattens a pulled image (every layer comes from the
// registry) and checks its arch and its program.
func checkTree(t *testing.T, img v1.Image, serve string) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := Flatten(img, t.TempDir(), &buf); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	entries(t, &buf, func(h *tar.Header, b []byte) { got[h.Name] = string(b) })
	if got["arch"] != "arm64" || got["bin/serve"] != serve {
		t.Errorf("pulled tree: arch %q, bin/serve %q; want arm64, %q", got["arch"], got["bin/serve"], serve)
	}
}
