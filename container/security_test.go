package container

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/builder/system/unitcheck"
)

// dockerExposure is the most `systemd-analyze security --offline=yes` may
// rate a docker runtime unit: the score of the sandbox the templates give
// the docker client on Debian 12's systemd 252 (what is left: root, for
// the socket; docs/security.md). A change that loosens it fails here.
const dockerExposure = 0.8

// dockerUnits renders the docker runtime's units with realistic
// containers: the demo's (health check, a U volume, published ports),
// a bare one and one on the bridge.
func dockerUnits(t *testing.T) map[string][]byte {
	t.Helper()
	cf, _ := image(t, "arm64").ConfigFile()
	cf.Config.User = "65534"
	units := map[string][]byte{DockerLoader: DockerLoaderUnit()}
	for _, s := range []Spec{
		{Name: "hello", Ports: []string{"8080:8080"}, Volumes: []string{"hello-data:/data:U"}, Environment: map[string]string{"HELLO_VERSION": "1.0.0"},
			Health: &Health{Command: []string{"/app", "-check", "http://127.0.0.1:8080/healthz"}}, After: []string{"redis"}},
		{Name: "redis"},
		{Name: "web", Network: "host", Volumes: []string{"/etc/web:/etc/web:ro"}},
	} {
		u, err := DockerUnit(s, cf, "sha256:"+strings.Repeat("ab", 32))
		if err != nil {
			t.Fatal(err)
		}
		units[s.Name+".service"] = u
	}
	return units
}

// TestDockerUnitsExposure rates every docker runtime unit with the host's
// systemd-analyze and has systemd load them all.
func TestDockerUnitsExposure(t *testing.T) {
	units := dockerUnits(t)
	dir := t.TempDir()
	for name, data := range units {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		score, table, err := unitcheck.Exposure(context.Background(), p, dockerExposure)
		if errors.Is(err, unitcheck.ErrNoAnalyze) {
			t.Skip(err)
		}
		if err != nil {
			t.Errorf("%v\n%s", err, table)
			continue
		}
		t.Logf("%s: exposure %.1f (at most %.1f)", name, score, dockerExposure)
	}
	if err := unitcheck.Verify(context.Background(), t.TempDir(), units); err != nil {
		t.Error(err)
	}
}

// TestDockerUnitsCanDoTheirJob: the docker client reaches dockerd's
// socket and nothing else; the volume helper, which gives a volume's
// files on /data to the image's user, runs outside the sandbox.
func TestDockerUnitsCanDoTheirJob(t *testing.T) {
	for name, data := range dockerUnits(t) {
		s := unitcheck.Section(data, "Service")
		if !s.Allows("RestrictAddressFamilies", "AF_UNIX") {
			t.Errorf("%s cannot reach dockerd's socket", name)
		}
		for _, pre := range s["ExecStartPre"] {
			if strings.Contains(pre, DockerDir+"/volume") && !strings.HasPrefix(pre, "+") && !s.Writable("/data/docker/volumes") {
				t.Errorf("%s: the volume helper %q runs in the sandbox, which cannot chown /data", name, pre)
			}
		}
		if len(s["SystemCallFilter"]) > 0 && s.Last("SystemCallErrorNumber") != "EPERM" {
			t.Errorf("%s: a call its filter denies must fail with EPERM, not kill the client", name)
		}
	}
}
