package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/pibake/pibake/disk/inspect"
	"github.com/pibake/pibake/disk/mbr"
	"github.com/pibake/pibake/release"
)

func cmdInspect(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("inspect", "inspect [--json] IMAGE   (NAME.img or NAME.img.zst)", stdout, stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	path, err := oneArg(fs, pos, "image file")
	if err != nil {
		return err
	}
	// NAME.img.zst is read as flash reads it: decompressed as far as
	// inspect reads, into an unlinked temporary file.
	im, err := release.Open(path)
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	defer im.Close()
	if im.Size() < mbr.SectorSize {
		return fmt.Errorf("inspect: %s is %d bytes, but a disk image starts with a %d-byte partition table: not an image, or one cut short", path, im.Size(), mbr.SectorSize)
	}
	rep, err := inspect.Image(im, im.Size())
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var problems []string
	for _, s := range rep.Slots {
		if s.Problem != "" {
			problems = append(problems, "slot "+s.Name+": "+s.Problem)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
		return slotProblems(problems)
	}
	fmt.Fprintf(stdout, "%s: %d MiB, MBR disk signature %s\n\n", path, rep.Size>>20, rep.Signature)
	fmt.Fprintf(stdout, "  %-3s %-8s %-5s %-12s %10s %10s  %s\n", "#", "name", "type", "partuuid", "start MiB", "size MiB", "content")
	for _, p := range rep.Partitions {
		fmt.Fprintf(stdout, "  p%-2d %-8s %-5s %-12s %10d %10d  %s\n", p.Number, p.Name, p.Type, p.PartUUID, p.Offset>>20, p.Size>>20, p.Content)
	}
	fmt.Fprintf(stdout, "\nbootsel: %s\n", strings.Join(rep.Bootsel, ", "))
	for _, s := range rep.Slots {
		fmt.Fprintf(stdout, "\nslot %s:\n", s.Name)
		if len(s.Info) > 0 {
			var info map[string]any
			if json.Unmarshal(s.Info, &info) == nil {
				fmt.Fprintf(stdout, "  image %v %v, board %v, env %v, kernel %v\n", info["image"], info["version"], info["board"], info["env"], info["kernel"])
			}
		}
		if s.Rootfs != nil {
			state := "verified against pibake.json"
			if !s.Verified {
				state = "NOT verified"
			}
			fmt.Fprintf(stdout, "  rootfs: squashfs %s, %d bytes, %d inodes, %s\n", s.Rootfs.Compressor, s.Rootfs.BytesUsed, s.Rootfs.Inodes, state)
		}
		if len(s.Files) > 0 {
			fmt.Fprintf(stdout, "  boot files: %s\n", strings.Join(s.Files, ", "))
		}
		if s.Problem != "" {
			fmt.Fprintf(stdout, "  problem: %s\n", s.Problem)
		}
	}
	return slotProblems(problems)
}

func slotProblems(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("image has problems:\n  %s", strings.Join(problems, "\n  "))
}
