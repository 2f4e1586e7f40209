package service

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// watchdog feeds systemd's watchdog from the loop's progress.
type watchdog struct {
	last, until atomic.Int64
	now         func() time.Time // nil: time.Now
}

func (w *watchdog) clock() time.Time {
	if w.now == nil {
		return time.Now()
	}
	return w.now()
}

func (w *watchdog) beat() { w.last.Store(w.clock().UnixNano()) }

// busy marks a step that may take up to d without beating (0: done).
func (w *watchdog) busy(d time.Duration) {
	if d == 0 {
		w.until.Store(0)
		return
	}
	w.until.Store(w.clock().Add(d).UnixNano())
}

// alive: a beat within half the watchdog interval, or a bounded step
// still within its bound.
func (w *watchdog) alive(now time.Time, every time.Duration) bool {
	return now.UnixNano()-w.last.Load() < int64(every/2) || now.UnixNano() < w.until.Load()
}

// feed tells systemd the service is alive every quarter of its watchdog
// interval, as long as the loop is; it returns when ctx is done.
func (w *watchdog) feed(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every / 4)
	defer t.Stop()
	warned := false
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if w.alive(now, every) {
				_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
				warned = false
			} else if !warned {
				log.Error("the main loop has made no progress: no longer feeding the watchdog", "since", time.Unix(0, w.last.Load()))
				warned = true
			}
		}
	}
}
