package builder

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/disk/layout"
)

// ImageExpect is what CheckImage asserts about a built image.
type ImageExpect struct {
	Hostname     string
	Files        map[string]string // path in the root -> "mode uid/gid" as `unsquashfs -lln` prints it
	BootselFiles []string
	SlotFiles    []string
	// Read names files of the root filesystem to read with unsquashfs
	// -cat; CheckImage fills in their contents (from root-a).
	Read map[string][]byte
}

// CheckImage checks an image with the real tools: sfdisk for the table,
// fsck.vfat on every FAT partition, unsquashfs on both root slots, and
// pibake's own inspect for the slot descriptions.
func CheckImage(t *testing.T, img string, want ImageExpect) {
	t.Helper()
	need(t, "sfdisk", "fsck.vfat", "unsquashfs")
	out, err := exec.Command("sfdisk", "--json", img).Output()
	if err != nil {
		t.Fatalf("sfdisk --json: %v", err)
	}
	var sf struct {
		PartitionTable struct {
			Label      string
			Partitions []struct {
				Node  string
				Start int64
				Size  int64
				Type  string
			}
		}
	}
	if err := json.Unmarshal(out, &sf); err != nil {
		t.Fatalf("sfdisk json: %v\n%s", err, out)
	}
	pt := sf.PartitionTable
	if pt.Label != "dos" || len(pt.Partitions) != 7 {
		t.Fatalf("sfdisk: label %q with %d partitions, want dos with 7:\n%s", pt.Label, len(pt.Partitions), out)
	}
	wantTypes := map[string]string{"1": "c", "2": "c", "3": "c", "4": "f", "5": "83", "6": "83", "7": "83"}
	parts := map[int]struct{ off, size int64 }{}
	for _, p := range pt.Partitions {
		n := p.Node[len(img):]
		if wantTypes[n] != p.Type {
			t.Errorf("sfdisk: partition %s has type %s, want %s", n, p.Type, wantTypes[n])
		}
		var num int
		fmt.Sscan(n, &num)
		parts[num] = struct{ off, size int64 }{p.Start * 512, p.Size * 512}
	}
	dir := t.TempDir()
	extract := func(num int, name string) string {
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		dst := filepath.Join(dir, name)
		o, err := os.Create(dst)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		if _, err := io.Copy(o, io.NewSectionReader(f, parts[num].off, parts[num].size)); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	for _, sp := range layout.Table {
		switch sp.FS {
		case "vfat":
			p := extract(sp.Number, sp.Name)
			if b, err := exec.Command("fsck.vfat", "-n", p).CombinedOutput(); err != nil {
				t.Errorf("fsck.vfat -n %s: %v\n%s", sp.Name, err, b)
			}
			os.Remove(p)
		case "squashfs":
			p := extract(sp.Number, sp.Name)
			b, err := exec.Command("unsquashfs", "-d", "", "-lln", p).CombinedOutput()
			if err != nil {
				t.Fatalf("unsquashfs -lln %s: %v\n%s", sp.Name, err, b)
			}
			listing := map[string]string{}
			// Lines read "mode uid/gid size date time path [-> target]".
			for _, line := range strings.Split(string(b), "\n") {
				if f := strings.Fields(line); len(f) >= 6 && strings.HasPrefix(f[5], "/") {
					listing[f[5]] = f[0] + " " + f[1]
				}
			}
			for path, attrs := range want.Files {
				got, ok := listing[path]
				if !ok {
					t.Errorf("%s: %s is missing", sp.Name, path)
					continue
				}
				if got != attrs {
					t.Errorf("%s: %s is %q, want %q", sp.Name, path, got, attrs)
				}
			}
			if want.Hostname != "" {
				h, err := exec.Command("unsquashfs", "-cat", p, "/etc/hostname").Output()
				if err != nil || string(h) != want.Hostname+"\n" {
					t.Errorf("%s: /etc/hostname is %q (%v), want %q", sp.Name, h, err, want.Hostname)
				}
			}
			if sp.Name == layout.RootA {
				for path := range want.Read {
					data, err := exec.Command("unsquashfs", "-cat", p, path).Output()
					if err != nil {
						t.Fatalf("unsquashfs -cat %s %s: %v", sp.Name, path, err)
					}
					want.Read[path] = data
				}
			}
			os.Remove(p)
		}
	}
	rep := inspectFile(t, img)
	has := func(list []string, name string) bool {
		for _, f := range list {
			if strings.HasPrefix(f, name+" (") {
				return true
			}
		}
		return false
	}
	for _, f := range want.BootselFiles {
		if !has(rep.Bootsel, f) {
			t.Errorf("bootsel has no %s: %v", f, rep.Bootsel)
		}
	}
	for _, s := range rep.Slots {
		if !s.Verified || s.Problem != "" {
			t.Errorf("slot %s: verified %v, problem %q", s.Name, s.Verified, s.Problem)
		}
		for _, f := range want.SlotFiles {
			if !has(s.Files, f) {
				t.Errorf("slot %s has no %s: %v", s.Name, f, s.Files)
			}
		}
	}
}
