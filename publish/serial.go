package publish

import (
	"fmt"

	"github.com/pibake/pibake/updater/channel"
)

// nextSerial is the serial the new document takes, and what to warn of.
//
// Publish counts a channel's serial up by one and records each serial in
// its signed history before it writes the document, so the current
// document's serial is never above the newest serial of the history. One
// above it did not come from a publish of this repository: a leaked key
// signed it (a previous key most likely, a rotation's usual reason).
// Continuing from it would put the channel out of reach of every device
// whose committed serial is more than channel.MaxSerialJump below, so
// publish refuses; Options.SerialFrom says where to continue instead.
// Without a signed history, a document only a previous key signed is
// refused the same way: nothing this key signed vouches for its serial.
func nextSerial(o Options, prev *channel.Document, byPrevious bool, hist *storedHistory) (uint64, string, error) {
	var newest uint64
	if hist.signed {
		newest = hist.newest()
	}
	const recovery = `docs/updates.md, "When a key leaks"`
	switch {
	case o.SerialFrom > 0 && prev != nil && o.SerialFrom < prev.Serial:
		return o.SerialFrom + 1, fmt.Sprintf("serial %d follows --serial-from %d, below the current document's serial %d: a device that committed serial %d or more refuses this release", o.SerialFrom+1, o.SerialFrom, prev.Serial, o.SerialFrom+1), nil
	case o.SerialFrom > 0:
		return o.SerialFrom + 1, "", nil
	case prev == nil && newest > 0:
		return newest + 1, fmt.Sprintf("channel %s has no document, but its signed history records serial %d: continuing from it (a serial started again at 1 would be refused by every device that committed one)", o.Channel, newest), nil
	case prev == nil:
		return 1, "", nil
	case newest > 0 && prev.Serial > newest:
		return 0, "", fmt.Errorf("the current document of channel %s has serial %d, above %d, the newest serial of the channel's signed history: publish records every serial there before it writes the document, so this one did not come from a publish of this repository (a leaked key signed it?), and continuing from it can put the channel out of every device's reach (%s); continue from your own serial with --serial-from %d, or, if you did publish serial %d, with --serial-from %d",
			o.Channel, prev.Serial, newest, recovery, newest, prev.Serial, prev.Serial)
	case byPrevious && newest == 0:
		return 0, "", fmt.Errorf("the current document of channel %s (serial %d) is signed by a --previous-key only, and no history signed by these keys records its serial: a leaked previous key could have set it anywhere (%s); check it against the serial you last published, then pass --serial-from %d, or your own serial",
			o.Channel, prev.Serial, recovery, prev.Serial)
	case byPrevious:
		return prev.Serial + 1, fmt.Sprintf("channel %s continues from serial %d, of a document signed by a --previous-key that its history records: check that it is the serial you last published (%s)", o.Channel, prev.Serial, recovery), nil
	}
	return prev.Serial + 1, "", nil
}
