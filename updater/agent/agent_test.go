package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/bootloader"
	"github.com/pibake/pibake/updater/bootloader/boottest"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/state"
	"github.com/pibake/pibake/updater/state/statetest"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

const partSize = 64 << 10

// power is the fake device's power switch: every write, sync, state save
// and boot-state write is one operation; with cutAt > 0 operation cutAt
// fails and so does every one after it, until the device is powered on.
type power struct {
	ops, cutAt int
	off        bool
}

func (p *power) op() error {
	if p.off {
		return state.ErrPowerCut
	}
	p.ops++
	if p.cutAt > 0 && p.ops >= p.cutAt {
		p.off = true
		return state.ErrPowerCut
	}
	return nil
}

// vpart is a partition behind a volatile write cache, as an SD card or
// the kernel's page cache is: writes land in live and reach durable only
// at Sync; a power cut throws away what was not synced, and with tear the
// first half of the last unsynced write reaches the medium anyway.
type vpart struct {
	p             *power
	durable, live []byte
	lastOff       int64
	last          []byte
}

func newPart(p *power, size int, init []byte) *vpart {
	v := &vpart{p: p, durable: make([]byte, size)}
	copy(v.durable, init)
	v.live = bytes.Clone(v.durable)
	return v
}

func (v *vpart) WriteAt(b []byte, off int64) (int, error) {
	if err := v.p.op(); err != nil {
		return 0, err
	}
	if off+int64(len(b)) > int64(len(v.live)) {
		return 0, errors.New("write past the end of the partition")
	}
	v.lastOff, v.last = off, bytes.Clone(b)
	return copy(v.live[off:], b), nil
}

