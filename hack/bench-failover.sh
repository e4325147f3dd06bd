#!/usr/bin/env bash
# bench-failover.sh: failover of a real Patroni cluster, each fault RUNS times
# (default 5): three Patroni 3.0.2 members with PostgreSQL 15 on 127.0.0.1,
# the Kubernetes DCS on the test control plane, the chart's Patroni settings,
# the shop's prober writing through the primary Service every 100 ms. It runs
# TestPatroniFailover (lab/patroni_test.go) with LAB_FAILOVER_RUNS=RUNS and
# prints one line per fault:
#
#   RESULT fault=<crash|isolate|graceful> runs=N rto_p50_s=X rto_max_s=Y lost=Z
#
# RTO is what lab validate computes (first acknowledged write after the fault
# followed by 5 s of successes, minus the injection); lost counts acknowledged
# writes missing afterwards, over all runs.
#
# Needs: go, the test control plane (make test-assets), Debian's patroni and
# postgresql. The whole log, with every run's timeline, goes to LOG (default:
# a temporary file, named at the end).
set -euo pipefail

RUNS=${RUNS:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOG=${LOG:-$(mktemp -t bench-failover.XXXXXX.log)}

cd "$ROOT"
echo "bench-failover: ${RUNS} runs of each fault, log in ${LOG} ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
start=$SECONDS
status=0
LAB_FAILOVER_RUNS="$RUNS" go test -count=1 -timeout 20m -run '^TestPatroniFailover$' -v ./lab/ >"$LOG" 2>&1 || status=$?
grep -o 'RESULT .*' "$LOG" || true
echo "bench-failover: $((SECONDS - start)) s" >&2
if ((status != 0)); then
	echo "bench-failover: the test failed (exit ${status}); failures:" >&2
	grep -E -- '--- FAIL|patroni_test.go:[0-9]+: .*(R29|lost|restart in place|not healthy|no other member)' "$LOG" >&2 || true
fi
echo "bench-failover: whole log in ${LOG}" >&2
exit "$status"
