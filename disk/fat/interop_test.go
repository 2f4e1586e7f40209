package fat

import (
	"bytes"
	"fmt"
	"github.com/pibake/pibake/disk/fat/fatcheck"
	"github.com/pibake/pibake/internal/hosttool"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestMtools(t *testing.T) {
	hosttool.Need(t, "mdir", "mtools")
	files, dirs := testTree()
	img := writeImage(t, testOptions(testSize), files, dirs)
	env := append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "LC_ALL=C.UTF-8")
	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
		}
		return out
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(run("mdir", "-i", img, "-/", "-b", "::"))), "\n") {
		got = append(got, strings.TrimSuffix(strings.TrimPrefix(line, "::/"), "/"))
	}
	// mtools 4.0 decodes long names one UTF-16 unit at a time and shows a
	// character outside the BMP (a surrogate pair) as "__", so such names
	// are left to fsck and the package's own reader.
	outsideBMP := func(p string) bool { return strings.ContainsFunc(p, func(r rune) bool { return r > 0xffff }) }
	var want []string
	for _, e := range expectedWalk(files, dirs) {
		if !outsideBMP(e.path) {
			want = append(want, e.path)
		}
	}
	got = slices.DeleteFunc(got, func(p string) bool { return p == "a/emoji-__.txt" })
	slices.Sort(got)
	slices.Sort(want)
	if missing, extra := setDiff(want, got), setDiff(got, want); len(missing)+len(extra) > 0 {
		t.Fatalf("mdir listing differs: missing %q, unexpected %q", missing, extra)
	}
	for i, f := range files {
		if strings.HasPrefix(f.Path, "many/") && i%50 != 0 || outsideBMP(f.Path) {
			continue // a sample of the 300 is enough
		}
		if out := run("mtype", "-i", img, "::/"+f.Path); !bytes.Equal(out, f.Data) {
			t.Fatalf("mtype %q: %d bytes differ from the %d written", f.Path, len(out), len(f.Data))
		}
	}
	// Overwrite a file in place with another FAT implementation (as
	// U-Boot's fatwrite would) and check the result stays consistent.
	newData := bytes.Repeat([]byte("overwritten by mcopy\n"), 100)
	src := filepath.Join(t.TempDir(), "config.txt")
	if err := os.WriteFile(src, newData, 0o644); err != nil {
		t.Fatal(err)
	}
	run("mcopy", "-o", "-i", img, src, "::/config.txt")
	fsck(t, img)
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := Open(memDisk(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := fsys.ReadFile("config.txt"); err != nil || !bytes.Equal(got, newData) {
		t.Fatalf("after mcopy -o: ReadFile = %d bytes, %v", len(got), err)
	}
}

// TestReadForeign reads a filesystem made by mkfs.vfat and filled by mcopy,
// so the reader is checked against another implementation's output. (Names
// are chosen so that mcopy stores long names: a non-ASCII name that fits in
// a short name of the DOS code page would be stored without one, and the
// reader does not know the code page.)
func TestReadForeign(t *testing.T) {
	mkfs := hosttool.Need(t, "mkfs.vfat", "dosfstools")
	hosttool.Need(t, "mcopy", "mtools")
	dir := t.TempDir()
	img := filepath.Join(dir, "foreign.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, "-F", "32", "-n", "FOREIGN", "-i", "0badf00d", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v\n%s", err, out)
	}
	src := filepath.Join(dir, "src")
	files := map[string][]byte{
		"config.txt":                   []byte("from mcopy\n"),
		"Mixed Case Long Name.dat":     randomBytes(70000, 9),
		"sub/dir/ünïcödé-名前.txt":       []byte("nested\n"),
		"sub/README":                   []byte("short\n"),
		"sub/dir/a-very-long-name-too": randomBytes(1025, 10),
	}
	for p, data := range files {
		full := filepath.Join(src, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-s", "-i", img}
	for _, e := range entries {
		args = append(args, filepath.Join(src, e.Name()))
	}
	cmd := exec.Command("mcopy", append(args, "::/")...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "LC_ALL=C.UTF-8")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fsys, err := Open(f, 64<<20)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	id, err := fatcheck.VolumeID(f)
	if err != nil {
		t.Fatal(err)
	}
	if fsys.Label() != "FOREIGN" || id != 0x0badf00d {
		t.Errorf("label %q id %#x", fsys.Label(), id)
	}
	var fileCount int
	err = fsys.Walk(func(p string, isDir bool, size int64) error {
		if isDir {
			return nil
		}
		fileCount++
		want, ok := files[p]
		if !ok {
			return fmt.Errorf("unexpected file %q", p)
		}
		got, err := fsys.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) || size != int64(len(want)) {
			return fmt.Errorf("%q: %d bytes (size %d), %v; want %d bytes", p, len(got), size, err, len(want))
		}
		return nil
	})
	if err != nil || fileCount != len(files) {
		t.Fatalf("Walk: %v (%d of %d files)", err, fileCount, len(files))
	}
}

// TestPartitionNoLabel writes an empty, unlabelled filesystem through an
// io.OffsetWriter, as for a partition, and checks it with fsck and the reader.
func TestPartitionNoLabel(t *testing.T) {
	const start = 1 << 20
	disk := make(memDisk, start+testSize+4096)
	opts := Options{Size: testSize, HiddenSectors: start / 512}
	if err := Write(io.NewOffsetWriter(disk, start), opts, nil, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(disk[:start], make([]byte, start)) || !bytes.Equal(disk[start+testSize:], make([]byte, 4096)) {
		t.Fatal("Write touched bytes outside its partition")
	}
	part := disk[start : start+testSize]
	if string(part[71:82]) != "NO NAME    " {
		t.Errorf("boot sector label %q, want NO NAME", part[71:82])
	}
	img := filepath.Join(t.TempDir(), "part.img")
	if err := os.WriteFile(img, part, 0o644); err != nil {
		t.Fatal(err)
	}
	fsck(t, img)
	fsys, err := Open(io.NewSectionReader(disk, start, testSize), testSize)
	if err != nil {
		t.Fatal(err)
	}
	if fsys.Label() != "" {
		t.Errorf("Label() = %q, want none", fsys.Label())
	}
	err = fsys.Walk(func(p string, _ bool, _ int64) error { return fmt.Errorf("unexpected entry %q", p) })
	if err != nil {
		t.Fatal(err)
	}
}
