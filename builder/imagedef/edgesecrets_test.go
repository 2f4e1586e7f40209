package imagedef

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestEdgeMissingSecretStaysLocal: a provisioning file without one of the
// edge stack's secret folders under /data/edge stops the containers that
// mount it and those that wait for them (after: is After= and Requires=
// in the units), and no other: the dashboard and the proxy stay up
// whatever secret is missing, so the box still serves its page, which
// shows the backend down.
func TestEdgeMissingSecretStaysLocal(t *testing.T) {
	d, err := Load(filepath.Join("..", "..", "images", "essensys-edge.yaml"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string][]string{
		"/data/edge/secrets":   {"backend"},
		"/data/edge/redis":     {"backend", "redis"},
		"/data/edge/mosquitto": {"backend", "mosquitto"},
	} {
		if got := stoppedWithout(d.Containers, dir); !slices.Equal(got, want) {
			t.Errorf("without %s the containers %v do not start, want only %v", dir, got, want)
		}
	}
}

// stoppedWithout lists, sorted, the containers that cannot start when
// the host folder dir is missing.
func stoppedWithout(cs []Container, dir string) []string {
	stopped := map[string]bool{}
	for _, c := range cs {
		for _, v := range c.Volumes {
			if src, _, _ := strings.Cut(v, ":"); src == dir || strings.HasPrefix(src, dir+"/") {
				stopped[c.Name] = true
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for _, c := range cs {
			if stopped[c.Name] {
				continue
			}
			for _, a := range c.After {
				if stopped[strings.TrimSuffix(a, ".service")] {
					stopped[c.Name], changed = true, true
				}
			}
		}
	}
	var out []string
	for n := range stopped {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
