package debian

import "testing"

// TestCompareVersions: dpkg's order (checked with dpkg --compare-versions).
func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.0", "1.1", -1},
		{"1:1.0", "2.0", 1},
		{"1.0~rc1", "1.0", -1},
		{"7.3.4-1~bpo13+1", "7.3.4-1", -1},
		{"6.12.118-1", "6.12.117-1", 1},
		{"3.5.10-1~deb13u1", "3.5.9-1~deb13u1", 1},
		{"1.5.7+dfsg-1+deb13u1", "1.5.7+dfsg-1", 1},
		{"1:4.17.4-2+deb13u1", "1:4.17.4-2", 1},
		{"1.0a", "1.0", 1},
		{"1.0-1", "1.0", 1},
		{"2.0+sec1", "2.0", 1},
		{"1.01", "1.1", 0},
	} {
		got := CompareVersions(c.a, c.b)
		if got < 0 {
			got = -1
		} else if got > 0 {
			got = 1
		}
		if got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if back := CompareVersions(c.b, c.a); (back < 0) != (c.want > 0) || (back == 0) != (c.want == 0) {
			t.Errorf("CompareVersions(%q, %q) is not the opposite", c.b, c.a)
		}
	}
}
