package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The campaign's pieces that need no QEMU: its plan, the phase tracker,
// the reading of the guest's status lines, the card copies. These run in
// every go test, without PIBAKE_E2E.

func TestPowerCutPlan(t *testing.T) {
	legs := soakLegs()
	sample := planCuts(legs, soakConfig{cuts: 3, sample: true, seed: 7})
	if len(sample) != 3 {
		t.Fatalf("sample of %d cuts", len(sample))
	}
	groups := [][]string{{"first"}, {"v2"}, {"v2t"}}
	for i, pc := range sample {
		if pc.n != i+1 || !contains(groups[i], pc.leg.name) || !contains(pc.leg.aims, pc.phase) || pc.u < 0 || pc.u >= 1 {
			t.Errorf("sample cut %d: %d %s %s %f", i, pc.n, pc.leg.name, pc.phase, pc.u)
		}
	}
	soak := planCuts(legs, soakConfig{cuts: 40, seed: 7})
	again := planCuts(legs, soakConfig{cuts: 40, seed: 7})
	pairs := map[string]int{}
	last := -1
	order := map[string]int{}
	for i, l := range legs {
		order[l.name] = i
	}
	for i, pc := range soak {
		if again[i].leg != pc.leg || again[i].phase != pc.phase || again[i].u != pc.u {
			t.Errorf("cut %d differs between two plans of the same seed", pc.n)
		}
		if order[pc.leg.name] < last {
			t.Errorf("cut %d (%s) runs after a later leg's", pc.n, pc.leg.name)
		}
		last = order[pc.leg.name]
		pairs[pc.leg.name+"/"+pc.phase]++
	}
	if len(pairs) != 17 {
		t.Errorf("40 cuts aim at %d (leg, phase) pairs, want all 17: %v", len(pairs), pairs)
	}
	for p, n := range pairs {
		if n < 2 {
			t.Errorf("%s: %d cuts in 40", p, n)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestPowerCutTracker(t *testing.T) {
	var v2 *leg
	for _, l := range soakLegs() {
		if l.name == "v2" {
			v2 = l
		}
	}
	tr := newTracker(v2.phases)
	console := []struct {
		line, enters string
	}{
		{"U-Boot 2025.01-3 (Jan 01 2025)", phBoot},
		{"** Booting bootflow 'virtio-blk#33.bootdev.part_1' with script", ""}, // not the trial's yet
		{"[   20.1] pibake-updater[301]: time=... level=INFO msg=installing image=demo version=2.0.0", phDownload},
		{`E2E-SOAK version=1.0.0 slot=a msg="artifact written and verified"`, ""}, // never from a status line
		{`[   30.2] pibake-updater[301]: level=INFO msg="artifact already written and verified" artifact=boot`, ""},
		{`[   31.2] pibake-updater[301]: level=INFO msg="artifact written and verified" artifact=boot`, phWrite},
		{`[   40.0] pibake-updater[301]: level=INFO msg="artifact written and verified" artifact=root`, ""},
		{"[   40.1] pibake-updater[301]: level=INFO msg=installed version=2.0.0", phArm},
		{"U-Boot 2025.01-3", ""},
		{"** Booting bootflow 'virtio-blk#33.bootdev.part_1' with script", phTrialUBoot},
		{"pibake: booting slot b (tries left: A 3, B 0)", phTrialBoot},
		{"[  OK  ] Started pibake-updater.service - pibake: A/B update agent", phHealth},
		{"pibake-updater[288]: level=INFO msg=committed version=2.0.0 slot=b", phCommit},
	}
	for i, c := range console {
		if got := tr.feed(c.line, time.Duration(i)*time.Second); got != c.enters {
			t.Errorf("line %d %q: entered %q, want %q", i, c.line, got, c.enters)
		}
	}
	if ph, into := tr.current(12500*time.Millisecond, false); ph != phCommit || into != 500*time.Millisecond {
		t.Errorf("a cut 0.5 s after the commit line: %s %s in", ph, into)
	}
	if ph, _ := tr.current(20*time.Second, false); ph != phSettled {
		t.Errorf("a cut past the commit's window: %s", ph)
	}
	if d := tr.done[phWrite]; d != 2*time.Second {
		t.Errorf("write lasted %s, want 2s", d)
	}
}

func TestPowerCutStatus(t *testing.T) {
	const committed = `{"booted": "b","boot_state": "order B A","state": {"format": 2,"serials": {"stable": 1},"slots": {"a": {"image": "demo","version": "as flashed","serial": 0},"b": {"image": "demo","version": "2.0.0","serial": 2}},"committed": "b","failed": {"3.0.0": {"version": "3.0.0","stage": "health","check": "http http://127.0.0.1:8099/healthz","reason": "x","at": "2026-01-01T00:00:00Z"}}}}`
	line := "[  99.0] E2E-SOAK version=2.0.0 slot=b root=/dev/vda6 host=soak-007 data=512 marker=abc prov=p status=" + committed
	s, ok := parseSoak(line)
	if !ok || s.version != "2.0.0" || s.slot != "b" || s.data != 512 || s.host != soakHost || s.statusErr != nil {
		t.Fatalf("parsed %+v", s)
	}
	if err := s.verified(); err != nil {
		t.Error(err)
	}
	if err := s.settled("2.0.0", "b", "3.0.0"); err != nil {
		t.Errorf("v3's verdict: %v", err)
	}
	if err := s.settled("2.0.0", "b", ""); err == nil {
		t.Error("v2's verdict accepted a failed release")
	}
	// Slot a booted while the state vouches only for b.
	unvouched := `{"booted": "a","state": {"slots": {"b": {"image": "demo","version": "2.0.0"}},"committed": "b"}}`
	s, _ = parseSoak("E2E-SOAK version=3.0.0 slot=a status=" + unvouched)
	if err := s.verified(); err == nil {
		t.Error("a boot of a slot the state does not vouch for passed")
	}
	// The same, as the pending trial.
	trial := `{"booted": "a","state": {"slots": {"b": {"image": "demo","version": "2.0.0"}},"committed": "b","trial": {"slot": "a","release": {"version": "3.0.0"}}}}`
	s, _ = parseSoak("E2E-SOAK version=3.0.0 slot=a status=" + trial)
	if err := s.verified(); err != nil {
		t.Errorf("the trial's boot: %v", err)
	}
	if err := s.settled("3.0.0", "a", ""); err == nil {
		t.Error("a pending trial counted as settled")
	}
}

func TestPowerCutCopy(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("pibake"), 1000)
	f.WriteAt(data, 0)
	f.WriteAt(data, 64<<20)
	f.Truncate(96 << 20)
	f.Close()
	dst := filepath.Join(dir, "dst")
	if err := copyDisk(dst, src, 128<<20); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 128<<20)
	copy(want, data)
	copy(want[64<<20:], data)
	if !bytes.Equal(got, want) {
		t.Error("the copy differs")
	}
}
