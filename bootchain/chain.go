package bootchain

import (
	"fmt"
	"strings"
)

// Chain is the boot chain an image is built with, named as the image
// definition's, the manifest's, pibake.json's and updater.yaml's
// bootloader field spells it.
type Chain string

// The boot chains.
const (
	// UBoot: the Pi firmware starts U-Boot from bootsel, and U-Boot's boot
	// script picks the slot from the state file (State).
	UBoot Chain = "uboot"
	// Tryboot: the Pi firmware picks the slot itself from autoboot.txt,
	// and starts the other one once after a reboot with the tryboot flag.
	Tryboot Chain = "tryboot"
)

// DefaultChain is the chain of a definition or an updater.yaml that names
// none.
const DefaultChain = UBoot

// Chains lists the chains, the default first.
func Chains() []Chain { return []Chain{UBoot, Tryboot} }

// ChainNames lists the chains' names, the default first.
func ChainNames() []string {
	var out []string
	for _, c := range Chains() {
		out = append(out, c.String())
	}
	return out
}

// ParseChain reads a chain's name; an empty name is DefaultChain.
func ParseChain(s string) (Chain, error) {
	if s == "" {
		return DefaultChain, nil
	}
	for _, c := range Chains() {
		if string(c) == s {
			return c, nil
		}
	}
	return "", fmt.Errorf("bootloader %q: want %s", s, strings.Join(ChainNames(), " or "))
}

// String is the chain's name.
func (c Chain) String() string { return string(c) }
