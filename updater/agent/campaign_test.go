package agent

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/install"
)

// The power-cut campaign: one device's whole life through an update (the
// install, every checkpoint, the switch, the trial boot, the health
// checks, the commit or the roll back) is run once per operation of that
// life, with the power cut at that operation. The partitions lose every
// write not yet synced when the power goes (and, in the torn runs, the
// last one half reaches the card). After every cut:
//   - safety: every slot the boot loader starts holds a whole verified
//     release, and every slot the state calls a fallback really holds it;
//   - liveness: the device ends on the release's verdict (committed, or
//     failed for the reason it really fails), never on a cut.

// campaignSize makes artifacts larger than the install's 256 KiB copy
// buffer, so writes and checkpoints fall inside each artifact.
const campaignSize = 700 << 10

func sized(name, version string) []byte {
	line := []byte(name + " of " + version + " ")
	return bytes.Repeat(line, campaignSize/len(line)+1)[:campaignSize-len(name)*1000]
}

type verdict int

const (
	commits verdict = iota
	failsHealth
	failsBoot
)

// life runs the device until it settles; cutAt 0 runs it without a cut.
// It returns whether the cut happened.
//
// With a delivery other than full the release has a chunk document (and
// with patched a patch from 1.0) and the device reuses its running slot's
// chunks (the artifacts share most of them).
func life(t *testing.T, v verdict, cutAt int, tear bool, how delivery) bool {
	withDelta := how != full
	t.Helper()
	r := newRepo(t)
	data := sized
	if withDelta {
		data = sharing
	}
	d := newDeviceWith(campaignSize+4096, data)
	holds := func(s bootchain.Slot) string {
		for _, ver := range []string{"1.0", "2.0"} {
			if d.holds(s, ver) {
				return ver
			}
		}
		return ""
	}
	where := fmt.Sprintf("cut at operation %d (tear %v)", cutAt, tear)
	cut := false
	booted := d.boot.PowerOn()
	if err := d.agent(r, booted).AfterBoot(ctx); err != nil {
		t.Fatal(err)
	}
	r.publishData(t, "stable", "2.0", func(n string) []byte { return data(n, "2.0") }, false)
	switch how {
	case chunked:
		r.addChunks(t, "stable")
	case patched:
		r.addChunks(t, "stable", func(n string) []byte { return data(n, "1.0") })
	}
	d.cutAt = d.ops + cutAt
	if cutAt == 0 {
		d.cutAt = 0
	}
	for step := 0; ; step++ {
		if step > 40 {
			t.Fatalf("%s: the device never settled", where)
		}
		running := holds(booted)
		if running == "" {
			t.Fatalf("%s: the boot loader started slot %s, which holds no whole release", where, booted)
		}
		if running == "2.0" && v == failsBoot {
			// The release's kernel does not come up: the watchdog resets.
			booted = d.powerOn(false)
			continue
		}
		rebooted := false
		c := check{"app", nil}
		if running == "2.0" && v == failsHealth {
			c = check{"app", errors.New("503")}
		}
		a := d.agent(r, booted, c)
		a.Download.Checkpoint = 300 << 10
		if withDelta {
			a.Running = func(s bootchain.Slot) (Readable, Readable, error) { return d.part(s, "boot"), d.part(s, "root"), nil }
		}
		a.Reboot = func() error { rebooted = true; return nil }
		err := a.AfterBoot(ctx)
		if err == nil && !rebooted && !d.off {
			err = a.Update(ctx)
		}
		switch {
		case d.off:
			cut = true
			booted = d.powerOn(tear)
			continue
		case rebooted:
			booted = d.reboot()
			continue
		case errors.Is(err, install.ErrDigest):
			t.Fatalf("%s: synced bytes were lost: %v", where, err)
		case err != nil && !errors.Is(err, ErrNothingNew) && !errors.Is(err, ErrFailedBefore):
			t.Fatalf("%s: %v", where, err)
		}
		// Settled: check the verdict and every fallback.
		st, _ := d.store.Load()
		want := map[verdict]string{commits: "2.0", failsHealth: "1.0", failsBoot: "1.0"}[v]
		if running != want || st.Committed != string(booted) {
			t.Fatalf("%s: settled on %s in slot %s (committed %q), want %s", where, running, booted, st.Committed, want)
		}
		f, failed := st.Failed["2.0"]
		switch {
		case v == commits && failed:
			t.Fatalf("%s: a good release was recorded as failed: %+v", where, f)
		case v == failsHealth && f.Stage != "health", v == failsBoot && f.Stage != "boot":
			t.Fatalf("%s: failure recorded as %+v", where, f)
		}
		for s, rel := range st.Slots {
			want := rel.Version
			if want == "as flashed" {
				want = "1.0"
			}
			if got := holds(bootchain.Slot(s)); got != want {
				t.Fatalf("%s: the state says slot %s holds %s, it holds %q", where, s, want, got)
			}
		}
		for _, s := range bootchain.Slots() {
			if d.boot.St.Bootable(s) && holds(s) == "" {
				t.Fatalf("%s: slot %s is bootable and holds no whole release", where, s)
			}
		}
		return cut
	}
}

type delivery int

const (
	full delivery = iota
	chunked
	patched
)

func TestPowerCutCampaign(t *testing.T) { campaign(t, full) }

// TestPowerCutCampaignDelta: the same with delta downloads (a cut in the
// middle of a chunked install, its checkpoints and its read-back).
func TestPowerCutCampaignDelta(t *testing.T) { campaign(t, chunked) }

// TestPowerCutCampaignPatch: the same with a patch (a cut while the
// running slot is hashed, the patch written or read back).
func TestPowerCutCampaignPatch(t *testing.T) { campaign(t, patched) }

// sharing is sized's counterpart whose versions share most chunks:
// random bytes per artifact with 40 KiB of the version in the middle.
func sharing(name, version string) []byte {
	if b, ok := releases.Load("sharing " + name + " " + version); ok {
		return b.([]byte)
	}
	b := append([]byte(nil), release(name, "1.0")[:campaignSize-len(name)*1000]...)
	copy(b[300<<10:], bytes.Repeat([]byte(name+" of "+version+" "), 40<<10/10))
	releases.Store("sharing "+name+" "+version, b)
	return b
}

func campaign(t *testing.T, withDelta delivery) {
	for _, v := range []struct {
		name string
		v    verdict
	}{{"release commits", commits}, {"release fails its health checks", failsHealth}, {"release does not boot", failsBoot}} {
		t.Run(v.name, func(t *testing.T) {
			life(t, v.v, 0, false, withDelta)
			points := 0
			for _, tear := range []bool{false, true} {
				for n := 1; life(t, v.v, n, tear, withDelta); n++ {
					points++
				}
			}
			t.Logf("%d cut points (each operation of the life; again with the last write torn, and U-Boot's own write of pibake.env with it): all safe, all settled on the release's verdict", points)
		})
	}
}
