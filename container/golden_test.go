package container

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/NAME, byte for byte: what lands in the
// image must not change by accident.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s:\n%s", name, file, got)
	}
}

// TestDockerGolden pins the exact bytes of the docker runtime's files and
// units.
func TestDockerGolden(t *testing.T) {
	names := map[string]string{
		"/etc/docker/daemon.json":   "docker-daemon.json",
		DockerDir + "/load-images":  "docker-load-images",
		DockerDir + "/wait-healthy": "docker-wait-healthy",
		DockerDir + "/volume":       "docker-volume",
	}
	modes := map[string]int64{}
	for _, f := range DockerFiles() {
		name, ok := names[f.Path]
		if !ok {
			t.Errorf("no golden file for %s", f.Path)
			continue
		}
		golden(t, name, f.Data)
		modes[f.Path] = f.Mode
	}
	if len(modes) != len(names) || modes["/etc/docker/daemon.json"] != 0o644 || modes[DockerDir+"/load-images"] != 0o755 || modes[DockerDir+"/wait-healthy"] != 0o755 || modes[DockerDir+"/volume"] != 0o755 {
		t.Errorf("files and modes: %v", modes)
	}
	golden(t, "pibake-docker-images.service", DockerLoaderUnit())

	cf, _ := image(t, "arm64").ConfigFile()
	cf.Config.User = "65534"
	full := Spec{Name: "hello", Description: "the demo's \"hello\" app", Network: "host", Ports: []string{"8080:8080", "53:53/udp"},
		Volumes:     []string{"hello-data:/data:U,ro", "/etc/app:/etc/app:ro", "cache:/cache:U"},
		Environment: map[string]string{"B": "100%", "A": "hi there", "C": `say "$x"`}, Command: []string{"--listen", ":8080"},
		Health: &Health{Command: []string{"/app", "-check"}}, After: []string{"redis", "network-online.target"}}
	for name, s := range map[string]Spec{
		"docker-full.service":    full,
		"docker-minimal.service": {Name: "x"},
		"docker-bridge.service":  {Name: "web", Network: "bridge", Volumes: []string{"data:/data"}},
	} {
		u, err := DockerUnit(s, cf, "sha256:"+strings.Repeat("ab", 32))
		if err != nil {
			t.Fatal(err)
		}
		golden(t, name, u)
	}
}
