package container

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"github.com/pibake/pibake/internal/hosttool"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// dockerArchive re-packs the docker/image part of a tree as the tar that
// `docker load` reads, and returns it with the tree's other files.
func dockerArchive(t *testing.T, tree []byte) ([]byte, map[string]string) {
	t.Helper()
	files := map[string]string{}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries(t, bytes.NewReader(tree), func(h *tar.Header, b []byte) {
		files[h.Name] = string(b)
		if name, ok := strings.CutPrefix(h.Name, "docker/image/"); ok && h.Typeflag == tar.TypeReg {
			tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b))})
			tw.Write(b)
		}
	})
	tw.Close()
	return buf.Bytes(), files
}

func TestDockerTree(t *testing.T) {
	base := layer(t, file{name: "bin/", typ: tar.TypeDir}, file{name: "bin/app", body: "arm64 app"})
	img := image(t, "arm64", base, layer(t, file{name: "etc/conf", body: "x"}), base)
	h := &Health{Command: []string{"/bin/app", "-check"}, Interval: 10e9, StartPeriod: 5e9, Retries: 2}
	var a, b bytes.Buffer
	di, err := WriteDockerTree(img, "hello", h, t.TempDir(), &a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteDockerTree(img, "hello", h, t.TempDir(), &b); err != nil || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("two writes of one image differ (%v)", err)
	}
	archive, files := dockerArchive(t, a.Bytes())
	if files["docker/id"] != di.ID+"\n" || !strings.HasPrefix(di.Tag, "pibake.local/hello:") {
		t.Errorf("id file %q, image %+v", files["docker/id"], di)
	}
	layers := 0
	for n := range files {
		if strings.HasPrefix(n, "docker/image/blobs/sha256/") && len(n) > len("docker/image/blobs/sha256/") {
			layers++
		}
	}
	if layers != 3 { // config and two distinct layers: the repeated one is stored once
		t.Errorf("%d blobs, want 3", layers)
	}
	// What a docker-archive reader makes of it: the image ID is the hash of
	// the config, the health check is there in exec form, every layer
	// matches its diff ID.
	loaded, err := tarball.Image(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(archive)), nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := loaded.RawConfigFile()
	sum := sha256.Sum256(raw)
	if "sha256:"+hex.EncodeToString(sum[:]) != di.ID {
		t.Errorf("image ID %s is not the config's hash", di.ID)
	}
	cf, err := loaded.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if hc := cf.Config.Healthcheck; hc == nil || strings.Join(hc.Test, " ") != "CMD /bin/app -check" || hc.Interval != 10e9 || hc.StartPeriod != 5e9 || hc.Retries != 2 {
		t.Errorf("health check in the config: %+v", cf.Config.Healthcheck)
	}
	if cf.Architecture != "arm64" || strings.Join(cf.Config.Entrypoint, " ") != "/bin/arm64" {
		t.Errorf("config lost its fields: %+v", cf)
	}
	ls, _ := loaded.Layers()
	if len(ls) != 3 {
		t.Fatalf("%d layers, want 3", len(ls))
	}
	for i, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		got := sha256.New()
		io.Copy(got, rc)
		want, _ := l.DiffID()
		if "sha256:"+hex.EncodeToString(got.Sum(nil)) != want.String() {
			t.Errorf("layer %d does not match its diff ID", i)
		}
	}
	// Without a health check the config, and so the image ID, is the source's.
	var c bytes.Buffer
	plain, err := WriteDockerTree(img, "hello", nil, t.TempDir(), &c)
	if want, _ := img.ConfigName(); err != nil || plain.ID != want.String() {
		t.Errorf("image ID %s, the source's config is %s (%v)", plain.ID, want, err)
	}
}

// lyingLayer claims a diff ID its bytes do not have.
type lyingLayer struct{ v1.Layer }

func (lyingLayer) DiffID() (v1.Hash, error) {
	return v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}, nil
}

func TestDockerTreeCorruptLayer(t *testing.T) {
	img := fakeLayers{image(t, "arm64"), lyingLayer{layer(t, file{name: "a", body: "a"})}}
	_, err := WriteDockerTree(img, "x", nil, t.TempDir(), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt layer: %v", err)
	}
}

