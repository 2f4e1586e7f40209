package bmap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
)

// Marshal renders m as a bmap 2.0 file, BmapFileChecksum included. The
// output depends only on m.
func (m *Map) Marshal() []byte {
	var b bytes.Buffer
	blocks, mapped := m.Blocks(), m.MappedBlocks()
	pct := 0.0
	if blocks > 0 {
		pct = float64(mapped) * 100 / float64(blocks)
	}
	fmt.Fprintf(&b, "<?xml version=\"1.0\" ?>\n")
	fmt.Fprintf(&b, "<!-- Block map of a pibake image: the blocks that hold data (partition\n")
	fmt.Fprintf(&b, "     tables, filesystem metadata and contents, zeros included), each\n")
	fmt.Fprintf(&b, "     run with its sha256. Write it with 'pibake flash' or\n")
	fmt.Fprintf(&b, "     'bmaptool copy'; the blocks not listed need not be written. -->\n")
	fmt.Fprintf(&b, "<bmap version=\"2.0\">\n")
	fmt.Fprintf(&b, "    <!-- Image size in bytes: %s -->\n", human(m.ImageSize))
	fmt.Fprintf(&b, "    <ImageSize> %d </ImageSize>\n\n", m.ImageSize)
	fmt.Fprintf(&b, "    <!-- Size of a block in bytes -->\n")
	fmt.Fprintf(&b, "    <BlockSize> %d </BlockSize>\n\n", m.BlockSize)
	fmt.Fprintf(&b, "    <!-- Count of blocks in the image file -->\n")
	fmt.Fprintf(&b, "    <BlocksCount> %d </BlocksCount>\n\n", blocks)
	fmt.Fprintf(&b, "    <!-- Count of mapped blocks: %s or %.1f%% -->\n", human(m.MappedBytes()), pct)
	fmt.Fprintf(&b, "    <MappedBlocksCount> %d </MappedBlocksCount>\n\n", mapped)
	fmt.Fprintf(&b, "    <!-- Type of checksum used in this file -->\n")
	fmt.Fprintf(&b, "    <ChecksumType> sha256 </ChecksumType>\n\n")
	fmt.Fprintf(&b, "    <!-- The checksum of this bmap file, computed with this value\n")
	fmt.Fprintf(&b, "         replaced by as many ASCII zeros. -->\n")
	fmt.Fprintf(&b, "    <BmapFileChecksum> ")
	sumAt := b.Len()
	b.Write(zeroSum)
	fmt.Fprintf(&b, " </BmapFileChecksum>\n\n")
	fmt.Fprintf(&b, "    <!-- The mapped block ranges, first-last inclusive, each with the\n")
	fmt.Fprintf(&b, "         sha256 of its bytes. -->\n")
	fmt.Fprintf(&b, "    <BlockMap>\n")
	for _, r := range m.Ranges {
		span := strconv.FormatInt(r.First, 10)
		if r.Last != r.First {
			span += "-" + strconv.FormatInt(r.Last, 10)
		}
		fmt.Fprintf(&b, "        <Range chksum=\"%s\"> %s </Range>\n", r.SHA256, span)
	}
	fmt.Fprintf(&b, "    </BlockMap>\n</bmap>\n")
	out := b.Bytes()
	sum := sha256.Sum256(out)
	copy(out[sumAt:], hex.EncodeToString(sum[:]))
	return out
}

type xmlRange struct {
	Chksum string `xml:"chksum,attr"`
	Text   string `xml:",chardata"`
}

type xmlMap struct {
	XMLName           xml.Name   `xml:"bmap"`
	Version           string     `xml:"version,attr"`
	ImageSize         string     `xml:"ImageSize"`
	BlockSize         string     `xml:"BlockSize"`
	BlocksCount       string     `xml:"BlocksCount"`
	MappedBlocksCount string     `xml:"MappedBlocksCount"`
	ChecksumType      string     `xml:"ChecksumType"`
	BmapFileChecksum  string     `xml:"BmapFileChecksum"`
	Ranges            []xmlRange `xml:"BlockMap>Range"`
}

