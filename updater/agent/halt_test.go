package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/state"
)

// resign re-signs the channel's current document with the next serial,
// changed by change, as pibake rollout halt and resume do.
func (r *repo) resign(t *testing.T, change func(d *channel.Document)) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, channel.DocumentPath("stable")))
	if err != nil {
		t.Fatal(err)
	}
	var d channel.Document
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	r.serial++
	d.Serial = r.serial
	change(&d)
	r.sign(t, &d, "stable")
}

// TestHaltNotStarted: a device that has not started a halted release
// does not start it; once resumed, it does.
func TestHaltNotStarted(t *testing.T) {
	r := newRepo(t)
	d := newDevice()
	d.agent(r, d.boot.PowerOn()).AfterBoot(ctx)
	r.publish(t, "2.0", false)
	r.resign(t, func(d *channel.Document) { d.Halted = true })
	if err := d.agent(r, bootchain.A).Update(ctx); !errors.Is(err, ErrHalted) {
		t.Fatalf("halted release: %v, want ErrHalted", err)
	}
	st, _ := d.store.Load()
	if st.Trial != nil || st.Download != nil || !strings.Contains(st.LastError, "halted") || !d.holds(bootchain.B, "1.0") {
		t.Fatalf("after the halt: trial %+v download %+v error %q", st.Trial, st.Download, st.LastError)
	}
	r.resign(t, func(d *channel.Document) { d.Halted = false })
	if err := d.agent(r, bootchain.A).Update(ctx); err != nil {
		t.Fatalf("resumed release: %v", err)
	}
	if st, _ := d.store.Load(); st.Trial == nil || !st.Trial.Armed || !d.holds(bootchain.B, "2.0") {
		t.Fatalf("after the resume: trial %+v", st.Trial)
	}
}

// TestHaltMidDownload: the channel is halted while a device is in the
// middle of the release's download (the agent restarted after a cut
// connection). The device stops at its next check: nothing more is
// downloaded, nothing armed, the half-written slot stays out of the boot
// rotation; after the resume it downloads again and installs.
func TestHaltMidDownload(t *testing.T) {
	r := newRepo(t)
	d := newDevice()
	d.agent(r, d.boot.PowerOn()).AfterBoot(ctx)
	r.publish(t, "2.0", false)
	bootLen, rootLen := int64(len(content("boot", "2.0"))), int64(len(content("root", "2.0")))
	a := d.agent(r, bootchain.A)
	a.Source = &flakySource{Source: install.Dir{Path: r.dir}, fail: bootLen + rootLen/2}
	a.Download.Checkpoint = 4096
	if err := a.Update(ctx); err == nil {
		t.Fatal("the download was not cut")
	}
	r.resign(t, func(d *channel.Document) { d.Halted = true })
	src := &flakySource{Source: install.Dir{Path: r.dir}}
	a = d.agent(r, bootchain.A)
	a.Source = src
	if err := a.Update(ctx); !errors.Is(err, ErrHalted) {
		t.Fatalf("halted mid-download: %v, want ErrHalted", err)
	}
	st, _ := d.store.Load()
	if src.served != 0 || st.Trial != nil {
		t.Fatalf("after the halt: %d bytes downloaded, trial %+v", src.served, st.Trial)
	}
	if booted := d.reboot(); booted != bootchain.A {
		t.Fatalf("a reboot after the halt starts slot %s, the half-written one", booted)
	}
	r.resign(t, func(d *channel.Document) { d.Halted = false })
	if err := d.agent(r, bootchain.A).Update(ctx); err != nil {
		t.Fatalf("resumed release: %v", err)
	}
	if st, _ := d.store.Load(); st.Trial == nil || !st.Trial.Armed || !d.holds(bootchain.B, "2.0") {
		t.Fatalf("after the resume: trial %+v", st.Trial)
	}
}

// TestHaltCommittedKeeps: a device that committed the release keeps it
// when the channel halts it: nothing is refused, nothing rolled back.
func TestHaltCommittedKeeps(t *testing.T) {
	r := newRepo(t)
	d := newDevice()
	d.agent(r, d.boot.PowerOn()).AfterBoot(ctx)
	r.publish(t, "2.0", false)
	if err := d.agent(r, bootchain.A).Update(ctx); err != nil {
		t.Fatal(err)
	}
	booted := d.reboot()
	if err := d.agent(r, booted).AfterBoot(ctx); err != nil {
		t.Fatal(err)
	}
	r.resign(t, func(d *channel.Document) { d.Halted = true })
	a := d.agent(r, booted)
	a.Running = func(s bootchain.Slot) (Readable, Readable, error) {
		return d.part(s, "boot"), d.part(s, "root"), nil
	}
	if err := a.Update(ctx); !errors.Is(err, ErrNothingNew) {
		t.Fatalf("committed device, halted release: %v, want ErrNothingNew", err)
	}
	st, _ := d.store.Load()
	if st.Committed != string(booted) || st.Slots[string(booted)].Version != "2.0" || st.Serials["stable"] != r.serial {
		t.Fatalf("after the halt: committed %s slots %+v serials %v", st.Committed, st.Slots, st.Serials)
	}
	if !committed(st, &channel.Document{Image: "demo", Version: "2.0"}) {
		t.Fatal("committed() does not see the committed release")
	}
}

// TestWavesByClock: the waves are judged by the clock expiry is judged
// by: a clock that was never set (before the image's build time) counts
// as the build time and sees the first wave only; a device outside the
// first wave joins when its clock passes the next wave.
func TestWavesByClock(t *testing.T) {
	r := newRepo(t)
	d := newDevice()
	d.agent(r, d.boot.PowerOn()).AfterBoot(ctx)
	r.publish(t, "2.0", false)
	r.resign(t, func(d *channel.Document) {
		d.Rollout = 0.1
		d.Waves = []channel.Wave{{Fraction: 0.1, From: now}, {Fraction: 1, From: now.Add(30 * time.Minute)}}
	})
	a := d.agent(r, bootchain.A)
	for i := 0; InRollout(a.DeviceID, "demo/2.0", 0.1); i++ {
		a.DeviceID = fmt.Sprintf("x%d", i)
	}
	a.Built = now.Add(-time.Hour)
	a.Now = func() time.Time { return time.Unix(0, 0) } // an unset clock: 1970
	if err := a.Update(ctx); !errors.Is(err, ErrNotInRollout) {
		t.Fatalf("before the second wave: %v, want ErrNotInRollout", err)
	}
	a.Built = now.Add(30 * time.Minute) // an image built later: its build time is the floor
	if err := a.Update(ctx); err != nil {
		t.Fatalf("clock floored at the build time, after the second wave: %v", err)
	}
}

// TestResumeNoRetry: a device on which the release failed does not try
// it again when the channel resumes it (a new serial, the same version).
func TestResumeNoRetry(t *testing.T) {
	r := newRepo(t)
	d := newDevice()
	d.agent(r, d.boot.PowerOn()).AfterBoot(ctx)
	r.publish(t, "2.0", false)
	st, _ := d.store.Load()
	st.Failed = map[string]state.Failure{"2.0": {Stage: "health", Reason: "hello.service inactive"}}
	d.store.Save(st)
	r.resign(t, func(d *channel.Document) { d.Halted = true })
	r.resign(t, func(d *channel.Document) { d.Halted = false })
	if err := d.agent(r, bootchain.A).Update(ctx); !errors.Is(err, ErrFailedBefore) {
		t.Fatalf("a failed release, resumed: %v, want ErrFailedBefore", err)
	}
}
