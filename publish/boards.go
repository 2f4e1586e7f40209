package publish

import (
	"context"
	"fmt"
	"slices"

	"github.com/pibake/pibake/updater/channel"
)

// A release of several boards: the build folders of one image and
// version, one per board (pibake publish out/demo-pi3 out/demo-pi4). Its
// artifacts name their board (channel.Artifact.Board); a release of one
// board leaves them unnamed, with the bytes it always had. Each board's
// update is priced, and its patches made, from the same board's earlier
// releases.

// buildDirs are the build folders of o: Builds, else Build.
func (o Options) buildDirs() []string {
	if len(o.Builds) > 0 {
		return o.Builds
	}
	return []string{o.Build}
}

// readBuilds reads every build folder and checks that they are one
// release: the same image and version, each of another board.
func readBuilds(ctx context.Context, dirs []string) ([]*build, func(), error) {
	var bs []*build
	closeAll := func() {
		for _, b := range bs {
			b.img.Close()
		}
	}
	for _, dir := range dirs {
		b, err := readBuild(ctx, dir)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("%s: %w", dir, err)
		}
		bs = append(bs, b)
		first := bs[0].m
		switch {
		case b.m.Image != first.Image || b.m.Version != first.Version:
			closeAll()
			return nil, nil, fmt.Errorf("%s is %s %s and %s is %s %s: one release carries the builds of one image and version (build each board from the same definition and version)", dirs[0], first.Image, first.Version, dir, b.m.Image, b.m.Version)
		case slices.ContainsFunc(bs[:len(bs)-1], func(o *build) bool { return o.m.Board == b.m.Board }):
			closeAll()
			return nil, nil, fmt.Errorf("%s is a second build for board %s: give one build folder per board", dir, b.m.Board)
		}
	}
	return bs, closeAll, nil
}

// boards are the builds' boards, in the order given.
func boards(bs []*build) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.m.Board)
	}
	return out
}

// storeBuilds stores every build's artifacts and chunk indexes. With
// several builds each artifact names its board; an index is listed once
// per artifact bytes (two boards may share an artifact).
func storeBuilds(ctx context.Context, bs *blobStore, builds []*build) ([]channel.Artifact, []channel.ChunkIndex, int64, error) {
	var arts []channel.Artifact
	var indexes []channel.ChunkIndex
	var uploaded int64
	for _, b := range builds {
		a, ix, n, err := b.store(ctx, bs)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("board %s: %w", b.m.Board, err)
		}
		uploaded += n
		for i := range a {
			if len(builds) > 1 {
				a[i].Board = b.m.Board
			}
		}
		arts = append(arts, a...)
		for _, x := range ix {
			if !slices.ContainsFunc(indexes, func(y channel.ChunkIndex) bool { return y.Artifact == x.Artifact }) {
				indexes = append(indexes, x)
			}
		}
	}
	return arts, indexes, uploaded, nil
}

// forBoard is r with only the artifacts a device of board runs: those
// of its board, or unnamed ones of a release of that board (or of a
// history that did not record boards).
func (r Release) forBoard(board string) Release {
	out := r
	out.Artifacts = nil
	for _, a := range r.Artifacts {
		if a.Board == board || (a.Board == "" && (len(r.Boards) == 0 || slices.Contains(r.Boards, board))) {
			out.Artifacts = append(out.Artifacts, a)
		}
	}
	return out
}

// boardCosts prices the update of each board from that board's earlier
// releases (at most n each) and makes their patches. One board's costs
// name no board, as before releases of several boards.
func (st *channelState) boardCosts(ctx context.Context, bs *blobStore, release []string, arts []channel.Artifact, indexes []channel.ChunkIndex, n int) ([]Cost, []channel.PatchRef, int64, error) {
	var costs []Cost
	var refs []channel.PatchRef
	var stored int64
	d := channel.Document{Artifacts: arts}
	for _, board := range release {
		ba := d.ArtifactsFor(board)
		var bix []channel.ChunkIndex
		for _, a := range ba {
			i := slices.IndexFunc(indexes, func(x channel.ChunkIndex) bool { return x.Artifact == a.SHA256 })
			bix = append(bix, indexes[i])
		}
		var hist []Release
		for _, r := range st.hist.Releases {
			if r = r.forBoard(board); len(r.Artifacts) > 0 {
				hist = append(hist, r)
			}
		}
		c, p, s, err := deltaCost(ctx, bs, earlier(hist, st.prev != nil, ba, n), ba, bix)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("board %s: %w", board, err)
		}
		for i := range c {
			if len(release) > 1 {
				c[i].Board = board
			}
		}
		costs, stored = append(costs, c...), stored+s
		for _, ref := range p {
			if !slices.ContainsFunc(refs, func(o channel.PatchRef) bool { return o.Artifact == ref.Artifact && o.From == ref.From }) {
				refs = append(refs, ref)
			}
		}
	}
	return costs, refs, stored, nil
}
