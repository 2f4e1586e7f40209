package container

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The docker runtime. Docker cannot run a container from a plain folder, so
// each image is kept in the slot as an unpacked docker-archive
// (RootDir/NAME/docker/image: manifest.json, config and uncompressed
// layers) and loaded into dockerd's store on the data partition by
// pibake-docker-images.service, once per image version: a boot whose
// images are already loaded loads nothing. Each container then runs from
// its image ID through an ordinary systemd service.
const (
	// DockerDir holds the helper scripts the docker units call.
	DockerDir = "/usr/lib/pibake/docker"
	// DockerLoader is the unit that loads this slot's images.
	DockerLoader = "pibake-docker-images.service"
	// DockerRepo is the repository the loaded images are tagged in; the
	// loader removes images of it that the running slot does not carry.
	DockerRepo = "pibake.local"
)

// DockerImage is an image written for the docker runtime.
type DockerImage struct {
	ID      string // sha256:<hex of the config>, the image ID docker knows it by
	Tag     string // DockerRepo/NAME:<first 12 hex of the ID>
	Entries int    // tar entries of the tree
	Bytes   int64  // bytes of the docker-archive files
}

// WriteDockerTree writes, as a tar with relative names for RootDir/NAME,
// the image unpacked as a docker-archive under docker/image plus its ID in
// docker/id. A health check is put into the image's configuration in exec
// form (docker's --health-cmd would run it with /bin/sh, which an image
// need not have), so the image ID then differs from the source's. Layers
// are stored uncompressed (the squashfs compresses them) and each is
// checked against its diff ID. tmpDir holds one layer at a time.
func WriteDockerTree(img v1.Image, name string, h *Health, tmpDir string, w io.Writer) (DockerImage, error) {
	var out DockerImage
	raw, err := img.RawConfigFile()
	if err != nil {
		return out, fmt.Errorf("image config: %w", err)
	}
	if h != nil {
		if raw, err = withHealthcheck(raw, h); err != nil {
			return out, fmt.Errorf("image config: %w", err)
		}
	}
	sum := sha256.Sum256(raw)
	cfgHex := hex.EncodeToString(sum[:])
	out.ID = "sha256:" + cfgHex
	out.Tag = DockerRepo + "/" + name + ":" + cfgHex[:12]

	tw := tar.NewWriter(w)
	put := func(name string, size int64, r io.Reader) error {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if size < 0 {
			hdr.Typeflag, hdr.Mode, hdr.Size, hdr.Name = tar.TypeDir, 0o755, 0, name+"/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		out.Entries++
		if r == nil {
			return nil
		}
		n, err := io.Copy(tw, r)
		out.Bytes += n
		return err
	}
	for _, d := range []string{"docker", "docker/image", "docker/image/blobs", "docker/image/blobs/sha256"} {
		if err := put(d, -1, nil); err != nil {
			return out, err
		}
	}
	id := []byte(out.ID + "\n")
	if err := put("docker/id", int64(len(id)), strings.NewReader(string(id))); err != nil {
		return out, err
	}
	blob := func(hex string) string { return "blobs/sha256/" + hex }
	if err := put("docker/image/"+blob(cfgHex), int64(len(raw)), strings.NewReader(string(raw))); err != nil {
		return out, err
	}
	layers, err := img.Layers()
	if err != nil {
		return out, fmt.Errorf("image layers: %w", err)
	}
	var names []string
	seen := map[string]bool{}
	for i, l := range layers {
		diff, err := l.DiffID()
		if err != nil {
			return out, fmt.Errorf("layer %d: %w", i, err)
		}
		names = append(names, blob(diff.Hex))
		if seen[diff.Hex] {
			continue
		}
		seen[diff.Hex] = true
		if err := putLayer(l, diff, tmpDir, func(size int64, r io.Reader) error {
			return put("docker/image/"+blob(diff.Hex), size, r)
		}); err != nil {
			return out, fmt.Errorf("layer %d (%s): %w", i, diff, err)
		}
	}
	manifest, err := json.Marshal([]map[string]any{{"Config": blob(cfgHex), "RepoTags": []string{out.Tag}, "Layers": names}})
	if err != nil {
		return out, err
	}
	if err := put("docker/image/manifest.json", int64(len(manifest)), strings.NewReader(string(manifest))); err != nil {
		return out, err
	}
	return out, tw.Close()
}

// putLayer spools a layer's uncompressed bytes, checks them against the
// diff ID the config names, and hands them on with their size.
func putLayer(l v1.Layer, diff v1.Hash, tmpDir string, put func(int64, io.Reader) error) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.CreateTemp(tmpDir, "pibake-layer-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	hash := sha256.New()
	size, err := io.Copy(io.MultiWriter(f, hash), rc)
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(hash.Sum(nil)); got != diff.Hex {
		return fmt.Errorf("uncompressed bytes are sha256:%s, the image config says %s: the layer is corrupt", got, diff)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return put(size, f)
}

// withHealthcheck sets config.Healthcheck in a raw image config, keeping
// every other field as it is. Keys come out sorted, so the bytes only
// depend on the input.
func withHealthcheck(raw []byte, h *Health) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, err
	}
	cfg := map[string]json.RawMessage{}
	if c, ok := top["config"]; ok && string(c) != "null" {
		if err := json.Unmarshal(c, &cfg); err != nil {
			return nil, err
		}
	}
	hc := map[string]any{"Test": append([]string{"CMD"}, h.Command...)}
	for k, d := range map[string]time.Duration{"Interval": h.Interval, "Timeout": h.Timeout, "StartPeriod": h.StartPeriod} {
		if d > 0 {
			hc[k] = int64(d)
		}
	}
	if h.StartPeriod > 0 {
		// Docker checks every StartInterval during the start period, so a
		// container that comes up quickly is healthy (and its unit
		// started) within a second, not after a whole interval.
		hc["StartInterval"] = int64(time.Second)
	}
	if h.Retries > 0 {
		hc["Retries"] = h.Retries
	}
	b, err := json.Marshal(hc)
	if err != nil {
		return nil, err
	}
	cfg["Healthcheck"] = b
	if top["config"], err = json.Marshal(cfg); err != nil {
		return nil, err
	}
	return json.Marshal(top)
}

