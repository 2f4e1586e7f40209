package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/builder/imagedef"
	"github.com/pibake/pibake/builder/rootfs"
	"github.com/pibake/pibake/builder/system"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/etcsum"
	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/updater/config"
)

type rootfsOut struct {
	base       *rootfs.Base
	res        rootfs.Result
	size       int64
	sha256     string
	compressor string
	tool       string // tar2sqfs --version
	containers []preparedContainer
}

// ReleaseFile is /etc/pibake/release: what the running system is.
func ReleaseFile(def *imagedef.Definition, board string) []byte {
	return []byte(fmt.Sprintf("PIBAKE_NAME=%s\nPIBAKE_VERSION=%s\nPIBAKE_BOARD=%s\nPIBAKE_ENV=%s\n", def.Name, def.Version, board, orDefault(def.Env)))
}

func rootfsSpec(def *imagedef.Definition, board firmware.Board, epoch int64) (rootfs.Spec, error) {
	spec := rootfs.Spec{
		Epoch: epoch, Hostname: def.Hostname, Sources: debian.SourcesList(Archives(def), def.Debian.Components),
		Files: []rootfs.File{{Path: "/etc/pibake/release", Data: ReleaseFile(def, board.Name), Mode: 0o644}},
	}
	for _, u := range def.Users {
		spec.Users = append(spec.Users, rootfs.User{Name: u.Name, UID: u.UID, Groups: u.Groups, Shell: u.Shell, SSHKeys: u.SSHKeys})
	}
	for _, o := range def.Overlays {
		ov := rootfs.Overlay{Name: o.Name, Dir: imagedef.OverlayDir(def.Dir, o.Name), Dest: o.Dest, Owner: o.Owner, Overrides: map[string]rootfs.Override{}}
		for _, f := range o.Files {
			r := rootfs.Override{Mode: -1, Owner: f.Owner}
			if f.Mode != "" {
				m, err := imagedef.ParseMode(f.Mode)
				if err != nil {
					return spec, fmt.Errorf("%s: overlay %s: %w", def.File, o.Name, err)
				}
				r.Mode = m
			}
			ov.Overrides[f.Path] = r
		}
		spec.Overlays = append(spec.Overlays, ov)
	}
	for _, s := range def.Services {
		file, unit := imagedef.ServiceFile(def.Dir, s.Name)
		data, err := os.ReadFile(file)
		if err != nil {
			return spec, fmt.Errorf("service %s: %w", s.Name, err)
		}
		spec.Units = append(spec.Units, rootfs.Unit{Name: unit, Data: data, Enable: s.Enabled()})
	}
	return spec, nil
}

// squashfsCompressor picks the best compressor the image's kernel reads.
func squashfsCompressor(kconfig []byte) string {
	for _, c := range []string{"zstd", "xz"} {
		opt := "CONFIG_SQUASHFS_" + map[string]string{"zstd": "ZSTD", "xz": "XZ"}[c] + "=y"
		if bytes.Contains(kconfig, []byte(opt+"\n")) {
			return c
		}
	}
	return "gzip"
}

// compressorLevel is tar2sqfs's option for the definition's level (gzip
// and xz go up to 9).
func compressorLevel(comp string, level int) string {
	if comp != "zstd" {
		level = min(level, 9)
	}
	return "level=" + strconv.Itoa(level)
}

// packRootfs customises the base into the read-only root filesystem, a
// squashfs in the staging folder that must fit partitions.root.
func (b *build) packRootfs(ctx context.Context) (string, error) {
	b.rootImg = filepath.Join(b.staging, "root.sqfs")
	rf, err := b.buildRootfs(ctx)
	if err != nil {
		return "", err
	}
	b.rf = rf
	rootPart, _ := b.lay.Part(layout.RootA)
	if rf.size > rootPart.Size {
		return "", fmt.Errorf("root filesystem is %d MiB but partitions.root is %d MiB: %w; raise partitions.root in %s", (rf.size+layout.MiB-1)/layout.MiB, rootPart.Size/layout.MiB, ErrTooLarge, b.def.File)
	}
	return fmt.Sprintf("%d packages, kernel %s, squashfs %s %d bytes", len(rf.res.Packages), rf.res.KernelVersion, rf.compressor, rf.size), nil
}

