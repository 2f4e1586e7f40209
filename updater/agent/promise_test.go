package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/bootloader"
	"github.com/pibake/pibake/updater/bootloader/boottest"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/state"
)

// The tests in this file are the updater's promise, one per way it was
// found broken: no unverified slot ever boots, a fallback is never a
// silent downgrade, a power cut never blacklists a good release, a
// document cannot be moved to another channel, state files that cannot
// be read never stop the device.

var ctx = context.Background()

// settledOn boots a fresh device and lets the agent confirm slot A.
func settledOn(t *testing.T, r *repo) *device {
	t.Helper()
	d := newDevice()
	if err := d.agent(r, d.boot.PowerOn()).AfterBoot(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSlotBeingWrittenNeverBoots: from the first byte of an install the
// slot being written is out of the boot loader's rotation. A download cut
// off halfway, or one that fails to verify, followed by any number of
// failed boots of the good slot, never starts it, and `rollback` refuses
// to go there.
func TestSlotBeingWrittenNeverBoots(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt bool
		fail    int64
	}{{"interrupted download", false, int64(len(content("boot", "2.0"))) + 5000}, {"tampered artifact", true, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			d := settledOn(t, r)
			r.publish(t, "2.0", tc.corrupt)
			a := d.agent(r, bootchain.A)
			a.Source = &flakySource{Source: install.Dir{Path: r.dir}, fail: tc.fail}
			if err := a.Update(ctx); err == nil {
				t.Fatal("the install succeeded")
			}
			if d.holds(bootchain.B, "1.0") || d.holds(bootchain.B, "2.0") {
				t.Fatal("slot b holds a whole release: the test cuts nothing")
			}
			if d.boot.St.Bootable(bootchain.B) {
				t.Errorf("slot b is half written and still has %d tries", d.boot.St.Left[bootchain.B])
			}
			if err := d.agent(r, bootchain.A).Rollback(ctx); !errors.Is(err, ErrNoFallback) {
				t.Errorf("rollback onto the half-written slot: %v", err)
			}
			// The good slot's kernel now fails to come up, again and again
			// (a bad SD card sector, a brown-out loop): U-Boot must keep
			// to it, never the unverified slot.
			for i := 0; i < 10; i++ {
				if s := d.boot.PowerOn(); s != bootchain.A {
					t.Fatalf("failed boot %d of slot a: U-Boot started the half-written slot %s", i+1, s)
				}
			}
		})
	}
}

