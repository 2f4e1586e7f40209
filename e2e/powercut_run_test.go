package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/disk/fat"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/disk/mbr"
	"github.com/pibake/pibake/provision"
	"github.com/pibake/pibake/vm"
)

// How a cut is made. QEMU gets SIGKILL: no shutdown, no flush, nothing of
// the guest survives but what its kernel had already handed to the
// virtual disk. The drive is vm's (raw, QEMU's default cache=writeback):
// a write QEMU has made reaches the host's page cache, which outlives the
// process, so the card keeps every write the guest saw completed and
// loses the guest's own page cache (dirty pages, the ext4 and FAT
// buffers, a journal transaction not yet committed) and whatever request
// was in flight, which may land in part. That is the power cut of a card
// with no volatile write cache of its own, or one that honours flushes.

// soakServer is the update server of the campaign, on loopback: the
// repository of the release the current leg offers, and the switch that
// tells the guest to power off (GET /e2e-soak/poweroff: 200 once set).
type soakServer struct {
	addr string
	repo atomic.Pointer[string]
	off  atomic.Bool
}

func startSoakServer() (*soakServer, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	s := &soakServer{addr: ln.Addr().String()}
	empty := ""
	s.repo.Store(&empty)
	srv := &http.Server{Handler: s}
	go srv.Serve(ln)
	return s, func() { srv.Close() }, nil
}

func (s *soakServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/e2e-soak/poweroff" {
		if s.off.Load() {
			io.WriteString(w, "power off\n")
			return
		}
		http.NotFound(w, r)
		return
	}
	dir := *s.repo.Load()
	if dir == "" {
		http.NotFound(w, r)
		return
	}
	http.FileServer(http.Dir(dir)).ServeHTTP(w, r)
}

// runResult is how one QEMU run of a leg ended.
type runResult struct {
	log           string
	killed        bool          // the campaign cut the power
	harvested     bool          // stopped at the clean reboot into the trial, for a checkpoint
	poweredOff    bool          // the guest powered off when told to
	settled       *soakStatus   // the verdict line, if the device settled
	last          *soakStatus   // the last status line
	hit           string        // the phase the cut landed in
	into, at      time.Duration // how far into that phase, and since QEMU started
	missed        bool          // the aimed phase never began before the verdict
	unverified    []string      // status lines of a boot the state does not vouch for
	verifiedLines int           // status lines of a boot it vouches for
	done          map[string]time.Duration
	err           error
}

// runSpec is what one run does: the leg, the card, and the cut to make
// (nil: none) after the aimed phase begins.
type runSpec struct {
	leg     *leg
	lane    *soakLane // its card is disk; its server is the guest's
	disk    string
	name    string
	cut     *plannedCut
	delay   time.Duration
	harvest bool    // stop at the reboot into the trial (leg.mid)
	phases  []phase // the phases to follow, if not the leg's
}

// run boots the card once, until the guest powers off after its verdict,
// the cut, the harvest stop or the timeout.
func (c *campaign) run(sp runSpec) runResult {
	res := runResult{log: filepath.Join(c.dir, sp.name+".log")}
	if sp.phases == nil {
		sp.phases = sp.leg.phases
	}
	logf, err := os.Create(res.log)
	if err != nil {
		res.err = err
		return res
	}
	defer logf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	sp.lane.srv.off.Store(false)
	pr, pw := io.Pipe()
	cmd, cleanup, err := vm.Command(ctx, vm.Options{Image: sp.disk, Persist: true, GuestCmd: sp.lane.cmds, CPUs: c.cfg.smp, Stdout: io.MultiWriter(logf, pw)})
	if err != nil {
		res.err = err
		return res
	}
	defer cleanup()
	if err := cmd.Start(); err != nil {
		res.err = err
		return res
	}
	w := &watcher{spec: sp, cmd: cmd, res: &res, start: time.Now(), tr: newTracker(sp.phases)}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			w.line(sc.Text())
		}
		io.Copy(io.Discard, pr)
	}()
	werr := cmd.Wait()
	pw.Close()
	wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	res.done = w.tr.done
	switch {
	case res.killed || res.harvested:
	case ctx.Err() != nil:
		res.err = fmt.Errorf("no verdict after %s", runTimeout)
	case werr != nil:
		res.err = fmt.Errorf("qemu: %w", werr)
	case !w.poweroff:
		res.err = errors.New("the guest powered off by itself")
	default:
		res.poweredOff = true
	}
	return res
}

// runTimeout bounds one QEMU run of a leg.
const runTimeout = 20 * time.Minute

