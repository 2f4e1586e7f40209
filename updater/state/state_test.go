package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestFile(t *testing.T) {
	f := File{Path: filepath.Join(t.TempDir(), "pibake", "updater.json")}
	st, err := f.Load()
	if err != nil || st.Format != Format || st.Trial != nil {
		t.Fatalf("empty: %+v %v", st, err)
	}
	st.Serials = map[string]uint64{"stable": 4}
	st.Trial = &Trial{Slot: "b", Release: Release{Image: "demo", Version: "2.0", Serial: 4}, Since: time.Unix(1700000000, 0).UTC()}
	st.Failed = map[string]Failure{"1.9": {Version: "1.9", Stage: "health", Check: "unit x", Reason: "x is failed"}}
	if err := f.Save(st); err != nil {
		t.Fatal(err)
	}
	got, err := f.Load()
	if err != nil || got.Serials["stable"] != 4 || got.Trial.Release.Version != "2.0" || got.Failed["1.9"].Check != "unit x" {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(f.Path))
	if len(entries) != 1 {
		t.Errorf("left files behind: %v", entries)
	}
}

// TestUnreadable: every kind of bad state file is set aside (kept for
// inspection, numbered) and the agent gets the empty state, never a stop.
func TestUnreadable(t *testing.T) {
	for name, data := range map[string]string{
		"empty":         "",
		"truncated":     `{"format": 2, "serials": {"stable": 4}, "trial": {"slot": "b", "rel`,
		"garbage":       "\x00\x17\xff not json",
		"newer format":  `{"format": 9}`,
		"unknown slot":  `{"format": 2, "trial": {"slot": "c", "release": {"version": "2.0"}}}`,
		"bad committed": `{"format": 2, "committed": "../a"}`,
		"slots key":     `{"format": 2, "slots": {"z": {"version": "1"}}}`,
	} {
		f := File{Path: filepath.Join(t.TempDir(), "updater.json")}
		for n := 1; n <= 2; n++ {
			os.WriteFile(f.Path, []byte(data), 0o600)
			st, err := f.Load()
			if !errors.Is(err, ErrCorrupt) || st.Format != Format || st.Trial != nil || len(st.Serials) != 0 {
				t.Fatalf("%s: %+v %v", name, st, err)
			}
			kept, rerr := os.ReadFile(fmt.Sprintf("%s.bad-%d", f.Path, n))
			if rerr != nil || string(kept) != data || !strings.Contains(err.Error(), ".bad-") {
				t.Errorf("%s: the bad file was not kept as .bad-%d: %v", name, n, rerr)
			}
		}
		if _, err := f.Load(); err != nil {
			t.Errorf("%s: after setting it aside: %v", name, err)
		}
	}
}

// TestFormat1: a format 1 file's one serial belongs to the channel the
// device follows.
func TestFormat1(t *testing.T) {
	st, err := Parse([]byte(`{"format": 1, "last_serial": 12, "slots": {"b": {"image": "demo", "version": "2.0", "serial": 12}}}`))
	if err != nil {
		t.Fatal(err)
	}
	st.Upgrade("stable")
	if st.Serials["stable"] != 12 || st.LastSerial != 0 || st.Format != Format {
		t.Errorf("%+v", st)
	}
}

// TestPatchedField: a download's tried patches round trip, and a state
// file written before the field existed still reads, with none tried.
func TestPatchedField(t *testing.T) {
	old, err := Parse([]byte(`{"format": 2, "download": {"serial": 3, "slot": "b", "done": ["aa"], "current": "bb", "offset": 4096}}`))
	if err != nil || old.Download == nil || old.Download.Offset != 4096 || len(old.Download.Patched) != 0 {
		t.Fatalf("a state file of an earlier agent: %+v %v", old.Download, err)
	}
	f := File{Path: filepath.Join(t.TempDir(), "updater.json")}
	old.Download.Patched = []string{"bb"}
	if err := f.Save(old); err != nil {
		t.Fatal(err)
	}
	got, err := f.Load()
	if err != nil || got.Download == nil || len(got.Download.Patched) != 1 || got.Download.Patched[0] != "bb" {
		t.Fatalf("round trip: %+v %v", got.Download, err)
	}
}

