// Package fatcheck reads what tests check in a FAT32 boot sector that
// the fat package's reader has no production use for: the volume serial
// number. It reads the raw sector itself, independently of fat.Open.
// Only tests import it.
package fatcheck

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// VolumeID returns the volume serial number of the FAT32 filesystem that
// starts at offset 0 of r: the 32-bit field at byte 67 of the boot sector,
// which is only there when the extended boot signature 0x29 (byte 66) is.
func VolumeID(r io.ReaderAt) (uint32, error) {
	bs := make([]byte, 512)
	if _, err := r.ReadAt(bs, 0); err != nil {
		return 0, fmt.Errorf("fatcheck: reading boot sector: %w", err)
	}
	if bs[510] != 0x55 || bs[511] != 0xaa {
		return 0, errors.New("fatcheck: boot sector has no 0x55AA signature")
	}
	if bs[66] != 0x29 {
		return 0, fmt.Errorf("fatcheck: no extended boot signature (byte 66 is %#x, not 0x29), so no volume ID", bs[66])
	}
	return binary.LittleEndian.Uint32(bs[67:]), nil
}
