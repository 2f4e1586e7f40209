package system

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/firmware"
)

// TestBootOKIsMarkGood: pibake-boot-ok, the shell script images without
// the updater use, marks a slot good exactly as the updater's MarkGood
// (bootchain.State) does, from every state, from U-Boot's NUL-ended
// export, and from the updater's copy when the state file is torn.
func TestBootOKIsMarkGood(t *testing.T) {
	script := filepath.Join(t.TempDir(), "boot-ok")
	os.WriteFile(script, []byte(strings.ReplaceAll(bootOKScript, "@TRIES@", "3")), 0o755)
	run := func(slot string, files map[string]string) string {
		t.Helper()
		dir := t.TempDir()
		for n, d := range files {
			os.WriteFile(filepath.Join(dir, n), []byte(d), 0o644)
		}
		cmd := exec.Command("sh", script)
		cmd.Env = append(os.Environ(), "PIBAKE_BOOTSEL="+dir, "PIBAKE_CMDLINE=console=ttyS1 root=PARTUUID=1234abcd-05 pibake.slot="+slot)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("boot-ok: %v: %s", err, out)
		}
		main, _ := os.ReadFile(filepath.Join(dir, bootchain.StateFile))
		cp, _ := os.ReadFile(filepath.Join(dir, bootchain.AgentStateFile))
		if string(main) != string(cp) {
			t.Fatalf("state file %q and the copy %q differ", main, cp)
		}
		return string(main)
	}
	n := 0
	for _, order := range [][]bootchain.Slot{{bootchain.A, bootchain.B}, {bootchain.B, bootchain.A}} {
		for a := 0; a <= bootchain.MaxTries; a++ {
			for b := 0; b <= bootchain.MaxTries; b++ {
				st := bootchain.State{Order: order, Left: map[bootchain.Slot]int{bootchain.A: a, bootchain.B: b}}
				for _, s := range bootchain.Slots() {
					want := string(st.MarkGood(s).Marshal())
					// As U-Boot's env export writes it: sorted, NUL at the end.
					exported := "BOOT_A_LEFT=" + itoa(a) + "\nBOOT_B_LEFT=" + itoa(b) + "\nBOOT_ORDER=" + strings.ToUpper(string(order[0])+" "+string(order[1])) + "\n\x00"
					if got := run(string(s), map[string]string{bootchain.StateFile: exported}); got != want {
						t.Errorf("%q, slot %s good: boot-ok writes %q, MarkGood %q", exported, s, got, want)
					}
					// Torn state file: the copy holds the state.
					if got := run(string(s), map[string]string{bootchain.StateFile: "BOOT_ORDER=B", bootchain.AgentStateFile: string(st.Marshal())}); got != want {
						t.Errorf("torn, copy %q, slot %s: boot-ok writes %q, MarkGood %q", st.Marshal(), s, got, want)
					}
					n += 2
				}
			}
		}
	}
	t.Logf("%d states: boot-ok and MarkGood agree", n)
}

func itoa(n int) string { return string(rune('0' + n)) }

// TestBootOKReadsTheCmdline: boot-ok parses /proc/cmdline in shell; on
// every board's command line as bootchain writes it for each slot, it
// finds the slot bootchain's parser finds (the one it marks good) and the
// disk (the bootsel partition it looks up with findfs).
func TestBootOKReadsTheCmdline(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "boot-ok")
	os.WriteFile(script, []byte(strings.ReplaceAll(bootOKScript, "@TRIES@", "3")), 0o755)
	// A findfs that records what it is asked for and finds nothing.
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	asked := filepath.Join(dir, "findfs.arg")
	os.WriteFile(filepath.Join(bin, "findfs"), []byte("#!/bin/sh\necho \"$1\" > "+asked+"\nexit 1\n"), 0o755)
	n := 0
	for _, b := range firmware.Boards {
		for _, s := range bootchain.Slots() {
			line, err := bootchain.KernelCmdline{Args: firmware.CmdlineArgs(b), Signature: 0x1cf9920d}.For(s)
			if err != nil {
				t.Fatal(err)
			}
			want, err := bootchain.ParseCmdline(line)
			if err != nil || want.Slot != s {
				t.Fatalf("%q: bootchain reads %+v (%v)", line, want, err)
			}
			bootsel := t.TempDir()
			cmd := exec.Command("sh", script)
			cmd.Env = append(os.Environ(), "PIBAKE_BOOTSEL="+bootsel, "PIBAKE_CMDLINE="+line)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "slot "+want.Slot.String()+" marked good") {
				t.Errorf("board %s, %q: boot-ok says %q (%v), bootchain reads slot %s", b.Name, line, out, err, want.Slot)
			}
			cmd = exec.Command("sh", script)
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "PIBAKE_CMDLINE="+line)
			os.Remove(asked)
			_ = cmd.Run() // findfs finds nothing: boot-ok stops there
			got, _ := os.ReadFile(asked)
			if wantArg := fmt.Sprintf("PARTUUID=%08x-01", want.Signature); strings.TrimSpace(string(got)) != wantArg {
				t.Errorf("board %s, %q: boot-ok looks for bootsel at %q, want %s", b.Name, line, got, wantArg)
			}
			n++
		}
	}
	t.Logf("%d command lines: boot-ok and bootchain read the same slot and disk", n)
}
