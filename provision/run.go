package provision

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pibake/pibake/internal/atomicfile"
)

// ErrorFile is left on bootsel when provisioning files were refused: what
// was wrong, never a secret, for whoever puts the card in a laptop.
const ErrorFile = "pibake-provision.error.txt"

// ErrInterrupted is Run's error when it was stopped (its context ended:
// the unit's start timeout, a shutdown) before it applied anything. The
// files were refused for nothing: they stay on bootsel, and the next boot
// applies them.
var ErrInterrupted = errors.New("provisioning interrupted before anything was applied: the files stay on bootsel for the next boot")

// Inputs are the provisioning files looked for in the root of bootsel.
var Inputs = []string{FileName, UserData, NetworkConfig, MetaData}

// Outcome is what Run did.
type Outcome struct {
	Found      []string // the input files found on bootsel
	Mark       string   // what the record keeps of them (record.go)
	Applied    bool
	Already    bool // the same files were applied before (only wiped now)
	Result     Result
	NotApplied []string
}

// Run is the first-boot sequence: read the provisioning files in bootsel
// (a mounted folder), apply them into root unless the same files were
// applied before, then wipe them from bootsel whatever the outcome, but
// one: stopped before it applied anything (ctx ended), it leaves the files
// where they are and returns ErrInterrupted. A refusal leaves ErrorFile on
// bootsel. The error returned is the refusal's or the wipe's.
func Run(ctx context.Context, bootsel, root string, log *slog.Logger) (Outcome, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var out Outcome
	rec := record{root: root}
	if err := rec.migrate(); err != nil {
		log.Warn("could not rewrite the record of applied provisioning", "err", err)
	}
	files := map[string][]byte{}
	var readErr error
	for _, name := range Inputs {
		data, err := readInput(filepath.Join(bootsel, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		out.Found = append(out.Found, name)
		if err != nil {
			readErr = errors.Join(readErr, fmt.Errorf("%s: %w", name, err))
			continue
		}
		files[name] = data
	}
	if len(out.Found) == 0 {
		log.Info("no provisioning files on bootsel", "looked for", strings.Join(Inputs, ", "))
		return out, nil
	}
	log.Info("provisioning files found on bootsel", "files", strings.Join(out.Found, ", "))
	mark, markErr := rec.markOf(digest(files))
	if markErr != nil {
		log.Warn("could not look in the record of applied provisioning: the files apply (again)", "err", markErr)
	}
	out.Mark = mark
	applyErr := readErr
	if applyErr == nil {
		if markErr == nil && rec.has(mark) {
			out.Already = true
			log.Info("these files were applied before; only erasing them", "mark", mark)
		} else {
			applyErr = firstBoot{bootsel: bootsel, root: root, log: log}.apply(ctx, files, mark, &out)
		}
	}
	if applyErr != nil && ctx.Err() != nil {
		// Not the files' fault (a failed apply applied nothing): nothing
		// is erased, no error is left.
		err := fmt.Errorf("%w (%w)", ErrInterrupted, ctx.Err())
		log.Error("provisioning interrupted", "files", strings.Join(out.Found, ", "), "err", err)
		return out, err
	}
	if applyErr != nil {
		log.Error("provisioning refused: nothing was applied", "err", applyErr)
		msg := "pibake-provision: nothing from " + strings.Join(out.Found, ", ") + " was applied:\n\n" + applyErr.Error() +
			"\n\nThe files were erased from this partition (they may hold passwords).\nFix the file, check it with `pibake provision check FILE`, and copy it here again.\n"
		if err := atomicfile.Write(filepath.Join(bootsel, ErrorFile), []byte(msg), 0o644); err != nil {
			log.Error("could not leave the error on bootsel", "file", ErrorFile, "err", err)
		}
	} else if err := os.Remove(filepath.Join(bootsel, ErrorFile)); err == nil {
		_ = syncDir(bootsel)
	}
	var wipeErr error
	for _, name := range out.Found {
		if err := Wipe(filepath.Join(bootsel, name)); err != nil {
			wipeErr = errors.Join(wipeErr, fmt.Errorf("erase %s from bootsel: %w", name, err))
			continue
		}
		log.Info("erased from bootsel (overwritten, then removed)", "file", name)
	}
	if wipeErr != nil {
		log.Error("provisioning files may still be on bootsel", "err", wipeErr)
	}
	return out, errors.Join(applyErr, wipeErr)
}

// firstBoot is where Run reads and applies, and where it logs.
type firstBoot struct {
	bootsel, root string
	log           *slog.Logger
}

// apply parses the files read from bootsel, applies them into root and
// records their mark ("": none) as applied; out gets what was done.
func (b firstBoot) apply(ctx context.Context, files map[string][]byte, mark string, out *Outcome) error {
	s, err := ParseInputs(files, func() []byte {
		cmdline, _ := readInput(filepath.Join(b.bootsel, "cmdline.txt"))
		return cmdline
	})
	if err != nil {
		return err
	}
	for _, n := range s.NotApplied {
		b.log.Warn("not applied: pibake does not do this", "setting", n)
	}
	out.NotApplied = s.NotApplied
	res, err := Apply(ctx, b.root, s, b.log)
	if err != nil {
		return err
	}
	out.Applied, out.Result = true, res
	if mark == "" {
		b.log.Warn("provisioning applied but not recorded: the next boot applies the same files again, which changes nothing")
	} else if err := (record{root: b.root}).add(mark, out.Found); err != nil {
		// Applied but not recorded: the next boot applies the same
		// files again, which changes nothing.
		b.log.Warn("could not record the provisioning as applied", "err", err)
	}
	b.log.Info("provisioning applied", "files", len(res.Paths), "mark", mark)
	return nil
}

// ParseInputs reads the provisioning files of one bootsel, by their
// names there (Inputs), as the device does at first boot (Run): pibake's
// own file, or cloud-init's files, never both. cmdline gives bootsel's
// cmdline.txt when cloud-init's files need it (nil: none). pibake
// provision check uses it, so the check refuses what the device refuses.
func ParseInputs(files map[string][]byte, cmdline func() []byte) (*Spec, error) {
	var found []string
	for _, name := range Inputs {
		if _, ok := files[name]; ok {
			found = append(found, name)
		}
	}
	_, own := files[FileName]
	cloud := len(found) > 1 || !own
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("no provisioning file (%s)", strings.Join(Inputs, ", "))
	case own && cloud:
		return nil, fmt.Errorf("both %s and cloud-init files (%s) are on bootsel: keep one kind", FileName, strings.Join(without(found, FileName), ", "))
	case own:
		return Parse(FileName, files[FileName])
	}
	ci := CloudInit{UserData: files[UserData], NetworkConfig: files[NetworkConfig], MetaData: files[MetaData]}
	if cmdline != nil {
		ci.Cmdline = cmdline()
	}
	return ParseCloudInit(ci)
}

func without(list []string, s string) []string {
	var out []string
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// readInput reads a regular file of at most MaxInput bytes.
func readInput(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxInput+1))
	if err == nil && len(data) > MaxInput {
		err = fmt.Errorf("larger than %d bytes", MaxInput)
	}
	return data, err
}

// Wipe overwrites every byte of a file with zeros in place, syncs it,
// then removes it and syncs its folder. On FAT a removed file's clusters
// keep their bytes until reused: without the overwrite, the secrets it
// held would stay readable on the card. Copies the file system made
// elsewhere (an editor's earlier save, now deleted) are out of reach.
func Wipe(path string) error {
	st, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	if err := overwrite(f, st.Size()); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// overwrite is a variable so that the wipe test can prove it matters.
var overwrite = func(f *os.File, size int64) error {
	zeros := make([]byte, 64<<10)
	for off := int64(0); off < size; {
		n := min(int64(len(zeros)), size-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return fmt.Errorf("overwrite: %w", err)
		}
		off += n
	}
	return f.Sync()
}
