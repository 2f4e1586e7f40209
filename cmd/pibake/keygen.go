package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pibake/pibake/updater/channel"
)

func cmdKeygen(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keygen", "keygen [--out DIR] [--name NAME] [--password-file FILE]", stdout, stderr)
	out := fs.String("out", "keys", "folder for NAME.key and NAME.pub")
	name := fs.String("name", "pibake", "key name: a file name (no path, no leading dot); the files are NAME.key and NAME.pub in --out")
	pwFile := fs.String("password-file", "", "encrypt the private key with the password in this file, which must not be empty (default: not encrypted, keep it secret)")
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
		if password, err = readPassword(*pwFile); err != nil {
			return fmt.Errorf("keygen: %w", err)
		}
	}
	pub, key, err := channel.GenerateKeyFiles(*out, *name, password)
	if errors.Is(err, channel.ErrKeyName) {
		return fmt.Errorf("%w: %w", err, errUsage)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (secret: signs releases) and %s (goes into images; minisign -Vm FILE -p %s checks a signature)\n", key, pub, pub)
	return nil
}

// readPassword reads a password file: its first line, without the line
// end. An empty one is refused: keygen would write an unencrypted key,
// and publish would read the key as if no password were given.
func readPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--password-file: %w", err)
	}
	password := strings.TrimRight(string(b), "\r\n")
	if password == "" {
		return "", fmt.Errorf("--password-file %s is empty: write the password into it (one line), or leave the flag out for a key that is not encrypted", path)
	}
	return password, nil
}