var reNumericUser = regexp.MustCompile(`^[0-9]+(:[0-9]+)?$`)

// DockerUnit returns the systemd service that runs s under docker from
// the loaded image id (cf is its config). Docker has no equivalent of
// podman's volume option U, so a U volume is created and given to the
// image's user by a helper before the container starts; that needs a
// numeric user in the image.
func DockerUnit(s Spec, cf *v1.ConfigFile, id string) ([]byte, error) {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%s=%s\n", k, v) }
	desc := s.Description
	if desc == "" {
		desc = "pibake container " + s.Name
	}
	b.WriteString("# Generated by pibake from the image definition: runs the container with\n# docker from the image " + DockerLoader + " loaded out of\n# " + RootDir + "/" + s.Name + "/docker.\n[Unit]\n")
	line("Description", desc)
	needs := []string{"docker.service", DockerLoader}
	for _, a := range s.After {
		if !strings.Contains(a, ".") {
			a += ".service"
		}
		needs = append(needs, a)
	}
	for _, u := range needs {
		line("After", u)
		line("Requires", u)
	}
	b.WriteString("\n[Service]\nType=exec\n")
	docker := "/usr/bin/docker"
	// A container left over by a crash or a power cut would keep the name.
	line("ExecStartPre", "-"+docker+" rm --force "+s.Name)
	args := []string{docker, "run", "--rm", "--name", s.Name, "--pull", "never"}
	if s.Network == "host" || s.Network == "none" {
		args = append(args, "--network", s.Network)
	}
	for _, p := range s.Ports {
		args = append(args, "--publish", p)
	}
	for _, v := range s.Volumes {
		src, rest, _ := strings.Cut(v, ":")
		dst, opts, _ := strings.Cut(rest, ":")
		var keep []string
		for _, o := range strings.Split(opts, ",") {
			switch o {
			case "":
			case "U":
				user := cf.Config.User
				if user == "" {
					user = "0"
				}
				if !reNumericUser.MatchString(user) {
					return nil, fmt.Errorf("volume %q: option U needs the image's user as a number with docker, and the image runs as %q: set the owner another way (an image that prepares %s itself) or use the podman runtime", v, user, dst)
				}
				if strings.HasPrefix(src, "/") {
					return nil, fmt.Errorf("volume %q: option U is for named volumes; a host path of the read-only root filesystem cannot change owner", v)
				}
				line("ExecStartPre", DockerDir+"/volume "+quote(src)+" "+user)
			default:
				keep = append(keep, o)
			}
		}
		m := src + ":" + dst
		if len(keep) > 0 {
			m += ":" + strings.Join(keep, ",")
		}
		args = append(args, "--volume", m)
	}
	keys := make([]string, 0, len(s.Environment))
	for k := range s.Environment {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--env", k+"="+s.Environment[k])
	}
	args = append(args, id)
	args = append(args, s.Command...)
	line("ExecStart", joinArgs(args))
	if s.Health != nil {
		// Active only once docker reports the container healthy, as
		// podman's Notify=healthy: units after it and the updater's
		// health gate wait for that.
		line("ExecStartPost", DockerDir+"/wait-healthy "+s.Name)
	}
	line("ExecStop", docker+" stop "+s.Name)
	// docker run exits with the container's status: 143 is a process
	// that SIGTERM (docker stop) ended.
	b.WriteString("SuccessExitStatus=143\nRestart=always\nTimeoutStartSec=300\n\n[Install]\nWantedBy=multi-user.target\n")
	return []byte(b.String()), nil
}

