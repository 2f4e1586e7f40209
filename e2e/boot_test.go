// Package e2e boots real pibake images under QEMU: `make e2e` runs it
// (PIBAKE_E2E=1). The guest has restricted user networking and no
// forwards: everything is checked over the serial console.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pibake/pibake/builder"
	"github.com/pibake/pibake/disk/fat"
	"github.com/pibake/pibake/disk/fat/fatcheck"
	"github.com/pibake/pibake/disk/inspect"
	"github.com/pibake/pibake/provision"
	"github.com/pibake/pibake/vm"
	"go.yaml.in/yaml/v3"
)

func needE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("PIBAKE_E2E") == "" {
		t.Skip("set PIBAKE_E2E=1 to boot images under QEMU (make e2e does)")
	}
}

var (
	built    string
	buildErr error
	once     sync.Once
)

// buildE2E builds testdata/images/e2e.yaml for the qemu board, once per run.
func buildE2E(t *testing.T) string {
	t.Helper()
	once.Do(func() { built, buildErr = build(t) })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// build builds the default image, images/demo.yaml, for the qemu board,
// with one addition: the e2e-report unit (testdata/) that prints the
// system's state on the console and powers off. Everything else (packages,
// lock, users, overlays, units) is the demo's own.
func build(t *testing.T) (string, error) {
	return buildVariant(t, variant{overlay: "e2e", service: "e2e-report"})
}

// variant is what an e2e build changes in images/demo.yaml (or in the
// definition it names).
type variant struct {
	def              string // definition in images/, "" for demo
	version          string // "" keeps the demo's
	overlay, service string // added from testdata/
	updater          string // YAML of an updater section, "" for none
	keys             string // folder copied to keys/ in the checkout
	hello            string // HELLO_VERSION of the demo's hello container, "" keeps the demo's
	board            string // "" for qemu
	partitions       map[string]string
}

func buildVariant(t *testing.T, v variant) (string, error) {
	if v.def == "" {
		v.def = "demo"
	}
	repo, err := os.MkdirTemp("", "pibake-e2e-repo-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(repo)
	type cp struct{ src, dst string }
	copies := []cp{
		{"../overlays", "overlays"}, {"../services", "services"}, {"../images/" + v.def + ".lock", "images/" + v.def + ".lock"},
		{"../examples", "examples"}, {"../go.mod", "go.mod"}, {"../go.sum", "go.sum"},
		{"testdata/overlays/" + v.overlay, "overlays/" + v.overlay}, {"testdata/services/" + v.service + ".service", "services/" + v.service + ".service"},
	}
	if v.keys != "" {
		copies = append(copies, cp{v.keys, "keys"})
	}
	for _, c := range copies {
		if err := copyTree(c.src, filepath.Join(repo, c.dst)); err != nil {
			return "", err
		}
	}
	def, err := edit("../images/"+v.def+".yaml", v)
	if err != nil {
		return "", err
	}
	defPath := filepath.Join(repo, "images", v.def+".yaml")
	if err := os.WriteFile(defPath, def, 0o644); err != nil {
		return "", err
	}
	out, err := os.MkdirTemp("", "pibake-e2e-build-")
	if err != nil {
		return "", err
	}
	start := time.Now()
	if v.board == "" {
		v.board = "qemu"
	}
	res, err := builder.Build(context.Background(), builder.Options{Definition: defPath, Board: v.board, OutDir: filepath.Join(out, v.def)})
	if err != nil {
		return "", err
	}
	t.Logf("built %s %s in %s", res.Image, res.Manifest.Version, time.Since(start).Round(time.Second))
	return res.Image, nil
}

// edit returns the definition with the variant's changes.
func edit(path string, v variant) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	top := doc.Content[0]
	value := func(key string) *yaml.Node {
		for i := 0; i+1 < len(top.Content); i += 2 {
			if top.Content[i].Value == key {
				return top.Content[i+1]
			}
		}
		return nil
	}
	name := func(n string) *yaml.Node {
		return &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: "name"}, {Kind: yaml.ScalarNode, Value: n}}}
	}
	ov, sv := value("overlays"), value("services")
	if ov == nil || sv == nil {
		return nil, fmt.Errorf("%s has no overlays or services list", path)
	}
	ov.Content = append(ov.Content, name(v.overlay))
	sv.Content = append(sv.Content, name(v.service))
	if v.version != "" {
		value("version").Value = v.version
	}
	if v.hello != "" {
		cs := value("containers")
		if cs == nil || len(cs.Content) == 0 {
			return nil, fmt.Errorf("%s has no containers", path)
		}
		env := mapValue(cs.Content[0], "environment")
		if env == nil || mapValue(env, "HELLO_VERSION") == nil {
			return nil, fmt.Errorf("%s: the first container has no environment.HELLO_VERSION", path)
		}
		mapValue(env, "HELLO_VERSION").Value = v.hello
	}
	if len(v.partitions) > 0 {
		ps := value("partitions")
		if ps == nil {
			return nil, fmt.Errorf("%s has no partitions section", path)
		}
		for k, size := range v.partitions {
			n := mapValue(ps, k)
			if n == nil {
				return nil, fmt.Errorf("%s: no partitions.%s", path, k)
			}
			n.Value = size
		}
	}
	if v.updater != "" {
		var u yaml.Node
		if err := yaml.Unmarshal([]byte(v.updater), &u); err != nil {
			return nil, err
		}
		top.Content = append(top.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "updater"}, u.Content[0])
		// No time server answers in QEMU's restricted network: wait less
		// than the agent's first poll (1 min), so the wait (and its
		// warning) is exercised without slowing the story.
		var n yaml.Node
		if err := yaml.Unmarshal([]byte("time_wait: 30s\n"), &n); err != nil {
			return nil, err
		}
		top.Content = append(top.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "network"}, n.Content[0])
	}
	return yaml.Marshal(&doc)
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, data, info.Mode().Perm())
	})
}