// watcher reads one run's console.
type watcher struct {
	spec      runSpec
	cmd       *exec.Cmd
	res       *runResult
	start     time.Time
	mu        sync.Mutex
	tr        *tracker
	scheduled bool // the cut's timer is set
	settled   bool
	poweroff  bool // the guest said it powers off
	trialBoot bool // the agent said it reboots into the trial
	// failedTrial is the release the agent said failed its trial in this
	// boot: until the reset, the state rightly vouches no more for it.
	failedTrial string
}

func (w *watcher) line(text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at := time.Since(w.start)
	entered := w.tr.feed(text, at)
	cut := w.spec.cut
	if cut != nil && !w.scheduled && entered == cut.phase {
		w.scheduled = true
		time.AfterFunc(w.spec.delay, w.kill)
	}
	if strings.Contains(text, "E2E-SOAK-POWEROFF") {
		w.poweroff = true
	}
	if strings.Contains(text, "rebooting into the trial") {
		w.trialBoot = true
	}
	if w.spec.harvest && w.trialBoot && strings.Contains(text, "reboot: Restarting system") && (cut == nil || w.res.killed) {
		// The guest shut down cleanly and resets: the card is a
		// checkpoint (the trial armed, nothing in flight).
		w.res.harvested = true
		w.cmd.Process.Kill()
		return
	}
	if strings.Contains(text, ubootBanner) {
		w.failedTrial = ""
	}
	if v := failingTrial(text); v != "" {
		w.failedTrial = v
	}
	s, ok := parseSoak(text)
	if !ok {
		return
	}
	w.res.last = &s
	if err := s.verified(); err != nil {
		if !s.rollbackWindow(w.failedTrial) {
			w.res.unverified = append(w.res.unverified, err.Error()+": "+s.line)
		}
	} else if s.statusErr == nil {
		w.res.verifiedLines++
	}
	if w.spec.leg.verdict(s) != nil {
		return
	}
	if !w.settled {
		w.settled = true
		w.res.settled = &s
	}
	switch {
	case cut == nil || w.res.killed:
		w.spec.lane.srv.off.Store(true)
	case !w.scheduled:
		// The aimed phase never began: no cut in this run.
		w.res.missed = true
		w.spec.lane.srv.off.Store(true)
	}
}

// kill cuts the power: SIGKILL to QEMU, and the phase it landed in.
func (w *watcher) kill() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.res.killed || w.res.harvested || w.poweroff {
		return
	}
	at := time.Since(w.start)
	w.res.hit, w.res.into = w.tr.current(at, w.settled)
	w.res.at = at
	w.res.killed = true
	w.cmd.Process.Kill()
}

