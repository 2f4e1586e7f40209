package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/pibake/pibake/vm"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", "run [flags] IMAGE", stdout, stderr)
	persist := fs.Bool("persist", false, "write to the image file (default: changes go to a throw-away snapshot)")
	mem := fs.Int("m", 1024, "guest memory in MiB")
	cpus := fs.Int("smp", 2, "guest CPUs")
	var fwd forwards
	fs.Var(&fwd, "forward", "forward 127.0.0.1:HOST to guest port GUEST, as HOST:GUEST (repeatable), e.g. 2222:22")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	img, err := oneArg(fs, pos, "image file")
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "pibake: booting %s under QEMU (serial console here; quit with Ctrl-A X)\n", img)
	return vm.Run(ctx, vm.Options{Image: img, Persist: *persist, MemoryMB: *mem, CPUs: *cpus, Forwards: fwd, Stdout: stdout, Stdin: os.Stdin})
}

type forwards []vm.Forward

func (f *forwards) String() string { return fmt.Sprint(*f) }

func (f *forwards) Set(s string) error {
	h, g, ok := strings.Cut(s, ":")
	hp, err1 := strconv.Atoi(h)
	gp, err2 := strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil || hp <= 0 || hp > 65535 || gp <= 0 || gp > 65535 {
		return fmt.Errorf("want HOST:GUEST ports, e.g. 2222:22")
	}
	*f = append(*f, vm.Forward{HostPort: hp, GuestPort: gp})
	return nil
}
