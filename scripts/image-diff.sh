#!/bin/bash
# image-diff.sh A.img B.img: what differs between two pibake images, file by
# file. Partitions with the same bytes are reported as such; the others are
# unpacked (FAT with mtools, squashfs with unsquashfs, the initramfs inside a
# boot partition with cpio) and compared, listing each file whose content,
# mode, owner or link target differs. Used to check that a refactor changed
# nothing but the device programs it recompiled. Needs sfdisk, mtools,
# squashfs-tools, cpio and zstd/gzip (scripts/deps.sh installs them).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 A.img B.img" >&2; exit 2; }
a=$1 b=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

parts() { sfdisk --json "$1" | python3 -c '
import json, sys
for p in json.load(sys.stdin)["partitiontable"]["partitions"]:
    if p["type"] not in ("f", "5"):
        print(p["node"][-1], p["start"], p["size"], p["type"])'; }

unpack_initrd() { # $1 initrd file, $2 destination
	mkdir -p "$2"
	local kind; kind=$(file -b "$1")
	case $kind in
	*Zstandard*) zstd -dc "$1" ;;
	*gzip*) gzip -dc "$1" ;;
	*) cat "$1" ;;
	esac | (cd "$2" && cpio -id --quiet --no-absolute-filenames 2>/dev/null)
}

listing() { # a tree's metadata: mode, owner, link target, size of every entry
	(cd "$1" && find . -printf '%p %M %u:%g %l %s\n' | LC_ALL=C sort)
}

compare_trees() { # $1 label, $2 tree A, $3 tree B
	diff <(listing "$2") <(listing "$3") | sed -n 's/^[<>] \(\S*\).*/\1/p' | LC_ALL=C sort -u | sed "s|^\./|  $1: metadata or size: |" || true
	# device nodes cannot be compared by content; the listing above covers them
	diff -rq --no-dereference "$2" "$3" 2>/dev/null | grep -v 'special file while file .* special file$' | sed "s|$work/[ab]/||g; s|^|  $1: |" || true
}

differ=0
while read -r n start size type; do
	for s in a b; do
		img=$a; [ $s = b ] && img=$b
		dd if="$img" of="$work/$s.p$n" bs=512 skip="$start" count="$size" status=none
	done
	if cmp -s "$work/a.p$n" "$work/b.p$n"; then
		echo "p$n: identical"
		continue
	fi
	differ=1
	echo "p$n: differs"
	for s in a b; do
		mkdir -p "$work/$s/p$n"
		case $type in
		c | b) mcopy -s -n -m -i "$work/$s.p$n" ::/ "$work/$s/p$n/" ;;
		83) if unsquashfs -s "$work/$s.p$n" >/dev/null 2>&1; then
				unsquashfs -q -n -d "$work/$s/p$n/root" "$work/$s.p$n" >/dev/null
			fi ;;
		esac
		if [ -f "$work/$s/p$n/initrd.img" ]; then
			unpack_initrd "$work/$s/p$n/initrd.img" "$work/$s/p$n.initrd"
		fi
	done
	compare_trees "p$n" "$work/a/p$n" "$work/b/p$n"
	if [ -d "$work/a/p$n.initrd" ]; then
		compare_trees "p$n initrd" "$work/a/p$n.initrd" "$work/b/p$n.initrd"
	fi
	rm -rf "$work/a/p$n" "$work/b/p$n" "$work/a/p$n.initrd" "$work/b/p$n.initrd" "$work/a.p$n" "$work/b.p$n"
done < <(parts "$a")
exit $differ
