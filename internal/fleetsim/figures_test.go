package fleetsim

import (
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pibake/pibake/updater/config"
)

// idleRound is the traffic of one poll of every device when nothing is new.
type idleRound struct {
	Figures
	Wall time.Duration
}

// The default polling loads the issue compares with, for 1,000,000
// devices: hawkBit's DDI default of a poll every 5 minutes and Mender's
// default of every 30 minutes, one request each.
const (
	hawkBitPerSecond = 1e6 / (5 * 60)
	menderPerSecond  = 1e6 / (30 * 60)
)

// printFigures logs the load of an idle fleet at the default poll and
// heartbeat, measured on n devices and extrapolated to 1,000,000, and
// the process's size.
func printFigures(t *testing.T, n int, idle idleRound, perUpdate float64) {
	t.Helper()
	defPoll := 15 * time.Minute // config.Load's default
	pollsPerDay := float64(24*time.Hour) / float64(defPoll)
	reqPerPoll := float64(idle.Requests) / float64(n)
	bytesPerPoll := float64(idle.In+idle.Out) / float64(n)
	conditional := "no conditional requests answered 304 (the agent sends none yet): every poll downloads the document and its signature"
	if idle.NotModified > 0 {
		conditional = "conditional requests in effect: " + itoa(idle.NotModified) + " of " + itoa(idle.Requests) + " answered 304 Not Modified"
	}
	t.Logf("idle poll, measured on %d devices: %.2f requests and %.0f bytes per poll (%.0f in, %.0f out; HTTP only, no TCP/TLS); %s",
		n, reqPerPoll, bytesPerPoll, float64(idle.In)/float64(n), float64(idle.Out)/float64(n), conditional)
	t.Logf("served here: %d requests in %s of wall time, %.0f requests/s on this machine (server and all %d agents on its cores)",
		idle.Requests, idle.Wall.Round(time.Millisecond), float64(idle.Requests)/idle.Wall.Seconds(), n)
	t.Logf("per device per day at the default poll (%s, %.0f polls): %.0f requests, %.1f KiB", defPoll, pollsPerDay, reqPerPoll*pollsPerDay, bytesPerPoll*pollsPerDay/1024)
	beats := float64(24*time.Hour) / float64(config.DefaultHeartbeat)
	t.Logf("broker messages per device per day: %.0f at the default heartbeat (%s), plus %.1f per update (its changes)", beats, config.DefaultHeartbeat, perUpdate)
	perSecond := 1e6 * reqPerPoll / defPoll.Seconds()
	t.Logf("1,000,000 devices: %.0f requests/s, %.1f MB/s to the repository at the default poll; %.0f broker messages/s; hawkBit's default poll (5 min) is %.0f requests/s, Mender's (30 min) %.0f requests/s",
		perSecond, 1e6*bytesPerPoll/defPoll.Seconds()/1e6, 1e6*beats/86400, hawkBitPerSecond, menderPerSecond)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	t.Logf("this process with %d devices: %d goroutines, Go heap in use %d MiB, from the OS %d MiB, peak RSS %d MiB",
		n, runtime.NumGoroutine(), ms.HeapInuse>>20, ms.Sys>>20, ru.Maxrss>>10)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