// DockerFile is a file the docker runtime needs in the image.
type DockerFile struct {
	Path string
	Data []byte
	Mode int64
}

// DockerFiles are the daemon configuration, the loader unit and the
// helper scripts, the same for every image.
func DockerFiles() []DockerFile {
	return []DockerFile{
		{Path: "/etc/docker/daemon.json", Mode: 0o644, Data: []byte(dockerDaemon)},
		{Path: DockerDir + "/load-images", Mode: 0o755, Data: []byte(dockerLoad)},
		{Path: DockerDir + "/wait-healthy", Mode: 0o755, Data: []byte(dockerWait)},
		{Path: DockerDir + "/volume", Mode: 0o755, Data: []byte(dockerVolume)},
	}
}

// DockerLoaderUnit is pibake-docker-images.service.
func DockerLoaderUnit() []byte { return []byte(dockerLoaderUnit) }

// dockerd keeps its store on the data partition: the root filesystem is
// read-only and /var is an overlay, which overlay2 cannot build on.
const dockerDaemon = `{
  "data-root": "/data/docker",
  "log-driver": "local",
  "live-restore": false
}
`

const dockerLoaderUnit = `# Generated by pibake: loads the container images this slot carries into
# docker's store on the data partition, once per image version, and
# removes images an earlier slot loaded that this one does not carry.
[Unit]
Description=pibake: load this slot's container images into docker
After=docker.service
Requires=docker.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=` + DockerDir + `/load-images
TimeoutStartSec=30min

[Install]
WantedBy=multi-user.target
`

const dockerLoad = `#!/bin/sh
# Generated by pibake. Loads every image under ` + RootDir + `/*/docker
# into docker unless docker already has its ID, then removes the
# ` + DockerRepo + `/* images that this slot does not carry (a rollback
# loads its own again).
set -eu
keep=" "
for dir in "${PIBAKE_CONTAINERS:-` + RootDir + `}"/*/docker; do
	[ -f "$dir/id" ] || continue
	name=$(basename "$(dirname "$dir")")
	id=$(cat "$dir/id")
	keep="$keep$id "
	if docker image inspect "$id" >/dev/null 2>&1; then
		echo "$name: image $id already loaded"
		continue
	fi
	echo "$name: loading image $id"
	start=$(date +%s)
	tar -C "$dir/image" -cf - . | docker load
	if ! docker image inspect "$id" >/dev/null 2>&1; then
		echo "$name: image $id is missing after docker load" >&2
		exit 1
	fi
	echo "$name: loaded in $(( $(date +%s) - start )) s"
done
docker images --no-trunc --filter "reference=` + DockerRepo + `/*" --format '{{.Repository}}:{{.Tag}} {{.ID}}' |
while read -r ref id; do
	case "$keep" in
	*" $id "*) ;;
	*) echo "removing $ref ($id): not in this slot"; docker rmi "$ref" >/dev/null || true ;;
	esac
done
`

const dockerWait = `#!/bin/sh
# Generated by pibake. Waits until docker reports container $1 healthy;
# systemd's TimeoutStartSec bounds the wait. A container docker has only
# created has no health state yet: that is not healthy either.
name=$1
until [ "$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$name" 2>/dev/null)" = healthy ]; do
	sleep 1
done
`

const dockerVolume = `#!/bin/sh
# Generated by pibake. Creates docker volume $1 if it is missing and gives
# it to user $2 (uid[:gid]), as podman's volume option U does.
set -eu
docker volume create "$1" >/dev/null
chown -R "$2" "$(docker volume inspect --format '{{.Mountpoint}}' "$1")"
`
