#!/usr/bin/env bash
# Provides a qemu-system-aarch64 that knows the raspi4b machine (QEMU 9 or
# newer) without changing the host's packages. deps.sh runs it; it may also
# be run by hand. It is idempotent: when all is in place it only proves the
# wrapper still starts, in well under a second.
#
# Contract
#   Wrapper:  $CACHE/qemu-pi/qemu-system-aarch64, where CACHE is
#             $PIBAKE_CACHE if set, else ${XDG_CACHE_HOME:-$HOME/.cache}/pibake
#             (the same folder builder/debian.DefaultCacheDir returns).
#   After this script succeeds the wrapper ALWAYS exists, is executable and
#   has been proven to start the raspi4b, raspi3b and virt machines the way
#   the tests use them. It takes exactly qemu-system-aarch64's arguments;
#   relative paths resolve against the caller's working folder as usual (it
#   is not a chroot). A Go program uses that path when it is executable and
#   otherwise tells the user to run `make deps`; it need not look at the
#   host's QEMU at all.
#     - When the host's own qemu-system-aarch64 lists raspi4b, the wrapper
#       just execs it (no helper root is kept).
#     - Otherwise the wrapper runs trixie's QEMU from the helper root
#       $CACHE/qemu-pi/root (packages qemu-system-arm and ipxe-qemu and
#       their dependencies, only unpacked: mmdebstrap --variant=extract
#       --mode=chrootless, which needs neither root nor namespaces; nothing
#       is configured or run inside it). It starts that root's own dynamic
#       loader with --library-path, so the host's libraries are not used
#       (checked) and no LD_LIBRARY_PATH leaks into QEMU's children.
#   $CACHE/qemu-pi/stamp records the mode, the QEMU version (first line of
#   --version) and the root's library folder; the wrapper's absence means
#   "not done".
#
# How the helper root finds its own data files and modules: QEMU takes its
# firmware, ROM and module folders relative to the folder of the running
# executable (/proc/self/exe) when that folder holds an entry named
# qemu-bundle. So the root gets a copy of its loader in usr/bin, which
# becomes the executable, and usr/bin/qemu-bundle -> ../.. (the root). No -L
# and no QEMU_MODULE_DIR are needed, and the host's QEMU modules (of another
# build) are never tried.
#
# The root is built in a temporary folder next to it and moved into place
# only after the proof passed; the wrapper is moved last. Rebuilt only when
# the wrapper is missing, the stamp is of another mode or format, or the
# proof fails.
set -euo pipefail

