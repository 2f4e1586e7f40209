package lock

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestOneWriter(t *testing.T) {
	p := filepath.Join(t.TempDir(), "run", "updater.lock")
	a, err := Take(p, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Take(p, false); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second writer: %v", err)
	}
	got := make(chan error)
	go func() {
		b, err := Take(p, true)
		if err == nil {
			b.Unlock()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("a waiting writer went ahead while the lock was held: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	a.Unlock()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}
