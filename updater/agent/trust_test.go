package agent

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/state"
)

// The attacks of issue 21 point 4: whoever can write the data partition
// (a container with /data bind-mounted, anything that once ran as root)
// writes the agent's state file. The agent must not act on what it
// cannot authenticate.

// cutKeep puts the kept documents' writes (a FAT file replaced by a
// rename on bootsel) on the device's power switch.
type cutKeep struct{ d *device }

func (c cutKeep) SaveCommitted(ch string, s state.Signed) error {
	if err := c.d.op(); err != nil {
		return err
	}
	return c.d.keep.SaveCommitted(ch, s)
}
func (c cutKeep) Committed() (map[string]state.Signed, error) { return c.d.keep.Committed() }

// onFile is a device whose agent keeps its state in a real file on
// "/data" and its trust files in a folder on "bootsel", as on a device,
// with the slots readable (to check what they hold).
type onFile struct {
	*device
	path string
	keep state.Keep
}

func newOnFile(t *testing.T) *onFile {
	return &onFile{device: newDevice(), path: filepath.Join(t.TempDir(), "updater.json"), keep: state.Keep{Dir: filepath.Join(t.TempDir(), state.KeepDir)}}
}

func (d *onFile) agent(r *repo, booted bootchain.Slot, checks ...Check) *Agent {
	a := d.device.agent(r, booted, checks...)
	a.Image = "demo"
	a.Store = state.File{Path: d.path, KeyPath: d.keep.KeyPath()}
	a.Keep = d.keep
	a.Running = func(s bootchain.Slot) (Readable, Readable, error) { return d.part(s, "boot"), d.part(s, "root"), nil }
	return a
}

// committed2 runs a device through the install and commit of 2.0 (serial
// 2) into slot b; 1.5 (serial 1) was published before it, and its signed
// document is returned as an attacker would have kept it.
func committed2(t *testing.T) (*repo, *onFile, [2][]byte) {
	t.Helper()
	r := newRepo(t)
	d := newOnFile(t)
	if err := d.agent(r, d.boot.PowerOn()).AfterBoot(ctx); err != nil {
		t.Fatal(err)
	}
	r.publish(t, "1.5", false)
	docPath := filepath.Join(r.dir, channel.DocumentPath("stable"))
	old := [2][]byte{}
	old[0], _ = os.ReadFile(docPath)
	old[1], _ = os.ReadFile(channel.SignaturePath(docPath))
	r.publish(t, "2.0", false)
	if err := d.agent(r, bootchain.A).Update(ctx); err != nil {
		t.Fatal(err)
	}
	booted := d.boot.PowerOn()
	if err := d.agent(r, booted).AfterBoot(ctx); err != nil || booted != bootchain.B {
		t.Fatalf("trial on %s: %v", booted, err)
	}
	if !d.holds(bootchain.B, "2.0") || !d.holds(bootchain.A, "1.0") {
		t.Fatal("slots do not hold 2.0 and 1.0 after the commit")
	}
	return r, d, old
}

// TestForgedStateCannotDowngrade: a state file saying slot a is the
// committed one, b holds nothing and 2.0 failed must not make the agent
// mark a good and reboot into the old release.
func TestForgedStateCannotDowngrade(t *testing.T) {
	r, d, _ := committed2(t)
	forged := `{"format": 2, "serials": {"stable": 2}, "committed": "a",
  "slots": {"a": {"image": "demo", "version": "1.0"}},
  "failed": {"2.0": {"version": "2.0", "stage": "health", "reason": "forged", "at": "2026-11-23T12:00:00Z"}}}`
	if err := os.WriteFile(d.path, []byte(forged), 0o600); err != nil {
		t.Fatal(err)
	}
	rebooted := false
	a := d.agent(r, d.boot.PowerOn())
	a.Reboot = func() error { rebooted = true; return nil }
	if err := a.AfterBoot(ctx); err != nil {
		t.Fatal(err)
	}
	if rebooted || !d.boot.St.Bootable(bootchain.B) {
		t.Errorf("a forged state file made the agent go back to slot a: rebooted %v, boot state %s", rebooted, d.boot.St.Marshal())
	}
	if s := d.boot.PowerOn(); s != bootchain.B {
		t.Errorf("after a forged state file the device starts slot %s (1.0)", s)
	}
	st, err := (state.File{Path: d.path, KeyPath: d.keep.KeyPath()}).Load()
	if err != nil {
		t.Fatalf("the rebuilt state does not load: %v", err)
	}
	if _, failed := st.Failed["2.0"]; failed || st.Committed != "b" || st.Degraded != "" {
		t.Errorf("the agent kept the forged state: %+v", st)
	}
}