func copyImage(t *testing.T, src string, grow int64) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "disk.img")
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := in.Stat()
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Truncate(st.Size() + grow); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if tg, err := vm.ReadTarget(dst); err == nil && tg.Board.Name == "qemu" {
		editCmdline(t, dst, "qemu")
	}
	return dst
}

// report is what e2e-report printed, plus timing.
type report struct {
	fields  map[string]string
	elapsed time.Duration
	console string
}

// boot runs the image until the guest powers off and returns its report.
func boot(t *testing.T, img, name string) report {
	t.Helper()
	return bootWith(t, name, vm.Options{Image: img, Persist: true}, 10*time.Minute)
}

// bootWith boots with the given options until the guest powers off: QEMU
// exits by itself on virt; a Pi machine's power-off is a reset in QEMU's
// model (the watchdog), so the boot ends when the kernel says it powers
// down.
func bootWith(t *testing.T, name string, opts vm.Options, timeout time.Duration) report {
	t.Helper()
	return bootHook(t, name, opts, timeout, nil)
}

// bootHook is bootWith that also hands every console line to hook.
func bootHook(t *testing.T, name string, opts vm.Options, timeout time.Duration, hook func(line string, at time.Duration)) report {
	t.Helper()
	var multiUser time.Duration
	run := runConsole(t, name, opts, timeout, func(line string, at time.Duration) bool {
		if hook != nil {
			hook(line, at)
		}
		if multiUser == 0 && strings.Contains(line, "E2E state=") {
			multiUser = at
		}
		return strings.Contains(line, "reboot: Power down")
	}, func(line string) time.Duration {
		if strings.Contains(line, "E2E-DONE") {
			return powerOffGrace
		}
		return 0
	})
	if run.graced {
		t.Logf("WARNING %s: the guest printed its report and synced its disk, then did not power down within %s: QEMU stopped (seen once on QEMU's raspi3b under load, the console silent mid-shutdown)", name, powerOffGrace)
	}
	if run.err != nil && run.stopAt == 0 && !run.graced {
		t.Fatalf("%s: %v (console in %s)", name, run.err, run.log)
	}
	r := report{fields: map[string]string{}, console: run.console, elapsed: multiUser}
	for _, line := range strings.Split(run.console, "\n") {
		line = strings.TrimSpace(line)
		if i := strings.Index(line, "E2E "); i >= 0 {
			k, v, _ := strings.Cut(line[i+4:], "=")
			r.fields[k] = v
		}
	}
	if _, ok := r.fields["state"]; !ok || !strings.Contains(run.console, "E2E-DONE") {
		t.Fatalf("%s: no report on the console after %s (console in %s)", name, run.elapsed.Round(time.Second), run.log)
	}
	t.Logf("%s: QEMU start to multi-user (report on the console): %s; QEMU start to power-off: %s; guest says: %s; console log %s",
		name, multiUser.Round(100*time.Millisecond), run.elapsed.Round(100*time.Millisecond), r.fields["analyze"], run.log)
	return r
}

