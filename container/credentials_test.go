package container

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

func writeAuth(t *testing.T, path, body string) string {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o700)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func basic(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// TestCredentialOrder: pibake's file, then REGISTRY_AUTH_FILE, podman's
// runtime and config files, then docker's; the first file with an entry
// for the repository, a parent namespace or the registry wins; keys as
// podman and docker write them.
func TestCredentialOrder(t *testing.T) {
	home := cleanRegistryEnv(t)
	run := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", run)
	docker := writeAuth(t, filepath.Join(home, ".docker", "config.json"),
		`{"auths": {"https://registry.example.com:5000/v1/": {"auth": "`+basic("docker", "d")+`"}, "index.docker.io": {"auth": "`+basic("hub", "h")+`"}}}`)
	podman := writeAuth(t, filepath.Join(home, ".config", "containers", "auth.json"),
		`{"auths": {"registry.example.com:5000/essensys": {"auth": "`+basic("team", "t")+`"}, "docker.io/library": {"username": "lib", "password": "l"}}}`)
	get := func(repo string) (string, string) {
		t.Helper()
		c, err := findCredential(context.Background(), defaultAuthFiles(), repo)
		if err != nil {
			t.Fatal(err)
		}
		if c == nil {
			return "", ""
		}
		return c.auth.Username, c.source
	}
	for repo, want := range map[string][2]string{
		"registry.example.com:5000/essensys/backend": {"team", podman},
		"registry.example.com:5000/other/tool":       {"docker", docker},
		"index.docker.io/library/redis":              {"lib", podman},
		"index.docker.io/eclipse-mosquitto/x":        {"hub", docker},
		"elsewhere.example.com/x":                    {"", ""},
	} {
		if u, src := get(repo); u != want[0] || src != want[1] {
			t.Errorf("%s: user %q from %q, want %q from %q", repo, u, src, want[0], want[1])
		}
	}
	writeAuth(t, filepath.Join(run, "containers", "auth.json"), `{"auths": {"registry.example.com:5000": {"auth": "`+basic("runtime", "r")+`"}}}`)
	if u, _ := get("registry.example.com:5000/essensys/backend"); u != "runtime" {
		t.Errorf("podman's runtime file is read first: got %q", u)
	}
	ci := writeAuth(t, filepath.Join(t.TempDir(), "ci.json"), `{"auths": {"registry.example.com:5000": {"auth": "`+basic("ci", "c")+`"}}}`)
	t.Setenv(EnvAuthFile, ci)
	if u, src := get("registry.example.com:5000/essensys/backend"); u != "ci" || src != ci {
		t.Errorf("%s is read first: got %q from %q", EnvAuthFile, u, src)
	}
}

// TestCredentialErrors: a broken file is named, and its content (where a
// password may be) is not quoted.
func TestCredentialErrors(t *testing.T) {
	home := cleanRegistryEnv(t)
	secret := "s3cret-Pa55"
	f := writeAuth(t, filepath.Join(home, ".config", "containers", "auth.json"), `{"auths": {"r.example:5000": {"auth": "`+secret+`"}}`)
	_, err := findCredential(context.Background(), defaultAuthFiles(), "r.example:5000/a")
	if err == nil || !strings.Contains(err.Error(), f) || strings.Contains(err.Error(), secret) {
		t.Errorf("truncated file: %v", err)
	}
	writeAuth(t, f, `{"auths": {"r.example:5000": {"auth": "`+secret+`"}}}`)
	_, err = findCredential(context.Background(), defaultAuthFiles(), "r.example:5000/a")
	if err == nil || !strings.Contains(err.Error(), "base64") || strings.Contains(err.Error(), secret) {
		t.Errorf("auth not base64: %v", err)
	}
	writeAuth(t, f, `{"auths": {"r.example:5000": {"auth": 12}}}`)
	if _, err = findCredential(context.Background(), defaultAuthFiles(), "r.example:5000/a"); err == nil || !strings.Contains(err.Error(), "wrong type") {
		t.Errorf("wrong type: %v", err)
	}
}

// TestCredentialHelper: docker's credHelpers and credsStore run
// docker-credential-NAME; "not found" is no login, not an error.
func TestCredentialHelper(t *testing.T) {
	home := cleanRegistryEnv(t)
	bin := t.TempDir()
	helper := "#!/bin/sh\nread host\ncase \"$host\" in\n  r.example:5000) echo '{\"ServerURL\":\"r.example:5000\",\"Username\":\"from-helper\",\"Secret\":\"x\"}' ;;\n  *) echo 'credentials not found in native keychain'; exit 1 ;;\nesac\n"
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-fake"), []byte(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	f := writeAuth(t, filepath.Join(home, ".docker", "config.json"), `{"auths": {"r.example:5000": {}}, "credsStore": "fake", "credHelpers": {"q.example": "missing"}}`)
	c, err := findCredential(context.Background(), defaultAuthFiles(), "r.example:5000/a/b")
	if err != nil || c == nil || c.auth.Username != "from-helper" || !strings.Contains(c.source, "docker-credential-fake") {
		t.Fatalf("credsStore: %+v %v", c, err)
	}
	if c, err := findCredential(context.Background(), defaultAuthFiles(), "other.example/a"); c != nil || err != nil {
		t.Errorf("helper without a login: %+v %v", c, err)
	}
	if _, err := findCredential(context.Background(), defaultAuthFiles(), "q.example/a"); err == nil || !strings.Contains(err.Error(), "docker-credential-missing") || !strings.Contains(err.Error(), f) {
		t.Errorf("absent helper: %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestPlainHTTP: go-containerregistry falls back to HTTP for private
// addresses and *.localhost names; pibake only for loopback and the
// registries PIBAKE_REGISTRY_INSECURE lists.
func TestPlainHTTP(t *testing.T) {
	ok := roundTripFunc(func(*http.Request) (*http.Response, error) { return &http.Response{StatusCode: 200}, nil })
	h := httpsOnly{next: ok, allowed: map[string]bool{"10.0.0.9:5000": true}}
	for url, allowed := range map[string]bool{
		"http://127.0.0.1:5000/v2/":          true,
		"http://localhost:5000/v2/":          true,
		"http://[::1]:5000/v2/":              true,
		"http://10.0.0.9:5000/v2/":           true,
		"https://192.168.1.20:5000/v2/":      true,
		"http://192.168.1.20:5000/v2/":       false,
		"http://registry.localhost:5000/v2/": false,
		"http://registry.example.com/v2/":    false,
	} {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		_, err := h.RoundTrip(req)
		if allowed != (err == nil) || err != nil && (!errors.Is(err, ErrPlainHTTP) || !strings.Contains(err.Error(), EnvInsecure)) {
			t.Errorf("%s: %v", url, err)
		}
	}
	// Through a whole resolve: a registry named NAME.localhost (which
	// go-containerregistry would try over HTTP) that speaks only HTTP.
	cleanRegistryEnv(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := "registry.localhost" + srv.URL[strings.LastIndex(srv.URL, ":"):]
	ref, _ := ParseRef(host + "/essensys/backend:1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := Resolve(ctx, ref, "", ""); !errors.Is(err, ErrPlainHTTP) || !strings.Contains(err.Error(), "list "+host+" in "+EnvInsecure) {
		t.Errorf("plain HTTP off loopback: %v", err)
	}
	t.Setenv(EnvInsecure, "registry.lan:5000, 10.0.0.9:5000")
	s := settingsFromEnv()
	if len(s.nameOptions("registry.lan:5000/essensys/backend:1")) != 1 || len(s.nameOptions("registry.lan:5001/x:1")) != 0 {
		t.Errorf("%s does not make its registries eligible for HTTP", EnvInsecure)
	}
}