func (v *vpart) ReadAt(b []byte, off int64) (int, error) {
	if off >= int64(len(v.live)) {
		return 0, io.EOF
	}
	n := copy(b, v.live[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (v *vpart) Size() int64 { return int64(len(v.live)) }

func (v *vpart) Sync() error {
	if err := v.p.op(); err != nil {
		return err
	}
	copy(v.durable, v.live)
	v.last = nil
	return nil
}

// crash is the power coming back: the cache is gone.
func (v *vpart) crash(tear bool) {
	if tear && v.last != nil {
		copy(v.durable[v.lastOff:], v.last[:len(v.last)/2])
	}
	v.last = nil
	v.live = bytes.Clone(v.durable)
}

// flush is a clean reboot: the kernel writes its cache back.
func (v *vpart) flush() {
	copy(v.durable, v.live)
	v.last = nil
}

// device is a fake Pi: two slots of boot and root partitions, the U-Boot
// state, the updater state and the power switch.
type device struct {
	power
	boot  *boottest.Fake
	store *statetest.Memory
	keep  *statetest.Keep // bootsel's kept documents
	parts map[bootchain.Slot]map[string]*vpart
	size  int // partition size
	// data is an artifact's content by name and version (content, or the
	// campaign's larger ones).
	data func(name, version string) []byte
}

func (d *device) part(s bootchain.Slot, name string) *vpart { return d.parts[s][name] }

// cutBoot and cutStore put the boot loader's and the state's writes on
// the device's power switch; both are atomic (a rename), so a cut leaves
// the old or, when it comes after, the new content.
type cutBoot struct{ d *device }

func (c cutBoot) Primary() (bootchain.Slot, error) { return c.d.boot.Primary() }
func (c cutBoot) TryOnce(s bootchain.Slot) error {
	if err := c.d.op(); err != nil {
		return err
	}
	return c.d.boot.TryOnce(s)
}
func (c cutBoot) MarkGood(s bootchain.Slot) error {
	if err := c.d.op(); err != nil {
		return err
	}
	return c.d.boot.MarkGood(s)
}
func (c cutBoot) MarkBad(s bootchain.Slot) error {
	if err := c.d.op(); err != nil {
		return err
	}
	return c.d.boot.MarkBad(s)
}
func (c cutBoot) Tried(s bootchain.Slot) (bootchain.Evidence, error) { return c.d.boot.Tried(s) }

type cutStore struct{ d *device }

func (c cutStore) Load() (state.State, error) { return c.d.store.Load() }
func (c cutStore) Save(st state.State) error {
	if err := c.d.op(); err != nil {
		return err
	}
	return c.d.store.Save(st)
}

func content(name, version string) []byte {
	return bytes.Repeat([]byte(name+" of "+version+"\n"), 1500)
}

func newDevice() *device { return newDeviceWith(partSize, content) }

// newDeviceWith makes a device with partitions of size bytes, both slots
// holding release 1.0 as data makes it.
func newDeviceWith(size int, data func(name, version string) []byte) *device {
	d := &device{boot: boottest.NewFake(), store: &statetest.Memory{}, keep: &statetest.Keep{}, parts: map[bootchain.Slot]map[string]*vpart{}, size: size, data: data}
	for _, s := range bootchain.Slots() {
		d.parts[s] = map[string]*vpart{}
		for _, n := range []string{"boot", "root"} {
			d.parts[s][n] = newPart(&d.power, size, data(n, "1.0"))
		}
	}
	return d
}

// powerOn brings the power back (losing caches, tearing the last write
// if tear) and runs the boot script; with tear the power also goes while
// the script writes pibake.env, leaving it unreadable.
func (d *device) powerOn(tear bool) bootchain.Slot {
	for _, m := range d.parts {
		for _, p := range m {
			p.crash(tear)
		}
	}
	d.off, d.cutAt = false, 0
	if tear {
		return d.boot.PowerOnTorn()
	}
	return d.boot.PowerOn()
}

// reboot is a clean reboot: caches written back, then the boot script.
func (d *device) reboot() bootchain.Slot {
	for _, m := range d.parts {
		for _, p := range m {
			p.flush()
		}
	}
	return d.boot.PowerOn()
}

// repo publishes a release into a folder repository.
type repo struct {
	dir    string
	key    minisign.PrivateKey
	pub    minisign.PublicKey
	serial uint64
}

func newRepo(t *testing.T) *repo {
	pub, key, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &repo{dir: t.TempDir(), key: key, pub: pub}
}

func (r *repo) publish(t *testing.T, version string, corrupt bool) {
	t.Helper()
	r.publishData(t, "stable", version, func(n string) []byte { return content(n, version) }, corrupt)
}

// publishData signs a release of the given artifact contents into the
// repository as channel ch (served as channels/<ch>.json).
func (r *repo) publishData(t *testing.T, ch, version string, data func(name string) []byte, corrupt bool) {
	t.Helper()
	r.publishNamed(t, ch, version, []string{"boot", "root"}, data, corrupt)
}

// publishNamed signs a release whose artifacts have the given names.
func (r *repo) publishNamed(t *testing.T, ch, version string, names []string, data func(name string) []byte, corrupt bool) {
	t.Helper()
	r.serial++
	d := &channel.Document{Format: channel.Format, Channel: ch, Image: "demo", Version: version, Serial: r.serial,
		Expires: now.Add(time.Hour), Boards: []string{"pi4"}, Rollout: 1}
	for _, n := range names {
		data := data(n)
		sum := sha256.Sum256(data)
		h := hex.EncodeToString(sum[:])
		if corrupt {
			data = append([]byte(nil), data...)
			data[10] ^= 1
		}
		os.MkdirAll(filepath.Join(r.dir, channel.BlobsDir), 0o755)
		os.WriteFile(filepath.Join(r.dir, channel.BlobPath(h)), data, 0o644)
		d.Artifacts = append(d.Artifacts, channel.Artifact{Name: n, Path: channel.BlobPath(h), Size: int64(len(data)), SHA256: h, PartitionSize: int64(max(partSize, len(data)))})
	}
	r.sign(t, d, ch)
}

// sign writes d and its signature as channels/<as>.json.
func (r *repo) sign(t *testing.T, d *channel.Document, as string) {
	t.Helper()
	doc, sig, err := channel.Sign(d, r.key)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(r.dir, channel.ChannelsDir), 0o755)
	os.WriteFile(filepath.Join(r.dir, channel.DocumentPath(as)), doc, 0o644)
	os.WriteFile(filepath.Join(r.dir, channel.SignaturePath(channel.DocumentPath(as))), sig, 0o644)
}

type check struct {
	name string
	err  error
}

func (c check) Name() string              { return c.name }
func (c check) Run(context.Context) error { return c.err }

func (d *device) agent(r *repo, booted bootchain.Slot, checks ...Check) *Agent {
	return New(Config{
		Channel: "stable", Trusted: []minisign.PublicKey{r.pub}, Board: "pi4", Checks: checks,
		Download: Download{Attempts: 1, Backoff: time.Millisecond},
	}, Ports{
		Boot: cutBoot{d}, Store: cutStore{d}, Keep: cutKeep{d}, Source: install.Dir{Path: r.dir}, Booted: booted,
		Slots: func(s bootchain.Slot) (install.Target, install.Target, error) {
			return d.part(s, "boot"), d.part(s, "root"), nil
		},
		Reboot: func() error { return nil }, Now: func() time.Time { return now },
	})
}

// trybootAgent is the device's agent on the tryboot chain's fake: the
// trial reboot carries the firmware's one-shot flag.
func (d *device) trybootAgent(r *repo, fw *boottest.Tryboot, booted bootchain.Slot, checks ...Check) *Agent {
	a := d.agent(r, booted, checks...)
	a.Boot = fw
	a.Reboot = func() error { fw.Reboot(""); return nil }
	a.RebootTrial = func() error { fw.Reboot(bootloader.TrybootRebootArg); return nil }
	return a
}

// holds reports whether slot s holds exactly version v.
func (d *device) holds(s bootchain.Slot, v string) bool {
	for _, n := range []string{"boot", "root"} {
		if !bytes.HasPrefix(d.part(s, n).live, d.data(n, v)) {
			return false
		}
	}
	return true
}

func TestUpdateCommit(t *testing.T) {
	r := newRepo(t)
	d := newDevice()
	booted := d.boot.PowerOn()
	if err := d.agent(r, booted).AfterBoot(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.publish(t, "2.0", false)
	if err := d.agent(r, booted).Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !d.holds(bootchain.B, "2.0") || !d.holds(bootchain.A, "1.0") {
		t.Fatal("slot contents wrong after install")
	}
	booted = d.boot.PowerOn()
	if booted != bootchain.B {
		t.Fatalf("trial boot started %s", booted)
	}
	if err := d.agent(r, booted, check{"api", nil}).AfterBoot(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, _ := d.store.Load()
	if st.Trial != nil || st.Slots["b"].Version != "2.0" || st.Serials["stable"] != 1 || st.Committed != "b" {
		t.Errorf("state after commit: %+v", st)
	}
	for i := 0; i < 3; i++ {
		if s := d.boot.PowerOn(); s != bootchain.B {
			t.Fatalf("boot %d after commit: %s", i, s)
		}
		d.agent(r, bootchain.B).AfterBoot(context.Background())
	}
	// Same channel again: nothing to do.
	if err := d.agent(r, bootchain.B).Update(context.Background()); !errors.Is(err, ErrNothingNew) {
		t.Errorf("second update: %v", err)
	}
}

func TestHealthFailureRollsBack(t *testing.T) {
	r := newRepo(t)
	d := newDevice()
	d.agent(r, d.boot.PowerOn()).AfterBoot(context.Background())
	r.publish(t, "3.0", false)
	rebooted := false
	a := d.agent(r, bootchain.A)
	if err := a.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	booted := d.boot.PowerOn()
	b := d.agent(r, booted, check{"systemd:demo-hello.service", nil}, check{"http:127.0.0.1:8080/health", errors.New("status 503")})
	b.Reboot = func() error { rebooted = true; return nil }
	if err := b.AfterBoot(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, _ := d.store.Load()
	f, ok := st.Failed["3.0"]
	if !rebooted || !ok || f.Check != "http:127.0.0.1:8080/health" || !strings.Contains(f.Reason, "503") || !strings.Contains(st.LastError, "rolled back") {
		t.Fatalf("rebooted %v, state %+v", rebooted, st)
	}
	// The failure names the release whole: a report of it is counted
	// against that release by pibake rollout watch (fleet.Brake).
	if f.Image == "" || f.Serial == 0 || f.Version != "3.0" {
		t.Errorf("the failure record names image %q serial %d version %q: want the release's own", f.Image, f.Serial, f.Version)
	}
	if s := d.boot.PowerOn(); s != bootchain.A {
		t.Fatalf("after the failed trial the device starts %s", s)
	}
	// The failed version is not retried, and slot A is untouched.
	if err := d.agent(r, bootchain.A).Update(context.Background()); !errors.Is(err, ErrFailedBefore) {
		t.Errorf("retry of a failed version: %v", err)
	}
	if !d.holds(bootchain.A, "1.0") {
		t.Error("the active slot changed")
	}
}

func TestRefusals(t *testing.T) {
	for name, setup := range map[string]func(t *testing.T, r *repo){
		"tampered artifact": func(t *testing.T, r *repo) { r.publish(t, "2.0", true) },
		"tampered document": func(t *testing.T, r *repo) {
			r.publish(t, "2.0", false)
			p := filepath.Join(r.dir, channel.DocumentPath("stable"))
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte(`"2.0"`), []byte(`"9.9"`), 1), 0o644)
		},
		"unknown key": func(t *testing.T, r *repo) {
			_, other, _ := minisign.GenerateKey(rand.Reader)
			r.key = other
			r.publish(t, "2.0", false)
		},
		"downgrade": func(t *testing.T, r *repo) {
			r.serial = 0 // a re-signed older serial than the device has seen
			r.publish(t, "0.9", false)
		},
		"missing artifact": func(t *testing.T, r *repo) {
			r.publish(t, "2.0", false)
			os.RemoveAll(filepath.Join(r.dir, channel.BlobsDir))
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := newRepo(t)
			d := newDevice()
			d.agent(r, d.boot.PowerOn()).AfterBoot(context.Background())
			d.store.St.LastSerial = 5
			r.serial = 5
			setup(t, r)
			before := bytes.Clone(d.part(bootchain.A, "root").live)
			err := d.agent(r, bootchain.A).Update(context.Background())
			if err == nil {
				t.Fatal("accepted")
			}
			st, _ := d.store.Load()
			if st.Trial != nil || st.LastError == "" {
				t.Errorf("state %+v", st)
			}
			if p, _ := d.boot.Primary(); p != bootchain.A || !bytes.Equal(before, d.part(bootchain.A, "root").live) {
				t.Error("the active slot was touched")
			}
			if s := d.boot.PowerOn(); s != bootchain.A {
				t.Errorf("device starts %s after a refused update", s)
			}
		})
	}
}

func TestRefusedByDevice(t *testing.T) {
	for name, mut := range map[string]func(a *Agent){
		"wrong board": func(a *Agent) { a.Board = "pi3" },
		"expired":     func(a *Agent) { a.Now = func() time.Time { return now.Add(2 * time.Hour) } },
	} {
		r := newRepo(t)
		d := newDevice()
		d.agent(r, d.boot.PowerOn()).AfterBoot(context.Background())
		r.publish(t, "2.0", false)
		a := d.agent(r, bootchain.A)
		mut(a)
		before := bytes.Clone(d.part(bootchain.B, "root").live)
		if err := a.Update(context.Background()); err == nil {
			t.Fatalf("%s: accepted", name)
		}
		st, _ := d.store.Load()
		if !bytes.Equal(before, d.part(bootchain.B, "root").live) || st.LastError == "" || st.Trial != nil {
			t.Errorf("%s: a byte was written or nothing recorded: %+v", name, st)
		}
	}
}

func TestRollout(t *testing.T) {
	in := 0
	for i := 0; i < 1000; i++ {
		id := fmt.Sprintf("device-%d", i)
		if InRollout(id, "demo/7", 0.25) {
			in++
			if !InRollout(id, "demo/7", 0.5) {
				t.Fatalf("%s: in at 25%% but out at 50%%", id)
			}
		}
	}
	if in < 200 || in > 300 {
		t.Errorf("%d of 1000 devices in a 25%% rollout", in)
	}
	r := newRepo(t)
	d := newDevice()
	d.agent(r, d.boot.PowerOn()).AfterBoot(context.Background())
	r.publish(t, "2.0", false)
	a := d.agent(r, bootchain.A)
	for i := 0; InRollout(a.DeviceID, "demo/2.0", 0.5); i++ {
		a.DeviceID = fmt.Sprintf("x%d", i)
	}
	// Re-sign at 50% and check a device outside waits.
	doc, _ := os.ReadFile(filepath.Join(r.dir, channel.DocumentPath("stable")))
	var dd channel.Document
	json.Unmarshal(doc, &dd)
	dd.Rollout = 0.5
	b, s, _ := channel.Sign(&dd, r.key)
	os.WriteFile(filepath.Join(r.dir, channel.DocumentPath("stable")), b, 0o644)
	os.WriteFile(filepath.Join(r.dir, channel.SignaturePath(channel.DocumentPath("stable"))), s, 0o644)
	if err := a.Update(context.Background()); !errors.Is(err, ErrNotInRollout) {
		t.Errorf("outside the rollout: %v", err)
	}
}

// flakySource counts the artifact bytes it serves and, with fail > 0, breaks every
// connection once that many bytes went through in total.
type flakySource struct {
	install.Source
	fail, served int64
}

func (f *flakySource) Open(ctx context.Context, path string, off int64) (io.ReadCloser, error) {
	r, err := f.Source.Open(ctx, path, off)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(path, channel.BlobsDir+"/") {
		return r, nil // the channel document is not counted
	}
	return &flakyReader{r, f}, nil
}

type flakyReader struct {
	io.ReadCloser
	f *flakySource
}

func (r *flakyReader) Read(p []byte) (int, error) {
	if r.f.fail > 0 {
		left := r.f.fail - r.f.served
		if left <= 0 {
			return 0, errors.New("connection reset")
		}
		p = p[:min(int64(len(p)), left)]
	}
	n, err := r.ReadCloser.Read(p)
	r.f.served += int64(n)
	return n, err
}

// TestResumeAfterRestart: the agent dies in the middle of the root
// artifact; a new agent resumes from the last synced checkpoint instead
// of downloading again, and the result still verifies.
func TestResumeAfterRestart(t *testing.T) {
	r := newRepo(t)
	d := newDevice()
	d.agent(r, d.boot.PowerOn()).AfterBoot(context.Background())
	r.publish(t, "2.0", false)
	bootLen, rootLen := int64(len(content("boot", "2.0"))), int64(len(content("root", "2.0")))

	src := &flakySource{Source: install.Dir{Path: r.dir}, fail: bootLen + rootLen/2}
	a := d.agent(r, bootchain.A)
	a.Source = src
	a.Download.Checkpoint = 4096
	if err := a.Update(context.Background()); err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("interrupted install: %v", err)
	}
	st, _ := d.store.Load()
	if st.Download == nil || len(st.Download.Done) != 1 || st.Download.Offset < 4096 || st.Trial != nil {
		t.Fatalf("state after the interruption: %+v", st.Download)
	}
	saved := st.Download.Offset

	// A new agent (after a restart) on a good connection.
	src = &flakySource{Source: install.Dir{Path: r.dir}}
	a = d.agent(r, bootchain.A)
	a.Source = src
	if err := a.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := rootLen - saved; src.served != want {
		t.Errorf("after the restart %d bytes were downloaded, want %d (root %d from offset %d; boot was done)", src.served, want, rootLen, saved)
	}
	st, _ = d.store.Load()
	if st.Download == nil || len(st.Download.Done) != 2 || st.Trial == nil || !st.Trial.Armed || !d.holds(bootchain.B, "2.0") {
		t.Fatalf("after the resumed install: download %+v trial %+v", st.Download, st.Trial)
	}
	t.Logf("interrupted at %d of %d root bytes, resumed from checkpoint %d", rootLen/2, rootLen, saved)

	// A checkpoint onto bytes that were changed meanwhile must not pass:
	// the read-back catches them, and the next try starts from zero.
	d2 := newDevice()
	d2.agent(r, d2.boot.PowerOn()).AfterBoot(context.Background())
	a = d2.agent(r, bootchain.A)
	a.Source = &flakySource{Source: install.Dir{Path: r.dir}, fail: bootLen + rootLen/2}
	a.Download.Checkpoint = 4096
	_ = a.Update(context.Background())
	d2.part(bootchain.B, "root").live[100] ^= 0xff
	if err := d2.agent(r, bootchain.A).Update(context.Background()); !errors.Is(err, install.ErrDigest) {
		t.Fatalf("resume onto changed bytes: %v", err)
	}
	if st, _ := d2.store.Load(); st.Download == nil || st.Download.Offset != 0 || st.Trial != nil {
		t.Fatalf("after a failed read-back: %+v", st.Download)
	}
	if err := d2.agent(r, bootchain.A).Update(context.Background()); err != nil {
		t.Fatalf("clean retry: %v", err)
	}
}

// fullPart is a partition on a full disk.
type fullPart struct{ *vpart }

func (fullPart) WriteAt([]byte, int64) (int, error) { return 0, syscall.ENOSPC }

// fullStore is a state store on a full data partition.
type fullStore struct{ *statetest.Memory }

func (fullStore) Save(state.State) error {
	return fmt.Errorf("updater state: write /data/pibake/.state-1: %w", syscall.ENOSPC)
}

// TestDiskFull: a full disk, under the slot being written or under the
// state, stops the install before the switch; the active slot and the boot
// order stay as they were.
func TestDiskFull(t *testing.T) {
	for name, mut := range map[string]func(d *device, a *Agent){
		"slot": func(d *device, a *Agent) {
			a.Slots = func(s bootchain.Slot) (install.Target, install.Target, error) {
				return d.part(s, "boot"), fullPart{d.part(s, "root")}, nil
			}
		},
		"state": func(d *device, a *Agent) { a.Store = fullStore{d.store} },
	} {
		t.Run(name, func(t *testing.T) {
			r := newRepo(t)
			d := newDevice()
			d.agent(r, d.boot.PowerOn()).AfterBoot(context.Background())
			r.publish(t, "2.0", false)
			before := bytes.Clone(d.part(bootchain.A, "root").live)
			a := d.agent(r, bootchain.A)
			mut(d, a)
			err := a.Update(context.Background())
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("install on a full disk: %v", err)
			}
			t.Logf("refused: %v", err)
			if !bytes.Equal(before, d.part(bootchain.A, "root").live) {
				t.Error("the active slot changed")
			}
			if p, _ := d.boot.Primary(); p != bootchain.A || (name == "slot" && d.boot.St.Bootable(bootchain.B)) {
				t.Errorf("boot state %s: want slot a primary and, once writing began, b out of the rotation", d.boot.St.Marshal())
			}
			if s := d.boot.PowerOn(); s != bootchain.A {
				t.Errorf("device starts %s", s)
			}
			if name == "slot" {
				if st, _ := d.store.Load(); !strings.Contains(st.LastError, "no space left") || st.Trial != nil {
					t.Errorf("status does not say why: %q", st.LastError)
				}
			}
		})
	}
}

