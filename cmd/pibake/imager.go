package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/pibake/pibake/imager"
)

func cmdImager(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("imager", "imager --base-url URL [flags] BUILD_DIR...", stdout, stderr)
	base := fs.String("base-url", "", "URL the NAME.img.zst files are served from; {build} is replaced by each build folder's name")
	icon := fs.String("icon", "", "URL of the icon Imager shows for the images")
	desc := fs.String("description", "", `description Imager shows (default "pibake image NAME VERSION for BOARD")`)
	initFormat := fs.String("init-format", "cloudinit-rpi", "Imager's OS customisation: cloudinit-rpi (or cloudinit) writes cloud-init files to bootsel, which the device applies and erases at first boot; none turns it off (systemd and rpi-preseed are refused: the device never runs or erases their files)")
	out := fs.String("out", "", "write the os_list JSON to this file (default: stdout)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fs.Usage()
		return fmt.Errorf("no build folder given: %w", errUsage)
	}
	if *base == "" {
		fs.Usage()
		return fmt.Errorf("--base-url is required: %w", errUsage)
	}
	l, err := imager.Make(pos, imager.Options{BaseURL: *base, Icon: *icon, Description: *desc, InitFormat: *initFormat})
	if err != nil {
		return err
	}
	data, err := l.Marshal()
	if err != nil {
		return err
	}
	if *out == "" {
		_, err := stdout.Write(data)
		return err
	}
	if err := imager.WriteFile(*out, data); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s: %d images; in Imager: rpi-imager --repo URL-of-%s\n", *out, len(l.OSList), filepath.Base(*out))
	return nil
}
