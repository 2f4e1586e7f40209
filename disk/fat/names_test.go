package fat

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestShortNames(t *testing.T) {
	names := []string{
		"config.txt", "README", "BOOTCODE.BIN", "Kernel8.img", ".hidden",
		"a+b.txt", "x.y.z.tar.gz", "longfilename1.txt", "longfilename2.txt",
		"abcdefghij.txt", "ABCDEF~1.TXT", "my file.txt", "名前.txt", "_",
	}
	want := map[string]struct {
		short string
		lfn   bool
	}{
		"config.txt":        {"CONFIG.TXT", true},
		"README":            {"README", false},
		"BOOTCODE.BIN":      {"BOOTCODE.BIN", false},
		"Kernel8.img":       {"KERNEL8.IMG", true},
		".hidden":           {"HIDDEN~1", true},
		"a+b.txt":           {"A_B~1.TXT", true},
		"x.y.z.tar.gz":      {"XYZTAR~1.GZ", true},
		"longfilename1.txt": {"LONGFI~1.TXT", true},
		"longfilename2.txt": {"LONGFI~2.TXT", true},
		// ABCDEF~1.TXT is an exact short name and keeps it, so the
		// generated alias must skip it.
		"abcdefghij.txt": {"ABCDEF~2.TXT", true},
		"ABCDEF~1.TXT":   {"ABCDEF~1.TXT", false},
		"my file.txt":    {"MYFILE~1.TXT", true},
		"名前.txt":         {"__~1.TXT", true},
		"_":              {"_", false},
	}
	var files []File
	for _, n := range names {
		files = append(files, File{Path: n})
	}
	tr, err := buildTree(files, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range tr.root.children {
		w := want[c.name]
		if got := shortDisplay(c.short); got != w.short || c.lfn != w.lfn {
			t.Errorf("%q: short %q lfn %v, want %q lfn %v", c.name, got, c.lfn, w.short, w.lfn)
		}
	}
}

func TestLFNEntries(t *testing.T) {
	short := packShort("CONFIG", "TXT")
	buf := make([]byte, 2*dirEntrySize)
	name := "a-name-of-14c" + "é" // 14 UTF-16 units: two entries
	if lfnSlots(name) != 2 {
		t.Fatalf("lfnSlots = %d, want 2", lfnSlots(name))
	}
	putLFN(buf, name, short)
	sum := shortChecksum(short)
	if buf[0] != 0x42 || buf[32] != 0x01 || buf[11] != attrLFN || buf[13] != sum || buf[32+13] != sum {
		t.Fatalf("bad sequence/attributes/checksum: % x", buf)
	}
	// Second part: "é", then 0x0000, then 0xFFFF padding.
	if buf[1] != 0xe9 || buf[2] != 0 || buf[3] != 0 || buf[4] != 0 || buf[5] != 0xff || buf[31] != 0xff {
		t.Fatalf("bad padding: % x", buf[:32])
	}
	// The checksum of "CONFIG  TXT" computed by hand with the rotate-and-add rule.
	var s byte
	for _, c := range []byte("CONFIG  TXT") {
		s = (s&1)<<7 + s>>1 + c
	}
	if sum != s {
		t.Fatalf("checksum %#x, want %#x", sum, s)
	}
}

func TestStamp(t *testing.T) {
	for _, tc := range []struct {
		in         time.Time
		date, time uint16
	}{
		{time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), 44<<9 | 5<<5 | 6, 7<<11 | 8<<5 | 4},
		{time.Date(2024, 5, 6, 9, 8, 9, 0, time.FixedZone("CEST", 2*3600)), 44<<9 | 5<<5 | 6, 7<<11 | 8<<5 | 4},
		{time.Time{}, 0<<9 | 1<<5 | 1, 0},
		{time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), 0<<9 | 1<<5 | 1, 0},
		{time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), 127<<9 | 12<<5 | 31, 23<<11 | 59<<5 | 29},
	} {
		d, c := fatStamp(tc.in)
		if d != tc.date || c != tc.time {
			t.Errorf("fatStamp(%v) = %#x %#x, want %#x %#x", tc.in, d, c, tc.date, tc.time)
		}
	}
}