// tarRepo packs a folder repository the way pibake bundle does.
func tarRepo(t *testing.T, dir, out string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, _ := os.ReadFile(p)
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestInstallFromBundle: an offline update from a bundle file gets the
// same checks as one over the network.
func TestInstallFromBundle(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt bool
	}{{"good", false}, {"tampered", true}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			d := newDevice()
			d.agent(r, d.boot.PowerOn()).AfterBoot(context.Background())
			r.publish(t, "2.0", tc.corrupt)
			file := filepath.Join(t.TempDir(), "demo-2.0.tar")
			tarRepo(t, r.dir, file)
			b, err := install.OpenBundle(file)
			if err != nil {
				t.Fatal(err)
			}
			a := d.agent(&repo{dir: "/nonexistent", pub: r.pub}, bootchain.A)
			err = a.InstallFrom(context.Background(), b)
			if tc.corrupt {
				if !errors.Is(err, install.ErrDigest) || !d.holds(bootchain.A, "1.0") || d.boot.PowerOn() != bootchain.A {
					t.Fatalf("tampered bundle: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !d.holds(bootchain.B, "2.0") || d.boot.PowerOn() != bootchain.B {
				t.Fatal("bundle not installed into slot b for a trial")
			}
		})
	}
}

// TestTrybootChain runs the agent against the tryboot chain's model: the
// trial reboot carries the firmware's one-shot flag; a health failure, or
// any reset during the trial, lands on the committed slot.
func TestTrybootChain(t *testing.T) {
	for _, tc := range []struct {
		name    string
		healthy bool
		reset   bool // the trial slot resets before its health checks run
		want    bootchain.Slot
	}{{"commit", true, false, bootchain.B}, {"health fails", false, false, bootchain.A}, {"reset during trial", true, true, bootchain.A}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			d := newDevice()
			fw := boottest.NewTryboot()
			agentFor := func(booted bootchain.Slot, checks ...Check) *Agent { return d.trybootAgent(r, fw, booted, checks...) }
			booted := fw.PowerOn()
			if err := agentFor(booted).AfterBoot(context.Background()); err != nil {
				t.Fatal(err)
			}
			r.publish(t, "2.0", false)
			if err := agentFor(booted).Update(context.Background()); err != nil {
				t.Fatal(err)
			}
			booted = fw.PowerOn()
			if booted != bootchain.B {
				t.Fatalf("the flagged reboot started %s", booted)
			}
			if tc.reset {
				// A watchdog reset before the agent ran on the trial: the
				// firmware leaves no trace, so it takes two such trials
				// before the release counts as failed, not one (the first
				// may have been a cut before the flagged reboot).
				booted = fw.PowerOn()
				if err := agentFor(booted).AfterBoot(context.Background()); err != nil {
					t.Fatal(err)
				}
				if st, _ := d.store.Load(); len(st.Failed) != 0 || st.Trial != nil {
					t.Fatalf("one unexplained fallback failed the release: %+v", st.Failed)
				}
				if err := agentFor(booted).Update(context.Background()); err != nil {
					t.Fatal(err)
				}
				if booted = fw.PowerOn(); booted != bootchain.B {
					t.Fatalf("the second trial started %s", booted)
				}
				booted = fw.PowerOn()
			}
			var c Check = check{"app", nil}
			if !tc.healthy {
				c = check{"app", errors.New("not listening")}
			}
			_ = agentFor(booted, c).AfterBoot(context.Background())
			final := fw.PowerOn()
			if final != tc.want {
				t.Fatalf("device settles on %s, want %s", final, tc.want)
			}
			st, _ := d.store.Load()
			if st.Trial != nil || (tc.want == bootchain.A) != (st.Failed["2.0"].Version == "2.0") {
				t.Errorf("state: trial %+v failed %+v", st.Trial, st.Failed)
			}
		})
	}
}

