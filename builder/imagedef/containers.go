package imagedef

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/internal/yamlerr"
)

// Container is an OCI image the image carries and runs as a systemd
// service (podman, Quadlet). Exactly one of Image and Build says where the
// image comes from; Service instead takes the whole definition from
// services/<service>.container.yaml, and any field given here overrides it.
type Container struct {
	Name        string            `yaml:"name"`
	Service     string            `yaml:"service"`
	Description string            `yaml:"description"`
	Image       string            `yaml:"image"` // registry reference, oci:FOLDER[:tag] or docker-archive:FILE[:tag]
	Build       *ContainerBuild   `yaml:"build"`
	Ports       []string          `yaml:"ports"`   // host:container[/tcp|udp], host side on all addresses
	Volumes     []string          `yaml:"volumes"` // NAME:/path[:ro,U,...] (a podman volume on the data partition) or /host/path:/path[:ro]
	Network     string            `yaml:"network"` // "" (podman's bridge), host or none
	Environment map[string]string `yaml:"environment"`
	Command     []string          `yaml:"command"` // replaces the image's command (its entrypoint stays)
	Health      *ContainerHealth  `yaml:"health"`
	After       []string          `yaml:"after"` // containers of this image, or systemd units, started first
}

// ContainerBuild builds the image from source in the repository.
type ContainerBuild struct {
	Go string `yaml:"go"` // Go package folder, relative to the repository root
}

// ContainerHealth is the container's health check: a command run inside
// it. A container with one counts as started only once healthy, and the
// updater's health gate waits for it.
type ContainerHealth struct {
	Command     []string      `yaml:"command"`
	Interval    time.Duration `yaml:"interval"`
	Timeout     time.Duration `yaml:"timeout"`
	StartPeriod time.Duration `yaml:"start_period"`
	Retries     int           `yaml:"retries"`
}

// ContainerServiceFile is where a reusable container definition lives.
func ContainerServiceFile(root, name string) string {
	return filepath.Join(root, "services", name+".container.yaml")
}

// resolveServices fills container entries that name a service from
// services/<name>.container.yaml. Errors carry that file's lines.
func (d *Definition) resolveServices() yamlerr.Errors {
	var errs yamlerr.Errors
	for i := range d.Containers {
		c := &d.Containers[i]
		if c.Service == "" {
			continue
		}
		file := ContainerServiceFile(d.Dir, c.Service)
		base, err := loadContainerService(file)
		if err != nil {
			var e *yamlerr.Error
			if errors.As(err, &e) {
				errs = append(errs, e)
				continue
			}
			if es, ok := err.(yamlerr.Errors); ok {
				errs = append(errs, es...)
				continue
			}
			errs = append(errs, &yamlerr.Error{File: d.File, Field: fmt.Sprintf("containers.%d.service", i), Msg: err.Error()})
			continue
		}
		if base.Name == "" {
			base.Name = c.Service
		}
		// Fields given in the image definition win.
		bv, cv := reflect.ValueOf(&base).Elem(), reflect.ValueOf(c).Elem()
		for f := 0; f < bv.NumField(); f++ {
			if !cv.Field(f).IsZero() {
				if bv.Type().Field(f).Name == "Environment" && !bv.Field(f).IsNil() {
					for k, v := range c.Environment {
						base.Environment[k] = v
					}
					continue
				}
				bv.Field(f).Set(cv.Field(f))
			}
		}
		*c = base
	}
	return errs
}

func loadContainerService(file string) (Container, error) {
	var c Container
	data, err := os.ReadFile(file)
	if err != nil {
		return c, fmt.Errorf("container service: %w (reusable containers live in services/NAME.container.yaml)", err)
	}
	top, err := yamlerr.Parse(file, data, yamlerr.Options{KeepQuotes: true})
	if err != nil {
		return c, err
	}
	if top == nil || top.Kind != yaml.MappingNode {
		return c, &yamlerr.Error{File: file, Line: 1, Msg: "must be a YAML mapping (image:, ports:, ...)"}
	}
	if errs := yamlerr.Unknown(file, top, Container{}, ""); len(errs) > 0 {
		return c, errs
	}
	if err := yamlerr.Decode(file, top, &c); err != nil {
		return c, err
	}
	if c.Service != "" {
		return c, &yamlerr.Error{File: file, Field: "service", Msg: "a container service cannot refer to another"}
	}
	return c, nil
}

