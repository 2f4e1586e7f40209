package fat

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/pibake/pibake/disk/fat/fatcheck"
	"github.com/pibake/pibake/internal/hosttool"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const testSize = 36 << 20

var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func testOptions(size int64) Options {
	return Options{Size: size, Label: "pi boot", VolumeID: 0x1234abcd, Time: testTime, HiddenSectors: 8192}
}

// randomBytes returns n deterministic pseudo-random bytes.
func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	var key [32]byte
	key[0] = seed
	rand.NewChaCha8(key).Read(b)
	return b
}

// testTree is the content the integration tests write: nested and empty
// directories, 8.3 and long names in all cases, empty and multi-cluster
// files, and a directory of 300 long-named files spanning many clusters.
func testTree() ([]File, []Dir) {
	files := []File{
		{Path: "config.txt", Data: []byte("arm_64bit=1\nkernel=kernel8.img\n")},
		{Path: "cmdline.txt", Data: []byte("console=serial0,115200 root=/dev/mmcblk0p2\n")},
		{Path: "README", Data: []byte("upper-case 8.3 name without extension\n")},
		{Path: "BOOTCODE.BIN", Data: randomBytes(52456, 1)},
		{Path: "Kernel8.img", Data: randomBytes(1<<20+7, 2)},
		{Path: "empty.dat"},
		{Path: "big.bin", Data: randomBytes(3<<20, 3)},
		{Path: "one-cluster.bin", Data: randomBytes(512, 4)},
		{Path: "one-cluster-plus-one.bin", Data: randomBytes(513, 5)},
		{Path: ".hidden", Data: []byte("dot file\n")},
		{Path: "a+b;c=d.txt", Data: []byte("lossy short name\n")},
		{Path: "longfilename1.txt", Data: []byte("1\n")},
		{Path: "longfilename2.txt", Data: []byte("2\n")},
		{Path: "overlays/vc4-kms-v3d.dtbo", Data: randomBytes(3000, 6)},
		{Path: "overlays/disable-bt.dtbo", Data: randomBytes(1500, 7)},
		{Path: "overlays/README", Data: []byte("overlays\n")},
		{Path: "a/b/c/deep file with spaces.txt", Data: []byte("deep\n")},
		{Path: "a/b/c/ünïcödé-名前.txt", Data: []byte("unicode\n")},
		{Path: "a/x.y.z.tar.gz", Data: []byte("dots\n")},
		{Path: "a/" + strings.Repeat("long-name-", 25) + "x.end", Data: []byte("255 characters, the maximum\n")},
		{Path: "a/emoji-🙂.txt", Data: []byte("surrogate pair\n")},
		{Path: "exactly13.txt", Data: []byte("13 UTF-16 units: no terminator\n")},
	}
	for i := range 300 {
		files = append(files, File{
			Path: fmt.Sprintf("many/file-%03d-with-a-long-name.txt", i),
			Data: []byte(fmt.Sprintf("file %d\n", i)),
		})
	}
	dirs := []Dir{{Path: "empty-dir"}, {Path: "a/b/empty"}, {Path: "overlays"}}
	return files, dirs
}

// memDisk is an in-memory io.WriterAt.
type memDisk []byte

func (m memDisk) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m)) {
		return 0, fmt.Errorf("write of %d bytes at %d outside %d-byte disk", len(p), off, len(m))
	}
	return copy(m[off:], p), nil
}

func (m memDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m)) {
		return 0, fmt.Errorf("read of %d bytes at %d outside %d-byte disk", len(p), off, len(m))
	}
	return copy(p, m[off:]), nil
}

// writeImage writes the filesystem to a new image file and returns its path.
func writeImage(t *testing.T, opts Options, files []File, dirs []Dir) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "boot.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Write(f, opts, files, dirs); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return img
}

var fsckSummary = regexp.MustCompile(`: \d+ files, \d+/\d+ clusters$`)