type fakeLayers struct {
	v1.Image
	l v1.Layer
}

func (f fakeLayers) Layers() ([]v1.Layer, error) { return []v1.Layer{f.l}, nil }

func TestDockerUnit(t *testing.T) {
	cf, _ := image(t, "arm64").ConfigFile()
	cf.Config.User = "65534"
	s := Spec{Name: "hello", Network: "host", Ports: []string{"8080:8080"}, Volumes: []string{"hello-data:/data:U,ro", "/etc/app:/etc/app:ro"},
		Environment: map[string]string{"B": "100%", "A": "hi there"}, Command: []string{"--listen", ":8080"},
		Health: &Health{Command: []string{"/app", "-check"}}, After: []string{"redis", "network-online.target"}}
	u, err := DockerUnit(s, cf, "sha256:abc")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"After=docker.service\nRequires=docker.service\n", "Requires=pibake-docker-images.service\n", "After=redis.service\n", "After=network-online.target\n",
		"ExecStartPre=-/usr/bin/docker rm --force hello\n", "ExecStartPre=+/usr/lib/pibake/docker/volume hello-data 65534\n",
		`ExecStart=/usr/bin/docker run --rm --name hello --pull never --network host --publish 8080:8080 --volume hello-data:/data:ro --volume /etc/app:/etc/app:ro --env "A=hi there" --env "B=100%%" sha256:abc --listen :8080` + "\n",
		"ExecStartPost=/usr/lib/pibake/docker/wait-healthy hello\n", "ExecStop=/usr/bin/docker stop hello\n", "SuccessExitStatus=143\n", "WantedBy=multi-user.target\n",
	} {
		if !strings.Contains(string(u), want) {
			t.Errorf("unit lacks %q:\n%s", want, u)
		}
	}
	cf.Config.User = "redis"
	if _, err := DockerUnit(s, cf, "sha256:abc"); err == nil || !strings.Contains(err.Error(), `runs as "redis"`) {
		t.Errorf("U with a named user: %v", err)
	}
	cf.Config.User = ""
	if _, err := DockerUnit(Spec{Name: "x", Volumes: []string{"/srv:/srv:U"}}, cf, "sha256:abc"); err == nil || !strings.Contains(err.Error(), "named volumes") {
		t.Errorf("U on a host path: %v", err)
	}
}

// fakeDocker is a docker command for the loader: images are files in
// $FAKE_DOCKER/images named by ID hex, holding their tag; every call is
// logged to $FAKE_DOCKER/log.
const fakeDocker = `#!/bin/sh
st=$FAKE_DOCKER
echo "$*" >> "$st/log"
case "$1 $2" in
"image inspect") [ -f "$st/images/${3#sha256:}" ] ;;
"load ") 
	cat > "$st/in.tar"
	m=$(tar -xOf "$st/in.tar" ./manifest.json) || exit 1
	id=$(echo "$m" | sed 's/.*"Config":"blobs\/sha256\/\([0-9a-f]*\)".*/\1/')
	tag=$(echo "$m" | sed 's/.*"RepoTags":\["\([^"]*\)".*/\1/')
	[ -n "$FAKE_DOCKER_BROKEN" ] || echo "$tag" > "$st/images/$id"
	echo "Loaded image: $tag" ;;
"images --no-trunc")
	for f in "$st"/images/*; do [ -f "$f" ] && echo "$(cat "$f") sha256:$(basename "$f")"; done; true ;;
"rmi "*)
	for f in "$st"/images/*; do [ "$(cat "$f")" = "$2" ] && rm "$f"; done; true ;;
*) echo "fake docker: $*" >&2; exit 2 ;;
esac
`

