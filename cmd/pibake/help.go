package main

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// verbHelp is what a verb's --help says above its flags: what it does,
// and one example.
type verbHelp struct {
	about, example string
}

// helps is every verb's help, keyed by the name its flag set is made
// with (newFlags prints it).
var helps = map[string]verbHelp{
	"build": {"Builds a disk image from an image definition: installs the Debian packages its lock pins, adds its users, overlays, services, containers and the update agent, and writes NAME.img, NAME.img.zst, NAME.bmap, manifest.json and an SBOM into the output folder. The same definition and lock build the same bytes.",
		"pibake build --env prod --board pi4 images/demo.yaml"},
	"lock": {"Resolves the definition's Debian packages against its mirror and pins its container images, and writes images/NAME.lock beside it: a build installs exactly what the lock says. Run it after changing debian:, network: or containers:.",
		"pibake lock images/demo.yaml"},
	"inspect": {"Shows an image's partition table and what each slot holds (image, version, board, kernel), read from the image itself.",
		"pibake inspect out/demo/demo.img"},
	"run": {"Boots a qemu-board image under QEMU with its serial console on this terminal; changes go to a throw-away snapshot unless --persist.",
		"pibake run --forward 2222:22 out/demo/demo.img"},
	"validate": {"Checks image definitions without building, for the base and every environment: every field, the boards, the image's size against the card, the units the health check and the containers wait for, the users' groups, the channel names and the lock. Reports every problem of every file given; exit status 1 if there is one.",
		"pibake validate images/*.yaml"},
	"keygen": {"Makes a key pair for signing update channels (minisign's format): NAME.key signs releases and stays secret, NAME.pub goes into image definitions (updater.keys).",
		"pibake keygen --out keys --name fleet"},
	"publish": {"Adds a build to an update repository: stores its artifacts and the patches from earlier releases, and signs the channel's next document, which the devices on that channel install. Several build folders of one image and version (one per board: pi3, pi4) make one release; each device installs its board's artifacts.",
		"pibake publish --repo repo --channel stable --key keys/fleet.key out/demo"},
	"rollout": {"Shows a channel's rollout (status), halts or resumes it (halt, resume: the channel's document is signed again with the next serial), or follows the devices' reports on the team's MQTT broker and halts the release when too many fail (watch). Halted, a release is not started by devices that have not committed it; those that did keep it. See docs/fleet.md.",
		"pibake rollout halt --repo repo --channel stable --key keys/fleet.key"},
	"rollout status": {"Prints the channel's release, its waves, the fraction of devices it is offered to now (by this host's clock) and whether it is halted.",
		"pibake rollout status --repo repo --channel stable --public-key keys/fleet.pub"},
	"rollout halt": {"Signs the channel's document again with the next serial, halted: devices that have not committed the release do not start it (one in the middle of its download stops at its next check); devices that committed it keep it.",
		"pibake rollout halt --repo repo --channel stable --key keys/fleet.key"},
	"rollout resume": {"Signs the channel's document again with the next serial, not halted. The waves keep their times: the release goes on at the fraction they give now.",
		"pibake rollout resume --repo repo --channel stable --key keys/fleet.key"},
	"rollout watch": {"Follows the devices' reports of the channel's release on the team's MQTT broker and halts the release (as rollout halt) when failures reach --max-failures, or --max-failure-rate after --min-attempts, printing which devices failed which check. Run it where the key lives (docs/fleet.md).",
		"pibake rollout watch --repo repo --channel stable --key keys/fleet.key --broker ssl://mqtt.example.com:8883 --broker-user ops --broker-password-file ops.pw --max-failures 5 --max-failure-rate 10% --min-attempts 20"},
	"bundle": {"Packs a channel's current release (its signed documents and artifacts) into one tar file, for devices that update from a USB stick instead of a server.",
		"pibake bundle --repo repo --channel stable stable.tar"},
	"serve": {"Serves an update repository folder over HTTP, for tests and labs.",
		"pibake serve --addr 127.0.0.1:8080 repo"},
	"imager": {"Writes a Raspberry Pi Imager repository (its os_list JSON) for build folders, so Imager lists the images, flashes them and writes its first-boot settings, which the device applies.",
		"pibake imager --base-url https://example.com/images/{build} --out os_list.json out/demo"},
	"provision check": {"Checks first-boot provisioning files as the device reads them: pibake-provision.yaml, or Raspberry Pi Imager's user-data, network-config and meta-data (by file name), and says what the device will not apply.",
		"pibake provision check pibake-provision.yaml"},
	"flash": {"Writes an image to a card: only the blocks its bmap maps, then reads them back and checks them. --provision puts a first-boot settings file on the card.",
		"pibake flash --provision pibake-provision.yaml out/demo/demo.img.zst /dev/sdX"},
	"fleet status": {"Lists what every device reported to the team's MQTT broker: its channel, version, board and slot, its last update with its result and why (the failing check), when it was last seen, and which devices are offline (their last will, or no report for 3 heartbeats). It reads the retained reports and stops when none came for --quiet, or at --max-wait; a malformed report is listed as such. The broker options also come from PIBAKE_BROKER, PIBAKE_BROKER_CA, PIBAKE_BROKER_USER, PIBAKE_BROKER_PASSWORD and PIBAKE_BROKER_PREFIX (docs/fleet.md).",
		"pibake fleet status --broker ssl://mqtt.example.com:8883 --ca broker-ca.pem --user ops --password-file ops.pw --result rolled-back"},
	"version": {"Prints pibake's version.", "pibake version"},
	"boards": {"Lists the boards pibake builds for: what each runs on, its boot chains, the QEMU machine that emulates it, the kernel it needs and its caveats, then each Raspberry Pi model with the device tree U-Boot loads for it from the boot slot.",
		"pibake boards"},
	"completion": {"Prints a completion script for bash or zsh, made from pibake's verbs and their flags.",
		"source <(pibake completion bash)"},
	"outdated": {"Reads the signed indexes of the definition's Debian archives (the suite, -updates, -security, -backports as the definition asks) and lists the locked packages of which a newer version is available, marking security fixes. Exit status: 0 nothing is outdated, 3 something is, 1 an error, 2 misuse: a scheduled CI job relocks on 3 (docs/ci.md).",
		"pibake outdated images/demo.yaml"},
	"help": {"Prints a verb's help: what it does, an example and its flags.", "pibake help build"},
	"init": {"Writes a starting repository a team keeps: a definition, an overlay, a Makefile, a .gitignore and a CI recipe.",
		"pibake init my-fleet"},
}

