package ubootcheck

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The legacy image header as U-Boot's image.h declares it, read here
// independently of the writer it checks.
const (
	legacyMagic = 0x27051956
	headerSize  = 64
	typeScript  = 6
)

// ParseScriptImage checks a legacy script image and returns its script.
func ParseScriptImage(img []byte) (string, error) {
	if len(img) < headerSize+8 {
		return "", errors.New("ubootcheck: too short for a script image")
	}
	be := binary.BigEndian
	if be.Uint32(img[0:]) != legacyMagic {
		return "", errors.New("ubootcheck: bad magic")
	}
	h := append([]byte(nil), img[:headerSize]...)
	want := be.Uint32(h[4:])
	be.PutUint32(h[4:], 0)
	if crc32.ChecksumIEEE(h) != want {
		return "", errors.New("ubootcheck: header CRC mismatch")
	}
	size := be.Uint32(img[12:])
	if int(size) != len(img)-headerSize {
		return "", fmt.Errorf("ubootcheck: data size %d, image holds %d", size, len(img)-headerSize)
	}
	data := img[headerSize:]
	if crc32.ChecksumIEEE(data) != be.Uint32(img[24:]) {
		return "", errors.New("ubootcheck: data CRC mismatch")
	}
	if img[30] != typeScript {
		return "", fmt.Errorf("ubootcheck: image type %d is not a script", img[30])
	}
	n := be.Uint32(data[0:])
	if be.Uint32(data[4:]) != 0 || int(n) > len(data)-8 {
		return "", errors.New("ubootcheck: bad script length table")
	}
	return string(data[8 : 8+n]), nil
}
