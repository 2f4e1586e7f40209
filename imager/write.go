package imager

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile writes an os_list document to path atomically. It replaces
// only an earlier Imager repository (a JSON object with "os_list"); any
// other file there is the user's and is left as it is, with an error.
func WriteFile(path string, data []byte) error {
	if err := replaceable(path); err != nil {
		return fmt.Errorf("imager: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".os_list-*")
	if err != nil {
		return fmt.Errorf("imager: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("imager: write %s: %w", path, err)
	}
	return nil
}

func replaceable(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s exists and is not a file: give --out a file name", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal(data, &doc) != nil || doc["os_list"] == nil {
		return fmt.Errorf("%s exists and is not an Imager repository (no os_list): it is left as it is; choose another name, or remove it yourself", path)
	}
	return nil
}
