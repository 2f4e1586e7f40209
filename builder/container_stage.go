package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/cache"
	"github.com/pibake/pibake/builder/imagedef"
	"github.com/pibake/pibake/builder/rootfs"
	"github.com/pibake/pibake/container"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// preparedContainer is a container ready to go into the root filesystem.
type preparedContainer struct {
	name, source, digest string
	runtime              string // podman or docker
	imageID              string // docker: the loaded image's ID
	tree                 string // tar of RootDir/NAME in the staging folder
	treeBytes            int64  // file bytes in the tree
	entries              int
	unit                 []byte
}

// Where podman keeps its writable state: on the data partition (the root
// filesystem is read-only, /var is an overlay that overlayfs cannot use
// as an upper layer again).
const (
	containersStorageConf = `# Written by pibake: podman's writable state lives on the data partition.
# Containers run from trees in the read-only root filesystem (Rootfs= in
# /usr/share/containers/systemd/*.container); named volumes and each
# container's writable layer are kept here.
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/data/containers/storage"
`
	containersConf = `# Written by pibake.
[network]
# netavark programs nftables; the image carries no iptables.
firewall_driver = "nftables"
`
)

// prepareContainers resolves, verifies and flattens every container of
// the definition (for linux/arm64, checked against the lock) into the
// staging folder, and writes its unit.
func (b *build) prepareContainers(ctx context.Context) (string, error) {
	def := b.def
	layers := cache.NewFilesystemCache(filepath.Join(b.cache.Dir, "oci-layers"))
	var treeBytes int64
	for _, c := range def.Containers {
		img, source, err := b.containerImage(ctx, c, layers)
		if err != nil {
			return "", fmt.Errorf("%s: container %s: %w", def.File, c.Name, err)
		}
		p, err := prepareContainer(def.ContainerRuntime, c, img, source, b.staging)
		if err != nil {
			return "", fmt.Errorf("%s: container %s: %w", def.File, c.Name, err)
		}
		b.containers = append(b.containers, p)
		treeBytes += p.treeBytes
	}
	return fmt.Sprintf("%d containers, %d bytes of trees", len(b.containers), treeBytes), nil
}

// containerImage is a container's image and where it comes from: built
// from its Go package, or the locked digest of its image reference.
func (b *build) containerImage(ctx context.Context, c imagedef.Container, layers cache.Cache) (v1.Image, string, error) {
	def := b.def
	if c.Build != nil {
		pkgDir := filepath.Join(def.Dir, c.Build.Go)
		mod, err := findModule(pkgDir)
		if err != nil {
			return nil, "", err
		}
		rel, _ := filepath.Rel(mod, pkgDir)
		var ports []string
		for _, p := range c.Ports {
			_, cp, _ := strings.Cut(p, ":")
			if !strings.Contains(cp, "/") {
				cp += "/tcp"
			}
			ports = append(ports, cp)
		}
		img, err := container.GoBuild{Module: mod, Package: "./" + filepath.ToSlash(rel), Ports: ports, Epoch: b.epoch}.Build(ctx, b.staging)
		if err != nil {
			return nil, "", err
		}
		return img, "go:" + filepath.ToSlash(c.Build.Go), nil
	}
	ref, err := container.ParseRef(c.Image)
	if err != nil {
		return nil, "", err
	}
	pin, ok := b.lock.Container(c.Name, c.Image)
	if !ok {
		return nil, "", fmt.Errorf("image %s is not pinned in %s: run 'pibake lock --containers %s'", c.Image, b.lockPath, def.File)
	}
	r, err := container.Resolve(ctx, ref, pin.Digest, def.Dir)
	if err != nil {
		return nil, "", err
	}
	return cache.Image(r.Image, layers), c.Image, nil
}

