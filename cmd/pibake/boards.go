package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/firmware"
)

// boardInfo is one line of pibake boards, read from firmware.Boards, the
// table the build uses.
type boardInfo struct {
	Name        string   `json:"name"`
	RunsOn      string   `json:"runs_on"`
	Chains      []string `json:"boot_chains"`
	QEMUMachine string   `json:"qemu_machine,omitempty"`
	Supported   bool     `json:"supported"`
	// Models are the Pi models the board covers, each with the device
	// tree U-Boot loads for it from the slot.
	Models []modelInfo `json:"models,omitempty"`
	// Kernel is what the board's kernel must be, when not any Debian one.
	Kernel  string   `json:"kernel,omitempty"`
	Caveats []string `json:"caveats,omitempty"`
	Note    string   `json:"note,omitempty"`
}

type modelInfo struct {
	Name      string `json:"name"`
	DTB       string `json:"dtb"`
	KernelDTB string `json:"kernel_dtb"`
}

func boardList() []boardInfo {
	var out []boardInfo
	for _, b := range firmware.Boards {
		bi := boardInfo{Name: b.Name, RunsOn: b.Description, Chains: []string{string(bootchain.UBoot)}, QEMUMachine: b.QEMUMachine, Supported: b.Unsupported == "",
			Caveats: b.Caveats}
		for _, m := range b.Models {
			bi.Models = append(bi.Models, modelInfo{Name: m.Name, DTB: m.FDTFile, KernelDTB: m.DTB()})
		}
		if b.KernelFix != "" {
			bi.Kernel = b.KernelFix
		}
		if b.Tryboot {
			bi.Chains = append(bi.Chains, string(bootchain.Tryboot))
		}
		switch {
		case b.Unsupported != "":
			bi.Note = "cannot be built today: " + b.Unsupported
		case b.Emulated:
			bi.Note = "no Pi firmware: QEMU starts U-Boot itself (pibake run)"
		}
		out = append(out, bi)
	}
	return out
}

func cmdBoards(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("boards", "boards [--json]", stdout, stderr)
	asJSON := fs.Bool("json", false, "print the list as JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		fs.Usage()
		return fmt.Errorf("boards takes no arguments: %w", errUsage)
	}
	list := boardList()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BOARD\tRUNS ON\tBOOT CHAINS\tQEMU MACHINE")
	for _, b := range list {
		q := b.QEMUMachine
		if q == "" {
			q = "none"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.Name, b.RunsOn, strings.Join(b.Chains, ", "), q)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, b := range list {
		if b.Note != "" {
			fmt.Fprintf(stdout, "%s: %s\n", b.Name, b.Note)
		}
		if b.Kernel != "" {
			fmt.Fprintf(stdout, "%s: kernel: %s\n", b.Name, b.Kernel)
		}
		for _, c := range b.Caveats {
			fmt.Fprintf(stdout, "%s: %s\n", b.Name, c)
		}
	}
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tBOARD\tDEVICE TREE (U-Boot's ${fdtfile}, in each slot)")
	for _, b := range list {
		for _, m := range b.Models {
			dtb := m.DTB
			if m.KernelDTB != m.DTB {
				dtb += " (the kernel's " + m.KernelDTB + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Name, b.Name, dtb)
		}
	}
	return tw.Flush()
}
