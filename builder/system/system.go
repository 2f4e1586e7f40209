// Package system holds the files pibake adds to every root filesystem: the
// units and helpers of the A/B boot chain. They are embedded so that a
// pibake binary builds images without its source tree.
package system

import (
	_ "embed"
	"strconv"
	"strings"
)

//go:embed pibake-boot-ok.service
var bootOKUnit []byte

//go:embed boot-ok
var bootOKScript string

//go:embed pibake-ssh-keygen.service
var sshKeygenUnit []byte

//go:embed pibake-updater.service
var updaterUnit []byte

//go:embed pibake-provision.service
var provisionUnit []byte

//go:embed pibake-authorized-keys.conf
var authorizedKeysConf []byte

//go:embed pibake-watchdog.conf
var watchdogConf []byte

// WatchdogDropIn makes systemd feed the hardware watchdog pibake-init
// armed (package bootinit), in every image.
const WatchdogDropIn = "/usr/lib/systemd/system.conf.d/50-pibake-watchdog.conf"

// SSHDropIn makes sshd read the keys first-boot provisioning writes
// (package provision) from /etc, the only writable place of the root.
const SSHDropIn = "/etc/ssh/sshd_config.d/pibake-authorized-keys.conf"

// File is one file, folder or symlink to add (owned by root).
type File struct {
	Path string
	Data []byte
	Mode int64
	Dir  bool
	Link string
}

// Files returns the system files; hasSSH says whether the base has an SSH
// server whose host keys must be made on first boot. tries is the boot
// tries a slot gets back when it is marked good. With the update agent
// (withUpdater), the agent decides when a slot is good, after its health
// checks; without it, pibake-boot-ok marks a slot good at multi-user.
// First-boot provisioning (pibake-provision.service, a command of the
// agent binary, which every image carries) is in every image.
func Files(tries int, hasSSH, withUpdater bool) []File {
	const unitDir = "/usr/lib/systemd/system/"
	fs := []File{
		{Path: "/data", Mode: 0o755, Dir: true},
		{Path: WatchdogDropIn, Data: watchdogConf, Mode: 0o644},
		{Path: unitDir + "pibake-provision.service", Data: provisionUnit, Mode: 0o644},
		{Path: "/etc/systemd/system/sysinit.target.wants/pibake-provision.service", Link: unitDir + "pibake-provision.service"},
	}
	if withUpdater {
		fs = append(fs,
			File{Path: unitDir + "pibake-updater.service", Data: updaterUnit, Mode: 0o644},
			File{Path: "/etc/systemd/system/multi-user.target.wants/pibake-updater.service", Link: unitDir + "pibake-updater.service"},
		)
	} else {
		fs = append(fs,
			File{Path: unitDir + "pibake-boot-ok.service", Data: bootOKUnit, Mode: 0o644},
			File{Path: "/usr/lib/pibake/boot-ok", Data: []byte(strings.ReplaceAll(bootOKScript, "@TRIES@", strconv.Itoa(tries))), Mode: 0o755},
			File{Path: "/etc/systemd/system/multi-user.target.wants/pibake-boot-ok.service", Link: unitDir + "pibake-boot-ok.service"},
		)
	}
	if hasSSH {
		fs = append(fs,
			File{Path: unitDir + "pibake-ssh-keygen.service", Data: sshKeygenUnit, Mode: 0o644},
			File{Path: "/etc/systemd/system/ssh.service.wants/pibake-ssh-keygen.service", Link: unitDir + "pibake-ssh-keygen.service"},
			File{Path: SSHDropIn, Data: authorizedKeysConf, Mode: 0o644},
		)
	}
	return fs
}
