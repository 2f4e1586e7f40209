// Package mbr writes and reads MS-DOS (MBR) partition tables for
// Raspberry Pi disk images.
//
// Limits:
//
//   - Sectors are always 512 bytes (SectorSize); there is no support for
//     4Kn devices.
//   - Addressing is LBA only. The CHS fields are still filled in, computed
//     from the LBA with the usual 255-head, 63-sectors-per-track geometry;
//     addresses beyond cylinder 1023 (about 7.8 GiB) are clamped to
//     1023/254/63, i.e. the conventional bytes 0xFE 0xFF 0xFF.
//   - At most 3 primary partitions. When logical partitions are requested,
//     one extended partition (type 0x0F, "W95 Ext'd (LBA)") is placed in the
//     MBR slot right after the primaries and holds any number of logical
//     partitions chained through EBRs (Read bounds the walk to 128 EBRs).
//   - The disk, and therefore every partition, must fit in 2^32 sectors
//     (2 TiB), the range of the 32-bit LBA fields.
//   - The boot code area (the first 446 bytes of sector 0) is written as
//     zeros; Write touches only the MBR and EBR sectors, so stale data in
//     other sectors (for example an old GPT) is left alone.
//
// Numbering follows the Linux kernel: MBR slots are partitions 1..4 (the
// primaries take slots 1..len(Primary), the extended partition the next
// one) and logical partitions are numbered from 5 in chain order.
//
// EBR layout rule: the EBR of logical partition i lives at absolute LBA
// ebr(i), where ebr(0) = ExtendedStart and, for i > 0,
// ebr(i) = Logical[i].Start - gap with gap = Logical[0].Start - ExtendedStart.
// Every logical partition thus sits the same distance after its EBR. Each
// ebr(i) must lie strictly after the end of Logical[i-1]. The extended
// partition runs from ExtendedStart to the end of the last logical
// partition. In each EBR, entry 1 describes the logical partition with its
// start relative to that EBR; entry 2, unless this is the last EBR, links to
// the next EBR (type 0x05, start relative to ExtendedStart, size from the
// next EBR to the end of the next logical partition); entries 3 and 4 are
// zero. Every table sector ends with the 0x55 0xAA signature.
//
// A disk signature of zero is rejected by Write: Linux derives PARTUUIDs
// ("%08x-%02x", see PartUUID) from it, and an all-zero identifier is
// neither unique nor reliably honoured by tools.
package mbr
