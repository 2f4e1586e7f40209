package publish

import "testing"

func TestCompareVersions(t *testing.T) {
	// Each is older than the next.
	order := []string{"0.9", "1.0.0-alpha", "1.0.0-rc1", "1.0.0-rc2", "1.0.0-rc10", "1.0.0", "1.0.0+b1", "1.0.0+b2", "1.0.1", "1.2.0", "1.9.0", "1.10.0~rc1", "1.10.0", "2", "2.0.0"}
	for i := range order {
		for j := range order {
			want := signOf(i - j)
			if got := CompareVersions(order[i], order[j]); got != want {
				t.Errorf("CompareVersions(%q, %q) = %d, want %d", order[i], order[j], got, want)
			}
		}
	}
}
