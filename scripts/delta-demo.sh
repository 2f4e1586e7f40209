#!/bin/bash
# Build the demo four times and lay out their artifacts for the delta
# figures (internal/deltabench, make bench DELTA=WORKDIR):
#   v1  the demo as committed
#   v2  only the hello container's code and version changed
#   v3  only an overlay file changed
#   v4  one Debian package upgraded: libzstd1 from the security archive
#       (the lock's line replaced; the .deb fetched and checked against the
#       security archive's index, then put in the package cache)
#   scripts/delta-demo.sh WORKDIR   -> WORKDIR/art/v{1,2,3,4}/{boot,root}
# Each release is also published in order into WORKDIR/repo (channel
# stable), so repo/channels/stable.cost.json holds publish's own figures.
# v1-v3 reuse the cached Debian base (~1 min each on 2 cores); v4 needs a
# base of its own (one bootstrap, minutes).
set -euo pipefail
work=${1:?usage: scripts/delta-demo.sh WORKDIR}
repo=$(cd "$(dirname "$0")/.." && pwd)
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin CGO_ENABLED=0
cache=${XDG_CACHE_HOME:-$HOME/.cache}/pibake
security=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
mkdir -p "$work" && cd "$work"
rm -rf v1 v2 v3 v4 art keys repo repo-v*
git clone -q "$repo" v1
(cd v1 && go build -trimpath -o bin/pibake ./cmd/pibake)
cp -a v1 v2; cp -a v1 v3; cp -a v1 v4
sed -i 's/hello from pibake: container version/hello from pibake v2: container version/' v2/examples/hello/main.go
sed -i 's/HELLO_VERSION: "0.1.0"/HELLO_VERSION: "0.2.0"/; s/^version: 0.1.0/version: 0.2.0/' v2/images/demo.yaml
echo "welcome to the v3 motd" >> v3/overlays/demo-base/etc/demo/motd
sed -i 's/^version: 0.1.0/version: 0.3.0/' v3/images/demo.yaml
sed -i 's/^version: 0.1.0/version: 0.4.0/' v4/images/demo.yaml

# v4: the newest libzstd1 of the suite's security archive.
suite=$(sed -n 's/^suite: //p' v1/images/demo.lock)
curl -sSf -o sec.xz "$security/dists/$suite-security/main/binary-arm64/Packages.xz"
read -r ver file size sha < <(xzcat sec.xz | awk '/^Package: libzstd1$/{p=1} p&&/^Version:/{v=$2} p&&/^Filename:/{f=$2} p&&/^Size:/{s=$2} p&&/^SHA256:/{h=$2} p&&/^$/{print v, f, s, h; exit}')
test -n "$sha" || { echo "no libzstd1 in $suite-security" >&2; exit 1; }
grep -q "name: libzstd1, version: \"$ver\"" v1/images/demo.lock && { echo "the lock already has libzstd1 $ver: pick another package" >&2; exit 1; }
mkdir -p "$cache/debs"
if [ ! -e "$cache/debs/$sha.deb" ]; then
	curl -sSf -o libzstd1.deb "$security/$file"
	echo "$sha  libzstd1.deb" | sha256sum -c --quiet
	mv libzstd1.deb "$cache/debs/$sha.deb"
fi
sed -i "s|^  - {name: libzstd1, .*|  - {name: libzstd1, version: \"$ver\", arch: arm64, role: root, size: $size, sha256: $sha, path: $file}|" v4/images/demo.lock
grep "name: libzstd1," v4/images/demo.lock

v1/bin/pibake keygen --out keys --name bench >/dev/null
for v in v1 v2 v3 v4; do
	(cd $v && bin/pibake build --board qemu --out out/demo images/demo.yaml)
	v1/bin/pibake publish --repo repo --channel stable --key keys/bench.key $v/out/demo
	mkdir -p art/$v
	python3 - "$v" <<'PY'
import json, os, sys
v = sys.argv[1]
for a in json.load(open("repo/channels/stable.json"))["artifacts"]:
    os.symlink(os.path.abspath(f"repo/{a['path']}"), f"art/{v}/{a['name']}")
PY
	rm -f $v/out/demo/demo.img.zst
done
echo "artifacts in $work/art, publish's costs in $work/repo/channels/stable.cost.json"
