package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/config"
	"github.com/pibake/pibake/updater/install"
)

// windowed is the device's agent with a maintenance window from 12:30 to
// 14:00 UTC (now is 12:00, the channel's document expires at 13:00), its
// clock at *at, rebooting by counting.
func (d *device) windowed(r *repo, booted bootchain.Slot, at *time.Time, reboots *int) *Agent {
	a := d.agent(r, booted)
	a.Window = config.Window{From: "12:30", To: "14:00"}
	a.Now = func() time.Time { return *at }
	a.Built = now.Add(-24 * time.Hour)
	a.Reboot = func() error { *reboots++; return nil }
	return a
}

func TestWindowDownloadsNowAppliesLater(t *testing.T) {
	r := newRepo(t)
	d := newDevice()
	d.agent(r, d.boot.PowerOn()).AfterBoot(context.Background())
	r.publish(t, "2.0", false)
	at, reboots := now, 0

	// Outside the window: downloaded and verified, neither armed nor rebooted.
	if err := d.windowed(r, bootchain.A, &at, &reboots).Update(context.Background()); !errors.Is(err, ErrWaiting) {
		t.Fatalf("outside the window: %v", err)
	}
	st, _ := d.store.Load()
	if reboots != 0 || st.Trial != nil || st.Waiting == nil || !d.holds(bootchain.B, "2.0") {
		t.Fatalf("outside the window: %d reboots, trial %+v, waiting %+v", reboots, st.Trial, st.Waiting)
	}
	if want := now.Add(30 * time.Minute); !st.Waiting.Next.Equal(want) || st.Waiting.Why != "outside the maintenance window" {
		t.Errorf("waiting %+v, want next %s", st.Waiting, want)
	}
	if st.LastInstall == nil || st.LastInstall.Downloaded == 0 {
		t.Errorf("the install's figures are not kept while it waits: %+v", st.LastInstall)
	}
	if s := d.boot.PowerOn(); s != bootchain.A {
		t.Fatalf("a reboot outside the window started slot %s", s)
	}
	// Still outside: nothing is read again.
	at = now.Add(10 * time.Minute)
	d.part(bootchain.B, "root").live[5] ^= 0xff // were it read, this would show
	if err := d.windowed(r, bootchain.A, &at, &reboots).Update(context.Background()); !errors.Is(err, ErrWaiting) {
		t.Fatalf("second poll outside the window: %v", err)
	}
	d.part(bootchain.B, "root").live[5] ^= 0xff

	// Inside: verified again, armed, rebooted.
	at = now.Add(40 * time.Minute)
	if err := d.windowed(r, bootchain.A, &at, &reboots).Update(context.Background()); err != nil {
		t.Fatalf("inside the window: %v", err)
	}
	st, _ = d.store.Load()
	if reboots != 1 || st.Trial == nil || !st.Trial.Armed || st.Waiting != nil || st.LastInstall.Downloaded == 0 {
		t.Fatalf("inside the window: %d reboots, trial %+v, waiting %+v, install %+v", reboots, st.Trial, st.Waiting, st.LastInstall)
	}
	if s := d.boot.PowerOn(); s != bootchain.B {
		t.Fatalf("the trial boot started %s", s)
	}
}

// A power cut at any point of the step from "installed and verified" to
// armed leaves a device that boots its old release, and applies the new
// one (verified again) at the next poll in the window.
func TestWindowPowerCutBetweenVerifyAndArm(t *testing.T) {
	for cut := 1; ; cut++ {
		r := newRepo(t)
		d := newDevice()
		d.agent(r, d.boot.PowerOn()).AfterBoot(context.Background())
		r.publish(t, "2.0", false)
		at, reboots := now, 0
		if err := d.windowed(r, bootchain.A, &at, &reboots).Update(context.Background()); !errors.Is(err, ErrWaiting) {
			t.Fatal(err)
		}
		at = now.Add(40 * time.Minute)
		d.cutAt = d.ops + cut
		err := d.windowed(r, bootchain.A, &at, &reboots).Update(context.Background())
		if err == nil && !d.off {
			if cut < 5 {
				t.Fatalf("only %d operations between verify and reboot", cut-1)
			}
			t.Logf("cut at each of the %d operations from the window's opening to the reboot", cut-1)
			return
		}
		booted := d.powerOn(cut%2 == 0)
		if err := d.windowed(r, booted, &at, &reboots).AfterBoot(context.Background()); err != nil {
			t.Fatalf("cut %d: after boot: %v", cut, err)
		}
		if booted == bootchain.B {
			continue // the cut came after arming: a trial, as any install's
		}
		if err := d.windowed(r, booted, &at, &reboots).Update(context.Background()); err != nil {
			t.Fatalf("cut %d: the next poll in the window: %v", cut, err)
		}
		if s := d.reboot(); s != bootchain.B || !d.holds(bootchain.B, "2.0") {
			t.Fatalf("cut %d: after the next poll the device started %s", cut, s)
		}
	}
}

