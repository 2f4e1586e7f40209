#!/usr/bin/env bash
# Packs an installed pibake into a Debian package (make deb, docs/install.md):
#
#   scripts/deb.sh BINARY VERSION OUT.deb   the package of BINARY, a pibake
#                                           that 'make build' made (device
#                                           programs inside) at VERSION
#   scripts/deb.sh debversion VERSION       only print VERSION (git describe)
#                                           as a Debian version
#
# The package holds /usr/bin/pibake (stripped of its symbol tables, as
# Debian's binaries are; the device programs inside are untouched), its bash
# and zsh completion (written by the binary itself), README.md and docs/
# under /usr/share/doc/pibake. It is reproducible: every time is
# SOURCE_DATE_EPOCH (the commit's time unless the environment sets one),
# owners are root, modes fixed, members sorted and compressed on one thread,
# so the same commit gives the same bytes. DEB_COMPRESSION=gzip packs faster
# and larger than the default xz.
set -euo pipefail
export LC_ALL=C

# debversion maps git describe (v1.2.0, v1.2.0-rc1, v1.2.0-5-gabc1234,
# abc1234, any of them -dirty) to a Debian version that sorts the same way:
# 1.2.0, 1.2.0~rc1, 1.2.0+5.gabc1234, 0~gabc1234, +dirty appended.
debversion() {
  local v=${1#v} dirty="" tag n hash
  case $v in *-dirty) dirty="+dirty" v=${v%-dirty} ;; esac
  if [[ $v =~ ^(.*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
    tag=${BASH_REMATCH[1]} n=${BASH_REMATCH[2]} hash=${BASH_REMATCH[3]}
  elif [[ $v =~ ^[0-9a-f]{7,40}$ ]]; then
    tag=0 n="" hash=$v
  else
    tag=$v n="" hash=""
  fi
  # A hyphen in a tag is a pre-release (semver): before the release, so ~.
  tag=${tag//-/\~}
  tag=$(printf '%s' "$tag" | tr -c 'A-Za-z0-9.+~' '.')
  if [[ ! $tag =~ ^[0-9] ]]; then
    tag="0~$tag"
  fi
  if [ -n "$n" ]; then
    printf '%s+%s.g%s%s\n' "$tag" "$n" "$hash" "$dirty"
  elif [ -n "$hash" ]; then
    printf '%s~g%s%s\n' "$tag" "$hash" "$dirty"
  else
    printf '%s%s\n' "$tag" "$dirty"
  fi
}

if [ "${1:-}" = debversion ] && [ $# = 2 ]; then
  debversion "$2"
  exit 0
fi
if [ $# != 3 ]; then
  echo "usage: scripts/deb.sh BINARY VERSION OUT.deb | scripts/deb.sh debversion VERSION" >&2
  exit 2
fi
bin=$1 version=$2 out=$3
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ ! -x "$bin" ]; then
  echo "deb: $bin is not an executable pibake: run 'make build' first (make deb does)" >&2
  exit 1
fi
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  if ! SOURCE_DATE_EPOCH=$(git -C "$top" log -1 --format=%ct 2>/dev/null) || [ -z "$SOURCE_DATE_EPOCH" ]; then
    echo "deb: no SOURCE_DATE_EPOCH and no git commit in $top to take it from: set SOURCE_DATE_EPOCH" >&2
    exit 1
  fi
fi
export SOURCE_DATE_EPOCH
case ${DEB_COMPRESSION:-xz} in
  xz) z=(-Zxz -z6) ;;
  gzip) z=(-Zgzip -z9) ;;
  *) echo "deb: DEB_COMPRESSION=$DEB_COMPRESSION: want xz or gzip" >&2; exit 2 ;;
esac
# Only an earlier package of pibake is replaced, never another file.
if [ -e "$out" ] && [ "$(dpkg-deb --field "$out" Package 2>/dev/null)" != pibake ]; then
  echo "deb: $out exists and is not a pibake package: not replacing it; choose another DEB=" >&2
  exit 1
fi
debver=$(debversion "$version")
arch=$(dpkg --print-architecture)

# What pibake runs on the host: mmdebstrap bootstraps the root filesystem,
# tar2sqfs packs it, apt-get and the archive keyring resolve a lock,
# dpkg-deb unpacks the boot packages (dpkg is essential, so not listed);
# away from arm64, the packages' maintainer scripts run under qemu-user
# through binfmt_misc. pibake vm boots an image with qemu-system-aarch64.
depends="mmdebstrap, squashfs-tools-ng, apt, debian-archive-keyring"
if [ "$arch" != arm64 ]; then
  depends="$depends, qemu-user-static, binfmt-support"
fi
suggests="qemu-system-arm, ipxe-qemu, minisign"

root=$(mktemp -d)
trap 'rm -rf "$root" "$root.deb"' EXIT
umask 022
install -D -m 0755 "$bin" "$root/usr/bin/pibake"
strip --strip-unneeded "$root/usr/bin/pibake"
mkdir -p "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" "$root/usr/share/doc/pibake/docs" \
  "$root/usr/share/lintian/overrides"
cat >"$root/usr/share/lintian/overrides/pibake" <<'EOF'
# Go programs are statically linked (CGO_ENABLED=0); lintian exempts them
# only when it sees a Go source package.
pibake: statically-linked-binary [usr/bin/pibake]
# The dpkg database pibake reads is the one inside the image it builds.
pibake: uses-dpkg-database-directly [usr/bin/pibake]
EOF
"$bin" completion bash >"$root/usr/share/bash-completion/completions/pibake"
"$bin" completion zsh >"$root/usr/share/zsh/vendor-completions/_pibake"
install -m 0644 "$top/README.md" "$root/usr/share/doc/pibake/README.md"
install -m 0644 "$top"/docs/*.md "$root/usr/share/doc/pibake/docs/"
cat >"$root/usr/share/doc/pibake/copyright" <<EOF
pibake $version, built from the pibake source repository (module
github.com/pibake/pibake) with the Go toolchain; the binary links only the
Go standard library and the modules listed in the source's go.mod.
The source carries no license file of its own.
EOF
date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
printf 'pibake (%s) unstable; urgency=medium\n\n  * Built from %s.\n\n -- pibake maintainers <maintainers@pibake.invalid>  %s\n' \
  "$debver" "$version" "$date" | gzip -n -9 >"$root/usr/share/doc/pibake/changelog.gz"
chmod 0644 "$root"/usr/share/bash-completion/completions/pibake "$root"/usr/share/zsh/vendor-completions/_pibake \
  "$root"/usr/share/doc/pibake/copyright "$root"/usr/share/doc/pibake/changelog.gz "$root"/usr/share/lintian/overrides/pibake

mkdir -p "$root/DEBIAN"
(cd "$root" && find usr -type f | sort | xargs md5sum) >"$root/DEBIAN/md5sums"
size=$(du -s -k --apparent-size "$root/usr" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: pibake
Version: $debver
Architecture: $arch
Maintainer: pibake maintainers <maintainers@pibake.invalid>
Installed-Size: $size
Depends: $depends
Suggests: $suggests
Section: devel
Priority: optional
Description: build Raspberry Pi A/B images and publish signed updates
 pibake builds reproducible Raspberry Pi images with two system slots from
 an image definition and a lock of Debian packages, flashes them, and
 publishes signed releases that its update agent on the devices installs
 into the other slot, with health checks and automatic rollback. The device
 programs (the initramfs init and the update agent) are built into this
 binary: no Go and no pibake source are needed to build images.
EOF
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"
find "$root" -type d -exec chmod 0755 {} +
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$(dirname "$out")"
dpkg-deb --root-owner-group "${z[@]}" --threads-max=1 --build "$root" "$root.deb" >/dev/null
mv "$root.deb" "$out"
echo "deb: $out (pibake $debver, $arch)"
