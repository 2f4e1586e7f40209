package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/pibake/pibake/builder"
	"github.com/pibake/pibake/builder/debian"
)

// exitOutdated is pibake outdated's exit status when a locked package has
// a newer version: 0 means nothing is, 1 and 2 are errors and misuse.
const exitOutdated = 3

// errOutdated ends pibake outdated when something is outdated, for CI to
// act on its exit status.
type errOutdated struct {
	n, security int
	definition  string
}

func (e errOutdated) Error() string {
	return fmt.Sprintf("%d locked packages have newer versions (%d security fixes): run 'pibake lock %s' to move to them", e.n, e.security, e.definition)
}

// ExitCode is the status main exits with.
func (e errOutdated) ExitCode() int { return exitOutdated }

func cmdOutdated(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("outdated", "outdated [--json] [--lock FILE] images/NAME.yaml", stdout, stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	lockPath := fs.String("lock", "", "the lock to check (default: images/NAME.lock)")
	verbose := fs.Bool("v", false, "verbose")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	def, err := oneArg(fs, pos, "image definition")
	if err != nil {
		return err
	}
	r, err := builder.Outdated(ctx, def, *lockPath, logger(stderr, *verbose))
	if err != nil {
		return err
	}
	if r.Stale != "" {
		fmt.Fprintf(stderr, "note: %s\n(listing against the definition's archives: %s)\n", r.Stale, strings.Join(r.Archives, ", "))
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if r.Updates == nil {
			r.Updates = []debian.Update{}
		}
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		printOutdated(stdout, r)
	}
	if len(r.Updates) > 0 {
		return errOutdated{n: len(r.Updates), security: r.Security, definition: def}
	}
	return nil
}

func printOutdated(w io.Writer, r *builder.OutdatedReport) {
	fmt.Fprintf(w, "%s: %d of %d locked packages have newer versions in %s (%d security fixes)\n", r.Lock, len(r.Updates), r.Packages, strings.Join(r.Archives, ", "), r.Security)
	if len(r.Updates) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PACKAGE\tLOCKED\tAVAILABLE\tARCHIVE\t")
	for _, u := range r.Updates {
		mark := ""
		if u.Security {
			mark = "security fix"
		}
		name := u.Name
		if u.Role != "root" {
			name += " (" + u.Role + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, u.Locked, u.Newest, u.NewestArchive, mark)
	}
	tw.Flush()
}
