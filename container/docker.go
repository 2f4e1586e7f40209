package container

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"text/template"
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
	cfg := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	out.ID = cfg.String()
	out.Tag = DockerRepo + "/" + name + ":" + cfg.Hex[:12]

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
	for _, d := range []string{"docker", "docker/image", "docker/image/blobs", "docker/image/" + path.Dir(blobPath(cfg))} {
		if err := put(d, -1, nil); err != nil {
			return out, err
		}
	}
	id := []byte(out.ID + "\n")
	if err := put("docker/id", int64(len(id)), strings.NewReader(string(id))); err != nil {
		return out, err
	}
	if err := put("docker/image/"+blobPath(cfg), int64(len(raw)), strings.NewReader(string(raw))); err != nil {
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
		names = append(names, blobPath(diff))
		if seen[diff.Hex] {
			continue
		}
		seen[diff.Hex] = true
		if err := putLayer(l, diff, tmpDir, func(size int64, r io.Reader) error {
			return put("docker/image/"+blobPath(diff), size, r)
		}); err != nil {
			return out, fmt.Errorf("layer %d (%s): %w", i, diff, err)
		}
	}
	manifest, err := json.Marshal([]map[string]any{{"Config": blobPath(cfg), "RepoTags": []string{out.Tag}, "Layers": names}})
	if err != nil {
		return out, err
	}
	if err := put("docker/image/manifest.json", int64(len(manifest)), strings.NewReader(string(manifest))); err != nil {
		return out, err
	}
	return out, tw.Close()
}

// blobPath is where an OCI image layout (and so docker load) keeps a
// blob: blobs/ALGORITHM/HEX, as go-containerregistry's layout package
// writes it.
func blobPath(h v1.Hash) string { return path.Join("blobs", h.Algorithm, h.Hex) }

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
	docker := "/usr/bin/docker"
	u := dockerUnit{Name: s.Name, Description: s.Description, Loader: DockerLoader, RootDir: RootDir,
		Needs: []string{"docker.service", DockerLoader},
		// A container left over by a crash or a power cut would keep the name.
		PreStart: []string{"-" + docker + " rm --force " + s.Name},
		Stop:     docker + " stop " + s.Name,
	}
	if u.Description == "" {
		u.Description = "pibake container " + s.Name
	}
	for _, a := range s.After {
		if !strings.Contains(a, ".") {
			a += ".service"
		}
		u.Needs = append(u.Needs, a)
	}
	args := []string{docker, "run", "--rm", "--name", s.Name, "--pull", "never"}
	if s.Network == "host" || s.Network == "none" {
		args = append(args, "--network", s.Network)
	}
	for _, p := range s.Ports {
		args = append(args, "--publish", p)
	}
	for _, v := range s.Volumes {
		m, pre, err := dockerVolumeArg(v, cf.Config.User)
		if err != nil {
			return nil, err
		}
		u.PreStart = append(u.PreStart, pre...)
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
	u.Start = joinArgs(args)
	if s.Health != nil {
		// Active only once docker reports the container healthy, as
		// podman's Notify=healthy: units after it and the updater's
		// health gate wait for that.
		u.PostStart = DockerDir + "/wait-healthy " + s.Name
	}
	return render("container.service.tmpl", u)
}

// dockerUnit is what docker/container.service.tmpl fills in.
type dockerUnit struct {
	Name, Description, Loader, RootDir string
	Needs                              []string // After= and Requires=
	PreStart                           []string // ExecStartPre=, in order
	Start, PostStart, Stop             string   // PostStart "" for none
}

// dockerVolumeArg turns a volume of the definition into docker's --volume
// argument, and an option U into the helper that gives the volume to the
// image's user before the container starts.
func dockerVolumeArg(v, user string) (string, []string, error) {
	src, rest, _ := strings.Cut(v, ":")
	dst, opts, _ := strings.Cut(rest, ":")
	var keep, pre []string
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "":
		case "U":
			if user == "" {
				user = "0"
			}
			if !reNumericUser.MatchString(user) {
				return "", nil, fmt.Errorf("volume %q: option U needs the image's user as a number with docker, and the image runs as %q: set the owner another way (an image that prepares %s itself) or use the podman runtime", v, user, dst)
			}
			if strings.HasPrefix(src, "/") {
				return "", nil, fmt.Errorf("volume %q: option U is for named volumes; a host path of the read-only root filesystem cannot change owner", v)
			}
			// "+": outside the unit's sandbox, which leaves the docker
			// client no capability and a read-only /data.
			pre = append(pre, "+"+DockerDir+"/volume "+quote(src)+" "+user)
		default:
			keep = append(keep, o)
		}
	}
	m := src + ":" + dst
	if len(keep) > 0 {
		m += ":" + strings.Join(keep, ",")
	}
	return m, pre, nil
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
		// dockerd keeps its store on the data partition: the root
		// filesystem is read-only and /var is an overlay, which overlay2
		// cannot build on.
		{Path: "/etc/docker/daemon.json", Mode: 0o644, Data: dockerFile("daemon.json")},
		{Path: DockerDir + "/load-images", Mode: 0o755, Data: mustRender("load-images.tmpl", map[string]string{"RootDir": RootDir, "Repo": DockerRepo})},
		{Path: DockerDir + "/wait-healthy", Mode: 0o755, Data: dockerFile("wait-healthy")},
		{Path: DockerDir + "/volume", Mode: 0o755, Data: dockerFile("volume")},
	}
}

// DockerLoaderUnit is pibake-docker-images.service.
func DockerLoaderUnit() []byte {
	return mustRender("pibake-docker-images.service.tmpl", map[string]string{"DockerDir": DockerDir})
}

// The docker runtime's files are in docker/, as they land in the image;
// those ending in .tmpl are text/templates with [[ ]] as delimiters, since
// the scripts hand docker its own {{ }} templates.
//
//go:embed docker
var dockerFS embed.FS

var dockerTemplates = template.Must(template.New("docker").Delims("[[", "]]").ParseFS(dockerFS, "docker/*.tmpl"))

func dockerFile(name string) []byte {
	b, err := dockerFS.ReadFile("docker/" + name)
	if err != nil {
		panic(err) // embedded: cannot fail
	}
	return b
}

func render(name string, data any) ([]byte, error) {
	var b bytes.Buffer
	if err := dockerTemplates.ExecuteTemplate(&b, name, data); err != nil {
		return nil, fmt.Errorf("docker unit: %w", err)
	}
	return b.Bytes(), nil
}

// mustRender renders a template whose data is fixed: the golden test runs
// every one.
func mustRender(name string, data any) []byte {
	b, err := render(name, data)
	if err != nil {
		panic(err)
	}
	return b
}
