package system

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/internal/bootstate"
)

// TestBootOKIsMarkGood: pibake-boot-ok, the shell script images without
// the updater use, marks a slot good exactly as the updater's MarkGood
// (internal/bootstate) does, from every state, from U-Boot's NUL-ended
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
		main, _ := os.ReadFile(filepath.Join(dir, bootstate.StateFile))
		cp, _ := os.ReadFile(filepath.Join(dir, bootstate.AgentStateFile))
		if string(main) != string(cp) {
			t.Fatalf("state file %q and the copy %q differ", main, cp)
		}
		return string(main)
	}
	n := 0
	for _, order := range [][]bootstate.Slot{{bootstate.A, bootstate.B}, {bootstate.B, bootstate.A}} {
		for a := 0; a <= bootstate.MaxTries; a++ {
			for b := 0; b <= bootstate.MaxTries; b++ {
				st := bootstate.State{Order: order, Left: map[bootstate.Slot]int{bootstate.A: a, bootstate.B: b}}
				for _, s := range []bootstate.Slot{bootstate.A, bootstate.B} {
					want := string(st.MarkGood(s).Marshal())
					// As U-Boot's env export writes it: sorted, NUL at the end.
					exported := "BOOT_A_LEFT=" + itoa(a) + "\nBOOT_B_LEFT=" + itoa(b) + "\nBOOT_ORDER=" + strings.ToUpper(string(order[0])+" "+string(order[1])) + "\n\x00"
					if got := run(string(s), map[string]string{bootstate.StateFile: exported}); got != want {
						t.Errorf("%q, slot %s good: boot-ok writes %q, MarkGood %q", exported, s, got, want)
					}
					// Torn state file: the copy holds the state.
					if got := run(string(s), map[string]string{bootstate.StateFile: "BOOT_ORDER=B", bootstate.AgentStateFile: string(st.Marshal())}); got != want {
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
