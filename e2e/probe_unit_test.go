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
	cmd := exec.Command(qemu, "-M", "raspi3b", "-m", "1G", "-display", "none", "-monitor", "none", "-nic", "none",
		"-chardev", "stdio,id=c,mux=on", "-serial", "chardev:c", "-serial", "chardev:c", "-mon", "chardev=c,mode=readline")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = r, &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	time.Sleep(time.Second)
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