// TestTrybootPerSlotBoot: a tryboot release carries one boot artifact per
// slot (each slot's cmdline.txt names its own root); each install writes
// the target slot's own, so the trial boots its new kernel on its new root.
func TestTrybootPerSlotBoot(t *testing.T) {
	r := newRepo(t)
	d := newDevice()
	fw := boottest.NewTryboot()
	agentFor := func(booted bootchain.Slot, checks ...Check) *Agent { return d.trybootAgent(r, fw, booted, checks...) }
	booted := fw.PowerOn()
	agentFor(booted).AfterBoot(ctx)
	for _, v := range []string{"2.0", "3.0"} {
		r.publishNamed(t, "stable", v, []string{"boot.a", "boot.b", "root"}, func(n string) []byte { return content(n, v) }, false)
		if err := agentFor(booted).Update(ctx); err != nil {
			t.Fatal(err)
		}
		target := booted.Other()
		want := content(channel.BootArtifact(string(target)), v)
		if !bytes.HasPrefix(d.part(target, "boot").live, want) || !bytes.HasPrefix(d.part(target, "root").live, content("root", v)) {
			t.Fatalf("%s: slot %s did not get its own boot artifact", v, target)
		}
		booted = fw.PowerOn()
		if err := agentFor(booted, check{"ok", nil}).AfterBoot(ctx); err != nil || booted != target {
			t.Fatalf("%s: trial in %s: %v", v, booted, err)
		}
	}
	// A release missing the target's boot artifact is refused before a byte.
	r.publishNamed(t, "stable", "4.0", []string{"boot.a", "root"}, func(n string) []byte { return content(n, "4.0") }, false)
	if err := agentFor(booted).Update(ctx); err == nil || !strings.Contains(err.Error(), "0 boot artifacts for slot b") {
		t.Errorf("a release without slot b's boot artifact: %v", err)
	}
}