// copyDisk copies src to dst keeping its holes, then makes dst size
// bytes (src's size if 0, more to model a bigger card).
func copyDisk(dst, src string, size int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if err := copyRange(out, in, 0, st.Size(), 0); err != nil {
		out.Close()
		return err
	}
	if size < st.Size() {
		size = st.Size()
	}
	if err := out.Truncate(size); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// copyRange copies n bytes of in from off to out at outOff, skipping the
// holes of in (SEEK_DATA, SEEK_HOLE).
func copyRange(out, in *os.File, off, n, outOff int64) error {
	const seekData, seekHole = 3, 4
	end := off + n
	buf := make([]byte, 4<<20)
	for pos := off; pos < end; {
		data, err := in.Seek(pos, seekData)
		if err != nil || data >= end {
			return nil // ENXIO: no data after pos
		}
		hole, err := in.Seek(data, seekHole)
		if err != nil {
			return err
		}
		hole = min(hole, end)
		for p := data; p < hole; {
			k := min(int64(len(buf)), hole-p)
			if _, err := in.ReadAt(buf[:k], p); err != nil {
				return err
			}
			if _, err := out.WriteAt(buf[:k], p-off+outOff); err != nil {
				return err
			}
			p += k
		}
		pos = hole
	}
	return nil
}

// partition returns where partition number n of the card is.
func partition(disk string, n int) (off, size int64, err error) {
	f, err := os.Open(disk)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	_, entries, err := mbr.Read(f)
	if err != nil {
		return 0, 0, err
	}
	for _, e := range entries {
		if e.Number == n {
			return int64(e.Start) * mbr.SectorSize, int64(e.Sectors) * mbr.SectorSize, nil
		}
	}
	return 0, 0, fmt.Errorf("%s has no partition %d", disk, n)
}

// extract copies partition n of the card into its own file (e2fsck and
// debugfs read a file, not a range of one).
func extract(disk string, n int, dst string) error {
	off, size, err := partition(disk, n)
	if err != nil {
		return err
	}
	in, err := os.Open(disk)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if err := copyRange(out, in, off, size, 0); err != nil {
		out.Close()
		return err
	}
	if err := out.Truncate(size); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// partitionSum is the sha256 of the first n bytes of partition part.
func partitionSum(disk string, part int, n int64) (string, error) {
	off, size, err := partition(disk, part)
	if err != nil {
		return "", err
	}
	if n > size {
		return "", fmt.Errorf("partition %d is %d bytes, the artifact %d", part, size, n)
	}
	f, err := os.Open(disk)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, off, n)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkDisk reads the powered-off card: the data filesystem (e2fsck -fn),
// the application and provisioned files in it, the booted slot's
// partitions against the release's signed artifacts, and bootsel (no
// provisioning file, no secret). It returns what is wrong, each prefixed
// with its kind.
func (c *campaign) checkDisk(l *leg, disk, keep string) []string {
	var bad []string
	data := strings.TrimSuffix(disk, ".img") + "-data.img" // the lane's
	defer os.Remove(data)
	if err := extract(disk, layout.Number(layout.Data), data); err != nil {
		return []string{"check: " + err.Error()}
	}
	if out, err := exec.Command("e2fsck", "-fn", data).CombinedOutput(); err != nil {
		bad = append(bad, fmt.Sprintf("data: e2fsck -fn: %v: %s", err, tail(string(out), 15)))
		copyDisk(keep+"-data.img", data, 0)
	}
	for path, want := range map[string]string{"/soak/marker": markerSum(), "/provisioned/soak": sumOf(soakProv + "\n")} {
		out, err := exec.Command("debugfs", "-R", "cat "+path, data).Output()
		if got := sumOf(string(out)); err != nil || got != want {
			bad = append(bad, fmt.Sprintf("data: %s on the data partition: sha256 %s (%v), want %s", path, got, err, want))
		}
	}
	bad = append(bad, c.checkSlot(disk, l.slot, l.version)...)
	bad = append(bad, checkBootsel(disk)...)
	return bad
}

// checkBootsel: the provisioning file was erased from bootsel and its
// secret is nowhere in the partition (a deleted file's clusters included).
func checkBootsel(disk string) []string {
	off, size, err := partition(disk, layout.Number(layout.Bootsel))
	if err != nil {
		return []string{"check: " + err.Error()}
	}
	f, err := os.Open(disk)
	if err != nil {
		return []string{"check: " + err.Error()}
	}
	defer f.Close()
	raw := make([]byte, size)
	if _, err := f.ReadAt(raw, off); err != nil {
		return []string{"check: bootsel: " + err.Error()}
	}
	var bad []string
	if bytes.Contains(raw, []byte(soakSecret)) {
		bad = append(bad, "provisioning: the Wi-Fi passphrase is still on bootsel")
	}
	fsys, err := fat.Open(bytes.NewReader(raw), size)
	if err != nil {
		return append(bad, "provisioning: bootsel: "+err.Error())
	}
	switch _, err := fsys.ReadFile(provision.FileName); {
	case err == nil:
		bad = append(bad, "provisioning: "+provision.FileName+" is still on bootsel")
	case !errors.Is(err, fs.ErrNotExist):
		bad = append(bad, "bootsel: "+err.Error())
	}
	return bad
}

// checkSlot compares the slot's boot and root partitions with the signed
// artifacts of the release it must hold.
func (c *campaign) checkSlot(disk, slot, version string) []string {
	rel := c.releases[version]
	if rel == nil || rel.doc == nil {
		return []string{"check: no document for " + version}
	}
	s := bootchain.Slot(slot)
	var bad []string
	for _, art := range rel.doc.Artifacts {
		part := 0
		switch art.Name {
		case "boot":
			part = s.BootPartition()
		case "root":
			part = s.RootPartition()
		default:
			continue
		}
		got, err := partitionSum(disk, part, art.Size)
		if err != nil || got != art.SHA256 {
			bad = append(bad, fmt.Sprintf("slot: slot %s's %s partition does not hold %s's signed %s artifact (sha256 %s, %v)", slot, art.Name, version, art.Name, got, err))
		}
	}
	return bad
}

func sumOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// markerSum is the sha256 of the application file e2e-soak writes: the
// numbers 1 to 200000, one a line (seq 1 200000).
func markerSum() string {
	h := sha256.New()
	w := bufio.NewWriter(h)
	for i := 1; i <= 200000; i++ {
		fmt.Fprintf(w, "%d\n", i)
	}
	w.Flush()
	return hex.EncodeToString(h.Sum(nil))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