// describe writes the help of the verb whose flag set has this name.
func describe(w io.Writer, name string) {
	h, ok := helps[name]
	if !ok {
		return
	}
	fmt.Fprintf(w, "%s\n\nExample:\n  %s\n\n", wrap(h.about, 76), h.example)
}

// wrap breaks s into lines of at most width characters.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for _, w := range strings.Fields(s) {
		if n > 0 && n+1+len(w) > width {
			b.WriteString("\n")
			n = 0
		} else if n > 0 {
			b.WriteString(" ")
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}

// cmdHelp: pibake help [VERB] prints the global usage or a verb's help.
func cmdHelp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("help", "help [VERB]", stdout, stderr)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch len(pos) {
	case 0:
		fmt.Fprint(stdout, usage)
		return nil
	case 1:
	default:
		fs.Usage()
		return fmt.Errorf("help takes one verb: %w", errUsage)
	}
	verb := pos[0]
	if verb == "provision" {
		return run(ctx, []string{"provision", "check", "--help"}, stdout, stderr)
	}
	if verb == "fleet" {
		return run(ctx, []string{"fleet", "status", "--help"}, stdout, stderr)
	}
	for _, c := range commands {
		if c.name == verb {
			return run(ctx, []string{verb, "--help"}, stdout, stderr)
		}
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("no verb %q: %w", verb, errUsage)
}