// TestGarbageStateKeepsTheSerialFloor: a state file made unreadable must
// not erase the channel's serial: an older, still valid signed document
// served afterwards is refused, and nothing is installed.
func TestGarbageStateKeepsTheSerialFloor(t *testing.T) {
	for name, garbage := range map[string]string{"garbage": "\x00\x00 not json", "empty state": `{"format": 2}`, "deleted": ""} {
		t.Run(name, func(t *testing.T) {
			r, d, old := committed2(t)
			if name == "deleted" {
				os.Remove(d.path)
			} else {
				os.WriteFile(d.path, []byte(garbage), 0o600)
			}
			docPath := filepath.Join(r.dir, channel.DocumentPath("stable"))
			os.WriteFile(docPath, old[0], 0o644)
			os.WriteFile(channel.SignaturePath(docPath), old[1], 0o644)
			booted := d.boot.PowerOn()
			a := d.agent(r, booted)
			rebooted := false
			a.Reboot = func() error { rebooted = true; return nil }
			if err := a.AfterBoot(ctx); err != nil {
				t.Fatal(err)
			}
			before := bytes.Clone(d.part(bootchain.A, "root").live)
			err := d.agent(r, booted).Update(ctx)
			if !errors.Is(err, channel.ErrDowngrade) {
				t.Errorf("the replayed serial 1 after a lost state: %v", err)
			}
			if !bytes.Equal(before, d.part(bootchain.A, "root").live) || rebooted {
				t.Error("the replayed release was written into slot a")
			}
			if s := d.boot.PowerOn(); s != bootchain.B {
				t.Errorf("the device starts slot %s", s)
			}
		})
	}
}

// TestUpgradeFromAgentWithoutKeys: a device whose agent predates the
// device key. The new agent reads the old state until it runs as the
// committed slot: a first trial that fails hands the older agent a state
// it reads, and the next trial still runs its health checks. Once
// committed, the state is authenticated, the channel's document is kept
// (at the next check: the older agent kept nothing), and a state lost
// afterwards keeps its serial floor.
func TestUpgradeFromAgentWithoutKeys(t *testing.T) {
	r := newRepo(t)
	d := newOnFile(t)
	older := func(booted bootchain.Slot) *Agent { // the older agent: no key, no keep, no trial document
		a := d.agent(r, booted)
		a.Store, a.Keep = state.File{Path: d.path}, nil
		return a
	}
	stripTrial := func() {
		f := state.File{Path: d.path}
		st, _ := f.Load()
		st.Trial.Signed = nil
		f.Save(st)
	}
	keyExists := func() bool { _, err := os.Stat(d.keep.KeyPath()); return err == nil }
	if err := older(d.boot.PowerOn()).AfterBoot(ctx); err != nil {
		t.Fatal(err)
	}
	r.publish(t, "2.0", false)
	if err := older(bootchain.A).Update(ctx); err != nil {
		t.Fatal(err)
	}
	stripTrial()
	// 2.0 carries the new agent and fails its health checks.
	rebooted := false
	b := d.agent(r, d.boot.PowerOn(), check{"api", errors.New("503")})
	b.Reboot = func() error { rebooted = true; return nil }
	if err := b.AfterBoot(ctx); err != nil || !rebooted {
		t.Fatalf("failing trial: %v, rebooted %v", err, rebooted)
	}
	if keyExists() {
		t.Fatal("a trial that failed made the device key: the older agent's states would no longer be trusted")
	}
	if booted := d.boot.PowerOn(); booted != bootchain.A {
		t.Fatalf("after the failed trial: slot %s", booted)
	}
	if err := older(bootchain.A).AfterBoot(ctx); err != nil {
		t.Fatal(err)
	}
	if err := older(bootchain.A).Update(ctx); !errors.Is(err, ErrFailedBefore) {
		t.Fatalf("the older agent lost the failure: %v", err)
	}
	r.publish(t, "2.1", false)
	if err := older(bootchain.A).Update(ctx); err != nil {
		t.Fatal(err)
	}
	stripTrial()
	// 2.1's trial: its checks run (a failing one would roll back), then
	// it commits and the state is authenticated from then on.
	ran := false
	c := d.agent(r, d.boot.PowerOn(), checkFunc(func() error { ran = true; return nil }))
	if err := c.AfterBoot(ctx); err != nil || !ran {
		t.Fatalf("the second trial: %v, checks ran %v", err, ran)
	}
	if !keyExists() {
		t.Fatal("committing did not make the device key")
	}
	sealed := state.File{Path: d.path, KeyPath: d.keep.KeyPath()}
	if st, err := sealed.Load(); err != nil || st.Committed != "b" || st.Serials["stable"] != 2 {
		t.Fatalf("the committed state: %+v %v", st, err)
	}
	if err := d.agent(r, bootchain.B).Update(ctx); !errors.Is(err, ErrNothingNew) {
		t.Fatalf("check after the commit: %v", err)
	}
	if docs, _ := d.keep.Committed(); len(docs["stable"].Document) == 0 {
		t.Fatal("the channel's document was not kept at the first check after the commit")
	}
	os.WriteFile(d.path, []byte("garbage"), 0o600)
	if err := d.agent(r, bootchain.B).AfterBoot(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := sealed.Load()
	if err != nil || st.Serials["stable"] != 2 || st.Slots["b"].Version != "2.1" || st.Committed != "b" {
		t.Fatalf("state rebuilt after the commit: %+v %v", st, err)
	}
	if _, ok := st.Slots["a"]; ok {
		t.Errorf("slot a (1.0, no kept document) is vouched for after the rebuild: %+v", st.Slots)
	}
}

type checkFunc func() error

func (f checkFunc) Name() string              { return "func" }
func (f checkFunc) Run(context.Context) error { return f() }
