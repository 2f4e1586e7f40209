package fat

import (
	"fmt"
	"slices"
	"strings"
)

// File is a regular file to store in the filesystem.
type File struct {
	Path string // slash-separated and relative, e.g. "overlays/vc4-kms-v3d.dtbo"; parent directories are implied
	Data []byte
}

// Dir is a directory to create even if no file lies inside it.
type Dir struct {
	Path string
}

// node is one file or directory of the tree being written.
type node struct {
	name     string
	isDir    bool
	data     []byte
	parent   *node
	children []*node          // sorted by name once the tree is complete
	byKey    map[string]*node // children by foldKey(name)

	short [11]byte // packed 8.3 alias
	lfn   bool     // whether long-name entries precede the short entry

	first    uint32 // first cluster, 0 for empty files
	nCluster uint32 // clusters allocated
}

func (n *node) path() string {
	if n.parent == nil {
		return ""
	}
	if p := n.parent.path(); p != "" {
		return p + "/" + n.name
	}
	return n.name
}

// tree is the validated, named and sorted input of Write.
type tree struct {
	root  *node
	dirs  []*node // every directory, root first, in allocation (pre-)order
	files []*node // every regular file, in allocation order
}

// buildTree validates the inputs and arranges them into a sorted tree with
// short names assigned. Inputs are sorted first so that errors, too, do not
// depend on the order of the arguments.
func buildTree(files []File, dirs []Dir, hasLabel bool) (*tree, error) {
	root := &node{isDir: true, byKey: map[string]*node{}}
	ds := slices.Clone(dirs)
	slices.SortFunc(ds, func(a, b Dir) int { return strings.Compare(a.Path, b.Path) })
	for _, d := range ds {
		if err := insert(root, d.Path, true, nil); err != nil {
			return nil, fmt.Errorf("fat: directory %q: %w", d.Path, err)
		}
	}
	fs := slices.Clone(files)
	slices.SortFunc(fs, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	for _, f := range fs {
		if int64(len(f.Data)) > 1<<32-1 {
			return nil, fmt.Errorf("fat: file %q: %d bytes is more than the FAT32 limit of 4 GiB - 1", f.Path, len(f.Data))
		}
		if err := insert(root, f.Path, false, f.Data); err != nil {
			return nil, fmt.Errorf("fat: file %q: %w", f.Path, err)
		}
	}
	t := &tree{root: root}
	if err := t.finish(root, hasLabel); err != nil {
		return nil, err
	}
	return t, nil
}

// insert adds one path to the tree.
func insert(root *node, p string, isDir bool, data []byte) error {
	parts := strings.Split(p, "/")
	for _, part := range parts {
		if err := checkName(part); err != nil {
			return err
		}
	}
	cur := root
	for i, part := range parts {
		last := i == len(parts)-1
		wantDir := !last || isDir
		key := foldKey(part)
		c := cur.byKey[key]
		if c == nil {
			c = &node{name: part, isDir: wantDir, parent: cur}
			if wantDir {
				c.byKey = map[string]*node{}
			} else {
				c.data = data
			}
			cur.byKey[key] = c
			cur.children = append(cur.children, c)
			cur = c
			continue
		}
		switch {
		case c.name != part:
			return fmt.Errorf("duplicate path: %q and %q differ only in case, and FAT names are case-insensitive",
				joinPath(cur.path(), part), c.path())
		case wantDir && !c.isDir:
			return fmt.Errorf("%q is used both as a file and as a directory", c.path())
		case !wantDir && c.isDir:
			return fmt.Errorf("%q is used both as a file and as a directory", c.path())
		case !wantDir:
			return fmt.Errorf("duplicate path %q", c.path())
		}
		cur = c
	}
	return nil
}

func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// finish sorts the children of dir, names them, checks the directory size
// and records the allocation order: the directory itself, then its
// children in name order, descending into subdirectories as they come.
func (t *tree) finish(dir *node, hasLabel bool) error {
	slices.SortFunc(dir.children, func(a, b *node) int { return strings.Compare(a.name, b.name) })
	dir.byKey = nil
	if err := assignShortNames(dir); err != nil {
		return fmt.Errorf("fat: directory %q: %w", dir.path(), err)
	}
	if n := dir.entryCount(hasLabel); n > maxDirEntries {
		return fmt.Errorf("fat: directory %q: needs %d directory entries, FAT allows %d", dir.path(), n, maxDirEntries)
	}
	t.dirs = append(t.dirs, dir)
	for _, c := range dir.children {
		if c.isDir {
			if err := t.finish(c, false); err != nil {
				return err
			}
		} else {
			t.files = append(t.files, c)
		}
	}
	return nil
}

const maxDirEntries = 65536

// entryCount is the number of 32-byte entries a directory holds: "." and
// ".." (or the volume label in the root), then each child with its long-name
// entries.
func (n *node) entryCount(hasLabel bool) int {
	count := 2
	if n.parent == nil {
		count = 0
		if hasLabel {
			count = 1
		}
	}
	for _, c := range n.children {
		count++
		if c.lfn {
			count += lfnSlots(c.name)
		}
	}
	return count
}

// clustersFor returns how many clusters of clusterSize bytes the tree
// needs, and records each node's cluster count.
func (t *tree) clustersFor(clusterSize int64, hasLabel bool) uint64 {
	var total uint64
	for _, d := range t.dirs {
		bytes := int64(d.entryCount(hasLabel && d.parent == nil)) * dirEntrySize
		d.nCluster = uint32(max(1, (bytes+clusterSize-1)/clusterSize))
		total += uint64(d.nCluster)
	}
	for _, f := range t.files {
		f.nCluster = uint32((int64(len(f.data)) + clusterSize - 1) / clusterSize)
		total += uint64(f.nCluster)
	}
	return total
}

// allocate hands out contiguous cluster runs starting at cluster 2, in the
// order directories and files were recorded (the root comes first, so it
// lands at cluster 2). It returns the first cluster left free.
func (t *tree) allocate() uint32 {
	next := uint32(2)
	var walk func(d *node)
	walk = func(d *node) {
		d.first = next
		next += d.nCluster
		for _, c := range d.children {
			if c.isDir {
				walk(c)
			} else if c.nCluster > 0 {
				c.first = next
				next += c.nCluster
			}
		}
	}
	walk(t.root)
	return next
}

// MinSize returns the smallest Options.Size, in bytes, for which Write can
// hold the given files and directories with an 11-character volume label.
// It is never less than the FAT32 minimum of 65525 clusters. The error
// reports invalid input, as Write would.
func MinSize(files []File, dirs []Dir) (int64, error) {
	t, err := buildTree(files, dirs, true)
	if err != nil {
		return 0, err
	}
	for i, tier := range clusterTiers {
		need := max(t.clustersFor(int64(tier.secPerClus)*sectorSize, true), minClusters)
		if total := sectorsForClusters(need, i); total != 0 {
			return int64(total) * sectorSize, nil
		}
	}
	return 0, fmt.Errorf("fat: content needs more than the largest FAT32 volume this package writes (%d bytes)",
		int64(maxSectors)*sectorSize)
}