// spec is the container as the container package's unit writers take it.
func spec(c imagedef.Container) container.Spec {
	s := container.Spec{Name: c.Name, Description: c.Description, Ports: c.Ports, Volumes: c.Volumes, Network: c.Network, Environment: c.Environment, Command: c.Command, After: c.After}
	if h := c.Health; h != nil {
		s.Health = &container.Health{Command: h.Command, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	}
	return s
}

// prepareContainer writes what the runtime needs of one container into
// work/: for podman the flattened tree and a Quadlet unit, for docker the
// image as an unpacked docker-archive and a service that runs it.
func prepareContainer(runtime string, c imagedef.Container, img v1.Image, source, work string) (preparedContainer, error) {
	p := preparedContainer{name: c.Name, source: source, runtime: runtime}
	d, err := img.Digest()
	if err != nil {
		return p, err
	}
	p.digest = d.String()
	cf, err := img.ConfigFile()
	if err != nil {
		return p, err
	}
	s := spec(c)
	p.tree = filepath.Join(work, "container-"+c.Name+"-"+runtime+".tar")
	f, err := os.Create(p.tree)
	if err != nil {
		return p, err
	}
	step := "flatten"
	if runtime == "docker" {
		step = "docker archive"
		var di container.DockerImage
		di, err = container.WriteDockerTree(img, c.Name, s.Health, work, f)
		p.imageID, p.entries, p.treeBytes = di.ID, di.Entries, di.Bytes
	} else {
		cw := &countingWriter{w: f}
		p.entries, err = container.Flatten(img, work, cw)
		p.treeBytes = cw.n
		p.unit = container.Unit(s, cf)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return p, fmt.Errorf("%s: %w", step, err)
	}
	if runtime == "docker" {
		p.unit, err = container.DockerUnit(s, cf, p.imageID)
	}
	return p, err
}

type countingWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// containerFiles adds the containers to a root filesystem spec.
func containerFiles(spec *rootfs.Spec, cs []preparedContainer) {
	if len(cs) == 0 {
		return
	}
	if cs[0].runtime == "docker" {
		for _, f := range container.DockerFiles() {
			spec.Files = append(spec.Files, rootfs.File{Path: f.Path, Data: f.Data, Mode: f.Mode})
		}
		spec.Units = append(spec.Units, rootfs.Unit{Name: container.DockerLoader, Data: container.DockerLoaderUnit(), Enable: true})
		for _, c := range cs {
			spec.Units = append(spec.Units, rootfs.Unit{Name: c.name + ".service", Data: c.unit, Enable: true})
			spec.Trees = append(spec.Trees, rootfs.Tree{Dest: container.RootDir + "/" + c.name, Tar: c.tree})
		}
		return
	}
	spec.Files = append(spec.Files,
		rootfs.File{Path: "/etc/containers/storage.conf", Data: []byte(containersStorageConf), Mode: 0o644},
		rootfs.File{Path: "/etc/containers/containers.conf", Data: []byte(containersConf), Mode: 0o644},
	)
	for _, c := range cs {
		spec.Files = append(spec.Files, rootfs.File{Path: container.QuadletDir + "/" + c.name + ".container", Data: c.unit, Mode: 0o644})
		spec.Trees = append(spec.Trees, rootfs.Tree{Dest: container.RootDir + "/" + c.name + "/rootfs", Tar: c.tree})
	}
}

// containerUnits are the services that run the containers (made by
// Quadlet, or written by pibake for docker): the updater's health gate
// waits for each to be active (healthy).
func containerUnits(def *imagedef.Definition) []string {
	var units []string
	for _, c := range def.Containers {
		units = append(units, c.Name+".service")
	}
	return units
}

// withContainerUnits adds the container units to a health unit list.
func withContainerUnits(def *imagedef.Definition, units []string) []string {
	out := append([]string(nil), units...)
	for _, u := range containerUnits(def) {
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// findModule walks up from dir to the folder holding go.mod.
func findModule(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod above %s: a build: go: container is built as part of a Go module", dir)
		}
		d = parent
	}
}