// powerOffGrace is how long a guest that printed its report (and synced
// its disk) has to power down before QEMU is stopped.
const powerOffGrace = 3 * time.Minute

// consoleRun is what one QEMU run printed on the console.
type consoleRun struct {
	console, log    string
	elapsed, stopAt time.Duration // since QEMU started; stopAt 0: stop never said yes
	graced          bool          // ended by a grace timer, not by stop
	quiet           bool          // ended because the console was silent for quietLimit
	err             error
}

// runConsole boots with the given options, the console going to a log
// file in the temporary folder, and calls stop with each console line and
// the time since QEMU started; QEMU is ended once stop returns true, when
// it exits by itself, or when the guest makes no progress: no console
// line for quietLimit (consoleRun.quiet). timeout is what the story takes
// on an idle machine; a busy one may take longer as long as the guest goes
// on printing, up to slack times timeout.
//
// grace, if not nil, may answer a line with a duration: QEMU is then
// ended that long after it unless stop says yes first (consoleRun.graced),
// or a later line is answered with a negative duration, which disarms it.
func runConsole(t *testing.T, name string, opts vm.Options, timeout time.Duration, stop func(line string, at time.Duration) bool, grace ...func(line string) time.Duration) consoleRun {
	t.Helper()
	logPath := filepath.Join(os.TempDir(), "pibake-e2e-"+name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), slack*timeout)
	defer cancel()
	var console bytes.Buffer
	var graced, quiet atomic.Bool
	r := consoleRun{log: logPath}
	pr, pw := io.Pipe()
	start := time.Now()
	var lastLine atomic.Int64
	lastLine.Store(start.UnixNano())
	var probe *prober
	if opts.Stdin == nil {
		// An *os.File, so that QEMU reads it directly: exec's copying
		// goroutine would keep Wait waiting for a reader that never ends.
		inR, inW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer inR.Close()
		defer inW.Close()
		opts.Stdin = inR
		probe = newProber(t, name, opts.Image, inW)
		if probe != nil {
			opts.Started = probe.started
			// Name QEMU's threads ("CPU 0/TCG"), for the probe's view.
			opts.Extra = append(append([]string(nil), opts.Extra...), "-name", "debug-threads=on")
		}
	}
	stopQuiet := watchQuiet(&lastLine, probe, func() { quiet.Store(true); cancel() })
	defer stopQuiet()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var timer *time.Timer
		for sc.Scan() {
			if probe.progress() {
				lastLine.Store(time.Now().UnixNano())
			}
			console.WriteString(sc.Text() + "\n")
			if r.stopAt == 0 && stop(sc.Text(), time.Since(start)) {
				r.stopAt = time.Since(start)
				if timer != nil {
					timer.Stop()
				}
				cancel()
			}
			if len(grace) > 0 && r.stopAt == 0 {
				switch d := grace[0](sc.Text()); {
				case d > 0 && timer == nil:
					timer = time.AfterFunc(d, func() { graced.Store(true); cancel() })
				case d < 0 && timer != nil:
					timer.Stop()
					timer = nil
				}
			}
		}
		io.Copy(io.Discard, pr) // a line past the buffer: keep QEMU writing
	}()
	opts.Stdout = io.MultiWriter(logf, pw)
	r.err = runQEMU(ctx, opts)
	pw.Close()
	wg.Wait()
	r.elapsed = time.Since(start)
	r.console = console.String()
	r.graced = graced.Load() && r.stopAt == 0
	r.quiet = quiet.Load() && r.stopAt == 0 && !r.graced
	probe.report(r.stopAt != 0)
	if r.stopAt == 0 && !r.graced {
		switch {
		case r.quiet:
			r.err = fmt.Errorf("%s: the guest made no progress: no console line for %s, %s after QEMU started", name, quietLimit, r.elapsed.Round(time.Second))
		case ctx.Err() == context.DeadlineExceeded:
			r.err = fmt.Errorf("%s: still going after %s (%d x the %s an idle machine needs), the guest printing all along", name, slack*timeout, slack, timeout)
		}
	}
	return r
}