// TestDockerLoader runs load-images against a fake docker through a
// slot switch: the first boot loads, a reboot loads nothing, the other
// slot loads its own image and removes the first, a rollback loads the
// first again; an image missing after docker load fails the unit.
func TestDockerLoader(t *testing.T) {
	hosttool.Need(t, "tar", "tar")
	st := t.TempDir()
	os.MkdirAll(filepath.Join(st, "images"), 0o755)
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "docker"), []byte(fakeDocker), 0o755)
	var loader string
	for _, f := range DockerFiles() {
		if f.Path == DockerDir+"/load-images" {
			loader = filepath.Join(bin, "load-images")
			os.WriteFile(loader, f.Data, 0o755)
		}
	}
	// Two slots, each with the hello image of its version.
	slot := func(version string) (string, string) {
		root := t.TempDir()
		img := image(t, "arm64", layer(t, file{name: "version", body: version}))
		var buf bytes.Buffer
		di, err := WriteDockerTree(img, "hello", nil, t.TempDir(), &buf)
		if err != nil {
			t.Fatal(err)
		}
		entries(t, &buf, func(h *tar.Header, b []byte) {
			p := filepath.Join(root, "hello", h.Name)
			if h.Typeflag == tar.TypeDir {
				os.MkdirAll(p, 0o755)
				return
			}
			os.WriteFile(p, b, 0o644)
		})
		return root, di.ID
	}
	slotA, idA := slot("1.0.0")
	slotB, idB := slot("2.0.0")
	boot := func(root string, broken bool) (string, error) {
		cmd := exec.Command("/bin/sh", loader)
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "FAKE_DOCKER="+st, "PIBAKE_CONTAINERS="+root)
		if broken {
			cmd.Env = append(cmd.Env, "FAKE_DOCKER_BROKEN=1")
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	loaded := func() string {
		es, _ := os.ReadDir(filepath.Join(st, "images"))
		var ids []string
		for _, e := range es {
			ids = append(ids, "sha256:"+e.Name())
		}
		return strings.Join(ids, ",")
	}
	for i, step := range []struct {
		name, root, want, says string
	}{
		{"first boot", slotA, idA, "hello: loading image " + idA},
		{"reboot", slotA, idA, "hello: image " + idA + " already loaded"},
		{"update to B", slotB, idB, "not in this slot"},
		{"rollback to A", slotA, idA, "hello: loading image " + idA},
	} {
		out, err := boot(step.root, false)
		if err != nil || loaded() != step.want || !strings.Contains(out, step.says) {
			t.Fatalf("step %d (%s): loaded %s, want %s; loader said (%v):\n%s", i, step.name, loaded(), step.want, err, out)
		}
	}
	if out, err := boot(slotB, true); err == nil || !strings.Contains(out, "missing after docker load") {
		t.Errorf("a load that leaves no image: %v\n%s", err, out)
	}
}

// TestDockerWaitHealthy runs wait-healthy against a fake docker whose
// container goes through absent, created (no health state yet), starting
// and healthy: the script must wait for healthy.
func TestDockerWaitHealthy(t *testing.T) {
	st, bin := t.TempDir(), t.TempDir()
	fake := `#!/bin/sh
n=$(cat "$FAKE_DOCKER/n" 2>/dev/null || echo 0)
echo $((n + 1)) > "$FAKE_DOCKER/n"
case $n in
0) echo "Error: No such object: $4" >&2; exit 1 ;;
1) # created, no health state yet: the template's else branch, if any
	case "$3" in *"{{else}}"*) echo "$3" | sed 's/.*{{else}}\([^{]*\){{end}}.*/\1/' ;; *) echo "" ;; esac ;;
2) echo starting ;;
*) echo healthy ;;
esac
`
	os.WriteFile(filepath.Join(bin, "docker"), []byte(fake), 0o755)
	var wait string
	for _, f := range DockerFiles() {
		if f.Path == DockerDir+"/wait-healthy" {
			wait = filepath.Join(bin, "wait-healthy")
			os.WriteFile(wait, f.Data, 0o755)
		}
	}
	cmd := exec.Command("/bin/sh", wait, "hello")
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "FAKE_DOCKER="+st)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("wait-healthy: %v\n%s", err, out)
	}
	if n, _ := os.ReadFile(filepath.Join(st, "n")); strings.TrimSpace(string(n)) != "4" {
		t.Errorf("wait-healthy returned after %s inspections, want 4 (healthy is the 4th)", n)
	}
}
