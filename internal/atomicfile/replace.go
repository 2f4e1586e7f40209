package atomicfile

import (
	"errors"
	"fmt"
	"os"
)

// CheckReplace says whether a command may write path: nothing is there,
// or a file it wrote before, as ours judges from the file's content. A
// folder, a device or any other file is somebody else's: the error says
// it is left alone (what names the kind of file the command writes, "a
// pibake bundle").
func CheckReplace(path, what string, ours func(f *os.File) bool) error {
	st, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s exists and is not a file: give a file name", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if !ours(f) {
		return fmt.Errorf("%s exists and is not %s: it is left as it is; choose another name, or remove it yourself", path, what)
	}
	return nil
}