// TestFallbackIsNotSilent: a committed release whose slot stops booting
// sends U-Boot back to the older slot. The device says it is degraded,
// does not take the old slot as its new truth, and reinstalls the
// channel's current release into the broken slot.
func TestFallbackIsNotSilent(t *testing.T) {
	r := newRepo(t)
	d := settledOn(t, r)
	r.publish(t, "2.0", false)
	if err := d.agent(r, bootchain.A).Update(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.agent(r, d.boot.PowerOn(), check{"ok", nil}).AfterBoot(ctx); err != nil {
		t.Fatal(err)
	}
	// Slot b's kernel is damaged on the card: three boots fail.
	d.part(bootchain.B, "boot").live[0] ^= 0xff
	var booted bootchain.Slot
	for i := 0; i < 4; i++ {
		if booted = d.boot.PowerOn(); booted == bootchain.A {
			break
		}
	}
	if booted != bootchain.A {
		t.Fatal("U-Boot did not fall back")
	}
	if err := d.agent(r, booted).AfterBoot(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ := d.store.Load()
	if !strings.Contains(st.Degraded, "slot b (demo 2.0) did not boot") {
		t.Errorf("status does not say the device runs a fallback: degraded %q", st.Degraded)
	}
	// The next poll reinstalls 2.0 (the same serial) into slot b.
	if err := d.agent(r, bootchain.A).Update(ctx); err != nil {
		t.Fatalf("the channel's release is not reinstalled: %v", err)
	}
	if !d.holds(bootchain.B, "2.0") {
		t.Fatal("slot b was not rewritten")
	}
	if booted = d.boot.PowerOn(); booted != bootchain.B {
		t.Fatalf("the reinstall's trial started %s", booted)
	}
	if err := d.agent(r, booted, check{"ok", nil}).AfterBoot(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.store.Load(); st.Degraded != "" || st.Committed != "b" || st.Slots["b"].Version != "2.0" {
		t.Errorf("after the reinstall: %+v", st)
	}
}

// TestArmingFailureIsNotAFailure: a boot loader that cannot be armed (the
// FAT write fails) leaves nothing tried and nothing failed; the next poll
// arms it without downloading again.
func TestArmingFailureIsNotAFailure(t *testing.T) {
	r := newRepo(t)
	d := settledOn(t, r)
	r.publish(t, "2.0", false)
	a := d.agent(r, bootchain.A)
	a.Boot = failTry{cutBoot{d}}
	if err := a.Update(ctx); err == nil {
		t.Fatal("arming error swallowed")
	}
	booted := d.boot.PowerOn()
	if booted != bootchain.A {
		t.Fatalf("started %s", booted)
	}
	if err := d.agent(r, booted).AfterBoot(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.store.Load(); len(st.Failed) != 0 {
		t.Fatalf("a trial that was never armed was recorded as failed: %+v", st.Failed)
	}
	src := &flakySource{Source: install.Dir{Path: r.dir}}
	a = d.agent(r, bootchain.A)
	a.Source = src
	if err := a.Update(ctx); err != nil {
		t.Fatal(err)
	}
	if src.served != 0 {
		t.Errorf("%d artifact bytes downloaded again; the slot was already written and verified", src.served)
	}
	if d.boot.PowerOn() != bootchain.B {
		t.Error("the trial was not armed on the next poll")
	}
}

type failTry struct{ cutBoot }

func (failTry) TryOnce(bootchain.Slot) error { return errors.New("fatwrite: disk error") }

// TestChannelBinding: a genuinely signed document of another channel,
// served under this channel's name, is refused; serials are kept per
// channel, so a detour through a channel with higher serials never locks
// the device out of its own.
func TestChannelBinding(t *testing.T) {
	r := newRepo(t)
	d := settledOn(t, r)
	// beta's document copied over stable's.
	r.publishData(t, "beta", "9.0-beta", func(n string) []byte { return content(n, "9.0-beta") }, false)
	for _, f := range []string{channel.DocumentPath("beta"), channel.SignaturePath(channel.DocumentPath("beta"))} {
		b, _ := os.ReadFile(filepath.Join(r.dir, f))
		os.WriteFile(filepath.Join(r.dir, strings.Replace(f, "beta", "stable", 1)), b, 0o644)
	}
	if err := d.agent(r, bootchain.A).Update(ctx); !errors.Is(err, channel.ErrWrongChannel) {
		t.Fatalf("beta's document served as stable: %v", err)
	}
	if d.boot.St.Bootable(bootchain.B) != true || !d.holds(bootchain.B, "1.0") {
		t.Error("a refused document touched slot b")
	}

	// stable at serial 5, then beta at 50, then stable's serial 6.
	r.serial = 4
	r.publish(t, "2.0", false)
	install2 := func(ch string, want string) {
		t.Helper()
		a := d.agent(r, d.booted(t))
		a.Channel = ch
		if err := a.Update(ctx); err != nil {
			t.Fatalf("%s %s: %v", ch, want, err)
		}
		b := d.boot.PowerOn()
		a = d.agent(r, b, check{"ok", nil})
		a.Channel = ch
		if err := a.AfterBoot(ctx); err != nil || !d.holds(b, want) {
			t.Fatalf("%s %s: not committed: %v", ch, want, err)
		}
	}
	install2("stable", "2.0")
	r.serial = 49
	r.publishData(t, "beta", "3.0-beta", func(n string) []byte { return content(n, "3.0-beta") }, false)
	install2("beta", "3.0-beta")
	r.serial = 5
	r.publish(t, "2.1", false)
	install2("stable", "2.1")
	st, _ := d.store.Load()
	if st.Serials["stable"] != 6 || st.Serials["beta"] != 50 {
		t.Errorf("serials %v", st.Serials)
	}
}

// halfWritten is a device running slot a whose install of 2.0 into slot
// b was cut off after 30,000 artifact bytes.
func halfWritten(t *testing.T) (*repo, *device) {
	t.Helper()
	r := newRepo(t)
	d := settledOn(t, r)
	r.publish(t, "2.0", false)
	a := d.agent(r, bootchain.A)
	a.Source = &flakySource{Source: install.Dir{Path: r.dir}, fail: 30000}
	if err := a.Update(ctx); err == nil {
		t.Fatal("install not interrupted")
	}
	return r, d
}

// booted is the slot the fake boot loader would start now, without
// starting it: the committed one.
func (d *device) booted(t *testing.T) bootchain.Slot {
	t.Helper()
	p, _ := d.boot.Primary()
	return p
}

// TestFailedReleaseKeepsTheChannelOpen: a release that fails its health
// checks is refused by version, but its serial is not recorded, so the
// fixed release published after it installs.
func TestFailedReleaseKeepsTheChannelOpen(t *testing.T) {
	r := newRepo(t)
	d := settledOn(t, r)
	r.publish(t, "3.0", false)
	if err := d.agent(r, bootchain.A).Update(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.agent(r, d.boot.PowerOn(), check{"app", errors.New("503")}).AfterBoot(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.store.Load(); st.Serials["stable"] != 0 || st.Failed["3.0"].Stage != "health" {
		t.Fatalf("after a failed trial: serials %v failed %v", st.Serials, st.Failed)
	}
	booted := d.boot.PowerOn()
	d.agent(r, booted).AfterBoot(ctx)
	r.publish(t, "3.1", false)
	if err := d.agent(r, booted).Update(ctx); err != nil {
		t.Fatalf("the fixed release: %v", err)
	}
}

// TestUnreadableState: a state file that cannot be read, and a boot state
// file that cannot be read, never stop the agent from confirming the
// running slot; both are kept for inspection.
func TestUnreadableState(t *testing.T) {
	for _, garbage := range []string{"", "{\"format\": 2, \"trial\": {\"slot\": \"c\"", "\x00\x00\x00", `{"format": 7}`} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "updater.json"), []byte(garbage), 0o600)
		os.WriteFile(filepath.Join(dir, bootchain.StateFile), []byte("BOOT_ORDER=A C\n\x00garbage"), 0o644)
		r := newRepo(t)
		a := newDevice().agent(r, bootchain.B)
		a.Store = state.File{Path: filepath.Join(dir, "updater.json")}
		a.Boot = bootloader.UBoot{Dir: dir}
		if err := a.AfterBoot(ctx); err != nil {
			t.Fatalf("%q: %v", garbage, err)
		}
		env, _ := os.ReadFile(filepath.Join(dir, bootchain.StateFile))
		st, err := bootchain.ParseState(env)
		if err != nil || st.Primary() != bootchain.B || st.Left[bootchain.B] != bootchain.MaxTries {
			t.Errorf("%q: boot state after marking b good: %q %v", garbage, env, err)
		}
		for _, kept := range []string{"updater.json.bad-1", bootchain.StateFile + bootloader.BadSuffix} {
			if _, err := os.Stat(filepath.Join(dir, kept)); err != nil {
				t.Errorf("%q: %s not kept: %v", garbage, kept, err)
			}
		}
		if s, err := (state.File{Path: filepath.Join(dir, "updater.json")}).Load(); err != nil || s.Committed != "b" {
			t.Errorf("%q: fresh state %+v %v", garbage, s, err)
		}
	}
}

// TestRolloutStableAcrossRepublish: re-publishing a release with a larger
// fraction gives it a new serial; the devices already in stay in.
func TestRolloutStableAcrossRepublish(t *testing.T) {
	moved := 0
	for i := 0; i < 1000; i++ {
		id := fmt.Sprintf("device-%d", i)
		if InRollout(id, "demo/2.0", 0.10) && !InRollout(id, "demo/2.0", 0.25) {
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("%d devices left the rollout when it grew", moved)
	}
	// The agent places a device by release, not serial: one inside 30%
	// stays inside when the release is re-signed at 50% (a new serial).
	r := newRepo(t)
	r.publish(t, "2.0", false)
	id := ""
	for i := 0; !InRollout(id, "demo/2.0", 0.3) || InRollout(id, "demo/2.0", 0.1); i++ {
		id = fmt.Sprintf("x%d", i)
	}
	doc, _ := os.ReadFile(filepath.Join(r.dir, channel.DocumentPath("stable")))
	for _, v := range []struct {
		serial uint64
		frac   float64
	}{{7, 0.3}, {8, 0.5}} {
		var dd channel.Document
		if err := json.Unmarshal(doc, &dd); err != nil {
			t.Fatal(err)
		}
		dd.Serial, dd.Rollout = v.serial, v.frac
		r.sign(t, &dd, "stable")
		d := settledOn(t, r)
		a := d.agent(r, bootchain.A)
		a.DeviceID = id
		if err := a.Update(ctx); err != nil {
			t.Errorf("serial %d at %.0f%%: a device inside 30%% is left out: %v", v.serial, v.frac*100, err)
		}
	}
}

// TestClockWithoutRTC: a Pi without RTC boots at 1970 (or its last
// shutdown); expiry is then judged at the image's build time, a clock
// ahead refuses documents (and says why), and a clock behind but after
// the build is taken as it is.
func TestClockWithoutRTC(t *testing.T) {
	built := now.Add(-24 * time.Hour)
	for _, tc := range []struct {
		name    string
		clock   time.Time
		expires time.Time
		ok      bool
	}{
		{"1970, document valid at build time", time.Unix(0, 0), now.Add(time.Hour), true},
		{"1970, document expired before the build", time.Unix(0, 0), built.Add(-time.Hour), false},
		{"clock ahead", now.Add(400 * 24 * time.Hour), now.Add(time.Hour), false},
		{"clock behind, after the build", built.Add(time.Hour), built.Add(2 * time.Hour), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			d := settledOn(t, r)
			r.publish(t, "2.0", false)
			doc, _ := os.ReadFile(filepath.Join(r.dir, channel.DocumentPath("stable")))
			var dd channel.Document
			json.Unmarshal(doc, &dd)
			dd.Expires = tc.expires
			r.sign(t, &dd, "stable")
			a := d.agent(r, bootchain.A)
			a.Built = built
			a.Now = func() time.Time { return tc.clock }
			err := a.Update(ctx)
			if tc.ok != (err == nil) {
				t.Fatalf("update: %v", err)
			}
			if !tc.ok && (!errors.Is(err, channel.ErrExpired) || !strings.Contains(err.Error(), "clock reads")) {
				t.Errorf("refusal does not name the clock: %v", err)
			}
		})
	}
}

// TestLostBootStateIsRepaired: both boot state files lost (the script
// falls back to its defaults, every slot with tries) while slot b is half
// written: the next boot's agent takes b out of the rotation again.
func TestLostBootStateIsRepaired(t *testing.T) {
	r, d := halfWritten(t)
	fresh := boottest.NewFake()
	d.boot.St, d.boot.Copy = fresh.St, fresh.Copy
	booted := d.boot.PowerOn()
	if err := d.agent(r, booted).AfterBoot(ctx); err != nil {
		t.Fatal(err)
	}
	if d.boot.St.Bootable(bootchain.B) {
		t.Errorf("after the boot state was lost, half-written slot b has %d tries", d.boot.St.Left[bootchain.B])
	}
}

// TestRunningAnUnfinishedSlot: if a half-written slot ever runs (the boot
// state edited by hand), the agent does not mark it good: it goes back to
// the verified slot.
func TestRunningAnUnfinishedSlot(t *testing.T) {
	r, d := halfWritten(t)
	d.boot.St = bootchain.State{Order: []bootchain.Slot{bootchain.B, bootchain.A}, Left: map[bootchain.Slot]int{bootchain.A: 3, bootchain.B: 3}}
	d.boot.Torn = false
	rebooted := false
	b := d.agent(r, d.boot.PowerOn())
	b.Reboot = func() error { rebooted = true; return nil }
	if err := b.AfterBoot(ctx); err != nil {
		t.Fatal(err)
	}
	if !rebooted || d.boot.PowerOn() != bootchain.A || d.boot.St.Bootable(bootchain.B) {
		t.Errorf("rebooted %v, boot state %s", rebooted, d.boot.St.Marshal())
	}
}