// buildRootfs writes the squashfs at b.rootImg: the base, with what the
// definition and pibake add, packed by tar2sqfs.
func (b *build) buildRootfs(ctx context.Context) (*rootfsOut, error) {
	base, err := rootfs.Scan(ctx, b.baseTar)
	if err != nil {
		return nil, err
	}
	if base.Kernel == nil {
		return nil, fmt.Errorf("%s: the base has no kernel in /boot: add linux-image-arm64 to debian.packages and run 'pibake lock'", b.def.File)
	}
	spec, err := b.fullSpec(ctx, base)
	if err != nil {
		return nil, err
	}
	etc, err := etcList(ctx, base, spec)
	if err != nil {
		return nil, err
	}
	spec.Files = append(spec.Files, rootfs.File{Path: etcsum.Path, Data: etc, Mode: 0o644})
	bin, err := debian.LookTool("tar2sqfs", "squashfs-tools-ng")
	if err != nil {
		return nil, err
	}
	comp := squashfsCompressor(base.KernelConfig)
	if err := b.tar2sqfs(ctx, bin, comp, base, spec); err != nil {
		return nil, err
	}
	f, err := os.Open(b.rootImg)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, err
	}
	ver, _ := exec.CommandContext(ctx, bin, "--version").Output()
	tool, _, _ := strings.Cut(string(ver), "\n")
	for _, c := range b.containers {
		os.Remove(c.tree)
	}
	return &rootfsOut{base: base, res: base.Result, size: n, sha256: hex.EncodeToString(h.Sum(nil)), compressor: comp, tool: strings.TrimSpace(tool), containers: b.containers}, nil
}

// fullSpec is everything the root filesystem adds to the base: the
// definition's part (rootfsSpec), the system's files, the network, the
// containers and the device agent.
func (b *build) fullSpec(ctx context.Context, base *rootfs.Base) (rootfs.Spec, error) {
	def := b.def
	spec, err := rootfsSpec(def, b.board, b.epoch)
	if err != nil {
		return spec, err
	}
	for _, f := range system.Files(bootchain.MaxTries, base.Has("usr/sbin/sshd"), def.Updater != nil) {
		spec.Files = append(spec.Files, rootfs.File{Path: f.Path, Data: f.Data, Mode: f.Mode, Dir: f.Dir, Link: f.Link})
	}
	net := def.Network
	sn := system.Network{DHCP: net.UseDHCP(), Addresses: net.Addresses, Gateway: net.Gateway, DNS: net.DNS, NTP: net.NTP, WiFi: net.UseWiFi()}
	for _, f := range system.NetworkFiles(sn) {
		spec.Files = append(spec.Files, rootfs.File{Path: f.Path, Data: f.Data, Mode: f.Mode, Dir: f.Dir, Link: f.Link})
	}
	if sn.WiFi && !base.Has("usr/lib/systemd/system/wpa_supplicant@.service") {
		return spec, fmt.Errorf("%s: network.wifi: the base has no /usr/lib/systemd/system/wpa_supplicant@.service; run 'pibake lock %s' (the network section adds wpasupplicant)", def.File, def.File)
	}
	links, err := base.EnableBase(ctx, system.NetworkUnits(sn))
	if err != nil {
		return spec, fmt.Errorf("%s: network: %w; run 'pibake lock %s' after a change to the network section", def.File, err, def.File)
	}
	spec.Files = append(spec.Files, links...)
	if len(b.containers) > 0 {
		need := map[string][]string{"podman": {"usr/bin/podman"}, "docker": {"usr/sbin/dockerd", "usr/bin/docker"}}[def.ContainerRuntime]
		pkgs := map[string]string{"podman": "podman", "docker": "docker.io and docker-cli"}[def.ContainerRuntime]
		for _, f := range need {
			if !base.Has(f) {
				return spec, fmt.Errorf("%s: containers run with %s (container_runtime), but the base has no /%s: add %s to debian.packages and run 'pibake lock'", def.File, def.ContainerRuntime, f, pkgs)
			}
		}
	}
	containerFiles(&spec, b.containers)
	fw, err := b.rootFirmware(ctx, base)
	if err != nil {
		return spec, err
	}
	spec.Files = append(spec.Files, fw...)
	// The agent binary is in every image: first-boot provisioning is one
	// of its commands. Without an updater section it has no configuration
	// and its service is not installed.
	files, err := b.agentFiles(ctx)
	if err != nil {
		return spec, err
	}
	spec.Files = append(spec.Files, files...)
	return spec, nil
}