func TestErrors(t *testing.T) {
	ok := []File{{Path: "config.txt", Data: []byte("x")}}
	for _, tc := range []struct {
		name  string
		opts  Options
		files []File
		dirs  []Dir
		want  string
	}{
		{"too small", Options{Size: 32 << 20}, ok, nil, "too small for FAT32"},
		{"not sectors", Options{Size: testSize + 1}, ok, nil, "multiple of 512"},
		{"too large", Options{Size: 3 << 40}, ok, nil, "too large"},
		{"does not fit", Options{Size: testSize}, []File{{Path: "big", Data: make([]byte, 40<<20)}}, nil, "does not fit"},
		{"duplicate case", Options{Size: testSize}, []File{{Path: "a.txt"}, {Path: "A.TXT"}}, nil, "duplicate path"},
		{"duplicate exact", Options{Size: testSize}, []File{{Path: "a.txt"}, {Path: "a.txt"}}, nil, "duplicate path"},
		{"duplicate dir case", Options{Size: testSize}, []File{{Path: "Over/a"}, {Path: "over/b"}}, nil, "duplicate path"},
		{"dir case vs file", Options{Size: testSize}, []File{{Path: "ÄB/x"}}, []Dir{{Path: "äb"}}, "differ only in case"},
		{"file then dir", Options{Size: testSize}, []File{{Path: "a"}, {Path: "a/b"}}, nil, "both as a file and as a directory"},
		{"explicit dir is file", Options{Size: testSize}, []File{{Path: "x"}}, []Dir{{Path: "x"}}, "both as a file and as a directory"},
		{"empty component", Options{Size: testSize}, []File{{Path: "a//b"}}, nil, "empty path component"},
		{"empty path", Options{Size: testSize}, []File{{Path: ""}}, nil, "empty path component"},
		{"absolute", Options{Size: testSize}, []File{{Path: "/a"}}, nil, "empty path component"},
		{"dotdot", Options{Size: testSize}, []File{{Path: "../a"}}, nil, `".." is not allowed`},
		{"dot", Options{Size: testSize}, []File{{Path: "a/./b"}}, nil, `"." is not allowed`},
		{"colon", Options{Size: testSize}, []File{{Path: "bad:name"}}, nil, "FAT forbids"},
		{"star", Options{Size: testSize}, nil, []Dir{{Path: "a*"}}, "FAT forbids"},
		{"control", Options{Size: testSize}, []File{{Path: "tab\tname"}}, nil, "control character"},
		{"trailing dot", Options{Size: testSize}, []File{{Path: "name."}}, nil, "ends in a dot or space"},
		{"bad utf8", Options{Size: testSize}, []File{{Path: "\xff"}}, nil, "UTF-8"},
		{"too long", Options{Size: testSize}, []File{{Path: strings.Repeat("x", 256)}}, nil, "UTF-16 units"},
		{"label long", Options{Size: testSize, Label: "ABCDEFGHIJKL"}, ok, nil, "longer than 11"},
		{"label char", Options{Size: testSize, Label: "A.B"}, ok, nil, "not allowed in a FAT label"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// All of these must be caught before anything is written, so
			// a zero-length disk (every write fails) is enough.
			err := Write(memDisk{}, tc.opts, tc.files, tc.dirs)
			if err == nil {
				t.Fatalf("Write succeeded, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "fat: ") {
				t.Fatalf("error %q does not start with \"fat: \" and contain %q", err, tc.want)
			}
		})
	}
}

func TestDirectoryEntryLimit(t *testing.T) {
	var files []File
	// Each name needs one LFN entry plus the short entry: 2 * 33000 > 65536.
	for i := range 33000 {
		files = append(files, File{Path: fmt.Sprintf("d/f%05d", i)})
	}
	_, err := MinSize(files, nil)
	if err == nil || !strings.Contains(err.Error(), "directory entries") {
		t.Fatalf("err = %v, want a directory-entry limit error", err)
	}
}
