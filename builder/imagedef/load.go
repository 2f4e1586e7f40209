package imagedef

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/pibake/pibake/internal/yamlerr"
)

// ErrInvalid is wrapped by every error about the content of a definition
// (each a *yamlerr.Error, or yamlerr.Errors of them).
var ErrInvalid = yamlerr.ErrInvalid

// Options tells Load where the definition lives and which environment to merge.
type Options struct {
	// Env is the environment whose overrides are merged ("" for none).
	Env string
	// Root is the folder overlays/ and services/ are relative to. Empty means
	// ProjectRoot of the definition.
	Root string
}

// Load reads, merges, decodes and validates the definition at path.
func Load(path string, opts Options) (*Definition, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read image definition: %w", err)
	}
	root, err := rootOf(path, opts)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, root, opts.Env)
}

// ProjectRoot is the folder a definition in dir (absolute) takes
// overlays/, services/ and container build folders from: the nearest of
// dir and the folders above it that holds overlays/ or services/, looking
// no higher than the top of a git repository (the folder holding .git);
// dir itself when none does. A definition in <root>/images/ of a
// repository with overlays/ or services/ gets <root>, as it always did;
// one next to its own overlays/ gets its own folder.
func ProjectRoot(dir string) string {
	for d := dir; ; {
		for _, sub := range []string{"overlays", "services"} {
			if st, err := os.Stat(filepath.Join(d, sub)); err == nil && st.IsDir() {
				return d
			}
		}
		if _, err := os.Stat(filepath.Join(d, ".git")); err == nil {
			return dir
		}
		parent := filepath.Dir(d)
		if parent == d {
			return dir
		}
		d = parent
	}
}

// Parse is Load on bytes already read; file is used in error messages.
func Parse(file string, data []byte, root, env string) (*Definition, error) {
	d, err := parse(file, data, root, env)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// LoadChecked is Load for pibake validate: a definition that decodes
// but fails validation comes back with its errors, so that Check can
// report its own problems beside them.
func LoadChecked(path string, opts Options) (*Definition, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read image definition: %w", err)
	}
	root, err := rootOf(path, opts)
	if err != nil {
		return nil, err
	}
	return parse(path, data, root, opts.Env)
}

func rootOf(path string, opts Options) (string, error) {
	if opts.Root != "" {
		return opts.Root, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("read image definition: %w", err)
	}
	return ProjectRoot(filepath.Dir(abs)), nil
}

// parse decodes and validates; after a validation error it returns the
// definition too.
func parse(file string, data []byte, root, env string) (*Definition, error) {
	top, err := yamlerr.Parse(file, data, yamlerr.Options{Hint: "(fix the syntax; see docs/image-definition.md)", KeepQuotes: true})
	if err != nil {
		return nil, err
	}
	if top == nil || top.Kind != yaml.MappingNode {
		return nil, &yamlerr.Error{File: file, Line: 1, Msg: "the definition must be a YAML mapping (name:, version:, boards:, ...)"}
	}
	if errs := yamlerr.Unknown(file, top, Definition{}, ""); len(errs) > 0 {
		return nil, errs
	}

	merged := top
	if env != "" {
		ov, ok := envNode(top, env)
		if ok && ov == nil {
			v := mapValue(mapValue(top, "environments"), env)
			return nil, &yamlerr.Error{File: file, Line: v.Line, Field: "environments." + env, Msg: "must be a mapping of overrides, e.g. hostname: box-" + env}
		}
		if !ok {
			return nil, &yamlerr.Error{File: file, Line: top.Line, Field: "environments", Msg: fmt.Sprintf("no environment %q (declared: %s)", env, strings.Join(envList(top), ", "))}
		}
		if errs := yamlerr.Unknown(file, ov, Definition{}, "environments."+env); len(errs) > 0 {
			return nil, errs
		}
		merged = mergeNodes(top, ov)
	}

	var d Definition
	if err := yamlerr.Decode(file, merged, &d); err != nil {
		return nil, err
	}
	d.File, d.Env, d.Dir, d.node = file, env, root, merged
	if es := d.resolveServices(); len(es) > 0 {
		return nil, es
	}
	d.applyDefaults()
	var errs yamlerr.Errors
	for _, fe := range d.validate() {
		errs = append(errs, &yamlerr.Error{File: file, Line: lineOf(merged, fe.path), Field: strings.Join(fe.path, "."), Msg: fe.msg})
	}
	if len(errs) > 0 {
		return &d, errs
	}
	return &d, nil
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func envNode(top *yaml.Node, env string) (*yaml.Node, bool) {
	v := mapValue(mapValue(top, "environments"), env)
	if v == nil {
		return nil, false
	}
	switch {
	case v.Kind == yaml.MappingNode:
		return v, true
	case v.Tag == "!!null":
		return &yaml.Node{Kind: yaml.MappingNode, Line: v.Line}, true // "prod:" with no overrides
	}
	return nil, true // declared, but not a mapping
}

func envList(top *yaml.Node) []string {
	envs := mapValue(top, "environments")
	if envs == nil {
		return []string{"none"}
	}
	var names []string
	for i := 0; i+1 < len(envs.Content); i += 2 {
		names = append(names, envs.Content[i].Value)
	}
	sort.Strings(names)
	return names
}

// mergeNodes returns base with override merged in: mappings merge key by
// key, recursively; any other value (scalar or list) replaces the base's.
// The environments key of the override is ignored.
func mergeNodes(base, over *yaml.Node) *yaml.Node {
	if base == nil || base.Kind != yaml.MappingNode || over.Kind != yaml.MappingNode {
		return over
	}
	out := *base
	out.Content = append([]*yaml.Node(nil), base.Content...)
	for i := 0; i+1 < len(over.Content); i += 2 {
		k, v := over.Content[i], over.Content[i+1]
		if k.Value == "environments" {
			continue
		}
		found := false
		for j := 0; j+1 < len(out.Content); j += 2 {
			if out.Content[j].Value == k.Value {
				out.Content[j+1] = mergeNodes(out.Content[j+1], v)
				found = true
				break
			}
		}
		if !found {
			out.Content = append(out.Content, k, v)
		}
	}
	return &out
}

// lineOf finds the line of the node at path, or of its nearest ancestor.
func lineOf(n *yaml.Node, path []string) int {
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					next = n.Content[i+1]
					if next.Kind == yaml.ScalarNode {
						line = n.Content[i].Line
					}
					break
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(p); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
			}
		}
		if next == nil {
			return line
		}
		n = next
		line = n.Line
	}
	return line
}
