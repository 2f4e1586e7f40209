package container

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// Environment variables pibake reads for registries, besides the ones
// podman and docker define (REGISTRY_AUTH_FILE, DOCKER_CONFIG,
// XDG_RUNTIME_DIR, XDG_CONFIG_HOME).
const (
	// EnvAuthFile names an auth file (podman's auth.json or docker's
	// config.json format) read before any other; it must exist.
	EnvAuthFile = "PIBAKE_REGISTRY_AUTH_FILE"
	// EnvCA names PEM files (separated by the path list separator) of
	// CAs trusted for every registry, besides the system's.
	EnvCA = "PIBAKE_REGISTRY_CA"
	// EnvInsecure lists registries (HOST:PORT, comma separated) that may
	// be reached over plain HTTP although they are not on loopback.
	EnvInsecure = "PIBAKE_REGISTRY_INSECURE"
)

// authFile is one place credentials may be stored.
type authFile struct {
	Path     string
	Required bool // named explicitly: its absence is an error
}

// credential is the login found for a registry, and where.
type credential struct {
	auth   authn.AuthConfig
	source string // the file (and helper) it came from; never the secret
}

// authConfigFile is the part of podman's auth.json and docker's
// config.json that holds logins.
type authConfigFile struct {
	Auths map[string]struct {
		Auth          string `json:"auth"`
		Username      string `json:"username"`
		Password      string `json:"password"`
		IdentityToken string `json:"identitytoken"`
	} `json:"auths"`
	CredHelpers map[string]string `json:"credHelpers"`
	CredsStore  string            `json:"credsStore"`
}

// defaultAuthFiles are the auth files in the order they are read:
// pibake's own, then podman's (as podman reads them), then docker's.
func defaultAuthFiles() []authFile {
	var files []authFile
	if p := os.Getenv(EnvAuthFile); p != "" {
		files = append(files, authFile{Path: p, Required: true})
	}
	if p := os.Getenv("REGISTRY_AUTH_FILE"); p != "" {
		files = append(files, authFile{Path: p, Required: true})
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		files = append(files, authFile{Path: filepath.Join(d, "containers", "auth.json")})
	}
	home, _ := os.UserHomeDir()
	config := os.Getenv("XDG_CONFIG_HOME")
	if config == "" && home != "" {
		config = filepath.Join(home, ".config")
	}
	if config != "" {
		files = append(files, authFile{Path: filepath.Join(config, "containers", "auth.json")})
	}
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		files = append(files, authFile{Path: filepath.Join(d, "config.json")})
	} else if home != "" {
		files = append(files, authFile{Path: filepath.Join(home, ".docker", "config.json")})
	}
	return files
}

// findCredential returns the login for a repository (HOST[:PORT]/PATH):
// the first file with an entry for the repository, one of its parent
// namespaces or its registry wins. None found is not an error: the
// registry is then asked anonymously.
func findCredential(ctx context.Context, files []authFile, repo string) (*credential, error) {
	for _, f := range files {
		data, err := os.ReadFile(f.Path)
		if errors.Is(err, fs.ErrNotExist) && !f.Required {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("registry credentials: %w (check the file, or unset the variable that names it)", err)
		}
		var cf authConfigFile
		if err := json.Unmarshal(data, &cf); err != nil {
			return nil, fmt.Errorf("registry credentials: %s is not an auth file (want {\"auths\": {\"HOST:PORT\": {\"auth\": BASE64(USER:PASSWORD)}}}): %v", f.Path, syntaxOnly(err))
		}
		c, err := cf.lookup(ctx, f.Path, repo)
		if err != nil || c != nil {
			return c, err
		}
	}
	return nil, nil
}

// syntaxOnly drops what an error may quote of the file's content.
func syntaxOnly(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q has the wrong type", te.Field)
	}
	return errors.New("unreadable JSON")
}

