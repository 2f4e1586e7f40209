package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/vm"
)

// noNIC, in vm.Options.Extra, takes the guest's network device away
// (runQEMU): a device whose site network is down, or whose cable is out.
var noNIC = []string{"-nic", "none"}

// runQEMU is vm.Run, except that on virt an Extra of "-nic none" (noNIC)
// removes the user-mode NIC vm gives every virt guest: QEMU's -nic none
// only turns off the default NIC, not one already named. The Pi machines
// never get one.
//
// PIBAKE_E2E_QEMU_EXTRA, if set, is added to every QEMU's arguments (split
// at spaces): for a diagnostic run (-trace, -D, -qmp, -gdb).
func runQEMU(ctx context.Context, opts vm.Options) error {
	if extra := os.Getenv("PIBAKE_E2E_QEMU_EXTRA"); extra != "" {
		opts.Extra = append(append([]string(nil), opts.Extra...), strings.Fields(extra)...)
	}
	if !hasPair(opts.Extra, noNIC) {
		return vm.Run(ctx, opts)
	}
	cmd, cleanup, err := vm.Command(ctx, opts)
	if err != nil {
		return err
	}
	defer cleanup()
	args := []string{cmd.Args[0]}
	for i := 1; i < len(cmd.Args); i++ {
		if cmd.Args[i] == "-nic" && i+1 < len(cmd.Args) && cmd.Args[i+1] != "none" {
			i++
			continue
		}
		args = append(args, cmd.Args[i])
	}
	cmd.Args = args
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("qemu: %w (%s)", err, strings.Join(cmd.Args, " "))
	}
	return ctx.Err()
}

func hasPair(args, pair []string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == pair[0] && args[i+1] == pair[1] {
			return true
		}
	}
	return false
}

// agentPolled matches the agent's log line of a poll that failed: no
// network, so no name server and no route to the update server.
var agentPolled = regexp.MustCompile(`agentlog=\[[^]]*msg=update err=`)

var netField = regexp.MustCompile(`net=\[[^]]*\]`)

// multiUserAt reads multi_user_at_ms from an E2E-STATUS line (0 when
// multi-user.target was not reached).
var multiUserAt = regexp.MustCompile(`multi_user_at_ms=(\d+)`)

func multiUserMS(status string) int {
	m := multiUserAt.FindStringSubmatch(status)
	if m == nil {
		return 0
	}
	ms, _ := strconv.Atoi(m[1])
	return ms
}

// TestNoNetwork boots an image with an update agent on virt with no
// network device at all, as a box whose site network is down at boot: it
// must still come up. networkd finds no link, network-online.target gives
// up waiting after its 30 s (system.OnlineTimeout) without failing, and
// the boot goes on to multi-user with the hello container healthy, no
// failed unit and the agent running, which keeps polling (and failing,
// nothing to reach) at its interval.
func TestNoNetwork(t *testing.T) {
	story(t, false)
	noNetworkBoot(t, "qemu", 20*time.Minute)
}

// TestPi3NoNetwork is TestNoNetwork on QEMU's raspi3b with the pi3
// build: no network device at all (QEMU's raspi3b has only USB, which
// pibake gives no NIC), the image's own U-Boot and device tree.
func TestPi3NoNetwork(t *testing.T) {
	story(t, false)
	needPiQEMU(t, "raspi3b")
	noNetworkBoot(t, "pi3", 30*time.Minute)
}

// noNetworkBoot builds the demo with an agent for board and boots it
// without a network until the agent has tried a poll.
func noNetworkBoot(t *testing.T, board string, timeout time.Duration) {
	t.Helper()
	keys := t.TempDir()
	if _, _, err := channel.GenerateKeyFiles(keys, "fleet", ""); err != nil {
		t.Fatal(err)
	}
	v := variant{overlay: "e2e-status", service: "e2e-status", keys: keys, board: board,
		updater: "server: http://" + serverName + ":8080\nchannel: stable\nkeys: [keys/fleet.pub]\npoll: 1m\nhealth:\n  deadline: 3m\n  units: [demo-hello.service]\n"}
	if board != "qemu" {
		v.partitions = piPartitions
	}
	built, err := buildVariant(t, v)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(filepath.Dir(built))) })
	img := copyImage(t, built, 0)
	opts := vm.Options{Image: img, Persist: true, Extra: noNIC}
	if board != "qemu" {
		growTo(t, img, piCard)
		editSlotDTBs(t, img, board)
		editCmdline(t, img, board)
		opts.EditDTB = editDTB(board)
	}
	var status string
	name := "no-network-" + board
	run := runConsole(t, name, opts, timeout, func(line string, at time.Duration) bool {
		if !strings.Contains(line, "E2E-STATUS ") || !strings.Contains(line, "hello=[hello from pibake") || !agentPolled.MatchString(line) {
			return false
		}
		status = line
		t.Logf("%s: the container answers and the agent has polled, %s after QEMU started", name, at.Round(time.Second))
		return true
	})
	if run.stopAt == 0 {
		t.Fatalf("%s: no status line with the container up and a poll of the agent after %s (console in %s)", name, run.elapsed.Round(time.Second), run.log)
	}
	if ms := multiUserMS(status); ms == 0 {
		t.Errorf("multi-user.target not reached: %s", status)
	} else {
		t.Logf("%s: multi-user.target reached %d ms after the kernel started", name, ms)
	}
	for _, want := range []string{"agent=active", "state=running", "failed=[]"} {
		if !strings.Contains(status, want) {
			t.Errorf("status has no %q: %s", want, status)
		}
	}
	// The only address is podman's own bridge (podman0 10.88.0.1/16).
	if net := netField.FindString(status); strings.Contains(net, "dynamic") || strings.Contains(net, " en") || strings.Contains(net, "[en") || strings.Contains(net, "eth") {
		t.Errorf("the guest has a network: %s", net)
	}
	t.Logf("%s: %s", name, status)
}
