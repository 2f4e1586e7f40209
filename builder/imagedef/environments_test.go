package imagedef

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pibake/pibake/updater/channel"
)

// TestEdgeEnvironmentsFollowTheirChannels takes images/essensys-edge.yaml
// as a team would use it: its updater section and each environment's
// updater line uncommented (a key of the test's in place of the key file).
// Each of test, preprod and prod then builds an agent that follows its
// own channel, and a build without --env the base's.
func TestEdgeEnvironmentsFollowTheirChannels(t *testing.T) {
	file := filepath.Join("..", "..", "images", "essensys-edge.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, err := channel.GenerateKeyFiles(t.TempDir(), "fleet", "")
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	text := uncommentUpdater(t, string(data))
	lines := strings.Split(strings.TrimSpace(string(key)), "\n")
	if strings.Count(text, "keys: [keys/fleet.pub]") != 1 {
		t.Fatalf("%s: the updater section names no keys/fleet.pub", file)
	}
	text = strings.Replace(text, "keys: [keys/fleet.pub]", "keys: [\""+lines[len(lines)-1]+"\"]", 1)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	base, err := Parse(file, []byte(text), root, "")
	if err != nil {
		t.Fatalf("the definition with its updater uncommented: %v", err)
	}
	if got := base.EnvNames(); strings.Join(got, " ") != "preprod prod test" {
		t.Errorf("environments %v, want preprod, prod and test", got)
	}
	for _, tc := range []struct{ env, channel, hostname string }{
		{"", "stable", "essensys"},
		{"test", "test", "essensys-test"},
		{"preprod", "preprod", "essensys-preprod"},
		{"prod", "prod", "essensys"},
	} {
		d, err := Parse(file, []byte(text), root, tc.env)
		if err != nil {
			t.Fatalf("--env %q: %v", tc.env, err)
		}
		if d.Updater == nil || d.Updater.Channel != tc.channel || d.Hostname != tc.hostname {
			t.Errorf("--env %q: updater %+v, hostname %q; want channel %q, hostname %q", tc.env, d.Updater, d.Hostname, tc.channel, tc.hostname)
			continue
		}
		// The override changes the channel only: the server, the keys and
		// the health checks stay the definition's.
		if d.Updater.Server != base.Updater.Server || len(d.Updater.Keys) != 1 || len(d.Updater.Health.HTTP) != 1 {
			t.Errorf("--env %q: updater %+v lost the base's server, keys or health checks", tc.env, d.Updater)
		}
		if tc.env == "prod" && len(d.Users) != 0 {
			t.Errorf("--env prod: users %v, want none (no login on a production box)", d.Users)
		}
	}
}

// uncommentUpdater removes the comment marks of the updater section
// (from "# updater:" to the next blank line) and of the environments'
// "# updater:" lines, as the definition's comments tell a team to.
func uncommentUpdater(t *testing.T, s string) string {
	t.Helper()
	var out []string
	in := false
	for _, l := range strings.Split(s, "\n") {
		switch {
		case l == "# updater:":
			in = true
		case in && l == "":
			in = false
		}
		if in {
			l = strings.TrimPrefix(strings.TrimPrefix(l, "#"), " ")
		}
		out = append(out, l)
	}
	s = strings.Join(out, "\n")
	env := regexp.MustCompile(`(?m)^(    )# (updater: \{channel: [a-z]+.*\})$`)
	if n := len(env.FindAllString(s, -1)); n != 3 {
		t.Fatalf("%d environments with a commented updater line, want 3 (test, preprod, prod)", n)
	}
	return env.ReplaceAllString(s, "$1$2")
}