suite=trixie
mirror=${PIBAKE_QEMU_MIRROR:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
packages=qemu-system-arm,ipxe-qemu
format=1 # bump when the layout of the root or the wrapper changes

if [ -n "${PIBAKE_CACHE:-}" ]; then
  cache=$PIBAKE_CACHE
else
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/pibake
fi
case $cache in /*) ;; *) cache=$PWD/$cache ;; esac
dir=$cache/qemu-pi
wrapper=$dir/qemu-system-aarch64

die() {
  echo "qemu-pi: $*" >&2
  exit 1
}

# prove QEMU SCRATCH: start the machines the tests use, stopped (-S), and
# quit at once through the monitor. On failure, says what failed on stderr.
prove() {
  local q=$1 t=$2 machines
  local err=$t/prove.err
  : >"$err"
  if ! machines=$("$q" -machine help 2>"$err"); then
    echo "'$q -machine help' failed: $(cat "$err")" >&2
    return 1
  fi
  for m in raspi4b raspi3b virt; do
    if ! grep -q "^$m " <<<"$machines"; then
      echo "$q does not know the $m machine" >&2
      return 1
    fi
  done
  local props
  if ! props=$("$q" -device sd-card,help 2>"$err") || ! grep -q 'drive=' <<<"$props"; then
    echo "'$q -device sd-card,help' lists no drive property: $(cat "$err")" >&2
    return 1
  fi
  truncate -s 64M "$t/sd.img"
  run() {
    local what=$1
    shift
    if ! printf 'quit\n' | timeout 30 "$q" -display none -S -monitor stdio "$@" >/dev/null 2>"$err"; then
      echo "$q cannot start $what: $(cat "$err")" >&2
      echo "  command: $q -display none -S -monitor stdio $*" >&2
      return 1
    fi
  }
  run "raspi4b with an SD card on emmc2" -M raspi4b -m 2G -serial null -serial null \
    -device sd-card,drive=pisd,bus=/generic-sdhci/sd-bus \
    -drive if=none,id=pisd,file="$t/sd.img",format=raw || return 1
  run raspi3b -M raspi3b -serial null || return 1
  run "virt with virtio-net-pci (needs ipxe-qemu)" -M virt -cpu cortex-a72 -m 256 -serial none \
    -nic user,restrict=on,model=virtio-net-pci || return 1
}

# own ROOT LIBDIR: every library the root's QEMU links resolves inside the
# root. (Its loader would quietly take a missing one from the host.)
own() {
  local root=$1 libdir=$2 libs
  libs=$("$root/usr/bin/qemu-pi-ld.so" --library-path "$root/$libdir:$root/usr/lib" \
    --list "$root/usr/bin/qemu-system-aarch64" 2>&1) || {
    echo "the root's loader cannot list qemu-system-aarch64's libraries: $libs" >&2
    return 1
  }
  libs=$(grep '=>' <<<"$libs" | grep -v "=> $root/" || true)
  if [ -n "$libs" ]; then
    echo "libraries from outside $root:" $libs >&2
    return 1
  fi
}

stamp_ok() { # stamp_ok MODE
  [ -x "$wrapper" ] && [ -f "$dir/stamp" ] &&
    grep -qx "format $format" "$dir/stamp" && grep -qx "mode $1" "$dir/stamp"
}

host_qemu=$(command -v qemu-system-aarch64 || true)
mode=trixie
if [ -n "$host_qemu" ] && host_machines=$("$host_qemu" -machine help 2>/dev/null) &&
  grep -q '^raspi4b ' <<<"$host_machines"; then
  mode=host
fi

mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
rm -rf "$dir"/.build.*
tmp=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if stamp_ok "$mode"; then
  libdir=$(sed -n 's/^libdir //p' "$dir/stamp")
  if { [ "$mode" = host ] || own "$dir/root" "$libdir"; } 2>"$tmp/why" &&
    prove "$wrapper" "$tmp" 2>"$tmp/why"; then
    exit 0
  fi
  echo "deps: $wrapper does not work, providing it again: $(cat "$tmp/why")" >&2
fi

if [ "$mode" = host ]; then
  cat >"$tmp/qemu-system-aarch64" <<EOF
#!/bin/sh
# Written by pibake's scripts/qemu-pi.sh: the host's QEMU knows raspi4b.
exec $(printf %q "$host_qemu") "\$@"
EOF
  chmod 755 "$tmp/qemu-system-aarch64"
  prove "$tmp/qemu-system-aarch64" "$tmp" ||
    die "the host's $host_qemu lists raspi4b but cannot start the machines above" \
      "(Debian packages qemu-system-arm, ipxe-qemu)"
  version=$("$host_qemu" --version | head -n1)
  printf 'format %s\nmode host\nqemu %s\n' "$format" "$version" >"$tmp/stamp"
  rm -f "$wrapper"
  rm -rf "$dir/root"
  mv "$tmp/stamp" "$dir/stamp"
  mv "$tmp/qemu-system-aarch64" "$wrapper"
  exit 0
fi

command -v mmdebstrap >/dev/null || die "needs mmdebstrap (Debian package mmdebstrap)"
[ -e "$keyring" ] || die "needs $keyring (Debian package debian-archive-keyring)"
arch=$(dpkg --print-architecture)
echo "deps: installing $suite's QEMU for raspi4b into $dir (about 10 seconds and a 45 MB download, once)" >&2
start=$(date +%s)
if ! mmdebstrap --quiet --mode=chrootless --variant=extract --include="$packages" --architectures="$arch" \
  --keyring="$keyring" "$suite" "$tmp/root" "$mirror" >"$tmp/mmdebstrap.log" 2>&1; then
  tail -n 20 "$tmp/mmdebstrap.log" >&2
  die "mmdebstrap could not unpack $packages from $suite ($mirror)"
fi

root=$tmp/root
[ -x "$root/usr/bin/qemu-system-aarch64" ] || die "the $suite root has no usr/bin/qemu-system-aarch64"
loader=$(find "$root/usr/lib" -maxdepth 2 -name 'ld-linux*.so.*' -type f | head -n1)
[ -n "$loader" ] || die "the $suite root has no dynamic loader under usr/lib"
libdir=${loader%/*}
libdir=${libdir#"$root"/}
# The loader copy becomes /proc/self/exe; qemu-bundle points QEMU at the root.
cp "$loader" "$root/usr/bin/qemu-pi-ld.so"
ln -s ../.. "$root/usr/bin/qemu-bundle"
# Nothing reads these: keep the cache small.
rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/locale" "$root/usr/share/info"

cat >"$tmp/qemu-system-aarch64" <<EOF
#!/bin/sh
# Written by pibake's scripts/qemu-pi.sh: $suite's QEMU from root/ next to
# this file, run directly on the host through that root's own loader.
r=\$(dirname "\$(readlink -f "\$0")")/root
exec "\$r/usr/bin/qemu-pi-ld.so" --library-path "\$r/$libdir:\$r/usr/lib" \\
  --argv0 qemu-system-aarch64 "\$r/usr/bin/qemu-system-aarch64" "\$@"
EOF
chmod 755 "$tmp/qemu-system-aarch64"

if ! own "$root" "$libdir" || ! prove "$tmp/qemu-system-aarch64" "$tmp"; then
  die "$suite's QEMU (packages $packages) does not start on this host; the failed root is not kept"
fi
version=$("$tmp/qemu-system-aarch64" --version | head -n1)
printf 'format %s\nmode %s\nqemu %s\nlibdir %s\n' "$format" "$suite" "$version" "$libdir" >"$tmp/stamp"

# Into place: the wrapper goes first out and last in, so a run stopped
# anywhere in between leaves no wrapper, which means "not done".
rm -f "$wrapper"
if [ -e "$dir/root" ]; then mv "$dir/root" "$tmp/old-root"; fi
mv "$root" "$dir/root"
mv "$tmp/stamp" "$dir/stamp"
mv "$tmp/qemu-system-aarch64" "$wrapper"
{ own "$dir/root" "$libdir" && prove "$wrapper" "$tmp"; } || die "$wrapper stopped working once moved into place"
echo "deps: $version in $dir/root ($(du -sh "$dir/root" | cut -f1), $(($(date +%s) - start)) s)" >&2
