package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pibake/pibake/flash"
	"golang.org/x/sys/unix"
)

func cmdFlash(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("flash", "flash [flags] IMAGE DEVICE   (IMAGE is a pibake image, NAME.img or NAME.img.zst, for a Raspberry Pi board; DEVICE is a whole disk, e.g. /dev/sdX or /dev/mmcblk0, or a regular file outside /dev, written as an image file). It prints the image's name, version, board and environment before it opens DEVICE", stdout, stderr)
	bmapFile := fs.String("bmap", "", "block map to write by (default: NAME.bmap next to IMAGE; without one every block is written, once IMAGE is checked against the manifest.json next to it or its own partition table)")
	noBmap := fs.Bool("no-bmap", false, "write every block of the image, ignoring any bmap")
	force := fs.Bool("force", false, "allow writing to the disk that holds this system's /")
	provision := fs.String("provision", "", "after writing, place FILE as "+flash.ProvisionName+" on the bootsel partition")
	verbose := fs.Bool("v", false, "verbose log")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		fs.Usage()
		return fmt.Errorf("want IMAGE and DEVICE, got %d arguments: %w", len(pos), errUsage)
	}
	opts := flash.Options{Image: pos[0], Device: pos[1], Bmap: *bmapFile, NoBmap: *noBmap, Force: *force,
		Progress: stderr, Terminal: isTerminal(stderr), Announce: stdout, Log: logger(stderr, *verbose), Time: time.Now()}
	if *provision != "" {
		data, err := os.ReadFile(*provision)
		if err != nil {
			return fmt.Errorf("flash: --provision: %w", err)
		}
		if err := flash.CheckProvision(data); err != nil {
			return fmt.Errorf("flash: --provision %s: %w", *provision, err)
		}
		opts.Provision = data
	}
	res, err := flash.Flash(ctx, opts)
	if err != nil {
		return err
	}
	how := "every block (no bmap)"
	if res.Bmap != "" {
		how = "the blocks mapped by " + res.Bmap
	}
	fmt.Fprintf(stdout, "flashed %s (%s) to %s: %d of %d bytes written (%s), verified by %s, in %s\n",
		opts.Image, res.Info, opts.Device, res.Written, res.ImageSize, how, res.Verify, res.Elapsed.Round(100*time.Millisecond))
	if opts.Provision != nil {
		fmt.Fprintf(stdout, "placed %s (%d bytes) on the bootsel partition\n", flash.ProvisionName, len(opts.Provision))
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
