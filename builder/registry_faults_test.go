package builder

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/builder/imagedef"
	"github.com/pibake/pibake/container"
	"github.com/pibake/pibake/internal/registrytest"
)

// registryFaultRepo writes a project whose small definition runs one
// container, image, with a lock holding pins (none for nil).
func registryFaultRepo(t *testing.T, image string, pins []debian.ContainerPin) (def, lockPath string, lock []byte) {
	t.Helper()
	repo := writeRepo(t, "file:///nowhere")
	def = filepath.Join(repo, "images", "small.yaml")
	b, err := os.ReadFile(def)
	if err != nil {
		t.Fatal(err)
	}
	extra := "containers:\n  - name: backend\n    image: " + image + "\n"
	if err := os.WriteFile(def, []byte(strings.Replace(string(b), "environments:", extra+"environments:", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	lockPath = LockPath(def)
	lock = (&debian.Lock{Format: debian.LockFormat, Image: "small", Suite: "trixie", SourceDateEpoch: 1700000000, Containers: pins}).Marshal()
	if err := os.WriteFile(lockPath, lock, 0o644); err != nil {
		t.Fatal(err)
	}
	return def, lockPath, lock
}

// pullLocked runs the build's container stage on the project's lock, with
// an empty layer cache and staging folder, and returns its error and
// whether it left anything in either.
func pullLocked(t *testing.T, def, lockPath string) (wrote []string, err error) {
	t.Helper()
	loaded, err := imagedef.Load(def, imagedef.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, _, err := debian.ReadLock(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	cacheDir, staging := t.TempDir(), t.TempDir()
	bd := &build{def: loaded, lock: l, lockPath: lockPath, cache: debian.Cache{Dir: cacheDir}, staging: staging}
	_, err = bd.prepareContainers(context.Background())
	for _, d := range []string{cacheDir, staging} {
		filepath.Walk(d, func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				wrote = append(wrote, p)
			}
			return nil
		})
	}
	return wrote, err
}

// TestRegistryFaults: `pibake lock` and the build's pull against a
// registry that is down, one that refuses the login, one that serves an
// amd64-only image and one (a proxy in front of the real registry) whose
// manifest for the locked digest is another image's. Each fails naming
// the container and its image, says what to do, and writes nothing: the
// lock stays as it was, no layer is cached and no tree is staged.
func TestRegistryFaults(t *testing.T) {
	reg := registrytest.Start(t)
	cleanRegistryEnvBuilder(t)
	t.Setenv(container.EnvCA, reg.CAFile)
	t.Setenv(container.EnvAuthFile, reg.AuthFile(t, filepath.Join(t.TempDir(), "ci.json"), ""))
	good := registrytest.Image(t, "arm64", map[string]string{"bin/serve": "backend 1.2.3"})
	goodDigest := reg.Push(t, "essensys/backend:1.2.3", good)
	reg.Push(t, "essensys/other:1", registrytest.Image(t, "arm64", map[string]string{"bin/serve": "not the backend"}))
	reg.Push(t, "essensys/tool:1", registrytest.Image(t, "amd64", nil))
	pin := func(image string) []debian.ContainerPin {
		return []debian.ContainerPin{{Name: "backend", Image: image, Digest: goodDigest.String()}}
	}
	lockOnly := func(def string) error {
		_, _, err := Lock(context.Background(), LockOptions{Definition: def, CacheDir: t.TempDir(), ContainersOnly: true})
		return err
	}
	check := func(what string, err error, wrote []string, lockPath string, lock []byte, sentinel error, says ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		if sentinel != nil && !errors.Is(err, sentinel) {
			t.Errorf("%s: %v, want %v", what, err, sentinel)
		}
		for _, s := range append([]string{"container backend"}, says...) {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: the error does not say %q:\n%v", what, s, err)
			}
		}
		if now, _ := os.ReadFile(lockPath); !bytes.Equal(now, lock) {
			t.Errorf("%s: the lock file changed", what)
		}
		if len(wrote) > 0 {
			t.Errorf("%s: wrote %v", what, wrote)
		}
		if strings.Contains(err.Error(), reg.Password) {
			t.Errorf("%s: the error shows the password", what)
		}
		t.Logf("%s: %v", what, err)
	}

	// Down: a port where nothing listens any more.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	image := down + "/essensys/backend:1.2.3"
	def, lockPath, lock := registryFaultRepo(t, image, nil)
	check("lock, registry down", lockOnly(def), nil, lockPath, lock, nil, image, down)
	def, lockPath, lock = registryFaultRepo(t, image, pin(image))
	wrote, err := pullLocked(t, def, lockPath)
	check("build, registry down", err, wrote, lockPath, lock, nil, image, down)

	// 401: a wrong password, at the build's pull (lock's is
	// TestLockAndPullFromPrivateRegistry's).
	image = reg.Host + "/essensys/backend:1.2.3"
	def, lockPath, lock = registryFaultRepo(t, image, pin(image))
	t.Setenv(container.EnvAuthFile, reg.AuthFile(t, filepath.Join(t.TempDir(), "wrong.json"), "not-"+reg.Password))
	wrote, err = pullLocked(t, def, lockPath)
	check("build, 401", err, wrote, lockPath, lock, container.ErrRegistryAuth, reg.Host)
	t.Setenv(container.EnvAuthFile, reg.AuthFile(t, filepath.Join(t.TempDir(), "ci.json"), ""))

	// amd64 only, at lock.
	image = reg.Host + "/essensys/tool:1"
	def, lockPath, lock = registryFaultRepo(t, image, nil)
	check("lock, amd64 only", lockOnly(def), nil, lockPath, lock, container.ErrNoArm64, image, "linux/amd64", "multi-arch")

	// A manifest that is not the locked one: the proxy answers the
	// locked digest with another image's manifest.
	proxy := tamperingProxy(t, reg, goodDigest.String(), "essensys/other:1")
	image = proxy + "/essensys/backend:1.2.3"
	def, lockPath, lock = registryFaultRepo(t, image, pin(image))
	wrote, err = pullLocked(t, def, lockPath)
	check("build, manifest not the locked digest", err, wrote, lockPath, lock, container.ErrDigestMismatch, image, goodDigest.String(), "not the one the lock pins", "pibake lock")
}

// cleanRegistryEnvBuilder points every place credentials and CAs are
// read from at empty folders.
func cleanRegistryEnvBuilder(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	for _, v := range []string{"DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", container.EnvAuthFile, container.EnvCA, container.EnvInsecure} {
		t.Setenv(v, "")
	}
}

// tamperingProxy serves the registry over TLS on another port, logged
// in as the registry's user, except that the manifest asked for by
// digest is the one of swapTo (a repository:tag of the same registry).
// It returns its HOST:PORT and adds its certificate to the trusted CAs.
func tamperingProxy(t *testing.T, reg *registrytest.Registry, digest, swapTo string) string {
	t.Helper()
	client := &http.Client{Transport: reg.Transport()}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		url := "https://" + reg.Host + r.URL.Path
		if strings.HasSuffix(r.URL.Path, "/manifests/"+digest) {
			repo, tag, _ := strings.Cut(swapTo, ":")
			url = "https://" + reg.Host + "/v2/" + repo + "/manifests/" + tag
		}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, url, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		req.SetBasicAuth(reg.User, reg.Password)
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			if k != "Docker-Content-Digest" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "proxy.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(container.EnvCA, os.Getenv(container.EnvCA)+string(os.PathListSeparator)+ca)
	return strings.TrimPrefix(srv.URL, "https://")
}