// TestAdoptFlashedRelease: a device flashed with the release its channel
// offers records it for its slot and installs nothing; the same version
// with other bytes in the slot, or in a degraded state, is installed as
// any other release; a later release installs as usual.
func TestAdoptFlashedRelease(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(d *device)
		adopt bool
	}{
		{"same bytes", func(*device) {}, true},
		{"the slot holds other bytes", func(d *device) {
			p := d.part(bootchain.A, "root")
			p.live[100] ^= 1
			p.durable[100] ^= 1
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			d := newDevice()
			booted := d.boot.PowerOn()
			agent := func() *Agent {
				a := d.agent(r, booted)
				a.Image, a.Version = "demo", "1.0"
				a.Running = func(s bootchain.Slot) (Readable, Readable, error) { return d.part(s, "boot"), d.part(s, "root"), nil }
				return a
			}
			if err := agent().AfterBoot(context.Background()); err != nil {
				t.Fatal(err)
			}
			r.publish(t, "1.0", false)
			tc.spoil(d)
			err := agent().Update(context.Background())
			st, _ := d.store.Load()
			if !tc.adopt {
				if err != nil || st.Trial == nil || st.Trial.Slot != "b" || !d.holds(bootchain.B, "1.0") {
					t.Fatalf("update of a slot with other bytes: %v, trial %+v", err, st.Trial)
				}
				return
			}
			if !errors.Is(err, ErrNothingNew) || st.Trial != nil || st.Download != nil || st.Slots["a"].Version != "1.0" || st.Slots["a"].Serial != 1 || st.Serials["stable"] != 1 {
				t.Fatalf("flashed release not adopted: %v, state %+v", err, st)
			}
			if s := d.boot.PowerOn(); s != bootchain.A {
				t.Fatalf("adopting rebooted into %s", s)
			}
			if err := agent().Update(context.Background()); !errors.Is(err, ErrNothingNew) {
				t.Errorf("second check: %v", err)
			}
			r.publish(t, "2.0", false)
			if err := agent().Update(context.Background()); err != nil || !d.holds(bootchain.B, "2.0") {
				t.Fatalf("next release after adopting: %v", err)
			}
		})
	}
}
