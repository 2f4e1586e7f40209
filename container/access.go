package container

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Errors a registry pull fails with; the message says which registry and
// what to do, never a secret.
var (
	// ErrRegistryAuth: the registry wants a login that was missing or
	// that it refused.
	ErrRegistryAuth = errors.New("registry login failed")
	// ErrRegistryTrust: the registry's certificate is not trusted.
	ErrRegistryTrust = errors.New("registry certificate not trusted")
	// ErrPlainHTTP: plain HTTP to a registry off loopback that
	// PIBAKE_REGISTRY_INSECURE does not name.
	ErrPlainHTTP = errors.New("plain HTTP to a registry refused")
)

// settings are where credentials and trust come from: the environment
// and the files podman and docker keep them in.
type settings struct {
	authFiles []authFile
	certDirs  []string // roots of certs.d/HOST:PORT/ folders, in order
	caFiles   []string // CAs for every registry (PIBAKE_REGISTRY_CA)
	insecure  map[string]bool
}

// settingsFromEnv reads the settings as podman and docker do, plus
// pibake's own variables.
func settingsFromEnv() settings {
	s := settings{authFiles: defaultAuthFiles(), insecure: map[string]bool{}}
	config := os.Getenv("XDG_CONFIG_HOME")
	if home, err := os.UserHomeDir(); config == "" && err == nil {
		config = filepath.Join(home, ".config")
	}
	if config != "" {
		s.certDirs = append(s.certDirs, filepath.Join(config, "containers", "certs.d"))
	}
	s.certDirs = append(s.certDirs, "/etc/containers/certs.d", "/etc/docker/certs.d")
	for _, f := range filepath.SplitList(os.Getenv(EnvCA)) {
		if f != "" {
			s.caFiles = append(s.caFiles, f)
		}
	}
	for _, h := range strings.Split(os.Getenv(EnvInsecure), ",") {
		if h = strings.TrimSpace(h); h != "" {
			s.insecure[h] = true
		}
	}
	return s
}

// access is how one registry is reached: its login, the CAs trusted for
// it and the transport that uses them.
type access struct {
	host      string
	cred      *credential
	searched  []string // the auth files looked in
	certDirs  []string // where a CA for host is looked for
	cas       []string // the CA files added for host
	transport http.RoundTripper
}

// forRepo finds the login and trust for a repository (HOST[:PORT]/PATH).
func (s settings) forRepo(ctx context.Context, repo string) (*access, error) {
	host, _, _ := strings.Cut(repo, "/")
	a := &access{host: host}
	for _, f := range s.authFiles {
		a.searched = append(a.searched, f.Path)
	}
	var err error
	if a.cred, err = findCredential(ctx, s.authFiles, repo); err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	for _, f := range s.caFiles {
		if err := addCA(pool, f); err != nil {
			return nil, fmt.Errorf("registry %s: %s=%s: %w", host, EnvCA, f, err)
		}
		a.cas = append(a.cas, f)
	}
	for _, root := range s.certDirs {
		dir := filepath.Join(root, host)
		a.certDirs = append(a.certDirs, dir)
		cas, err := loadCertDir(dir, pool, cfg)
		if err != nil {
			return nil, fmt.Errorf("registry %s: %w", host, err)
		}
		a.cas = append(a.cas, cas...)
	}
	base := remote.DefaultTransport.(*http.Transport).Clone()
	base.TLSClientConfig = cfg
	a.transport = httpsOnly{next: base, allowed: s.insecure}
	return a, nil
}

func addCA(pool *x509.CertPool, file string) error {
	pem, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s holds no PEM certificate", file)
	}
	return nil
}