// fsck runs fsck.vfat -n on img and fails the test on any complaint.
func fsck(t *testing.T, img string) {
	t.Helper()
	bin := hosttool.Need(t, "fsck.vfat", "dosfstools")
	out, err := exec.Command(bin, "-n", img).CombinedOutput()
	if err != nil {
		t.Fatalf("fsck.vfat -n: %v\n%s", err, out)
	}
	for _, word := range []string{"Invalid", "differ", "lost", "wrong", "Warning", "Orphan", "Unfinished", "Bad", "Dirty", "Duplicate", "checksum"} {
		if bytes.Contains(out, []byte(word)) {
			t.Fatalf("fsck.vfat -n complains (%q):\n%s", word, out)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !strings.HasPrefix(line, "fsck.fat ") && !fsckSummary.MatchString(line) {
			t.Fatalf("fsck.vfat -n printed an unexpected line %q:\n%s", line, out)
		}
	}
}

// walkEntry is one item reported by Walk.
type walkEntry struct {
	path  string
	isDir bool
	size  int64
}

// expectedWalk lists the tree as Walk must: directories before their
// contents, siblings in byte order.
func expectedWalk(files []File, dirs []Dir) []walkEntry {
	seen := map[string]bool{}
	var out []walkEntry
	addDirs := func(p string) {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if !seen[d] {
				seen[d] = true
				out = append(out, walkEntry{d, true, 0})
			}
		}
	}
	for _, d := range dirs {
		addDirs(d.Path + "/x")
	}
	for _, f := range files {
		addDirs(f.Path)
		out = append(out, walkEntry{f.Path, false, int64(len(f.Data))})
	}
	slices.SortFunc(out, func(a, b walkEntry) int {
		return slices.Compare(strings.Split(a.path, "/"), strings.Split(b.path, "/"))
	})
	return out
}

func TestFsckAndReadBack(t *testing.T) {
	sizes := []struct {
		name string
		size int64
		spc  byte
	}{
		{"36MiB", testSize, 1},
		{"300MiB", 300 << 20, 8},
		{"9GiB", 9 << 30, 16},
	}
	files, dirs := testTree()
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			if testing.Short() && sz.size > 1<<30 {
				t.Skip("large sparse image skipped in -short mode")
			}
			img := writeImage(t, testOptions(sz.size), files, dirs)
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if st, err := f.Stat(); err != nil || st.Size() != sz.size {
				t.Fatalf("image size %v (%v), want %d", st.Size(), err, sz.size)
			}
			// The image is sparse; everything in use lies in its first
			// 64 MiB at these sizes.
			raw := make([]byte, min(sz.size, 64<<20))
			if _, err := f.ReadAt(raw, 0); err != nil {
				t.Fatal(err)
			}
			if raw[13] != sz.spc {
				t.Errorf("sectors per cluster %d, want %d", raw[13], sz.spc)
			}
			checkStructure(t, raw, sz.size)
			fsck(t, img)
			readBack(t, f, sz.size, files, dirs)
		})
	}
}

