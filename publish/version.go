package publish

import (
	"strings"
)

// CompareVersions orders two image versions (the definition's version:
// letters, digits and . + ~ _ -): -1 when a is older than b, 0 when they
// are the same release, 1 when a is newer.
//
// The rule, as semantic versioning has it and extended to any such
// string: a version is RELEASE[-PRE or ~PRE][+BUILD]. RELEASEs are
// compared part by part, a run of digits as a number (1.10 is after 1.9)
// and anything else as text; a release with a pre-release part (1.2.0-rc1
// or 1.2.0~rc1) comes before the same release without one (1.2.0);
// pre-release parts, then build parts, are compared the same way. Equal
// strings, and only those, compare 0.
func CompareVersions(a, b string) int {
	ar, ap, ab := splitVersion(a)
	br, bp, bb := splitVersion(b)
	if c := compareParts(ar, br); c != 0 {
		return c
	}
	switch {
	case ap == "" && bp != "":
		return 1
	case ap != "" && bp == "":
		return -1
	}
	if c := compareParts(ap, bp); c != 0 {
		return c
	}
	if c := compareParts(ab, bb); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// splitVersion cuts a version into its release, pre-release and build.
func splitVersion(v string) (release, pre, build string) {
	v, build, _ = strings.Cut(v, "+")
	if i := strings.IndexAny(v, "-~"); i >= 0 {
		return v[:i], v[i+1:], build
	}
	return v, "", build
}

// compareParts compares two strings run by run: digits as numbers (any
// length), anything else as text; a string that ends first is older.
func compareParts(a, b string) int {
	for a != "" && b != "" {
		ra, rb := run(a), run(b)
		a, b = a[len(ra):], b[len(rb):]
		da, db := isDigit(ra[0]), isDigit(rb[0])
		switch {
		case da && db:
			na, nb := strings.TrimLeft(ra, "0"), strings.TrimLeft(rb, "0")
			if len(na) != len(nb) {
				return signOf(len(na) - len(nb))
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
		case da != db:
			// A number is newer than text in the same place (1.0.1
			// after 1.0.beta).
			if da {
				return 1
			}
			return -1
		default:
			if c := strings.Compare(ra, rb); c != 0 {
				return c
			}
		}
	}
	return signOf(len(a) - len(b))
}

// run is the leading run of digits, or of anything else, of s (not
// empty).
func run(s string) string {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func signOf(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
