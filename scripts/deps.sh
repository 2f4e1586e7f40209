#!/usr/bin/env bash
# Installs what building and testing pibake needs on a Debian host, or says
# exactly what is missing, then proves QEMU starts the machines the tests
# boot. Idempotent: when all is in place it only runs the proofs (well under
# a second). The host needs no u-boot-qemu: vm/ boots each image with the
# U-Boot the image carries on bootsel.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

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
  # provision's wipe test mounts a FAT image with it when the kernel has no vfat
  fusefat:fusefat
  dpkg-deb:dpkg
  # make deb strips the packaged pibake (scripts/deb.sh, cmd/pibake/deb_test.go)
  strip:binutils
  e2fsck:e2fsprogs
  cpio:cpio
  mkimage:u-boot-tools
  fdtget:device-tree-compiler
  qemu-system-aarch64:qemu-system-arm
  bmaptool:bmap-tools
  zstd:zstd
  losetup:mount
  # pibake lock resolves with the host's apt; its test signs a fake archive
  apt-get:apt
  gpg:gnupg
  # make bench DELTA=DIR compares delta updates with a binary diff
  xdelta3:xdelta3
  # scripts/delta-demo.sh fetches the security archive's index and one .deb
  curl:curl
  # the units' sandbox tests rate and load them (builder/system/unitcheck)
  systemd-analyze:systemd
  docker-registry:docker-registry # a real registry with TLS and a login for the pull tests (internal/registrytest)
  # the edge stack's tests run the real broker and Redis (internal/servicetest)
  mosquitto:mosquitto redis-server:redis-server
  # redis-cli checks the backend's writes independently (internal/servicetest)
  redis-cli:redis-tools
  # the edge story publishes to the booted box's broker (e2e/edge_test.go)
  mosquitto_pub:mosquitto-clients
  # keygen's key files and publish's signatures are checked with the CLI
  # both ways (updater/channel/minisign_test.go)
  minisign:minisign
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
# file:package pairs, for packages without a command
files=(
  # the archive keys: pibake lock verifies the mirror's indexes with them
  # (builder/debian/resolve.go), scripts/qemu-pi.sh the trixie archive
  /usr/share/keyrings/debian-archive-keyring.gpg:debian-archive-keyring
  # the option ROM of QEMU's virtio-net-pci, which the tests' -nic uses; a
  # Recommends of qemu-system-arm, so --no-install-recommends leaves it out
  /usr/lib/ipxe/qemu/efi-virtio.rom:ipxe-qemu
)
for f in "${files[@]}"; do
  [ -e "${f%%:*}" ] || missing+=("${f##*:}")
done

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

# Prove the host's QEMU starts the machine vm/vm.go boots, with the same
# machine, CPU, disk and NIC options, stopped (-S) and quit at once.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
truncate -s 64M "$scratch/disk.img"
if ! printf 'quit\n' | TMPDIR=$scratch timeout 30 qemu-system-aarch64 \
  -M virt -cpu cortex-a72 -smp 2 -m 256 -display none -serial none -monitor stdio -S \
  -drive file="$scratch/disk.img",format=raw,if=virtio,snapshot=on \
  -nic user,restrict=on,model=virtio-net-pci >/dev/null 2>"$scratch/err"; then
  echo "deps: qemu-system-aarch64 cannot start the tests' virt machine:" >&2
  sed 's/^/  /' "$scratch/err" >&2
  echo "It comes from the Debian packages qemu-system-arm and ipxe-qemu (efi-virtio.rom)." >&2
  echo "As root: apt-get install --reinstall qemu-system-arm qemu-system-data ipxe-qemu" >&2
  exit 1
fi

# A QEMU that knows raspi4b (QEMU 9 or newer), as <cache>/qemu-pi/
# qemu-system-aarch64; the contract is in the header of qemu-pi.sh.
bash "$here/qemu-pi.sh"
