package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestProbeSequence types the probe into a Pi machine's console mux as
// vm.piArgs sets it up (no image: the CPUs have nothing to run) and checks
// that QEMU's monitor answered both questions and that the Enter went
// back to the console, not to the monitor.
func TestProbeSequence(t *testing.T) {
	qemu, err := exec.LookPath("qemu-system-aarch64")
	if err != nil {
		t.Skip("no qemu-system-aarch64")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	var out bytes.Buffer
	cmd := exec.Command(qemu, "-M", "raspi3b", "-m", "1G", "-display", "none", "-monitor", "none", "-nic", "none", "-name", "debug-threads=on",
		"-chardev", "stdio,id=c,mux=on", "-serial", "chardev:c", "-serial", "chardev:c", "-mon", "chardev=c,mode=readline")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = r, &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	time.Sleep(time.Second)
	// The probe's host view names the guest's CPU threads.
	if v, err := threadView(cmd.Process.Pid, 500*time.Millisecond); err != nil || !strings.Contains(v, `"CPU 3/TCG"`) {
		t.Errorf("the host's view of QEMU's threads: %v\n%s\nwant its four CPU threads by name", err, v)
	} else {
		t.Log(v)
	}
	// After the probe, "info status" typed on the console must not reach
	// the monitor.
	w.WriteString(probeSequence(2) + "info status\n")
	time.Sleep(3 * time.Second)
	cmd.Process.Kill()
	cmd.Wait()
	got := out.String()
	for _, want := range []string{"CPU #0", "CPU #3", "PC="} {
		if !strings.Contains(got, want) {
			t.Errorf("monitor output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "VM status") {
		t.Errorf("the probe left the focus on the monitor:\n%s", got)
	}
}

// TestThreadView: a process with a thread that spins and one that
// sleeps, seen the way a probe sees QEMU's threads.
func TestThreadView(t *testing.T) {
	name, state, cpu, err := parseThreadStat("28229 (CPU 0/TCG) R 28200 28200 28200 0 -1 4194368 1031 0 0 0 1234 56 0 0 20 0 4 0 100 0")
	if err != nil || name != "CPU 0/TCG" || state != "R" || cpu != 12900*time.Millisecond {
		t.Errorf("parseThreadStat: %q %q %s %v; want \"CPU 0/TCG\" R 12.9s", name, state, cpu, err)
	}
	for _, bad := range []string{"", "28229 CPU R 1", "1 (x) R 1 2 3", "1 (x) R 1 1 1 0 -1 0 0 0 0 0 a 5"} {
		if _, _, _, err := parseThreadStat(bad); err == nil {
			t.Errorf("parseThreadStat(%q): no error", bad)
		}
	}
	spin := exec.Command("sh", "-c", "while :; do :; done")
	if err := spin.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { spin.Process.Kill(); spin.Wait() }()
	nap := exec.Command("sleep", "30")
	if err := nap.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { nap.Process.Kill(); nap.Wait() }()
	time.Sleep(200 * time.Millisecond)
	one := func(pid int) threadUse {
		t.Helper()
		rows, err := threadUses(pid, time.Second)
		if err != nil || len(rows) != 1 {
			t.Fatalf("threads of pid %d: %+v, %v; want one", pid, rows, err)
		}
		return rows[0]
	}
	// A spinning shell on a shared machine gets at least a tenth of a core.
	if r := one(spin.Process.Pid); r.name != "sh" || r.state != "R" || r.used < 100*time.Millisecond {
		t.Errorf("the spinning shell: %+v; want it running with some CPU", r)
	}
	if r := one(nap.Process.Pid); r.name != "sleep" || r.state != "S" || r.wchan == "" || r.wchan == "0" || r.used != 0 {
		t.Errorf("the sleeping process: %+v; want it asleep in a kernel function, no CPU used", r)
	}
	if _, err := threadView(1<<30, 0); err == nil {
		t.Error("threadView of a process that does not exist: no error")
	}
}
