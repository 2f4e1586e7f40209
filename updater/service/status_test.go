package service

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/disk/fat"
	"github.com/pibake/pibake/updater/bootloader"
	"github.com/pibake/pibake/updater/config"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/state"
)

func TestSafeText(t *testing.T) {
	var b strings.Builder
	safeText{&b}.Write([]byte("last error: GET x: HTTP 500 \x1b]0;pwned\x07\x1b[2J\u009b6n ok\tübel\n"))
	if got := b.String(); got != "last error: GET x: HTTP 500 ?]0;pwned??[2J?6n ok\tübel\n" {
		t.Errorf("%q", got)
	}
	// Bidirectional overrides and isolates (a server's text shown
	// reversed: "evil.exe" as "exe.live"), the marks, invisible format
	// characters and line separators are replaced too.
	b.Reset()
	safeText{&b}.Write([]byte("version \u202egpj.exe\u202c, \u202a\u202b\u202d \u2066\u2067\u2068\u2069 \u200e\u200f\u061c \u200b\ufeff\u2028\u2029 ok ü 🙂\n"))
	if got := b.String(); got != "version ?gpj.exe?, ??? ???? ??? ???? ok ü 🙂\n" {
		t.Errorf("%q", got)
	}
}

// bootsel is a fake device's bootsel: a FAT32 image file holding files,
// and the same files in a folder, as the service's mount shows them.
func bootsel(t *testing.T, files map[string][]byte) (image, dir string) {
	t.Helper()
	dir = t.TempDir()
	var fs []fat.File
	for name, data := range files {
		fs = append(fs, fat.File{Path: name, Data: data})
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	image = filepath.Join(t.TempDir(), "bootsel.img")
	f, err := os.Create(image)
	if err != nil {
		t.Fatal(err)
	}
	if err := fat.Write(f, fat.Options{Size: 36 << 20, Label: "BOOTSEL"}, fs, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return image, dir
}

// TestDescribeAsTheBootLoader: the boot state status reads from the FAT
// is the line the boot loader's own Describe gives for the same files,
// whichever file wins, for both chains.
func TestDescribeAsTheBootLoader(t *testing.T) {
	trial := bootchain.Initial().TryOnce(bootchain.B).Marshal()
	good := bootchain.Initial().MarkGood(bootchain.B).Marshal()
	cases := map[string]map[string][]byte{
		"nothing":           {},
		"state file":        {bootchain.StateFile: trial},
		"torn state file":   {bootchain.StateFile: trial[:5], bootchain.AgentStateFile: good},
		"agent's copy only": {bootchain.AgentStateFile: good},
		"garbage":           {bootchain.StateFile: []byte("\xff\xfe"), bootchain.AgentStateFile: []byte("BOOT_ORDER=")},
		"autoboot b":        {bootchain.AutobootFile: bootchain.AutobootTxt(bootchain.B)},
		"autoboot disabled": {bootchain.AutobootFile: []byte("[all]\nboot_partition=2\n")},
		"autoboot no slot":  {bootchain.AutobootFile: []byte("[all]\ntryboot_a_b=1\nboot_partition=7\n")},
		"autoboot garbage":  {bootchain.AutobootFile: []byte("[none]\n")},
	}
	for name, files := range cases {
		image, dir := bootsel(t, files)
		for _, c := range bootchain.Chains() {
			want := bootloader.Describe(c, dir)
			if got := (Device{Bootsel: image}).bootState(c); got != want {
				t.Errorf("%s, %s: read from the FAT %q, the boot loader says %q", name, c, got, want)
			}
			if got := (Device{Mounted: dir}).bootState(c); got != want {
				t.Errorf("%s, %s: read through the mount %q, the boot loader says %q", name, c, got, want)
			}
		}
	}
}

func sha(t *testing.T, path string) [sha256.Size]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

// TestStatusReadsOnly: status on a fake device (bootsel an image file,
// not mounted) reports the boot state from the FAT, changes no byte of
// the image or of the state file, and mounts nothing.
func TestStatusReadsOnly(t *testing.T) {
	for _, c := range bootchain.Chains() {
		t.Run(string(c), func(t *testing.T) {
			image, _ := bootsel(t, map[string][]byte{
				bootchain.StateFile:    bootchain.Initial().TryOnce(bootchain.B).Marshal(),
				bootchain.AutobootFile: bootchain.AutobootTxt(bootchain.B),
			})
			statePath := filepath.Join(t.TempDir(), "updater.json")
			if err := (state.File{Path: statePath}).Save(state.State{Committed: "b"}); err != nil {
				t.Fatal(err)
			}
			before, stateBefore := sha(t, image), sha(t, statePath)
			mounts, err := os.ReadFile("/proc/self/mountinfo")
			if err != nil {
				t.Fatal(err)
			}
			s := Status{StatePath: statePath,
				Config: func() (config.Config, error) { return config.Config{Bootloader: string(c)}, nil },
				Device: func() (Device, error) { return Device{Booted: bootchain.B, Bootsel: image}, nil }}
			var out bytes.Buffer
			if err := s.Print(&out, false); err != nil {
				t.Fatal(err)
			}
			want := map[bootchain.Chain]string{
				bootchain.UBoot:   "boot state: BOOT_ORDER=B A BOOT_A_LEFT=3 BOOT_B_LEFT=1\n",
				bootchain.Tryboot: "boot state: tryboot: slot b committed (autoboot.txt)\n",
			}[c]
			if !strings.Contains(out.String(), "booted slot: b\n"+want+"committed slot: b\n") {
				t.Errorf("status says\n%s\nwant the line %q", out.String(), want)
			}
			if sha(t, image) != before || sha(t, statePath) != stateBefore {
				t.Error("status changed the device's bytes")
			}
			if after, err := os.ReadFile("/proc/self/mountinfo"); err != nil || !bytes.Equal(after, mounts) {
				t.Errorf("status changed the mounts (%v)", err)
			}
		})
	}
}

// TestStatusText: what status prints of the state, as text and as JSON,
// and a state file it cannot read is reported, not touched.
func TestStatusText(t *testing.T) {
	since := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	st := state.State{Committed: "a", Degraded: "b failed its tries", Serials: map[string]uint64{"stable": 7, "beta": 9},
		Slots:       map[string]state.Release{"a": {Image: "demo", Version: "1.2", Serial: 7}},
		Trial:       &state.Trial{Slot: "b", Since: since, Release: state.Release{Image: "demo", Version: "1.3", Serial: 8}},
		Failed:      map[string]state.Failure{"1.1": {Stage: "health", Check: "unit nginx", Reason: "inactive"}},
		LastInstall: &state.Transfer{Version: "1.3", Downloaded: 10, Reused: 20, Full: 30, Seconds: 1.25, PeakRSS: 3 << 20},
		LastError:   "GET x: \x1b[2J",
	}
	statePath := filepath.Join(t.TempDir(), "updater.json")
	if err := (state.File{Path: statePath}).Save(st); err != nil {
		t.Fatal(err)
	}
	nowhere := Status{StatePath: statePath, Device: func() (Device, error) { return Device{}, errors.New("not a device") }}
	var out bytes.Buffer
	if err := nowhere.Print(&out, false); err != nil {
		t.Fatal(err)
	}
	want := `booted slot: 
boot state: 
committed slot: a
degraded: b failed its tries
channel beta: serial 9 committed
channel stable: serial 7 committed
slot a: demo 1.2 (serial 7)
trial pending: 1.3 in slot b since 2025-03-01T12:00:00Z
failed: 1.1 at health (unit nginx): inactive
last install: 1.3: downloaded 10 bytes, reused 20 from the running slot, of 30, in 1.2 s, agent peak RSS 3.0 MiB
last error: GET x: ?[2J
state: not authenticated (the device key on bootsel cannot be read: not a device)
`
	if out.String() != want {
		t.Errorf("status says\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	if err := nowhere.Print(&out, true); err != nil {
		t.Fatal(err)
	}
	var got report
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.State.LastError != st.LastError || got.State.Trial.Slot != "b" {
		t.Errorf("status --json: %v\n%s", err, out.String())
	}
	if err := os.WriteFile(statePath, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := nowhere.Print(&out, false); err == nil || !strings.Contains(err.Error(), "is unreadable") {
		t.Errorf("an unreadable state: %v", err)
	}
	if data, _ := os.ReadFile(statePath); string(data) != "{" {
		t.Errorf("status changed an unreadable state file: %q", data)
	}
}

// TestStatusShowsTheDownload: what the service reports of the download
// in progress (at most once a second) is what status prints, as text
// and as JSON, until the service clears it.
func TestStatusShowsTheDownload(t *testing.T) {
	dir := t.TempDir()
	live := &liveDownload{path: filepath.Join(dir, "run", "download.json"), every: time.Second}
	since := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	r := install.Reading{Name: "root", Size: 300 << 20, Fetched: 3 << 20, Since: since, At: since.Add(400 * time.Second), Waited: 384 * time.Second}
	live.report(r)
	later := r
	later.Fetched, later.At = 4<<20, r.At.Add(500*time.Millisecond)
	live.report(later) // within the second: not written
	s := Status{StatePath: filepath.Join(dir, "updater.json"), DownloadPath: live.path,
		Device: func() (Device, error) { return Device{}, errors.New("not a device") }}
	var out bytes.Buffer
	if err := s.Print(&out, false); err != nil {
		t.Fatal(err)
	}
	want := "downloading: root, 3.0 MiB (of 300.0 MiB) at 8.0 KiB/s since 2026-11-23T12:00:00Z (as of 2026-11-23T12:06:40Z)\n"
	if !strings.Contains(out.String(), want) {
		t.Errorf("status says\n%s\nwant the line %q", out.String(), want)
	}
	out.Reset()
	if err := s.Print(&out, true); err != nil {
		t.Fatal(err)
	}
	var got report
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Download == nil || *got.Download != r {
		t.Errorf("status --json: %v\n%s", err, out.String())
	}
	live.clear()
	out.Reset()
	if err := s.Print(&out, false); err != nil || strings.Contains(out.String(), "downloading") {
		t.Errorf("after the download: %v\n%s", err, out.String())
	}
}

// TestStatusChecksTheStateMAC: status shows the state file's content only
// when its MAC holds under the device key on bootsel (read through the
// service's mount or from the partition); a state someone else wrote (a
// forced downgrade planted on /data) is reported as untrusted, never as
// the device's state.
func TestStatusChecksTheStateMAC(t *testing.T) {
	keyDir := t.TempDir()
	keyPath := filepath.Join(keyDir, "state.key")
	statePath := filepath.Join(t.TempDir(), "updater.json")
	f := state.File{Path: statePath, KeyPath: keyPath}
	if _, err := f.Seal(); err != nil {
		t.Fatal(err)
	}
	if err := f.Save(state.State{Committed: "b", Slots: map[string]state.Release{"b": {Image: "demo", Version: "2.0", Serial: 5}}}); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	image, dir := bootsel(t, map[string][]byte{
		bootchain.StateFile:               bootchain.Initial().MarkGood(bootchain.B).Marshal(),
		state.KeepDir + "/" + "state.key": key,
	})
	forged, err := json.Marshal(state.State{Format: state.Format, Committed: "a", Slots: map[string]state.Release{"a": {Image: "demo", Version: "1.0", Serial: 9}}})
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, dev := range []Device{{Booted: bootchain.B, Mounted: dir}, {Booted: bootchain.B, Bootsel: image}} {
		for _, c := range []struct {
			name string
			data []byte
			want []string
			not  string
		}{
			{"sealed", good, []string{"committed slot: b\n", "slot b: demo 2.0 (serial 5)\n", "state: authenticated"}, "UNTRUSTED"},
			{"forged", forged, []string{"state: UNTRUSTED", "updater.json"}, "committed slot: a"},
		} {
			if err := os.WriteFile(statePath, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			s := Status{StatePath: statePath,
				Config: func() (config.Config, error) { return config.Config{Bootloader: string(bootchain.UBoot)}, nil },
				Device: func() (Device, error) { return dev, nil }}
			var out bytes.Buffer
			if err := s.Print(&out, false); err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("mounted %q: %s: status says\n%s\nwant %q", dev.Mounted, c.name, out.String(), w)
				}
			}
			if strings.Contains(out.String(), c.not) {
				t.Errorf("mounted %q: %s: status says\n%s\nwhich has %q", dev.Mounted, c.name, out.String(), c.not)
			}
		}
	}
}
