//go:build pibake_embed

package deviceprog

import (
	"embed"
	"io/fs"
)

// programs is what gen.go compiled into programs/ before `make build`.
//
//go:embed programs/pibake-init programs/pibake-updater programs/version programs/go
var programs embed.FS

func embedded() fs.FS {
	sub, err := fs.Sub(programs, "programs")
	if err != nil {
		panic(err) // a constant path
	}
	return sub
}
