// Package registrytest runs a real OCI registry for tests: Debian's
// docker-registry (the CNCF distribution registry 2.8) on 127.0.0.1 at a
// free port, with TLS from a CA made for the test, one htpasswd login and
// its storage in a temporary folder. It stops when the test ends. Tests
// only: nothing here is part of pibake. A missing binary skips the test,
// or fails it where the real proofs are asked for (internal/hosttool).
package registrytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/pibake/pibake/internal/hosttool"
	"golang.org/x/crypto/bcrypt"
)

// Registry is a running registry.
type Registry struct {
	Host     string // 127.0.0.1:PORT, as image names spell it
	User     string
	Password string // random, for this run
	CAFile   string // PEM of the CA that signed the registry's certificate
	Dir      string // config, certificates, htpasswd, storage, log
	Version  string // what docker-registry --version says
	pool     *x509.CertPool
}

// Start runs docker-registry for the test and waits until it answers.
func Start(t testing.TB) *Registry {
	t.Helper()
	bin := hosttool.Need(t, "docker-registry", "docker-registry")
	r := &Registry{User: "essensys-ci", Dir: t.TempDir()}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("docker-registry --version: %v", err)
	}
	r.Version = strings.TrimSpace(string(out))
	var secret [16]byte
	rand.Read(secret[:])
	r.Password = hex.EncodeToString(secret[:])
	hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(r.Dir, "htpasswd"), r.User+":"+string(hash)+"\n")
	if r.pool, err = writeCerts(r.Dir); err != nil {
		t.Fatal(err)
	}
	r.CAFile = filepath.Join(r.Dir, "ca.crt")
	// A free port can be taken between the probe and the registry's
	// listen: try again on another.
	var lastErr error
	for range 3 {
		if lastErr = r.run(t, bin); lastErr == nil {
			t.Logf("registry %s (%s) up", r.Host, r.Version)
			return r
		}
	}
	t.Fatal(lastErr)
	return nil
}

// run starts the registry on a free port and waits for it.
func (r *Registry) run(t testing.TB, bin string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	r.Host = l.Addr().String()
	l.Close()
	conf := filepath.Join(r.Dir, "config.yml")
	write(t, conf, fmt.Sprintf(configYAML, filepath.Join(r.Dir, "storage"), r.Host, filepath.Join(r.Dir, "registry.crt"), filepath.Join(r.Dir, "registry.key"), filepath.Join(r.Dir, "htpasswd")))
	logFile := filepath.Join(r.Dir, "registry.log")
	lf, err := os.Create(logFile)
	if err != nil {
		return err
	}
	defer lf.Close()
	cmd := exec.Command(bin, "serve", conf)
	cmd.Stdout, cmd.Stderr = lf, lf
	// The registry reads REGISTRY_* variables as configuration: a test's
	// REGISTRY_AUTH_FILE (podman's) must not reach it.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start docker-registry: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}
	if err := r.waitReady(exited); err != nil {
		stop()
		log, _ := os.ReadFile(logFile)
		return fmt.Errorf("docker-registry on %s: %w; its log:\n%s", r.Host, err, log)
	}
	t.Cleanup(stop)
	return nil
}

// configYAML: storage, address, certificate, key, htpasswd.
const configYAML = `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: registrytest
  tls:
    certificate: %s
    key: %s
auth:
  htpasswd:
    realm: registrytest
    path: %s
`

// waitReady polls /v2/ until the registry asks for the login.
func (r *Registry) waitReady(exited <-chan error) error {
	client := &http.Client{Transport: r.Transport(), Timeout: 2 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		default:
		}
		resp, err := client.Get("https://" + r.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			return fmt.Errorf("/v2/ answered %s without a login", resp.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer on /v2/ in 20 s")
}

// Transport trusts the registry's CA (and nothing else).
func (r *Registry) Transport() http.RoundTripper {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: r.pool, MinVersion: tls.VersionTLS12}
	return tr
}

// Auth is the registry's login.
func (r *Registry) Auth() authn.Authenticator {
	return &authn.Basic{Username: r.User, Password: r.Password}
}

// AuthFile writes an auth file as podman login writes it (docker's
// config.json has the same "auths") with the login, or with password
// instead when it is not "", and returns its path.
func (r *Registry) AuthFile(t testing.TB, path, password string) string {
	t.Helper()
	if password == "" {
		password = r.Password
	}
	auth := base64.StdEncoding.EncodeToString([]byte(r.User + ":" + password))
	data, _ := json.Marshal(map[string]any{"auths": map[string]any{r.Host: map[string]string{"auth": auth}}})
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, path, string(data))
	return path
}

// Push writes an image or an index as HOST:PORT/repoTag and returns its
// digest.
func (r *Registry) Push(t testing.TB, repoTag string, what remote.Taggable) v1.Hash {
	t.Helper()
	ref, err := name.ParseReference(r.Host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	opts := []remote.Option{remote.WithContext(context.Background()), remote.WithTransport(r.Transport()), remote.WithAuth(r.Auth())}
	var d v1.Hash
	switch x := what.(type) {
	case v1.ImageIndex:
		err = remote.WriteIndex(ref, x, opts...)
		d, _ = x.Digest()
	case v1.Image:
		err = remote.Write(ref, x, opts...)
		d, _ = x.Digest()
	default:
		t.Fatalf("push %s: %T is neither an image nor an index", repoTag, what)
	}
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return d
}

// Stored lists the files of the registry's storage (blobs, manifests,
// tags) that hold s: a test searches them for a secret that must not
// have been pushed as data.
func (r *Registry) Stored(t testing.TB, s string) []string {
	t.Helper()
	var hits []string
	filepath.WalkDir(filepath.Join(r.Dir, "storage"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(s)) {
			hits = append(hits, p)
		}
		return nil
	})
	return hits
}

func write(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
