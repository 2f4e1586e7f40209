package publish

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/chunks"
	"github.com/pibake/pibake/updater/delta"
)

// Cost is what a device running an earlier release downloads for this
// one with delta updates (the plan its agent makes, the indexes
// included), next to the full artifacts.
type Cost struct {
	From     string // the earlier release's version
	Bytes    int64
	Requests int
	Full     int64
}

// deltaCost plans the update from prev, whose artifacts are still in the
// repository, to arts the way a device does: prev's artifacts as the
// running slot's partitions. An artifact of prev that is gone from the
// repository is left out (its device would fetch more).
func deltaCost(ctx context.Context, repo string, prev *channel.Document, arts []channel.Artifact, indexes []channel.ChunkIndex) ([]Cost, error) {
	var sources []delta.Source
	for _, a := range prev.Artifacts {
		f, err := os.Open(filepath.Join(repo, filepath.FromSlash(a.Path)))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		s, err := delta.IndexSource(ctx, a.Name, f, a.Size, chunks.Default)
		if err != nil {
			return nil, err
		}
		sources = append(sources, s)
	}
	c := Cost{From: prev.Version}
	for i, a := range arts {
		f, err := os.Open(filepath.Join(repo, filepath.FromSlash(indexes[i].Path)))
		if err != nil {
			return nil, err
		}
		ix, err := delta.ReadIndex(f, indexes[i].Size, indexes[i].SHA256, a)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.Name, err)
		}
		p := delta.NewPlan(ix, sources, delta.DefaultPolicy)
		c.Bytes += p.Fetch + indexes[i].Size
		c.Requests += p.Requests + 1
		c.Full += a.Size
	}
	return []Cost{c}, nil
}