// lookup finds repo's entry in one file: a credential helper named for
// the registry, a stored login (most specific key first), then the
// file's default credential store.
func (cf *authConfigFile) lookup(ctx context.Context, path, repo string) (*credential, error) {
	host, _, _ := strings.Cut(repo, "/")
	if h := cf.CredHelpers[host]; h != "" {
		return runHelper(ctx, path, h, host)
	}
	if h := cf.CredHelpers[dockerHub]; h != "" && host == name.DefaultRegistry {
		return runHelper(ctx, path, h, authn.DefaultAuthKey)
	}
	byScope := map[string]string{} // normalized key -> key as written
	keys := make([]string, 0, len(cf.Auths))
	for key := range cf.Auths {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		n := normalizeAuthKey(key)
		if prev, ok := byScope[n]; !ok || strings.Contains(prev, "://") {
			byScope[n] = key
		}
	}
	for _, scope := range authScopes(repo) {
		key, ok := byScope[scope]
		if !ok {
			continue
		}
		e := cf.Auths[key]
		a, err := decodeAuth(e.Auth, e.Username, e.Password)
		if err != nil {
			return nil, fmt.Errorf("registry credentials: %s, entry %q: %w", path, key, err)
		}
		a.IdentityToken = e.IdentityToken
		if a.Username != "" || a.IdentityToken != "" {
			return &credential{auth: a, source: path}, nil
		}
	}
	if cf.CredsStore != "" {
		if host == name.DefaultRegistry {
			host = authn.DefaultAuthKey
		}
		return runHelper(ctx, path, cf.CredsStore, host)
	}
	return nil, nil
}

// dockerHub is the name podman's auth files give Docker Hub
// (go-containerregistry names it index.docker.io).
const dockerHub = "docker.io"

// authScopes are the keys that may hold repo's login, most specific
// first: the repository, its parent namespaces, its registry.
func authScopes(repo string) []string {
	var out []string
	for scope := repo; ; {
		out = append(out, scope)
		j := strings.LastIndex(scope, "/")
		if j < 0 {
			break
		}
		scope = scope[:j]
	}
	if rest, ok := strings.CutPrefix(repo, name.DefaultRegistry+"/"); ok {
		out = append(out, authScopes(dockerHub+"/"+rest)...)
	}
	return out
}

// normalizeAuthKey turns the keys tools write ("HOST:PORT",
// "HOST/NAMESPACE", docker's old "https://HOST/v1/") into HOST[/PATH].
func normalizeAuthKey(key string) string {
	for _, scheme := range []string{"https://", "http://"} {
		if rest, ok := strings.CutPrefix(key, scheme); ok {
			host, _, _ := strings.Cut(rest, "/")
			return host
		}
	}
	return strings.TrimSuffix(key, "/")
}

// decodeAuth reads a login stored as base64("USER:PASSWORD") or as
// separate fields.
func decodeAuth(auth, user, password string) (authn.AuthConfig, error) {
	if auth == "" {
		return authn.AuthConfig{Username: user, Password: password}, nil
	}
	raw, err := base64.StdEncoding.DecodeString(auth)
	if err != nil {
		return authn.AuthConfig{}, errors.New(`"auth" is not base64 (want base64 of USER:PASSWORD)`)
	}
	u, p, ok := strings.Cut(string(raw), ":")
	if !ok {
		return authn.AuthConfig{}, errors.New(`"auth" does not hold USER:PASSWORD`)
	}
	return authn.AuthConfig{Username: u, Password: p}, nil
}

// runHelper asks a docker credential helper (docker-credential-NAME on
// PATH) for host's login. "Not found" is no credential, not an error.
func runHelper(ctx context.Context, path, helper, host string) (*credential, error) {
	prog := "docker-credential-" + helper
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, "get")
	cmd.Stdin = strings.NewReader(host)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String() + " " + stderr.String())
		if strings.Contains(strings.ToLower(msg), "credentials not found") {
			return nil, nil
		}
		first, _, _ := strings.Cut(msg, "\n")
		return nil, fmt.Errorf("registry credentials for %s: %s names the credential helper %s: %w (%.200s): install it or log in again", host, path, prog, err, first)
	}
	var r struct{ Username, Secret string }
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return nil, fmt.Errorf("registry credentials for %s: %s gave no JSON login: %v", host, prog, syntaxOnly(err))
	}
	src := path + " (" + prog + ")"
	if r.Username == "<token>" {
		return &credential{auth: authn.AuthConfig{IdentityToken: r.Secret}, source: src}, nil
	}
	return &credential{auth: authn.AuthConfig{Username: r.Username, Password: r.Secret}, source: src}, nil
}
