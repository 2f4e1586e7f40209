// Package ubootcheck holds the test oracles of the U-Boot chain, kept out
// of the image builder: a reader of boot.scr's legacy image, a model of
// how U-Boot resolves the boot script's booti addresses against its
// default environment (read out of a real u-boot.bin), and a check that
// the memory a boot uses does not overlap. Only tests import it.
package ubootcheck

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// DefaultEnv reads the default environment compiled into a u-boot.bin: a
// run of NUL-terminated name=value strings, found by the variables every
// distro-boot environment sets. It lets tests check a boot script against
// the addresses the real U-Boot build would give it.
func DefaultEnv(ubootBin []byte) (map[string]string, error) {
	for _, anchor := range []string{"kernel_addr_r=", "scriptaddr="} {
		i := bytes.Index(ubootBin, []byte("\x00"+anchor))
		if i < 0 {
			continue
		}
		// Walk back to the start of the block: the strings before are
		// printable name=value entries too.
		start := i + 1
		for start > 1 {
			prev := bytes.LastIndexByte(ubootBin[:start-1], 0)
			entry := ubootBin[prev+1 : start-1]
			if !envEntry(entry) {
				break
			}
			start = prev + 1
		}
		env := map[string]string{}
		for p := start; p < len(ubootBin); {
			end := bytes.IndexByte(ubootBin[p:], 0)
			if end <= 0 {
				break
			}
			entry := ubootBin[p : p+end]
			if !envEntry(entry) {
				break
			}
			k, v, _ := strings.Cut(string(entry), "=")
			env[k] = v
			p += end + 1
		}
		return env, nil
	}
	return nil, fmt.Errorf("ubootcheck: no default environment found in u-boot.bin (%d bytes)", len(ubootBin))
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*=`)

func envEntry(b []byte) bool {
	if !envName.Match(b) {
		return false
	}
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' || c > 0x7e {
			return false
		}
	}
	return true
}

// ScriptAddrs are the addresses a boot script's booti uses, resolved.
type ScriptAddrs struct {
	Kernel, Initrd, FDT uint64
	FDTLoaded           bool // the device tree is a file the script loads, not U-Boot's own
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)

// ResolveBooti reads a boot script as U-Boot would run it on a board with
// the given default environment, and returns where it loads the kernel,
// the initramfs and the device tree. Variables set with a literal value in
// the script win over the environment, as setenv does.
func ResolveBooti(script string, env map[string]string) (ScriptAddrs, error) {
	vars := map[string]string{}
	for k, v := range env {
		vars[k] = v
	}
	var booti []string
	fdtLoads := map[string]bool{}
	for _, line := range strings.Split(script, "\n") {
		for _, stmt := range strings.Split(line, ";") {
			f := strings.Fields(strings.TrimSpace(stmt))
			for len(f) > 0 && (f[0] == "if" || f[0] == "then" || f[0] == "else") {
				f = f[1:]
			}
			if len(f) == 0 {
				continue
			}
			switch f[0] {
			case "setenv":
				if len(f) == 3 && !strings.Contains(f[2], "$") {
					vars[f[1]] = f[2]
				}
			case "load":
				if len(f) == 5 && f[4] == "${fdtfile}" {
					fdtLoads[f[3]] = true
				}
			case "booti":
				booti = f[1:]
			}
		}
	}
	if len(booti) != 3 {
		return ScriptAddrs{}, fmt.Errorf("ubootcheck: the script has no booti KERNEL INITRD:SIZE FDT line")
	}
	num := func(s string) (uint64, error) {
		s = varRef.ReplaceAllStringFunc(s, func(m string) string { return vars[m[2:len(m)-1]] })
		if s == "" {
			return 0, fmt.Errorf("ubootcheck: booti address is an unset variable")
		}
		return strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	}
	var a ScriptAddrs
	var err error
	if a.Kernel, err = num(booti[0]); err != nil {
		return a, err
	}
	rd, _, _ := strings.Cut(booti[1], ":")
	if a.Initrd, err = num(rd); err != nil {
		return a, err
	}
	// The script points booti at ${pibake_fdt}: the loaded file when a
	// load of ${fdtfile} set it, else U-Boot's own device tree.
	for addr := range fdtLoads {
		if a.FDT, err = num(addr); err != nil {
			return a, err
		}
		a.FDTLoaded = true
	}
	return a, nil
}
