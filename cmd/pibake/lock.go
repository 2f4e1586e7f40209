package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/pibake/pibake/builder"
	"github.com/pibake/pibake/builder/debian"
)

func cmdLock(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("lock", "lock [flags] images/NAME.yaml", stdout, stderr)
	cache := fs.String("cache", "", "cache folder (default: $PIBAKE_CACHE or ~/.cache/pibake)")
	epoch := fs.Int64("epoch", 0, "source_date_epoch to record (default: $SOURCE_DATE_EPOCH, else today 00:00 UTC)")
	verbose := fs.Bool("v", false, "verbose")
	containersOnly := fs.Bool("containers", false, "only pin the container images again; keep the Debian packages")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	def, err := oneArg(fs, pos, "image definition")
	if err != nil {
		return err
	}
	if *epoch == 0 {
		if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
			if *epoch, err = strconv.ParseInt(v, 10, 64); err != nil {
				return fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", v, errUsage)
			}
		} else {
			// The lock records when the package set was taken; a day is
			// precise enough and keeps re-locks on one day comparable.
			*epoch = time.Now().UTC().Truncate(24 * time.Hour).Unix()
		}
	}
	if *epoch < debian.MinEpoch {
		return fmt.Errorf("epoch %d is before 1980, which FAT cannot store: %w", *epoch, errUsage)
	}
	path, lock, err := builder.Lock(ctx, builder.LockOptions{Definition: def, CacheDir: *cache, Epoch: *epoch, Progress: stderr, Log: logger(stderr, *verbose), ContainersOnly: *containersOnly})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d packages and %d container images pinned, source_date_epoch %d\n", path, len(lock.Packages), len(lock.Containers), lock.SourceDateEpoch)
	return nil
}
