package standintest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/pibake/pibake/builder/debian"
)

// PublicRegistry is the registry and namespace of the public images the
// checked-in edge definition names.
const PublicRegistry = "docker.io/essensyshub/"

// EdgeDefinition is images/essensys-edge.yaml pointed at the registry
// host (HOST:PORT): every public image name gets host in place of
// docker.io (the same repository paths, as a team mirroring them would
// push them), and the proxy runs the nginx stand-in with its route file
// instead of Traefik. Nothing else changes.
func EdgeDefinition(data []byte, host string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	cs := mapValue(doc.Content[0], "containers")
	if cs == nil {
		return nil, fmt.Errorf("edge definition: no containers")
	}
	proxied := false
	for _, c := range cs.Content {
		if img := mapValue(c, "image"); img != nil {
			img.Value = strings.Replace(img.Value, PublicRegistry, host+"/essensyshub/", 1)
		}
		if n := mapValue(c, "name"); n == nil || n.Value != "proxy" {
			continue
		}
		var nginx yaml.Node
		if err := yaml.Unmarshal([]byte(proxyStandIn(host)), &nginx); err != nil {
			return nil, err
		}
		*c = *nginx.Content[0]
		proxied = true
	}
	if !proxied {
		return nil, fmt.Errorf("edge definition: no container named proxy")
	}
	return yaml.Marshal(&doc)
}

// proxyStandIn is the proxy container with nginx in Traefik's place.
func proxyStandIn(host string) string {
	var im Image
	for _, i := range Images {
		if i.Name == "proxy" {
			im = i
		}
	}
	return `name: proxy
description: reverse proxy (nginx standing in for Traefik, same routes)
image: ` + host + "/" + im.Repo + ":" + im.Tag + `
network: host
volumes: ["/etc/nginx-edge:/etc/nginx-edge:ro"]
health:
  command: [bash, -c, "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /ping HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
  interval: 10s
  start_period: 5s
after: [dashboard]
`
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// EdgeProject lays out a checkout in a temporary folder whose
// images/essensys-edge.yaml is EdgeDefinition's, edited further by edit
// if not nil, with the repository's overlays/, services/ (their public
// image names pointed at host too), examples/, go.mod and go.sum. With
// debianFrom (a lock of a definition with the same Debian section, e.g.
// images/demo.lock) the project gets a lock with those packages, for
// `pibake lock --containers`. It returns the definition's path.
func EdgeProject(t testing.TB, host, debianFrom string, edit func(top *yaml.Node) error) string {
	t.Helper()
	repo := RepoRoot()
	dir := t.TempDir()
	for _, sub := range []string{"overlays", "services", "examples", "go.mod", "go.sum"} {
		if err := copyTree(filepath.Join(repo, sub), filepath.Join(dir, sub), host); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(filepath.Join(repo, "images", "essensys-edge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if data, err = EdgeDefinition(data, host); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		if err := edit(doc.Content[0]); err != nil {
			t.Fatal(err)
		}
		if data, err = yaml.Marshal(&doc); err != nil {
			t.Fatal(err)
		}
	}
	def := filepath.Join(dir, "images", "essensys-edge.yaml")
	if err := os.MkdirAll(filepath.Dir(def), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(def, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if debianFrom != "" {
		lock, _, err := debian.ReadLock(debianFrom)
		if err != nil {
			t.Fatal(err)
		}
		lock.Image, lock.Containers = "essensys-edge", nil
		if err := os.WriteFile(filepath.Join(dir, "images", "essensys-edge.lock"), lock.Marshal(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return def
}

// copyTree copies src (a file or a folder) to dst; in services/*.yaml the
// public registry is replaced by host.
func copyTree(src, dst, host string) error {
	return filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".container.yaml") {
			data = []byte(strings.ReplaceAll(string(data), PublicRegistry, host+"/essensyshub/"))
		}
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, data, info.Mode().Perm())
	})
}
