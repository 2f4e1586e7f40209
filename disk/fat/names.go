package fat

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

const (
	maxLongName  = 255 // UTF-16 code units in a VFAT long name
	lfnCharsPer  = 13  // UTF-16 code units held by one LFN entry
	maxShortTail = 999999
)

// shortExtra lists the punctuation FAT allows in 8.3 names besides A-Z and
// 0-9. Space is also legal but never generated here.
const shortExtra = "$%'-_@~`!(){}^#&"

// checkName reports whether one path component is acceptable as a FAT long
// file name.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty path component")
	case name == "." || name == "..":
		return fmt.Errorf("path component %q is not allowed", name)
	case !utf8.ValidString(name):
		return errors.New("path component is not valid UTF-8")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("path component %q contains control character %U", name, r)
		}
		if strings.ContainsRune(`"*/:<>?\|`, r) {
			return fmt.Errorf("path component %q contains %q, which FAT forbids", name, r)
		}
	}
	if last := name[len(name)-1]; last == '.' || last == ' ' {
		return fmt.Errorf("path component %q ends in a dot or space", name)
	}
	if n := len(utf16.Encode([]rune(name))); n > maxLongName {
		return fmt.Errorf("path component %q is %d UTF-16 units long, the limit is %d", name, n, maxLongName)
	}
	return nil
}

// foldKey maps a name to a key that is equal for two names exactly when
// strings.EqualFold reports them equal: every rune is replaced by the
// smallest rune of its simple case-folding orbit.
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < m {
				m = f
			}
		}
		b.WriteRune(m)
	}
	return b.String()
}

// shortChar maps one rune of a long name to its 8.3 form. ok is false when
// the mapping loses information (the rune is replaced by '_').
func shortChar(r rune) (c byte, ok bool) {
	switch {
	case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return byte(r), true
	case r >= 'a' && r <= 'z':
		return byte(r - 'a' + 'A'), true
	case r < utf8.RuneSelf && strings.ContainsRune(shortExtra, r):
		return byte(r), true
	}
	return '_', false
}

// shortPart converts a part of a long name (base or extension) to upper-case
// 8.3 characters, dropping spaces and dots and keeping at most max bytes.
func shortPart(s string, max int) string {
	var b []byte
	for _, r := range s {
		if r == ' ' || r == '.' {
			continue
		}
		c, _ := shortChar(r)
		b = append(b, c)
		if len(b) == max {
			break
		}
	}
	return string(b)
}

// basisName returns the basis of the short name for a long name, following
// the usual rules: leading dots are dropped, the last dot starts the
// extension, spaces and other dots are dropped, letters are upper-cased,
// characters that are not legal in short names become '_', and base and
// extension are cut to 8 and 3 characters. exact reports that the basis is
// the long name itself apart from letter case, so no numeric tail is needed.
func basisName(name string) (base, ext string, exact bool) {
	rest := strings.TrimLeft(name, ". ")
	b, e := rest, ""
	if i := strings.LastIndexByte(rest, '.'); i >= 0 {
		b, e = rest[:i], rest[i+1:]
	}
	base = shortPart(b, 8)
	ext = shortPart(e, 3)
	if base == "" {
		base = "_"
	}
	display := base
	if ext != "" {
		display += "." + ext
	}
	// Any dropped or replaced character makes the display form differ from
	// the upper-cased name, so this comparison is the whole test.
	exact = display == asciiUpper(name)
	return base, ext, exact
}

// asciiUpper upper-cases only the ASCII letters of s.
func asciiUpper(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

// packShort builds the 11-byte directory form of a short name.
func packShort(base, ext string) [11]byte {
	var n [11]byte
	for i := range n {
		n[i] = ' '
	}
	copy(n[:8], base)
	copy(n[8:], ext)
	return n
}

// assignShortNames gives every child of a directory a unique short name and
// decides whether it needs long-name entries. Children must be sorted.
// Names whose basis is exact claim it first, so that a generated alias can
// never take the short name another entry is entitled to; the others get
// "~N" tails in sorted order.
func assignShortNames(dir *node) error {
	used := make(map[[11]byte]bool, len(dir.children))
	type pending struct {
		n         *node
		base, ext string
	}
	var rest []pending
	for _, c := range dir.children {
		base, ext, exact := basisName(c.name)
		if !exact {
			rest = append(rest, pending{c, base, ext})
			continue
		}
		c.short = packShort(base, ext)
		used[c.short] = true
		c.lfn = c.name != shortDisplay(c.short)
	}
	for _, p := range rest {
		found := false
		for i := 1; i <= maxShortTail; i++ {
			tail := "~" + strconv.Itoa(i)
			base := p.base
			if len(base)+len(tail) > 8 {
				base = base[:8-len(tail)]
			}
			s := packShort(base+tail, p.ext)
			if !used[s] {
				used[s] = true
				p.n.short, p.n.lfn = s, true
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("no free short name for %q", p.n.name)
		}
	}
	return nil
}

// shortDisplay renders a packed short name as "BASE.EXT".
func shortDisplay(n [11]byte) string {
	base := strings.TrimRight(string(n[:8]), " ")
	ext := strings.TrimRight(string(n[8:]), " ")
	if ext == "" {
		return base
	}
	return base + "." + ext
}

// shortChecksum is the checksum of a packed short name stored in each of its
// long-name entries.
func shortChecksum(n [11]byte) byte {
	var sum byte
	for _, c := range n {
		sum = (sum>>1 | sum<<7) + c
	}
	return sum
}

// lfnSlots returns how many long-name entries a name needs.
func lfnSlots(name string) int {
	units := len(utf16.Encode([]rune(name)))
	return (units + lfnCharsPer - 1) / lfnCharsPer
}

// lfnOffsets are the byte offsets of the 13 UTF-16 characters inside a
// long-name entry.
var lfnOffsets = [lfnCharsPer]int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30}

// putLFN writes the long-name entries for name into buf (which must hold
// lfnSlots(name) entries), in on-disk order: the last part first.
func putLFN(buf []byte, name string, short [11]byte) {
	units := utf16.Encode([]rune(name))
	slots := lfnSlots(name)
	sum := shortChecksum(short)
	for seq := 1; seq <= slots; seq++ {
		e := buf[(slots-seq)*dirEntrySize:][:dirEntrySize]
		clear(e)
		ord := byte(seq)
		if seq == slots {
			ord |= 0x40
		}
		e[0] = ord
		e[11] = attrLFN
		e[13] = sum
		for i, off := range lfnOffsets {
			k := (seq-1)*lfnCharsPer + i
			var u uint16
			switch {
			case k < len(units):
				u = units[k]
			case k == len(units):
				u = 0x0000
			default:
				u = 0xffff
			}
			e[off] = byte(u)
			e[off+1] = byte(u >> 8)
		}
	}
}
