package service

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"

	"github.com/pibake/pibake/provision"
	"github.com/pibake/pibake/updater/device"
	"golang.org/x/sys/unix"
)

// Provision is pibake-provision.service's first-boot step: apply the
// provisioning files in the folder bootsel to the system at root once,
// erase them, then tell the running system. An empty bootsel mounts the
// device's bootsel partition (at device.BootselMount). It needs no updater
// configuration.
func Provision(ctx context.Context, bootsel, root string, log *slog.Logger) error {
	if bootsel == "" {
		d, err := device.Detect()
		if err != nil {
			return err
		}
		if bootsel, err = d.MountBootsel(); err != nil {
			return err
		}
	}
	out, err := provision.Run(ctx, bootsel, root, log)
	if out.Applied && root == "/" {
		tell(out.Result, log)
	}
	return err
}

// tell makes the running system take what was written: the host name now,
// a running wpa_supplicant restarted, sshd reloaded. --no-block: those units are ordered after this one.
func tell(r provision.Result, log *slog.Logger) {
	if r.Hostname {
		if h, err := os.ReadFile(provision.HostnamePath); err == nil {
			if err := unix.Sethostname([]byte(strings.TrimSpace(string(h)))); err != nil {
				log.Warn("set the host name", "err", err)
			}
		}
	}
	systemctl := func(args ...string) {
		if out, err := exec.Command("systemctl", append([]string{"--no-block"}, args...)...).CombinedOutput(); err != nil {
			log.Warn("systemctl", "args", strings.Join(args, " "), "err", err, "output", strings.TrimSpace(string(out)))
		}
	}
	if r.WiFi {
		// Only if it runs already: otherwise the Wi-Fi device's arrival
		// starts it (the image hangs it on wlan0's device unit), and a
		// board without Wi-Fi never waits for a device that never comes.
		systemctl("try-restart", provision.WPAUnit)
	}
	if r.SSHConfig {
		systemctl("try-reload-or-restart", "ssh.service")
	}
}
