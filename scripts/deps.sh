#!/usr/bin/env bash
# Installs what building and testing pibake needs on a Debian host, or says
# exactly what is missing. Idempotent: does nothing when all is in place.
set -euo pipefail

# command:package pairs
tools=(
  mmdebstrap:mmdebstrap
  qemu-aarch64-static:qemu-user-static
  update-binfmts:binfmt-support
  arch-test:arch-test
  tar2sqfs:squashfs-tools-ng
  unsquashfs:squashfs-tools
  fsck.vfat:dosfstools
  sfdisk:fdisk
  mdir:mtools
  dpkg-deb:dpkg
  e2fsck:e2fsprogs
  cpio:cpio
  mkimage:u-boot-tools
  qemu-system-aarch64:qemu-system-arm
)

sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
fi

missing=()
for t in "${tools[@]}"; do
  cmd=${t%%:*} pkg=${t##*:}
  if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1; then
    missing+=("$pkg")
  fi
done
# The trixie archive keys come with debian-archive-keyring.
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] && [ -z "$sudo" ]; then
    echo "pibake needs these Debian packages: ${missing[*]}" >&2
    echo "run as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
  echo "pibake needs Go 1.26 or newer on PATH (or in /usr/local/go)" >&2
  exit 1
fi

# arm64 maintainer scripts run under qemu-user through binfmt_misc.
if [ "$(dpkg --print-architecture)" != arm64 ]; then
  if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    $sudo mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    $sudo update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  fi
  if ! arch-test arm64 >/dev/null 2>&1; then
    echo "arm64 binaries cannot run on this host: binfmt_misc is not available for qemu-aarch64." >&2
    echo "As root: mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && update-binfmts --enable qemu-aarch64" >&2
    exit 1
  fi
fi