// tar2sqfs streams the base with spec applied into tar2sqfs, which
// writes b.rootImg.
func (b *build) tar2sqfs(ctx context.Context, bin, comp string, base *rootfs.Base, spec rootfs.Spec) error {
	epoch := strconv.FormatInt(b.epoch, 10)
	cmd := exec.CommandContext(ctx, bin, "--quiet", "--no-skip", "--force",
		"--compressor", comp, "--block-size", "131072", "--num-jobs", "2",
		"--comp-extra", compressorLevel(comp, b.def.Rootfs.CompressionLevel),
		"--defaults", "uid=0,gid=0,mode=0755,mtime="+epoch, b.rootImg)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+epoch)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start tar2sqfs: %w", err)
	}
	_, werr := base.Write(ctx, spec, stdin)
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		// tar2sqfs failing (disk full, ...) is the cause of a broken pipe.
		return fmt.Errorf("tar2sqfs: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if werr != nil {
		return fmt.Errorf("%s: %w", b.def.File, werr)
	}
	return nil
}

// agentFiles are the device agent and, with an updater section, its
// configuration.
func (b *build) agentFiles(ctx context.Context) ([]rootfs.File, error) {
	def := b.def
	agent, err := b.agentProgram(ctx)
	if err != nil {
		return nil, err
	}
	if def.Updater == nil {
		return []rootfs.File{agent}, nil
	}
	keys, err := def.UpdaterKeys()
	if err != nil {
		return nil, fmt.Errorf("%s: updater: %w", def.File, err)
	}
	if msg := staleBuilt(b.epoch, time.Now()); msg != "" {
		b.log.Warn(msg)
	}
	rep, err := def.ReportConfig()
	if err != nil {
		return nil, fmt.Errorf("%s: updater: %w", def.File, err)
	}
	u := def.Updater
	health := u.Health
	health.Units = withContainerUnits(def, health.Units)
	window, err := u.ResolvedWindow(time.Unix(b.epoch, 0))
	if err != nil {
		return nil, fmt.Errorf("%s: updater: window: %w", def.File, err)
	}
	cfg, err := config.Config{Server: u.Server, Channel: u.Channel, Channels: u.Channels, Image: def.Name, Version: def.Version, Built: b.epoch, Board: b.board.Name, Agent: b.progs.Version(ctx), Bootloader: def.Bootloader, Keys: keys, Revoked: u.Revoked, Poll: u.Poll, Health: health, TimeWait: def.Network.Wait(),
		Report: rep, Window: window, Inhibit: u.Inhibit}.Marshal()
	if err != nil {
		return nil, err
	}
	return []rootfs.File{
		agent,
		{Path: config.ImagePath, Data: append([]byte("# Written by pibake from the image definition's updater section.\n"), cfg...), Mode: 0o644},
	}, nil
}

// rootFirmware are the board's RootFirmware files from raspi-firmware,
// each one no package of the root provides (a package's own file is never
// replaced).
func (b *build) rootFirmware(ctx context.Context, base *rootfs.Base) ([]rootfs.File, error) {
	want := map[string]bool{}
	for _, f := range b.board.RootFirmware {
		if p := path.Join(firmware.LinuxFirmwareDir, f); !base.Has(p) {
			want[p] = true
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	got, err := packageFiles(ctx, b.lock, b.cache, "raspi-firmware", func(p string) bool { return want[p] })
	if err != nil {
		return nil, fmt.Errorf("%s: board %s: %w", b.def.File, b.board.Name, err)
	}
	var files []rootfs.File
	for _, p := range slices.Sorted(maps.Keys(want)) {
		data, ok := got[p]
		if !ok {
			return nil, fmt.Errorf("%s: board %s needs /%s in the root, and the locked raspi-firmware has none: run 'pibake lock' (a raspi-firmware that carries it)", b.def.File, b.board.Name, p)
		}
		files = append(files, rootfs.File{Path: "/" + p, Data: data, Mode: 0o644})
	}
	return files, nil
}
