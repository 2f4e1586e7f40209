package provision

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// oldDigest is how 7cca2ba identified a set of input files in the marker:
// an unkeyed sha256 of their names, lengths and contents.
func oldDigest(files map[string][]byte) string {
	h := sha256.New()
	for _, name := range Inputs {
		if data, ok := files[name]; ok {
			fmt.Fprintf(h, "%s %d\n", name, len(data))
			h.Write(data)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestMarkerConfirmsNoGuess: whoever reads the marker (and knows the
// shape of the file: Imager's template, the team's usual file) cannot
// test guesses of the passphrase against it, and only root reads it.
func TestMarkerConfirmsNoGuess(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("chown needs root")
	}
	boot, root := t.TempDir(), target(t)
	body := func(pass string) []byte {
		return []byte("hostname: box-1\nwifi:\n  country: FR\n  networks:\n    - ssid: Home\n      passphrase: " + pass + "\n")
	}
	os.WriteFile(filepath.Join(boot, FileName), body("Winter2024!"), 0o600)
	if out, err := Run(context.Background(), boot, root, nil); err != nil || !out.Applied {
		t.Fatalf("%+v %v", out, err)
	}
	marker := filepath.Join(root, RecordPath)
	st, err := os.Stat(marker)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("the marker's mode is %v, want 0600", st.Mode().Perm())
	}
	if st, err := os.Stat(filepath.Join(root, RecordKeyPath)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the marker's key: %v %v, want mode 0600", st, err)
	}
	data, _ := os.ReadFile(marker)
	for _, guess := range []string{"password", "Summer2024!", "Winter2023!", "Winter2024!", "letmein123"} {
		files := map[string][]byte{FileName: body(guess)}
		for _, sum := range []string{oldDigest(files), fmt.Sprintf("%x", sha256.Sum256(body(guess)))} {
			if strings.Contains(string(data), sum) {
				t.Errorf("the marker confirms the guess %q: %s", guess, data)
			}
		}
	}
	t.Logf("marker: %s", data)
}

// TestMarkerMigrates: a marker 7cca2ba wrote (world-readable, unkeyed
// sums) is rewritten keyed and 0600 on the next boot, files or not, and a
// set of files it recorded is still recognised: not applied again.
func TestMarkerMigrates(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("chown needs root")
	}
	body := []byte("hostname: box-3\n")
	old := oldDigest(map[string][]byte{FileName: body})
	for _, withFiles := range []bool{true, false} {
		boot, root := t.TempDir(), target(t)
		marker := filepath.Join(root, RecordPath)
		os.MkdirAll(filepath.Dir(marker), 0o755)
		other := strings.Repeat("ab", 32)
		if err := os.WriteFile(marker, []byte(other+"  user-data\n"+old+"  "+FileName+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if withFiles {
			os.WriteFile(filepath.Join(boot, FileName), body, 0o600)
		}
		out, err := Run(context.Background(), boot, root, nil)
		if err != nil || out.Applied || out.Already != withFiles {
			t.Fatalf("files %v: %+v %v", withFiles, out, err)
		}
		data, _ := os.ReadFile(marker)
		st, _ := os.Stat(marker)
		if strings.Contains(string(data), old) || strings.Contains(string(data), other) || st.Mode().Perm() != 0o600 {
			t.Errorf("files %v: the old marker is still there (%v): %s", withFiles, st.Mode(), data)
		}
		if strings.Count(string(data), "\n") != 2 {
			t.Errorf("files %v: an entry was lost: %s", withFiles, data)
		}
		os.WriteFile(filepath.Join(boot, FileName), body, 0o600)
		if out, err := Run(context.Background(), boot, root, nil); err != nil || out.Applied || !out.Already {
			t.Errorf("files %v: the migrated entry is not recognised: %+v %v", withFiles, out, err)
		}
		if read(t, root, "etc/hostname") != "demo\n" {
			t.Errorf("files %v: applied again", withFiles)
		}
	}
}

// TestMarkerWithoutKey: a key that cannot be used (not 32 bytes) leaves
// an old marker root's alone, and the files apply (again), unrecorded.
func TestMarkerWithoutKey(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("chown needs root")
	}
	boot, root := t.TempDir(), target(t)
	marker := filepath.Join(root, RecordPath)
	os.MkdirAll(filepath.Dir(marker), 0o755)
	os.WriteFile(marker, []byte(strings.Repeat("ab", 32)+"  user-data\n"), 0o644)
	os.WriteFile(filepath.Join(root, RecordKeyPath), []byte("short"), 0o600)
	os.WriteFile(filepath.Join(boot, FileName), []byte("hostname: box-4\n"), 0o600)
	out, err := Run(context.Background(), boot, root, nil)
	if err != nil || !out.Applied || out.Mark != "" {
		t.Fatalf("%+v %v", out, err)
	}
	if st, err := os.Stat(marker); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the old marker: %v %v, want mode 0600", st, err)
	}
}
