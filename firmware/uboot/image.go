// Package uboot writes what U-Boot needs from pibake: the A/B boot script
// as a legacy script image (boot.scr), with the kernel, device tree and
// initramfs placed in memory from their sizes. The slot state file the
// script keeps on bootsel and the kernel command line it passes are
// bootchain's; the test oracles are in ubootcheck. Writing the 64-byte
// legacy header here avoids a mkimage dependency; the header's timestamp
// is 0 so the output is reproducible.
//
// Limits: legacy (not FIT) images of type "script", uncompressed.
package uboot

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

const (
	legacyMagic = 0x27051956
	headerSize  = 64
	osLinux     = 5
	archARM64   = 22
	typeScript  = 6
	compNone    = 0
)

// ScriptImage wraps a U-Boot script in a legacy image header, the format
// the `source` command reads from boot.scr.
func ScriptImage(name, script string) ([]byte, error) {
	if len(name) > 31 {
		return nil, fmt.Errorf("uboot: image name %q longer than 31 bytes", name)
	}
	body := []byte(script)
	// Script payload: a table of sizes ending in 0, then the script itself.
	var data bytes.Buffer
	_ = binary.Write(&data, binary.BigEndian, uint32(len(body)))
	_ = binary.Write(&data, binary.BigEndian, uint32(0))
	data.Write(body)

	h := make([]byte, headerSize)
	be := binary.BigEndian
	be.PutUint32(h[0:], legacyMagic)
	// h[4:8] header CRC, filled below; h[8:12] timestamp stays 0.
	be.PutUint32(h[12:], uint32(data.Len()))
	be.PutUint32(h[24:], crc32.ChecksumIEEE(data.Bytes()))
	h[28], h[29], h[30], h[31] = osLinux, archARM64, typeScript, compNone
	copy(h[32:], name)
	be.PutUint32(h[4:], crc32.ChecksumIEEE(h))
	return append(h, data.Bytes()...), nil
}