// checkStructure checks the boot sector, FSInfo, FATs and dot entries
// without using the package's reader.
func checkStructure(t *testing.T, raw []byte, size int64) {
	t.Helper()
	le := binary.LittleEndian
	bs := raw[:512]
	if !bytes.Equal(bs[:3], []byte{0xeb, 0x58, 0x90}) || string(bs[82:90]) != "FAT32   " || bs[510] != 0x55 || bs[511] != 0xaa {
		t.Fatalf("bad boot sector: % x", bs[:90])
	}
	if bs[66] != 0x29 || le.Uint32(bs[67:]) != 0x1234abcd || string(bs[71:82]) != "PI BOOT    " {
		t.Errorf("extended BPB: sig %#x id %#x label %q", bs[66], le.Uint32(bs[67:]), bs[71:82])
	}
	if le.Uint32(bs[32:]) != uint32(size/512) || le.Uint32(bs[28:]) != 8192 || bs[21] != 0xf8 {
		t.Errorf("BPB: total %d hidden %d media %#x", le.Uint32(bs[32:]), le.Uint32(bs[28:]), bs[21])
	}
	if !bytes.Equal(raw[6*512:7*512], bs) || !bytes.Equal(raw[7*512:8*512], raw[512:1024]) {
		t.Error("backup boot sector or FSInfo copy differs")
	}
	fsi := raw[512:1024]
	if le.Uint32(fsi) != 0x41615252 || le.Uint32(fsi[484:]) != 0x61417272 || le.Uint32(fsi[508:]) != 0xaa550000 {
		t.Error("bad FSInfo signatures")
	}
	spc := int64(bs[13])
	fatLen := int64(le.Uint32(bs[36:])) * 512
	fat1 := raw[32*512:][:fatLen]
	fat2 := raw[32*512+fatLen:][:fatLen]
	if !bytes.Equal(fat1, fat2) {
		t.Error("the two FATs differ")
	}
	if le.Uint32(fat1) != 0x0ffffff8 || le.Uint32(fat1[4:]) != 0x0fffffff {
		t.Errorf("FAT[0]=%#x FAT[1]=%#x", le.Uint32(fat1), le.Uint32(fat1[4:]))
	}
	dataStart := 32*512 + 2*fatLen
	clusters := (size - dataStart) / (spc * 512)
	used := int64(0)
	for c := int64(2); c < clusters+2; c++ {
		if le.Uint32(fat1[c*4:]) != 0 {
			used++
		}
	}
	if free := int64(le.Uint32(fsi[488:])); free != clusters-used {
		t.Errorf("FSInfo free count %d, FAT says %d", free, clusters-used)
	}
	if next := int64(le.Uint32(fsi[492:])); next != used+2 {
		t.Errorf("FSInfo next free %d, want %d", next, used+2)
	}
	cluster := func(c uint32) []byte { return raw[dataStart+int64(c-2)*spc*512:][:spc*512] }
	if root := cluster(2); string(root[:11]) != "PI BOOT    " || root[11] != 0x08 {
		t.Errorf("root does not start with the volume label: %q attr %#x", root[:11], root[11])
	}
	// Find the top-level directory "A" and its child "B" by short name.
	find := func(dir []byte, name string) uint32 {
		for e := dir; len(e) >= 32 && e[0] != 0; e = e[32:] {
			if string(e[:11]) == name && e[11]&0x10 != 0 {
				return uint32(le.Uint16(e[20:]))<<16 | uint32(le.Uint16(e[26:]))
			}
		}
		t.Fatalf("directory entry %q not found", name)
		return 0
	}
	a := find(cluster(2), "A          ")
	b := find(cluster(a), "B          ")
	if find(cluster(a), ".          ") != a || find(cluster(a), "..         ") != 0 {
		t.Error(`top-level directory: "." must point to itself and ".." must be cluster 0`)
	}
	if find(cluster(b), ".          ") != b || find(cluster(b), "..         ") != a {
		t.Error(`nested directory: "." or ".." points to the wrong cluster`)
	}
}

