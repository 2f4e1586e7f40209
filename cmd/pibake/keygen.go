package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pibake/pibake/updater/channel"
)

func cmdKeygen(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keygen", "keygen [--out DIR] [--name NAME] [--password-file FILE]", stdout, stderr)
	out := fs.String("out", "keys", "folder for NAME.key and NAME.pub")
	name := fs.String("name", "pibake", "key name")
	pwFile := fs.String("password-file", "", "encrypt the private key with the password in this file (default: not encrypted, keep it secret)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		fs.Usage()
		return fmt.Errorf("keygen takes no arguments: %w", errUsage)
	}
	password := ""
	if *pwFile != "" {
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			return fmt.Errorf("keygen: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	pub, key, err := channel.GenerateKeyFiles(*out, *name, password)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (secret: signs releases) and %s (goes into images)\n", key, pub)
	return nil
}