// A release the channel replaced, or withdrew, while it waited is never
// applied.
func TestWindowWithdrawnWhileWaiting(t *testing.T) {
	r := newRepo(t)
	d := newDevice()
	d.agent(r, d.boot.PowerOn()).AfterBoot(context.Background())
	r.publish(t, "2.0", false)
	at, reboots := now, 0
	if err := d.windowed(r, bootchain.A, &at, &reboots).Update(context.Background()); !errors.Is(err, ErrWaiting) {
		t.Fatal(err)
	}
	// Withdrawn: no document at all, then the window opens.
	doc := filepath.Join(r.dir, channel.DocumentPath("stable"))
	saved, _ := os.ReadFile(doc)
	os.Remove(doc)
	at = now.Add(40 * time.Minute)
	if err := d.windowed(r, bootchain.A, &at, &reboots).Update(context.Background()); err == nil || reboots != 0 {
		t.Fatalf("withdrawn: %v, %d reboots", err, reboots)
	}
	if s := d.boot.PowerOn(); s != bootchain.A {
		t.Fatalf("withdrawn: the device started %s", s)
	}
	os.WriteFile(doc, saved, 0o644)
	// Replaced by 3.0: 3.0 is installed, 2.0 never armed.
	r.publish(t, "3.0", false)
	at = now.Add(45 * time.Minute)
	if err := d.windowed(r, bootchain.A, &at, &reboots).Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, _ := d.store.Load()
	if st.Trial == nil || st.Trial.Release.Version != "3.0" || !d.holds(bootchain.B, "3.0") {
		t.Fatalf("replaced: trial %+v", st.Trial)
	}
}

func TestInhibitDelaysUpToItsMaximum(t *testing.T) {
	r := newRepo(t)
	d := newDevice()
	d.agent(r, d.boot.PowerOn()).AfterBoot(context.Background())
	r.publish(t, "2.0", false)
	at, reboots := now.Add(31*time.Minute), 0
	held := []string{"demo-app (recording)"}
	agent := func() *Agent {
		a := d.windowed(r, bootchain.A, &at, &reboots)
		a.Inhibitors = func() []string { return held }
		a.MaxInhibit = 20 * time.Minute
		return a
	}
	if err := agent().Update(context.Background()); !errors.Is(err, ErrWaiting) {
		t.Fatalf("inhibited: %v", err)
	}
	if st, _ := d.store.Load(); st.Waiting == nil || st.Waiting.Why != "inhibited by demo-app (recording)" || !st.Waiting.Inhibited.Equal(at) {
		t.Fatalf("inhibited: %+v", st.Waiting)
	}
	at = at.Add(19 * time.Minute)
	if err := agent().Update(context.Background()); !errors.Is(err, ErrWaiting) || reboots != 0 {
		t.Fatalf("inhibited for 19 of 20 minutes: %v, %d reboots", err, reboots)
	}
	// Never released: applied once it has held the release 20 minutes.
	at = at.Add(time.Minute)
	if err := agent().Update(context.Background()); err != nil || reboots != 1 {
		t.Fatalf("after the maximum delay: %v, %d reboots", err, reboots)
	}

	// Released: applied at the next poll.
	d2 := newDevice()
	d2.agent(r, d2.boot.PowerOn()).AfterBoot(context.Background())
	at, reboots = now.Add(31*time.Minute), 0
	d = d2
	if err := agent().Update(context.Background()); !errors.Is(err, ErrWaiting) {
		t.Fatal(err)
	}
	held = nil
	if err := agent().Update(context.Background()); err != nil || reboots != 1 {
		t.Fatalf("released: %v, %d reboots", err, reboots)
	}
}

// A clock that was never set (before the image's build time) cannot find
// the window: the release is applied rather than held for ever. The
// operator's own install ignores the window and the inhibits.
func TestWindowUnsetClockAndOperator(t *testing.T) {
	r := newRepo(t)
	d := newDevice()
	d.agent(r, d.boot.PowerOn()).AfterBoot(context.Background())
	r.publish(t, "2.0", false)
	at, reboots := now, 0
	a := d.windowed(r, bootchain.A, &at, &reboots)
	a.Built = now.Add(10 * time.Minute) // expiry is judged at it, the window cannot be
	if err := a.Update(context.Background()); err != nil || reboots != 1 {
		t.Fatalf("clock before the build: %v, %d reboots", err, reboots)
	}

	d = newDevice()
	d.agent(r, d.boot.PowerOn()).AfterBoot(context.Background())
	a = d.windowed(r, bootchain.A, &at, &reboots)
	a.Inhibitors = func() []string { return []string{"app"} }
	if err := a.Update(context.Background()); !errors.Is(err, ErrWaiting) {
		t.Fatal(err)
	}
	if err := a.Immediate().Update(context.Background()); err != nil || reboots != 2 {
		t.Fatalf("the operator's apply: %v, %d reboots", err, reboots)
	}
	st, _ := d.store.Load()
	if st.Waiting != nil || st.Trial == nil || !st.Trial.Armed {
		t.Fatalf("after apply: %+v %+v", st.Waiting, st.Trial)
	}
	// pibake-updater install, outside the window, with an inhibit held.
	d = newDevice()
	d.agent(r, d.boot.PowerOn()).AfterBoot(context.Background())
	a = d.windowed(r, bootchain.A, &at, &reboots)
	a.Inhibitors = func() []string { return []string{"app"} }
	if err := a.InstallFrom(context.Background(), install.Dir{Path: r.dir}); err != nil || reboots != 3 {
		t.Fatalf("the operator's install: %v, %d reboots", err, reboots)
	}
}
