#!/bin/bash
# Build the demo three times and lay out their artifacts for the delta
# figures (internal/deltabench): v1; v2 with only the hello container's
# code and version changed; v3 with only an overlay file changed.
#   scripts/delta-demo.sh WORKDIR      -> WORKDIR/art/v{1,2,3}/{boot,root}
# Each build reuses the cached Debian base (~1 min each on 2 cores).
set -euo pipefail
work=${1:?usage: scripts/delta-demo.sh WORKDIR}
repo=$(cd "$(dirname "$0")/.." && pwd)
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin CGO_ENABLED=0
mkdir -p "$work" && cd "$work"
rm -rf v1 v2 v3 art keys
git clone -q "$repo" v1
(cd v1 && go build -trimpath -o bin/pibake ./cmd/pibake)
cp -a v1 v2; cp -a v1 v3
sed -i 's/hello from pibake: container version/hello from pibake v2: container version/' v2/containers/hello/main.go
sed -i 's/HELLO_VERSION: "0.1.0"/HELLO_VERSION: "0.2.0"/; s/^version: 0.1.0/version: 0.2.0/' v2/images/demo.yaml
echo "welcome to the v3 motd" >> v3/overlays/demo-base/etc/demo/motd
sed -i 's/^version: 0.1.0/version: 0.3.0/' v3/images/demo.yaml
v1/bin/pibake keygen --out keys --name bench >/dev/null
for v in v1 v2 v3; do
	(cd $v && bin/pibake build --board qemu --out out/demo images/demo.yaml)
	v1/bin/pibake publish --repo repo-$v --channel stable --key keys/bench.key $v/out/demo >/dev/null
	mkdir -p art/$v
	python3 - "$v" <<'PY'
import json, os, sys
v = sys.argv[1]
for a in json.load(open(f"repo-{v}/channels/stable.json"))["artifacts"]:
    os.symlink(os.path.abspath(f"repo-{v}/{a['path']}"), f"art/{v}/{a['name']}")
PY
	rm -f $v/out/demo/demo.img.zst
done
echo "artifacts in $work/art"
