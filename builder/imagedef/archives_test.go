package imagedef

import (
	"strings"
	"testing"
)

// TestDebianArchives: -updates and -security are read unless a
// definition says otherwise (not for sid); a backport is asked for as
// name/SUITE-backports and only with debian.backports; the mirrors and
// snapshots are URLs.
func TestDebianArchives(t *testing.T) {
	root := writeRepo(t)
	d, err := Parse("small.yaml", []byte(good), root, "")
	if err != nil {
		t.Fatal(err)
	}
	if !d.Debian.UsesUpdates() || !d.Debian.UsesSecurity() || d.Debian.Backports || d.Debian.SecurityMirror != DefaultSecurityMirror {
		t.Errorf("defaults: %+v", d.Debian)
	}
	off := strings.Replace(good, "debian:\n", "debian:\n  updates: false\n  security: false\n", 1)
	if d, err := Parse("small.yaml", []byte(off), root, ""); err != nil || d.Debian.UsesUpdates() || d.Debian.UsesSecurity() {
		t.Errorf("switched off: %v", err)
	}
	sid := strings.Replace(good, "debian:\n", "debian:\n  suite: sid\n", 1)
	if d, err := Parse("small.yaml", []byte(sid), root, ""); err != nil || d.Debian.UsesUpdates() || d.Debian.UsesSecurity() {
		t.Errorf("sid: %v", err)
	}
	bpo := strings.Replace(good, "[systemd-sysv]", "[systemd-sysv, linux-image-arm64/trixie-backports]\n  backports: true", 1)
	if _, err := Parse("small.yaml", []byte(bpo), root, ""); err != nil {
		t.Errorf("a backport with the backports archive: %v", err)
	}
	for _, c := range []struct {
		name, yaml string
		want       []string
	}{
		{"backport without backports", strings.Replace(good, "[systemd-sysv]", "[systemd-sysv, linux-image-arm64/trixie-backports]", 1),
			[]string{"debian.packages.1", "linux-image-arm64/trixie-backports", "set debian.backports: true"}},
		{"another archive", strings.Replace(good, "[systemd-sysv]", "[systemd-sysv/bookworm-backports]\n  backports: true", 1),
			[]string{"debian.packages.0", "systemd-sysv/trixie-backports"}},
		{"bad security mirror", strings.Replace(good, "debian:\n", "debian:\n  security_mirror: ftp://x\n", 1),
			[]string{"debian.security_mirror", "http://"}},
		{"bad snapshot", strings.Replace(good, "debian:\n", "debian:\n  snapshot: snapshot.example\n", 1),
			[]string{"debian.snapshot", "URL"}},
		{"sid security", strings.Replace(good, "debian:\n", "debian:\n  suite: sid\n  security: true\n", 1),
			[]string{"debian.security", "sid has no sid-security archive"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("small.yaml", []byte(c.yaml), root, "")
			for _, w := range c.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v does not contain %q", err, w)
				}
			}
		})
	}
}