// loadCertDir reads a certs.d/HOST:PORT folder the way podman and docker
// do: every *.crt is a CA, every *.cert with its *.key a client
// certificate. A missing folder is nothing to add.
func loadCertDir(dir string, pool *x509.CertPool, cfg *tls.Config) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil
	}
	var cas []string
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(dir, n)
		switch {
		case strings.HasSuffix(n, ".crt"):
			if err := addCA(pool, p); err != nil {
				return nil, err
			}
			cas = append(cas, p)
		case strings.HasSuffix(n, ".cert"):
			key := strings.TrimSuffix(p, ".cert") + ".key"
			pair, err := tls.LoadX509KeyPair(p, key)
			if err != nil {
				return nil, fmt.Errorf("client certificate %s with %s: %w", p, key, err)
			}
			cfg.Certificates = append(cfg.Certificates, pair)
		}
	}
	return cas, nil
}

// httpsOnly refuses plain HTTP except to loopback and the registries
// named in PIBAKE_REGISTRY_INSECURE: go-containerregistry falls back to
// HTTP for private addresses (10/8, 172.16/12, 192.168/16) and *.localhost
// names, pibake does not.
type httpsOnly struct {
	next    http.RoundTripper
	allowed map[string]bool
}

func (h httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !isLoopback(req.URL.Hostname()) && !h.allowed[req.URL.Host] {
		return nil, fmt.Errorf("%w: http://%s (use HTTPS, or list %s in %s to allow it)", ErrPlainHTTP, req.URL.Host, req.URL.Host, EnvInsecure)
	}
	return h.next.RoundTrip(req)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// options are the remote options that reach the registry with a.
func (a *access) options(ctx context.Context) []remote.Option {
	var auth authn.Authenticator = authn.Anonymous
	if a.cred != nil {
		auth = authn.FromConfig(a.cred.auth)
	}
	return []remote.Option{remote.WithContext(ctx), remote.WithPlatform(Platform), remote.WithTransport(a.transport), remote.WithAuth(auth)}
}

// nameOptions make references to a registry that PIBAKE_REGISTRY_INSECURE
// names eligible for plain HTTP.
func (s settings) nameOptions(raw string) []name.Option {
	host, _, _ := strings.Cut(raw, "/")
	if s.insecure[host] {
		return []name.Option{name.Insecure}
	}
	return nil
}

// explain turns a failed pull into what the user can act on: which
// registry, what went wrong, where pibake looked and what to do.
func (a *access) explain(err error) error {
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var terr *transport.Error
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.As(err, &unknown):
		return fmt.Errorf("%w: registry %s presents a certificate that no trusted CA signed (CAs added to the system's: %s): put the registry's CA as ca.crt in one of %s (podman's and docker's convention), or name its PEM file in %s; pibake never skips the check (%w)",
			ErrRegistryTrust, a.host, orNone(a.cas), strings.Join(a.certDirs, ", "), EnvCA, unknown)
	case errors.As(err, &hostname):
		return fmt.Errorf("%w: registry %s presents a certificate for other names: reach it by a name the certificate holds, or issue one for %s (%w)", ErrRegistryTrust, a.host, a.host, hostname)
	case errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden):
		if a.cred == nil {
			return fmt.Errorf("%w: registry %s wants a login and pibake found none for it (looked in %s): run 'podman login %s' or 'docker login %s', or write an auth file and name it in %s (%w)",
				ErrRegistryAuth, a.host, strings.Join(a.searched, ", "), a.host, a.host, EnvAuthFile, err)
		}
		who := "the login"
		if a.cred.auth.Username != "" {
			who = fmt.Sprintf("the login of user %q", a.cred.auth.Username)
		}
		return fmt.Errorf("%w: registry %s refused %s from %s (HTTP %d): log in again ('podman login %s') or correct that file (%w)",
			ErrRegistryAuth, a.host, who, a.cred.source, terr.StatusCode, a.host, err)
	case errors.Is(err, ErrPlainHTTP):
		return fmt.Errorf("registry %s: HTTPS failed and plain HTTP is refused off loopback: give the registry HTTPS, or list %s in %s if plain HTTP is meant (%w)", a.host, a.host, EnvInsecure, err)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("registry %s does not answer: check the host and port in the image name, and that the registry runs (%w)", a.host, err)
	}
	return err
}

func orNone(files []string) string {
	if len(files) == 0 {
		return "none"
	}
	return strings.Join(files, ", ")
}
