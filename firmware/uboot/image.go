// Package uboot writes what U-Boot needs from pibake: the A/B boot script
// as a legacy script image (boot.scr) and the slot state file it keeps on
// bootsel. Writing the 64-byte legacy header here avoids a mkimage
// dependency; the header's timestamp is 0 so the output is reproducible.
//
// Limits: legacy (not FIT) images of type "script", uncompressed.
package uboot

import (
	"bytes"
	"encoding/binary"
	"errors"
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

// ParseScriptImage checks a legacy script image and returns its script.
func ParseScriptImage(img []byte) (string, error) {
	if len(img) < headerSize+8 {
		return "", errors.New("uboot: too short for a script image")
	}
	be := binary.BigEndian
	if be.Uint32(img[0:]) != legacyMagic {
		return "", errors.New("uboot: bad magic")
	}
	h := append([]byte(nil), img[:headerSize]...)
	want := be.Uint32(h[4:])
	be.PutUint32(h[4:], 0)
	if crc32.ChecksumIEEE(h) != want {
		return "", errors.New("uboot: header CRC mismatch")
	}
	size := be.Uint32(img[12:])
	if int(size) != len(img)-headerSize {
		return "", fmt.Errorf("uboot: data size %d, image holds %d", size, len(img)-headerSize)
	}
	data := img[headerSize:]
	if crc32.ChecksumIEEE(data) != be.Uint32(img[24:]) {
		return "", errors.New("uboot: data CRC mismatch")
	}
	if img[30] != typeScript {
		return "", fmt.Errorf("uboot: image type %d is not a script", img[30])
	}
	n := be.Uint32(data[0:])
	if be.Uint32(data[4:]) != 0 || int(n) > len(data)-8 {
		return "", errors.New("uboot: bad script length table")
	}
	return string(data[8 : 8+n]), nil
}
