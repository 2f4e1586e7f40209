package imager

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/pibake/pibake/internal/atomicfile"
)

// WriteFile writes an os_list document to path atomically. It replaces
// only an earlier Imager repository (a JSON object with "os_list"); any
// other file there is the user's and is left as it is, with an error.
func WriteFile(path string, data []byte) error {
	if err := atomicfile.CheckReplace(path, "an Imager repository (no os_list)", isOSList); err != nil {
		return fmt.Errorf("imager: %w", err)
	}
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return fmt.Errorf("imager: write %s: %w", path, err)
	}
	return nil
}

func isOSList(f *os.File) bool {
	data, err := io.ReadAll(io.LimitReader(f, 64<<20))
	if err != nil {
		return false
	}
	var doc map[string]json.RawMessage
	return json.Unmarshal(data, &doc) == nil && doc["os_list"] != nil
}
