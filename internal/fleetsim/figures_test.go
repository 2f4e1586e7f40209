package fleetsim

import (
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pibake/pibake/updater/config"
)

// idleRound is the traffic of the devices' polls over Span of the
// simulated clock when nothing is new.
type idleRound struct {
	Figures
	Wall    time.Duration // of real time, to serve it
	Polls   int64
	Span    time.Duration
	Busiest int // polls in the simulated minute that held the most
}

// The default polling loads the issue compares with, for 1,000,000
// devices: hawkBit's DDI default of a poll every 5 minutes and Mender's
// default of every 30 minutes, one request each.
const (
	hawkBitPerSecond = 1e6 / (5 * 60)
	menderPerSecond  = 1e6 / (30 * 60)
)

// printFigures logs the load of an idle fleet at the default poll and
// heartbeat, measured on n devices (booted together idleAfter before
// the idle hour) and extrapolated to 1,000,000, and the process's size.
func printFigures(t *testing.T, n int, idle idleRound, idleAfter time.Duration, perUpdate float64) {
	t.Helper()
	defPoll := 15 * time.Minute // config.Load's default, the simulation's
	polls := float64(idle.Polls)
	reqPerPoll := float64(idle.Requests) / polls
	bytesPerPoll := float64(idle.In+idle.Out) / polls
	pollsPerDay := polls / float64(n) * float64(24*time.Hour) / float64(idle.Span)
	conditional := "no conditional requests answered 304: every poll downloads the document and its signature"
	if idle.NotModified > 0 {
		conditional = "conditional requests in effect: " + itoa(idle.NotModified) + " of " + itoa(idle.Requests) + " answered 304 Not Modified"
	}
	t.Logf("idle polls, measured on %d devices over %s of the clock: %d polls, %.2f requests and %.0f bytes per poll (%.0f in, %.0f out; HTTP only, no TCP/TLS); %s",
		n, idle.Span, idle.Polls, reqPerPoll, bytesPerPoll, float64(idle.In)/polls, float64(idle.Out)/polls, conditional)
	t.Logf("served here: %d requests in %s of wall time, %.0f requests/s on this machine (server and all %d agents on its cores)",
		idle.Requests, idle.Wall.Round(time.Millisecond), float64(idle.Requests)/idle.Wall.Seconds(), n)
	t.Logf("per device per day at the default poll (%s with the service's jitter: %.1f polls): %.0f requests, %.1f KiB", defPoll, pollsPerDay, reqPerPoll*pollsPerDay, bytesPerPoll*pollsPerDay/1024)
	t.Logf("the spread: the busiest minute of the idle hour held %d polls of %d devices (%.1f%%; a minute's even share is %.1f%%), a fleet booted together %s before its start",
		idle.Busiest, n, 100*float64(idle.Busiest)/float64(n), 100*float64(time.Minute)/float64(defPoll), idleAfter)
	beats := float64(24*time.Hour) / float64(config.DefaultHeartbeat)
	t.Logf("broker messages per device per day: %.0f at the default heartbeat (%s), plus %.1f per update (its changes)", beats, config.DefaultHeartbeat, perUpdate)
	perSecond := 1e6 * reqPerPoll * pollsPerDay / 86400
	t.Logf("1,000,000 devices: %.0f requests/s, %.2f MB/s to the repository at the default poll (in the busiest minute, at this spread: %.0f requests/s); %.0f broker messages/s; hawkBit's default poll (5 min) is %.0f requests/s, Mender's (30 min) %.0f requests/s",
		perSecond, 1e6*bytesPerPoll*pollsPerDay/86400/1e6, 1e6*float64(idle.Busiest)/float64(n)*reqPerPoll/60, 1e6*beats/86400, hawkBitPerSecond, menderPerSecond)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	t.Logf("this process with %d devices: %d goroutines, Go heap in use %d MiB, from the OS %d MiB, peak RSS %d MiB",
		n, runtime.NumGoroutine(), ms.HeapInuse>>20, ms.Sys>>20, ru.Maxrss>>10)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