// quietLimit is how long a guest may print nothing before its story
// fails: no story waits that long in silence (the status lines change
// at least with each poll, each download step, each boot).
// PIBAKE_E2E_QUIET (a Go duration) changes it.
var quietLimit = envDuration("PIBAKE_E2E_QUIET", 10*time.Minute)

// slack is how many times its idle-machine time a story may take while
// its guest keeps making progress.
const slack = 3

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

// watchQuiet calls quiet once when last (a UnixNano) is more than
// quietLimit old, and shows probe each shorter silence; the returned
// function stops watching.
func watchQuiet(last *atomic.Int64, probe *prober, quiet func()) func() {
	done := make(chan struct{})
	go func() {
		var lastProbe time.Time
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				d := now.Sub(time.Unix(0, last.Load()))
				if d > quietLimit {
					quiet()
					return
				}
				probe.silent(d, &lastProbe)
			}
		}
	}()
	return func() { close(done) }
}

func expect(t *testing.T, r report, key, want string) {
	t.Helper()
	if got := r.fields[key]; got != want {
		t.Errorf("%s = %q, want %q", key, got, want)
	}
}

func dataSize(t *testing.T, r report) int64 {
	t.Helper()
	f := strings.Fields(r.fields["data"])
	if len(f) != 2 {
		t.Fatalf("data = %q", r.fields["data"])
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBoot boots the image twice: the first boot creates and grows the data
// partition and the device's identity; the second must find them again.
func TestBoot(t *testing.T) {
	story(t, laneEdge)
	img := copyImage(t, buildE2E(t), 1<<30) // a 1 GiB bigger "card"
	// The card is provisioned after flashing, as a user does it:
	// pibake-provision.yaml on bootsel (provision_test.go).
	key, pub := sshKey(t)
	putBootsel(t, img, map[string]string{provision.FileName: provisionFile(pub)})
	waitForSSH(t, img)
	first, login := provisionedBoot(t, "first-boot", img, key, "hostname; cat /data/e2e/api-token; stat -c '%a %U' /data/e2e/api-token")
	expect(t, first, "state", "running")
	expect(t, first, "failed", "")
	expect(t, first, "hostname", "edge-042")
	if want := "edge-042\n" + tokenSecret + "\n600 pi\n"; login != want {
		t.Errorf("SSH login with the provisioned key: %q, want %q", login, want)
	}
	expect(t, first, "provision", "active 1")
	expect(t, first, "wifi", "600 country=FR")
	expect(t, first, "datafile", "placed by provisioning")
	if !strings.HasPrefix(first.fields["timezone"], "Europe/Paris ") || !strings.HasSuffix(first.fields["timezone"], "zoneinfo/Europe/Paris") {
		t.Errorf("time zone %q", first.fields["timezone"])
	}
	if names := noSecrets(t, img, wifiSecret, tokenSecret); containsFold(names, provision.FileName) {
		t.Errorf("%s still on bootsel after first boot: %v", provision.FileName, names)
	}
	expect(t, first, "root", "/dev/vda5")
	expect(t, first, "slot", "a")
	expect(t, first, "tmp", "tmpfs")
	expect(t, first, "varfs", "overlay")
	expect(t, first, "hello", "active")
	// The address came from QEMU's DHCP server, as a Pi's from its LAN's,
	// and names resolve through the device's own resolver.
	if !strings.Contains(first.fields["net"], " 10.0.2.15/24 dynamic") {
		t.Errorf("wired address %q, want 10.0.2.15/24 from DHCP", first.fields["net"])
	}
	// (Only the test's name server knows the name.)
	if !strings.Contains(first.fields["resolv"], serverName+": "+serverAddr) {
		t.Errorf("resolving %s on the device: %q", serverName, first.fields["resolv"])
	}
	if !strings.HasPrefix(first.fields["hellosays"], "hello from pibake") {
		t.Errorf("the hello container answered %q", first.fields["hellosays"])
	}
	t.Logf("boot to healthy container: hello.service active at %s ms after the kernel started, multi-user.target at %s ms", first.fields["hello_at_ms"], first.fields["multiuser_at_ms"])
	if !strings.HasPrefix(first.fields["rootopts"], "ro,") {
		t.Errorf("root mounted %q, want read-only", first.fields["rootopts"])
	}
	if size := dataSize(t, first); size < 1<<30 {
		t.Errorf("data filesystem is %d bytes: not grown to the card (> 1 GiB)", size)
	}
	if len(first.fields["machineid"]) != 32 || first.fields["sshkey"] == "" || !strings.HasPrefix(first.fields["sshkey"], "SHA256:") {
		t.Errorf("identity: machine-id %q, ssh key %q", first.fields["machineid"], first.fields["sshkey"])
	}

	// The second boot has no network at all: no network device, as a box
	// whose site network is down or whose cable is out. It must come up
	// the same: networkd finds no link, network-online.target gives up
	// after its 30 s without failing anything, the container starts.
	putBootsel(t, img, map[string]string{sshMarker: "off: no network, no login\n"})
	second := bootWith(t, "second-boot-no-network", vm.Options{Image: img, Persist: true, NoNetwork: true}, 10*time.Minute)
	expect(t, second, "state", "running")
	expect(t, second, "failed", "")
	expect(t, second, "hostname", "edge-042")
	expect(t, second, "provision", "active 1") // applied once
	expect(t, second, "root", "/dev/vda5")
	expect(t, second, "hello", "active")
	if net := second.fields["net"]; net != "podman0 10.88.0.1/16 static;" && net != "" {
		t.Errorf("the guest without a network device has addresses %q (only podman's own bridge is expected)", net)
	}
	if second.fields["machineid"] != first.fields["machineid"] || second.fields["sshkey"] != first.fields["sshkey"] {
		t.Errorf("identity changed across reboot: machine-id %s -> %s, ssh key %s -> %s",
			first.fields["machineid"], second.fields["machineid"], first.fields["sshkey"], second.fields["sshkey"])
	}
	if dataSize(t, second) != dataSize(t, first) {
		t.Errorf("data size changed across reboot")
	}
	t.Logf("second boot, no network: hello.service active at %s ms after the kernel started, multi-user.target at %s ms", second.fields["hello_at_ms"], second.fields["multiuser_at_ms"])
}

// The slot fallback (slot A's kernel unbootable: U-Boot spends its three
// tries and boots B) is proven on emulated Pi 3 hardware, TestPi3Fallback,
// and on virt by the update story's prelude (ubootSkipsUnloadableKernel).

// breakKernel rewrites a boot partition with every file kept but the
// kernel replaced by zeros.
func breakKernel(t *testing.T, img, part string) {
	t.Helper()
	rewriteBootFiles(t, img, part, func(path string, data []byte) []byte {
		if path == builder.KernelFile {
			return make([]byte, 1<<20)
		}
		return data
	})
}

// rewriteBootFiles rewrites a FAT partition of the image with each file
// passed through edit.
func rewriteBootFiles(t *testing.T, img, part string, edit func(path string, data []byte) []byte) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	fsys, p, err := inspect.FAT(f, st.Size(), part)
	if err != nil {
		t.Fatal(err)
	}
	var files []fat.File
	err = fsys.Walk(func(path string, isDir bool, size int64) error {
		if isDir {
			return nil
		}
		data, err := fsys.ReadFile(path)
		files = append(files, fat.File{Path: path, Data: edit(path, data)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	id, err := fatcheck.VolumeID(io.NewSectionReader(f, p.Offset, p.Size))
	if err != nil {
		t.Fatal(err)
	}
	if err := fat.Write(io.NewOffsetWriter(f, p.Offset), fat.Options{Size: p.Size, Label: fsys.Label(), VolumeID: id, Time: time.Unix(1700000000, 0)}, files, nil); err != nil {
		t.Fatal(err)
	}
}

func TestMain(m *testing.M) {
	if addr := os.Getenv(relayEnv); addr != "" {
		os.Exit(relay(addr))
	}
	flag.Parse()
	setParallel()
	code := m.Run()
	printStoryTimes()
	if built != "" {
		os.RemoveAll(filepath.Dir(filepath.Dir(built)))
	}
	os.Exit(code)
}
