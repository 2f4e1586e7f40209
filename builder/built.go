package builder

import (
	"fmt"
	"time"
)

// The image's build time as its update agent sees it (updater.yaml's
// built:): the floor of the clock that judges a channel document's expiry
// on a device without a clock (a Pi before time sync reads 1970 or its
// last shutdown). It must be reproducible, so it is the build's epoch:
// the lock's source_date_epoch (the day the package set was taken), or
// SOURCE_DATE_EPOCH when the build is given one. Nothing else the inputs
// carry is later: the Debian packages are resolved at lock time, the
// files' timestamps are clamped to the epoch. A release pipeline that
// sets SOURCE_DATE_EPOCH to its commit's time (git log -1 --format=%ct)
// gets a floor close to the build; a lock months old leaves a device
// without a clock accepting documents that expired since, which
// staleBuilt warns about.

// staleAfter is how old an epoch may be before a build with an update
// agent warns about it.
const staleAfter = 30 * 24 * time.Hour

// staleBuilt is the warning for an epoch well before now ("" if none).
// now is the build host's clock: it only decides the warning, never a
// byte of the image.
func staleBuilt(epoch int64, now time.Time) string {
	at := time.Unix(epoch, 0).UTC()
	if now.Sub(at) <= staleAfter {
		return ""
	}
	return fmt.Sprintf("the image's build time (built: in its updater.yaml) is the epoch %s, %d days ago: a device without a clock accepts channel documents that expired since then; set SOURCE_DATE_EPOCH to the release's commit time (git log -1 --format=%%ct) or run 'pibake lock' again",
		at.Format(time.DateOnly), int(now.Sub(at).Hours()/24))
}