// Parse reads a bmap file. It checks the file's own checksum, that the
// counts agree and that every range is sorted, disjoint, inside the image
// and carries a sha256. Errors wrap ErrFormat.
func Parse(data []byte) (*Map, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("bmap: %s: %w", fmt.Sprintf(format, args...), ErrFormat)
	}
	if len(data) > MaxFileSize {
		return nil, bad("%d bytes is more than the %d a block map may have", len(data), MaxFileSize)
	}
	var x xmlMap
	if err := xml.Unmarshal(data, &x); err != nil {
		return nil, bad("XML: %v", err)
	}
	major, minor, ok := strings.Cut(x.Version, ".")
	if !ok || !(major == "2" || (major == "1" && minor == "4")) {
		return nil, bad("format version %q; only 2.x (or 1.4) is read", x.Version)
	}
	num := func(field, s string) (int64, error) {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || n < 0 {
			return 0, bad("%s %q is not a number", field, strings.TrimSpace(s))
		}
		return n, nil
	}
	m := &Map{}
	var err error
	if m.ImageSize, err = num("ImageSize", x.ImageSize); err != nil {
		return nil, err
	}
	if m.BlockSize, err = num("BlockSize", x.BlockSize); err != nil {
		return nil, err
	}
	if m.BlockSize < 512 || m.BlockSize > 1<<20 || m.BlockSize&(m.BlockSize-1) != 0 {
		return nil, bad("BlockSize %d is not a power of two from 512 to 1 MiB", m.BlockSize)
	}
	if m.ImageSize > 1<<50 {
		return nil, bad("ImageSize %d is too large", m.ImageSize)
	}
	blocks, err := num("BlocksCount", x.BlocksCount)
	if err != nil {
		return nil, err
	}
	if blocks != m.Blocks() {
		return nil, bad("BlocksCount %d does not match ImageSize %d with BlockSize %d (%d blocks)", blocks, m.ImageSize, m.BlockSize, m.Blocks())
	}
	mapped, err := num("MappedBlocksCount", x.MappedBlocksCount)
	if err != nil {
		return nil, err
	}
	if t := strings.TrimSpace(x.ChecksumType); t != "sha256" {
		return nil, bad("ChecksumType %q; only sha256 is read", t)
	}
	sum := strings.TrimSpace(x.BmapFileChecksum)
	if !isHexSum(sum) {
		return nil, bad("BmapFileChecksum %q is not a sha256", sum)
	}
	i := bytes.Index(data, []byte(sum))
	if i < 0 {
		return nil, bad("BmapFileChecksum is not written out literally")
	}
	zeroed := bytes.Clone(data)
	copy(zeroed[i:], zeroSum)
	if got := sha256.Sum256(zeroed); hex.EncodeToString(got[:]) != strings.ToLower(sum) {
		return nil, bad("the file's checksum is %x, BmapFileChecksum says %s: the file was changed or cut", got, sum)
	}
	for _, xr := range x.Ranges {
		span := strings.TrimSpace(xr.Text)
		a, b, isRange := strings.Cut(span, "-")
		var r Range
		if r.First, err = num("Range", a); err != nil {
			return nil, err
		}
		r.Last = r.First
		if isRange {
			if r.Last, err = num("Range", b); err != nil {
				return nil, err
			}
		}
		switch {
		case r.Last < r.First:
			return nil, bad("range %q ends before it starts", span)
		case r.Last >= blocks:
			return nil, bad("range %q goes past the image's %d blocks", span, blocks)
		case len(m.Ranges) > 0 && r.First <= m.Ranges[len(m.Ranges)-1].Last:
			return nil, bad("range %q overlaps or precedes the range before it", span)
		case !isHexSum(xr.Chksum):
			return nil, bad("range %q has no sha256 chksum (%q)", span, xr.Chksum)
		}
		r.SHA256 = strings.ToLower(xr.Chksum)
		m.Ranges = append(m.Ranges, r)
	}
	if mapped != m.MappedBlocks() {
		return nil, bad("MappedBlocksCount %d but the ranges hold %d blocks", mapped, m.MappedBlocks())
	}
	return m, nil
}

func isHexSum(s string) bool {
	if len(s) != sha256.Size*2 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
