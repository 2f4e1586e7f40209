// Package fat writes and reads FAT32 filesystems for Raspberry Pi boot
// partitions.
//
// The writer ([Write]) builds a complete, standard FAT32 filesystem from an
// in-memory tree of files and directories in one pass. Its output is a pure
// function of its arguments: there is no clock, no randomness and no
// dependence on map iteration or on the order in which files are given, so
// the same inputs always produce the same bytes. The result passes
// "fsck.vfat -n" cleanly and is readable by the Raspberry Pi firmware, U-Boot
// (which can also overwrite existing files in place), Linux, mtools and
// Windows.
//
// Limits and choices:
//
//   - FAT32 only, with 512-byte sectors, 32 reserved sectors, two identical
//     FATs, media byte 0xF8 and the root directory at cluster 2.
//   - The filesystem must have at least 65525 clusters, the FAT32
//     minimum. With 512-byte clusters that is 34089472 bytes (about
//     32.5 MiB; 36 MiB is a comfortable floor); [MinSize] gives the exact
//     size needed for given content. The largest size is 2 TiB minus one
//     sector (the sector count is 32 bits).
//   - Cluster size follows Microsoft's table: 1 sector up to 260 MiB,
//     8 sectors up to 8 GiB, 16 up to 16 GiB, 32 up to 32 GiB and 64 above.
//   - Write builds a whole volume from the given tree. The one change
//     this package makes to an existing FAT32 volume (its own or any
//     other writer's) is [PutFile]: add or replace one file in the root
//     directory, for a provisioning file placed on a flashed card.
//   - Files are allocated in contiguous cluster runs, in sorted order;
//     empty files have start cluster 0. Files must be smaller than 4 GiB.
//   - Long file names (VFAT LFN, UTF-16) are written for every name that
//     is not already an upper-case 8.3 name; short aliases are generated
//     deterministically ("LONGFI~1.TXT"). Names are compared without regard
//     to case, as FAT does; the characters " * / : < > ? \ | and control
//     characters are rejected, as are names ending in a dot or space.
//   - A directory may hold at most 65536 directory entries (counting the
//     long-name entries), as the FAT specification requires.
//   - Every directory entry carries the single timestamp given in
//     [Options.Time] (creation, modification and access date), clamped to
//     the FAT range 1980-01-01 to 2107-12-31 and taken in UTC. No other
//     timestamps, attributes (hidden, system, read-only) or permissions
//     are stored.
//   - The volume label is upper-case ASCII, at most 11 characters, and is
//     written both to the boot sector and as a root directory entry.
//   - The boot code is a stub that asks the BIOS to try the next boot
//     device; the filesystem is not meant to be booted by a PC BIOS.
//
// The reader ([Open], [FS]) is small and meant for inspection and tests:
// it reads any FAT32 filesystem (not FAT12/16) with case-insensitive path
// lookup and long names. It does not know the DOS code page, so bytes above
// 0x7F in a short name without a long name read as Latin-1 characters.
package fat