// readBack checks the package's reader against the input tree.
func readBack(t *testing.T, disk io.ReaderAt, size int64, files []File, dirs []Dir) {
	t.Helper()
	fsys, err := Open(disk, size)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	id, err := fatcheck.VolumeID(disk)
	if err != nil {
		t.Fatal(err)
	}
	if fsys.Label() != "PI BOOT" || id != 0x1234abcd {
		t.Errorf("label %q id %#x", fsys.Label(), id)
	}
	for _, f := range files {
		got, err := fsys.ReadFile(f.Path)
		if err != nil {
			t.Fatalf("ReadFile(%q): %v", f.Path, err)
		}
		if !bytes.Equal(got, f.Data) {
			t.Fatalf("ReadFile(%q): %d bytes differ from the %d written", f.Path, len(got), len(f.Data))
		}
	}
	var walked []walkEntry
	err = fsys.Walk(func(p string, isDir bool, size int64) error {
		walked = append(walked, walkEntry{p, isDir, size})
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	if want := expectedWalk(files, dirs); !slices.Equal(walked, want) {
		for i := range min(len(walked), len(want)) {
			if walked[i] != want[i] {
				t.Fatalf("Walk entry %d is %v, want %v", i, walked[i], want[i])
			}
		}
		t.Fatalf("Walk listed %d entries, want %d", len(walked), len(want))
	}
	// Case-insensitive lookup, by long and by generated short name.
	for p, want := range map[string]string{
		"CONFIG.TXT":                "config.txt",
		"Overlays/VC4-KMS-V3D.DTBO": "overlays/vc4-kms-v3d.dtbo",
		"many/FILE-0~1.TXT":         "many/file-000-with-a-long-name.txt",
		"LONGFI~2.TXT":              "longfilename2.txt",
	} {
		got, err := fsys.ReadFile(p)
		wantData, _ := fsys.ReadFile(want)
		if err != nil || !bytes.Equal(got, wantData) {
			t.Errorf("ReadFile(%q) = %q, %v; want the contents of %q", p, got, err, want)
		}
	}
	if _, err := fsys.ReadFile("overlays/missing.dtbo"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
	if _, err := fsys.ReadFile("a/b"); err == nil {
		t.Error("ReadFile of a directory succeeded")
	}
}

// setDiff returns the elements of a that are not in b.
func setDiff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func TestDeterministic(t *testing.T) {
	files, dirs := testTree()
	sum := func(seed uint64) [32]byte {
		fs := slices.Clone(files)
		ds := slices.Clone(dirs)
		r := rand.New(rand.NewPCG(seed, seed))
		r.Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
		r.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
		disk := make(memDisk, testSize)
		if err := Write(disk, testOptions(testSize), fs, ds); err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(disk)
	}
	first := sum(1)
	for seed := uint64(2); seed < 4; seed++ {
		if sum(seed) != first {
			t.Fatalf("output with shuffle seed %d differs from seed 1", seed)
		}
	}
}

// TestStaleBytes writes over a disk full of garbage: everything the
// filesystem uses must come out as on a clean disk, and fsck must pass.
func TestStaleBytes(t *testing.T) {
	files, dirs := testTree()
	clean := make(memDisk, testSize)
	if err := Write(clean, testOptions(testSize), files, dirs); err != nil {
		t.Fatal(err)
	}
	dirty := make(memDisk, testSize)
	for i := range dirty {
		dirty[i] = 0xa5
	}
	if err := Write(dirty, testOptions(testSize), files, dirs); err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	fatLen := int64(le.Uint32(clean[36:])) * 512
	clusters := (int64(testSize) - 32*512 - 2*fatLen) / 512
	used := clusters - int64(le.Uint32(clean[512+488:]))
	end := 32*512 + 2*fatLen + used*512
	if i := firstDiff(clean[:end], dirty[:end]); i >= 0 {
		t.Fatalf("stale byte leaks at offset %d (filesystem area ends at %d)", i, end)
	}
	if !bytes.Equal(clean[testSize-512:], dirty[testSize-512:]) {
		t.Error("last sector not written")
	}
	img := filepath.Join(t.TempDir(), "dirty.img")
	if err := os.WriteFile(img, dirty, 0o644); err != nil {
		t.Fatal(err)
	}
	fsck(t, img)
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func TestMinSize(t *testing.T) {
	small := []File{{Path: "config.txt", Data: []byte("x")}}
	got, err := MinSize(small, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(66581 * 512); got != want {
		t.Errorf("MinSize(small) = %d, want the FAT32 minimum %d", got, want)
	}
	big := []File{{Path: "big.bin", Data: make([]byte, 40<<20)}, {Path: "x/y.txt", Data: []byte("y")}}
	for _, tc := range []struct {
		name  string
		files []File
		fail  string
	}{{"small", small, "too small for FAT32"}, {"big", big, "does not fit"}} {
		t.Run(tc.name, func(t *testing.T) {
			size, err := MinSize(tc.files, nil)
			if err != nil {
				t.Fatal(err)
			}
			disk := make(memDisk, size)
			if err := Write(disk, testOptions(size), tc.files, nil); err != nil {
				t.Fatalf("Write at MinSize %d: %v", size, err)
			}
			err = Write(disk, testOptions(size-512), tc.files, nil)
			if err == nil || !strings.Contains(err.Error(), tc.fail) {
				t.Fatalf("Write at MinSize-512: err = %v, want %q", err, tc.fail)
			}
		})
	}
}
