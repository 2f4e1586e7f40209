//go:build !pibake_embed

package deviceprog

import "io/fs"

// embedded is nil: this pibake was built without the build tag
// pibake_embed (plain go build, go install, go test), so builds compile
// the device programs from a pibake checkout.
func embedded() fs.FS { return nil }
