package provision

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// Inputs are the provisioning files looked for in the root of bootsel.
var Inputs = []string{FileName, UserData, NetworkConfig, MetaData}

// Outcome is what Run did.
type Outcome struct {
	Found      []string // the input files found on bootsel
	Sum        string   // their sha256, as recorded
	Applied    bool
	Already    bool // the same files were applied before (only wiped now)
	Result     Result
	NotApplied []string
}

// Run is the first-boot sequence: read the provisioning files in bootsel
// (a mounted folder), apply them into root unless the same files were
// applied before, then wipe them from bootsel whatever the outcome. A
// refusal leaves ErrorFile on bootsel. The error returned is the
// refusal's or the wipe's.
func Run(ctx context.Context, bootsel, root string, log *slog.Logger) (Outcome, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var out Outcome
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
	sum := digest(files)
	out.Sum = sum
	applyErr := readErr
	if applyErr == nil {
		if applied(filepath.Join(root, RecordPath), sum) {
			out.Already = true
			log.Info("these files were applied before; only erasing them", "sha256", sum)
		} else {
			applyErr = firstBoot{bootsel: bootsel, root: root, log: log}.apply(ctx, files, sum, &out)
		}
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

// apply parses the files read from bootsel (sum identifies them), applies
// them into root and records them as applied; out gets what was done.
func (b firstBoot) apply(ctx context.Context, files map[string][]byte, sum string, out *Outcome) error {
	var s *Spec
	var err error
	_, own := files[FileName]
	cloud := len(files) > 1 || !own
	switch {
	case own && cloud:
		return fmt.Errorf("both %s and cloud-init files (%s) are on bootsel: keep one kind", FileName, strings.Join(without(out.Found, FileName), ", "))
	case own:
		s, err = Parse(FileName, files[FileName])
	default:
		ci := CloudInit{UserData: files[UserData], NetworkConfig: files[NetworkConfig], MetaData: files[MetaData]}
		ci.Cmdline, _ = readInput(filepath.Join(b.bootsel, "cmdline.txt"))
		s, err = ParseCloudInit(ci)
	}
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
	if err := record(filepath.Join(b.root, RecordPath), sum, out.Found); err != nil {
		// Applied but not recorded: the next boot applies the same
		// files again, which changes nothing.
		b.log.Warn("could not record the provisioning as applied", "err", err)
	}
	b.log.Info("provisioning applied", "files", len(res.Paths), "sha256", sum)
	return nil
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

// digest identifies a set of input files (names and contents).
func digest(files map[string][]byte) string {
	h := sha256.New()
	for _, name := range Inputs {
		if data, ok := files[name]; ok {
			fmt.Fprintf(h, "%s %d\n", name, len(data))
			h.Write(data)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func applied(record, sum string) bool {
	data, err := os.ReadFile(record)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == sum {
			return true
		}
	}
	return false
}

func record(path, sum string, found []string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	line := sum + "  " + strings.Join(found, ",") + "\n"
	return atomicfile.Write(path, append(old, line...), 0o644)
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