// TestFileAuthenticated: once the device has a key, a state file is
// trusted only with its MAC: edited, stripped of its MAC, written with
// another key, or removed, it is set aside as untrusted. Before the key
// exists (an agent that took over from one without keys) the file is
// read as it is.
func TestFileAuthenticated(t *testing.T) {
	dir := t.TempDir()
	keep := Keep{Dir: filepath.Join(dir, "bootsel", KeepDir)}
	f := File{Path: filepath.Join(dir, "data", "updater.json"), KeyPath: keep.KeyPath()}
	st := State{Serials: map[string]uint64{"stable": 4}, Committed: "b", Slots: map[string]Release{"b": {Image: "demo", Version: "2.0", Serial: 4}}}
	if err := f.Save(st); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Load(); err != nil || got.Serials["stable"] != 4 {
		t.Fatalf("before the key: %+v %v", got, err)
	}
	if made, err := f.Seal(); err != nil || !made {
		t.Fatalf("seal: %v %v", made, err)
	}
	if made, err := f.Seal(); err != nil || made {
		t.Fatalf("second seal made a key again: %v %v", made, err)
	}
	if _, err := f.Load(); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("a file saved before the key, read after it: %v", err)
	}
	if err := f.Save(st); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(f.Path)
	if got, err := f.Load(); err != nil || got.Committed != "b" || got.MAC != "" {
		t.Fatalf("sealed round trip: %+v %v", got, err)
	}
	other := File{Path: filepath.Join(dir, "other.json"), KeyPath: filepath.Join(dir, "other.key")}
	other.Seal()
	other.Save(st)
	foreign, _ := os.ReadFile(other.Path)
	for name, data := range map[string]string{
		"edited":        strings.Replace(string(good), `"committed": "b"`, `"committed": "a"`, 1),
		"serial edited": strings.Replace(string(good), `"stable": 4`, `"stable": 1`, 1),
		"no mac":        regexpMAC.ReplaceAllString(string(good), `"mac": ""`),
		"another key":   string(foreign),
	} {
		os.WriteFile(f.Path, []byte(data), 0o600)
		if got, err := f.Load(); !errors.Is(err, ErrUntrusted) || got.Committed != "" {
			t.Errorf("%s: %+v %v", name, got, err)
		}
	}
	os.Remove(f.Path)
	if _, err := f.Load(); !errors.Is(err, ErrUntrusted) {
		t.Errorf("a removed file once the device has a key: %v", err)
	}
	// A key torn by a power cut authenticates nothing; the next save
	// makes a new one.
	os.WriteFile(keep.KeyPath(), []byte("12ab"), 0o600)
	os.WriteFile(f.Path, good, 0o600)
	if _, err := f.Load(); !errors.Is(err, ErrUntrusted) {
		t.Errorf("a damaged key: %v", err)
	}
	if err := f.Save(st); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Load(); err != nil || got.Committed != "b" {
		t.Errorf("after a new key: %+v %v", got, err)
	}
}

var regexpMAC = regexp.MustCompile(`"mac": "[0-9a-f]+"`)

// TestKeep: the committed documents round-trip by channel, whatever the
// channel's name (FAT folds case).
func TestKeep(t *testing.T) {
	k := Keep{Dir: filepath.Join(t.TempDir(), KeepDir)}
	if docs, err := k.Committed(); err != nil || len(docs) != 0 {
		t.Fatalf("empty keep: %v %v", docs, err)
	}
	for _, ch := range []string{"stable", "Stable", "../x", "beta"} {
		if err := k.SaveCommitted(ch, Signed{Document: []byte("doc " + ch), Signature: []byte("sig " + ch)}); err != nil {
			t.Fatal(err)
		}
	}
	k.SaveCommitted("beta", Signed{Document: []byte("doc beta 2"), Signature: []byte("sig")})
	os.WriteFile(filepath.Join(k.Dir, "committed-zz.json"), []byte("{"), 0o600)
	docs, err := k.Committed()
	if err != nil || len(docs) != 4 || string(docs["Stable"].Document) != "doc Stable" || string(docs["../x"].Signature) != "sig ../x" || string(docs["beta"].Document) != "doc beta 2" {
		t.Errorf("kept documents: %v %v", docs, err)
	}
}
