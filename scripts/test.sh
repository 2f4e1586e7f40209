#!/usr/bin/env bash
# make test's run of every package: the QEMU stories of e2e/ (the longest
# package by far) start first; once they have chosen their lanes (on the
# idle machine: two, see e2e/sched_test.go), the other packages run beside
# them, one at a time, as they did before the stories. The guests wait
# much of their time on their own timers (health deadlines, poll
# intervals, a hung release's watchdog), and those cores were idle.
# Each package's time and each story's are printed at the end.
#
# Environment: GO (default go); PIBAKE_TEST_SERIAL=1 runs the other
# packages after the stories instead of beside them.
set -uo pipefail
GO=${GO:-go}
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; [ -n "${e2e:-}" ] && kill "$e2e" 2>/dev/null' EXIT
export PIBAKE_REAL=1 PIBAKE_E2E=1 PIBAKE_E2E_TIMES="$tmp/e2e-times.txt" PIBAKE_E2E_SCHEDULED="$tmp/e2e-scheduled"

others=$($GO list ./... | grep -v '/e2e$') || { echo "make test: go list failed" >&2; exit 1; }
started=$(date +%s)

$GO test -timeout 150m -count=1 ./e2e/ >"$tmp/e2e.log" 2>&1 &
e2e=$!
if [ -z "${PIBAKE_TEST_SERIAL:-}" ]; then
	# The stories measure how busy the machine is before they choose their
	# lanes: the other packages wait for that choice (or for the e2e
	# package's end, if it fails before its first story).
	while kill -0 "$e2e" 2>/dev/null && [ ! -e "$tmp/e2e-scheduled" ]; do
		sleep 1
	done
	[ -e "$tmp/e2e-scheduled" ] && echo "$(cat "$tmp/e2e-scheduled"); the other packages run beside them"
else
	wait "$e2e"
	rc_e2e=$?
fi

# shellcheck disable=SC2086 # one word a package
$GO test -p 1 -parallel 3 -timeout 150m -count=1 $others 2>&1 | tee "$tmp/others.log"
rc_others=${PIPESTATUS[0]}
others_done=$(date +%s)

if [ -z "${rc_e2e:-}" ]; then
	echo "the other packages took $((others_done - started)) s; waiting for the QEMU stories (e2e/)"
	wait "$e2e"
	rc_e2e=$?
fi
e2e=
cat "$tmp/e2e.log"

echo "package times, slowest first:"
awk '$1 == "ok" || $1 == "FAIL" && NF >= 3 { t = $NF; sub(/s$/, "", t); if (t + 0 > 0) printf "%9.1f s  %-4s %s\n", t, $1, $2 }' \
	"$tmp/others.log" "$tmp/e2e.log" | sort -rn | head -15
[ -s "$tmp/e2e-times.txt" ] && cat "$tmp/e2e-times.txt"
echo "make test's packages: $(( $(date +%s) - started )) s from the first to the last"
[ "$rc_e2e" -eq 0 ] && [ "$rc_others" -eq 0 ]
