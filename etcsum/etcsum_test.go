package etcsum

import (
	"slices"
	"strings"
	"testing"
)

func TestRoundTripAndChanged(t *testing.T) {
	old := List{
		"hostname":           Digest(File, 0o644, 0, 0, []byte("demo\n")),
		"ssh/sshd_config":    Digest(File, 0o644, 0, 0, []byte("PermitRootLogin no\n")),
		"shadow":             Digest(File, 0o640, 0, 42, []byte("root:*:1::::::\n")),
		"localtime":          Digest(Symlink, 0o777, 0, 0, []byte("/usr/share/zoneinfo/Etc/UTC")),
		"a file with spaces": Digest(File, 0o644, 0, 0, nil),
		"gone":               Digest(File, 0o644, 0, 0, []byte("x")),
	}
	data := old.Marshal()
	back, err := Parse(data)
	if err != nil || len(back) != len(old) || back["a file with spaces"] != old["a file with spaces"] {
		t.Fatalf("round trip: %v %v\n%s", back, err, data)
	}
	if string(back.Marshal()) != string(data) {
		t.Error("marshal is not canonical")
	}
	cur := List{}
	for p, d := range old {
		cur[p] = d
	}
	cur["ssh/sshd_config"] = Digest(File, 0o644, 0, 0, []byte("PermitRootLogin prohibit-password\n"))
	cur["shadow"] = Digest(File, 0o600, 0, 42, []byte("root:*:1::::::\n")) // mode only
	cur["localtime"] = Digest(File, 0o644, 0, 0, []byte("/usr/share/zoneinfo/Etc/UTC"))
	cur["new"] = Digest(File, 0o644, 0, 0, nil)
	delete(cur, "gone")
	if got, want := Changed(old, cur), []string{"gone", "localtime", "new", "shadow", "ssh/sshd_config"}; !slices.Equal(got, want) {
		t.Errorf("changed %v, want %v", got, want)
	}
	if len(Changed(old, old)) != 0 {
		t.Error("a list changed from itself")
	}
}

func TestParseRefuses(t *testing.T) {
	d := strings.Repeat("ab", 32)
	for name, text := range map[string]string{
		"short digest":  "abcd  hostname\n",
		"one space":     d + " hostname\n",
		"absolute":      d + "  /etc/hostname\n",
		"dot dot":       d + "  ssh/../../shadow\n",
		"empty part":    d + "  ssh//x\n",
		"unsorted":      d + "  b\n" + d + "  a\n",
		"twice":         d + "  a\n" + d + "  a\n",
		"trailing root": d + "  ssh/\n",
	} {
		if _, err := Parse([]byte(text)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if l, err := Parse(nil); err != nil || len(l) != 0 {
		t.Errorf("empty list: %v %v", l, err)
	}
}