var (
	rePort   = regexp.MustCompile(`^(?:(\d{1,5}):)?(\d{1,5})(?:/(tcp|udp))?$`)
	reVolume = regexp.MustCompile(`^([a-z0-9][a-z0-9_.-]*|/[^:]*):(/[^:]*)(?::((?:ro|rw|U|z|Z|nocopy)(?:,(?:ro|rw|U|z|Z|nocopy))*))?$`)
	reEnvKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func (d *Definition) validateContainers(bad func(msg string, p ...string)) {
	names := map[string]bool{}
	for _, c := range d.Containers {
		names[c.Name] = true
	}
	if !slices.Contains(KnownRuntimes, d.ContainerRuntime) {
		bad(fmt.Sprintf("unknown container runtime %q (known: %s)", d.ContainerRuntime, strings.Join(KnownRuntimes, ", ")), "container_runtime")
	}
	seen := map[string]bool{}
	for i, c := range d.Containers {
		at := func(f ...string) []string { return append([]string{"containers", strconv.Itoa(i)}, f...) }
		if !reName.MatchString(c.Name) {
			bad(fmt.Sprintf("%q is not a valid container name: lower-case letters, digits and '-'", c.Name), at("name")...)
		} else if seen[c.Name] {
			bad(fmt.Sprintf("container %q listed twice", c.Name), at("name")...)
		}
		seen[c.Name] = true
		switch {
		case c.Image == "" && c.Build == nil:
			bad("say where the image comes from: image: (a registry reference, oci:FOLDER or docker-archive:FILE), build: {go: FOLDER} or service: NAME", at()...)
		case c.Image != "" && c.Build != nil:
			bad("give image: or build:, not both", at()...)
		case c.Build != nil:
			if c.Build.Go == "" {
				bad("build needs go: the Go package folder, relative to the repository", at("build")...)
			} else if st, err := os.Stat(filepath.Join(d.Dir, c.Build.Go)); err != nil || !st.IsDir() {
				bad(fmt.Sprintf("Go package folder %s does not exist", filepath.Join(d.Dir, c.Build.Go)), at("build", "go")...)
			}
		}
		for j, p := range c.Ports {
			m := rePort.FindStringSubmatch(p)
			ok := m != nil
			for _, n := range []string{m2(m, 1), m2(m, 2)} {
				if v, err := strconv.Atoi(n); n != "" && (err != nil || v < 1 || v > 65535) {
					ok = false
				}
			}
			if !ok {
				bad(fmt.Sprintf("port %q: write HOST:CONTAINER[/tcp|udp], e.g. 8080:80", p), at("ports", strconv.Itoa(j))...)
			}
		}
		for j, v := range c.Volumes {
			m := reVolume.FindStringSubmatch(v)
			switch {
			case m == nil:
				bad(fmt.Sprintf("volume %q: write NAME:/path[:OPTIONS] (a named volume, kept on the data partition) or /host/path:/path[:ro] (options ro, rw, U, z, Z, nocopy)", v), at("volumes", strconv.Itoa(j))...)
			case strings.HasPrefix(m[1], "/") && path.Clean(m[1]) != m[1]:
				bad(fmt.Sprintf("volume %q: the host path must be clean and absolute", v), at("volumes", strconv.Itoa(j))...)
			case strings.HasPrefix(m[1], "/"):
				if why := hostMountRisk(m[1], slices.Contains(strings.Split(m[3], ","), "ro")); why != "" {
					bad(fmt.Sprintf("volume %q: %s", v, why), at("volumes", strconv.Itoa(j))...)
				}
			}
		}
		switch c.Network {
		case "", "host", "none", "bridge":
		default:
			bad(fmt.Sprintf("network %q: use host, none or bridge (the default)", c.Network), at("network")...)
		}
		for k := range c.Environment {
			if !reEnvKey.MatchString(k) {
				bad(fmt.Sprintf("%q is not an environment variable name", k), at("environment", k)...)
			}
		}
		if h := c.Health; h != nil {
			if len(h.Command) == 0 {
				bad("health needs command: the check to run inside the container, e.g. [/app, -check]", at("health")...)
			}
			if h.Retries < 0 || h.Interval < 0 || h.Timeout < 0 || h.StartPeriod < 0 {
				bad("health durations and retries cannot be negative", at("health")...)
			}
		}
		for j, a := range c.After {
			if a == c.Name {
				bad("a container cannot come after itself", at("after", strconv.Itoa(j))...)
			} else if !names[a] && !strings.Contains(a, ".") {
				bad(fmt.Sprintf("%q is neither a container of this image nor a unit name (e.g. network-online.target)", a), at("after", strconv.Itoa(j))...)
			}
		}
	}
}

func m2(m []string, i int) string {
	if m == nil {
		return ""
	}
	return m[i]
}

// The host's trees a container must not write: what the device trusts
// (the image's /usr, /etc's files, the boot partitions) and where its
// state lives. layout.StateDir (the agent's state, provisioning's
// records, /etc's upper layer) must not even be read: a container that
// could write there would rewrite /etc at the next boot.
var (
	noWrite = []string{"/usr", "/etc", "/boot", "/var/lib/containers", "/run/pibake"}
	noMount = []string{layout.StateDir}
)

// hostMountRisk says why a bind mount of the host's path p into a
// container is refused, "" when it is not: p is, holds or lies inside
// the data partition's pibake folder, or it is a protected tree mounted
// writable (ro is fine: a read-only /etc/localtime is common).
func hostMountRisk(p string, readOnly bool) string {
	overlaps := func(tree string) bool {
		return p == "/" || p == tree || strings.HasPrefix(p, tree+"/") || strings.HasPrefix(tree, p+"/")
	}
	for _, tree := range noMount {
		if overlaps(tree) {
			return fmt.Sprintf("it would give the container %s, where the device keeps its state and /etc's local layer: whoever writes there rewrites the device's trust at the next boot; use a named volume (NAME:/path) or another folder of %s", tree, layout.DataMount)
		}
	}
	for _, tree := range noWrite {
		if overlaps(tree) && !readOnly {
			return fmt.Sprintf("it would let the container write %s, which belongs to the image (the device's trust and configuration); mount it read-only (:ro) or use a named volume", tree)
		}
	}
	return ""
}
