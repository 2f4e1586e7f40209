package provision

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/pibake/pibake/updater/config"
)

// TestFleetCredentials: the fleet entry lands where the agent reads it,
// root's and 0600, and reads back as the agent reads it.
func TestFleetCredentials(t *testing.T) {
	root := target(t)
	s, err := Parse(FileName, []byte("fleet:\n  user: box-17\n  password: \"s3cret: with # signs\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(context.Background(), root, s, nil); err != nil {
		t.Fatal(err)
	}
	c, err := config.ParseCredentials("fleet.yaml", []byte(read(t, root, "data/pibake/fleet.yaml")))
	if err != nil || c.User != "box-17" || c.Password != "s3cret: with # signs" {
		t.Fatalf("credentials %+v, %v", c, err)
	}
	if mode, _, _ := owner(t, root, "data/pibake/fleet.yaml"); mode.Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", mode)
	}
	if os.Getuid() == 0 {
		if _, uid, gid := owner(t, root, "data/pibake/fleet.yaml"); uid != 0 || gid != 0 {
			t.Errorf("owner %d:%d, want root", uid, gid)
		}
	}
}

func TestFleetRefuses(t *testing.T) {
	const secret = "Hunter2Secret"
	for name, c := range map[string]struct{ body, want string }{
		"no password":  {"fleet:\n  user: box-1\n", ":2: fleet: want user"},
		"wildcard":     {"fleet:\n  user: box/#\n  password: " + secret + "\n", ":2: fleet: user: want 1-63"},
		"unknown key":  {"fleet:\n  user: box-1\n  pasword: " + secret + "\n", ":3: fleet: unknown field: did you mean password?"},
		"two lines":    {"fleet:\n  user: box-1\n  password: \"a\\nb" + secret + "\"\n", "password: at most 256 bytes, on one line"},
		"not a string": {"fleet:\n  user: box-1\n  password: [" + secret + "]\n", "fleet.password"},
	} {
		_, err := Parse(FileName, []byte(c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the message repeats the password: %v", name, err)
		}
	}
}
