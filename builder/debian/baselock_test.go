package debian

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestLockBase: a second build of the same base waits for the first and
// is told so; another base is not held up; a cancelled wait gives up.
func TestLockBase(t *testing.T) {
	c := Cache{Dir: t.TempDir()}
	ctx := context.Background()
	unlock, err := c.LockBase(ctx, "k1", func() { t.Error("the first build waited") })
	if err != nil {
		t.Fatal(err)
	}
	other, err := c.LockBase(ctx, "k2", func() { t.Error("another base waited") })
	if err != nil {
		t.Fatal(err)
	}
	other()
	var told atomic.Bool
	got := make(chan time.Time)
	go func() {
		u, err := c.LockBase(ctx, "k1", func() { told.Store(true) })
		if err != nil {
			t.Error(err)
		}
		got <- time.Now()
		u()
	}()
	time.Sleep(600 * time.Millisecond)
	released := time.Now()
	unlock()
	if at := <-got; at.Before(released) || !told.Load() {
		t.Errorf("the second build took the lock %s before the first released it (told: %v)", released.Sub(at), told.Load())
	}
	held, _ := c.LockBase(ctx, "k1", nil)
	defer held()
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := c.LockBase(cctx, "k1", nil); err == nil {
		t.Error("a cancelled wait took the lock")
	}
}
