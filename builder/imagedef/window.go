package imagedef

import (
	"errors"
	"fmt"
	"time"

	// Zone rules for the build when its host has none: the device never
	// reads any (config.Window carries the zone's offsets).
	_ "time/tzdata"

	"github.com/pibake/pibake/updater/config"
)

// zoneYears is how far the offsets the image carries reach: far past
// any image's service life, for a few hundred bytes.
const zoneYears = 40

// ResolvedWindow is the maintenance window as the image carries it: the
// definition's, with its time zone resolved into offsets from UTC (a
// year before built on, for zoneYears), nil if there is none. The rules
// are the build's own zone database's (the host's, else pibake's copy),
// so an image built with newer rules carries them to its devices.
func (u *Updater) ResolvedWindow(built time.Time) (*config.Window, error) {
	if u.Window == nil {
		return nil, nil
	}
	w := *u.Window
	if len(w.Changes) > 0 {
		return nil, errors.New("changes: is written by the build from timezone: remove it from the definition")
	}
	if w.Timezone == "" || w.Timezone == "UTC" {
		return &w, nil
	}
	loc, err := time.LoadLocation(w.Timezone)
	if err != nil || w.Timezone == "Local" {
		return nil, fmt.Errorf("timezone %q is not a zone name of the time zone database (e.g. Europe/Paris, America/New_York, UTC)", w.Timezone)
	}
	w.Changes = config.ZoneChanges(loc, built.AddDate(-1, 0, 0), zoneYears)
	return &w, nil
}
