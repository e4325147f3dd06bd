#!/usr/bin/env bash
# bench-load.sh: side-by-side benchmark of the lab load generator (`lab load`),
# vegeta and wrk against the same minimal Go target (hack/benchtarget), each
# generator pinned to one core and the target to another, on 127.0.0.1 only.
#
# Phases (PHASES, default "rate freeze latency users"):
#   rate     max req/s on one core and CPU-s per 100k requests, per tool
#            (lab; plain: a bare net/http loop, the practical Go limit;
#            vegeta; wrk), median of RUNS runs; one line per tool:
#              RESULT tool=NAME rps=N cpu_s_per_100k=X
#   freeze   target freezes 200 ms of every second (and serves in 5 ms);
#            p90/p99 of lab (open model at 2,000 req/s, closed model
#            corrected) and vegeta (2,000 req/s) against the truth ≈ 105/195 ms
#   latency  fixed 2,000 req/s against a 5 ms endpoint: p50/p99 of lab and
#            vegeta beside the target's own
#   users    1,000 closed-model users with 0.5-1.5 s think time: share of a
#            core and peak resident memory (whole, anonymous, file-backed) of
#            `lab load` and of the same generator in a bare Go program
#            (benchtarget -gen), and the lab binary's memory before any load
#
# The machine should be otherwise idle: pinning separates the generator from
# the target, not from other work on the same cores (the script prints the
# load average before it starts).
#
# Needs: go, taskset (util-linux), /usr/bin/time (Debian package time), jq,
# wrk (Debian package wrk; skipped with a note when missing). vegeta is
# installed with `go install` into a temporary directory.
# Env: DURATION (10s), RUNS (3), CONNS (50), PORT (18088), GEN_CPU (0),
# TARGET_CPU (1), BENCH_LAB_BIN (a prebuilt lab binary; default: built from ./cmd/lab).
set -euo pipefail

DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
CONNS=${CONNS:-50}
PORT=${PORT:-18088}
GEN_CPU=${GEN_CPU:-0}
TARGET_CPU=${TARGET_CPU:-1}
PHASES=${PHASES:-rate freeze latency users}
VEGETA_VERSION=v12.13.0

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
TARGET_PID=""
URL="http://127.0.0.1:${PORT}/"
SECS=${DURATION%s}

cleanup() {
	if [[ -n "$TARGET_PID" ]]; then
		kill "$TARGET_PID" 2>/dev/null || true
		wait "$TARGET_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "bench-load: $1 is required ($2)" >&2; exit 2; }; }
need go "https://go.dev/dl"
need taskset "apt-get install -y util-linux"
need jq "apt-get install -y jq"
[[ -x /usr/bin/time ]] || { echo "bench-load: /usr/bin/time is required (apt-get install -y time)" >&2; exit 2; }

echo "# load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >&2
echo "# building (lab, benchtarget, vegeta ${VEGETA_VERSION})" >&2
cd "$ROOT"
LAB=${BENCH_LAB_BIN:-$WORK/lab}
[[ -n "${BENCH_LAB_BIN:-}" ]] || go build -o "$LAB" ./cmd/lab
go build -o "$WORK/benchtarget" ./hack/benchtarget
VEGETA=""
if GOBIN="$WORK" go install "github.com/tsenart/vegeta/v12@${VEGETA_VERSION}" 2>"$WORK/vegeta-install.log"; then
	VEGETA="$WORK/vegeta"
else
	echo "# vegeta could not be installed: $(tail -1 "$WORK/vegeta-install.log")" >&2
fi
WRK=$(command -v wrk || true)
[[ -n "$WRK" ]] || echo "# wrk not found (apt-get install -y wrk): skipped" >&2

printf 'behaviours:\n  - name: get\n    steps: [{name: get, path: /}]\n' >"$WORK/get.yaml"
echo "GET $URL" >"$WORK/targets.txt"

# stop_target: stop the target; its own latency is then in target.log.
stop_target() {
	if [[ -n "$TARGET_PID" ]]; then
		kill "$TARGET_PID"
		wait "$TARGET_PID" 2>/dev/null || true
		TARGET_PID=""
	fi
}

# start_target ARGS...: (re)start the target pinned to TARGET_CPU.
start_target() {
	stop_target
	taskset -c "$TARGET_CPU" "$WORK/benchtarget" -addr "127.0.0.1:${PORT}" "$@" >"$WORK/target.log" 2>&1 &
	TARGET_PID=$!
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "bench-load: the target did not start: $(cat "$WORK/target.log")" >&2
	exit 1
}

# timed FILE CMD...: run CMD pinned to GEN_CPU; FILE gets "user sys maxrss_kb".
timed() {
	local out=$1
	shift
	/usr/bin/time -f "%U %S %M" -o "$out" taskset -c "$GEN_CPU" "$@"
}

# lab_run JSON ARGS...: one lab load run, JSON result in JSON.
lab_run() {
	local json=$1
	shift
	"$LAB" load --quiet --target "$URL" --scenario "$WORK/get.yaml" --duration "$DURATION" \
		--max-requests 100000000 --json "$json" "$@" >/dev/null
}

# vegeta_rate OUT RATE: vegeta at a constant rate, results in OUT.
vegeta_rate() {
	taskset -c "$GEN_CPU" "$VEGETA" attack -targets="$WORK/targets.txt" -rate="$2" -duration="$DURATION" \
		-max-body=0 -output="$1"
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# one_rate TOOL RUN: prints "requests seconds cpu_seconds".
one_rate() {
	local tool=$1 run=$2 t="$WORK/time-$1-$2"
	case $tool in
	lab)
		timed "$t" "$LAB" load --quiet --target "$URL" --scenario "$WORK/get.yaml" --users "$CONNS" --spawn-rate 0 --think 0 \
			--duration "$DURATION" --max-requests 100000000 --json "$WORK/lab-$run.json" >/dev/null
		read -r reqs ns < <(jq -r '"\(.overall.requests) \(.duration_ns)"' "$WORK/lab-$run.json")
		secs=$(awk -v n="$ns" 'BEGIN {print n / 1e9}')
		;;
	vegeta)
		timed "$t" "$VEGETA" attack -targets="$WORK/targets.txt" -rate=0 -workers="$CONNS" -max-workers="$CONNS" \
			-duration="$DURATION" -max-body=0 -output="$WORK/vegeta-$run.bin"
		reqs=$("$VEGETA" report -type=json "$WORK/vegeta-$run.bin" | jq -r '.requests')
		secs=$SECS
		;;
	plain)
		timed "$t" "$WORK/benchtarget" -loop "$URL" -conns "$CONNS" -duration "$DURATION" >"$WORK/plain-$run.txt"
		read -r _ reqs _ secs <"$WORK/plain-$run.txt"
		;;
	wrk)
		timed "$t" "$WRK" -t1 -c"$CONNS" -d"$DURATION" "$URL" >"$WORK/wrk-$run.txt"
		read -r reqs secs < <(awk '/requests in/ {gsub(/s,/, "", $4); print $1, $4}' "$WORK/wrk-$run.txt")
		;;
	esac
	read -r user sys _ <"$t"
	echo "$reqs $secs $(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}')"
}

declare -A RPS CPU
if [[ " $PHASES " == *" rate "* ]]; then
	echo "# rate: max req/s, ${CONNS} connections, ${DURATION} x ${RUNS}, generator on CPU ${GEN_CPU}, target on CPU ${TARGET_CPU}" >&2
	start_target
	tools="lab plain"
	[[ -n "$VEGETA" ]] && tools="$tools vegeta"
	[[ -n "$WRK" ]] && tools="$tools wrk"
	for tool in $tools; do
		: >"$WORK/rps-$tool"
		: >"$WORK/cpu-$tool"
	done
	# Tools take turns within each round, so that a drift in the machine's
	# load spreads over all of them.
	for run in $(seq "$RUNS"); do
		for tool in $tools; do
			read -r reqs secs cpu < <(one_rate "$tool" "$run")
			awk -v r="$reqs" -v s="$secs" 'BEGIN {printf "%.0f\n", r / s}' >>"$WORK/rps-$tool"
			awk -v r="$reqs" -v c="$cpu" 'BEGIN {printf "%.3f\n", c / r * 100000}' >>"$WORK/cpu-$tool"
			echo "#   $tool run $run: $reqs requests in ${secs}s, ${cpu} CPU-s" >&2
		done
	done
	for tool in $tools; do
		RPS[$tool]=$(median <"$WORK/rps-$tool")
		CPU[$tool]=$(median <"$WORK/cpu-$tool")
	done
	printf '%-8s %10s %16s %16s %16s\n' tool "req/s" "CPU-s/100k" "ours/theirs rps" "ours/theirs cpu"
	for tool in $tools; do
		printf '%-8s %10s %16s %16s %16s\n' "$tool" "${RPS[$tool]}" "${CPU[$tool]}" \
			"$(awk -v a="${RPS[lab]}" -v b="${RPS[$tool]}" 'BEGIN {printf "%.2f", a / b}')" \
			"$(awk -v a="${CPU[lab]}" -v b="${CPU[$tool]}" 'BEGIN {printf "%.2f", a / b}')"
	done
	for tool in $tools; do
		echo "RESULT tool=$tool rps=${RPS[$tool]} cpu_s_per_100k=${CPU[$tool]}"
	done
fi

if [[ " $PHASES " == *" freeze "* ]]; then
	echo "# freeze: the target freezes 200 ms of every second (truth p90 ≈ 105 ms, p99 ≈ 195 ms)" >&2
	start_target -freeze 200ms -delay 5ms
	lab_run "$WORK/freeze-open.json" --model open --rate 2000 --max-in-flight 5000
	lab_run "$WORK/freeze-closed.json" --users "$CONNS" --spawn-rate 0 --think 0
	if [[ -n "$VEGETA" ]]; then
		vegeta_rate "$WORK/freeze-vegeta.bin" 2000
		"$VEGETA" report -type=json "$WORK/freeze-vegeta.bin" |
			jq -r '"RESULT tool=vegeta-freeze p90_ms=\(.latencies["90th"] / 1e6) p99_ms=\(.latencies["99th"] / 1e6) rps=\(.rate | floor)"'
	fi
	for m in open closed; do
		jq -r --arg m "$m" '"RESULT tool=lab-\($m)-freeze p90_ms=\(.overall.latency.p90_ms) p99_ms=\(.overall.latency.p99_ms) raw_p90_ms=\(.overall.raw_latency.p90_ms) raw_p99_ms=\(.overall.raw_latency.p99_ms) rps=\(.overall.rps | floor) dropped=\(.generator.dropped_starts) lag_p99_ms=\(.generator.schedule_lag.p99_ms)"' "$WORK/freeze-$m.json"
	done
fi

if [[ " $PHASES " == *" latency "* ]]; then
	echo "# latency: open model at 2,000 req/s against a 5 ms endpoint" >&2
	start_target -delay 5ms
	if [[ -n "$VEGETA" ]]; then
		vegeta_rate "$WORK/latency-vegeta.bin" 2000
		"$VEGETA" report -type=json "$WORK/latency-vegeta.bin" |
			jq -r '"RESULT tool=vegeta-2000rps-5ms p50_ms=\(.latencies["50th"] / 1e6) p99_ms=\(.latencies["99th"] / 1e6) rps=\(.rate | floor)"'
		start_target -delay 5ms # a fresh count of the target's own latency for lab's run
	fi
	lab_run "$WORK/latency.json" --model open --rate 2000
	stop_target
	read -r _ _ own_p50 own_p99 < <(grep '^target ' "$WORK/target.log" | tr '=' ' ' | awk '{print $1, $3, $5, $7}')
	jq -r --arg p50 "$own_p50" --arg p99 "$own_p99" '"RESULT tool=lab-2000rps-5ms p50_ms=\(.overall.latency.p50_ms) p99_ms=\(.overall.latency.p99_ms) raw_p50_ms=\(.overall.raw_latency.p50_ms) raw_p99_ms=\(.overall.raw_latency.p99_ms) target_own_p50_ms=\($p50) target_own_p99_ms=\($p99) rps=\(.overall.rps | floor) lag_p50_ms=\(.generator.schedule_lag.p50_ms) lag_p99_ms=\(.generator.schedule_lag.p99_ms)"' "$WORK/latency.json"
fi

# users_run NAME CMD...: CMD (a 1,000-user run writing its JSON result to
# $WORK/NAME.json) pinned to GEN_CPU; prints its RESULT line: rate, share of
# a core, and peak resident memory, whole and split into anonymous memory
# (the heap, stacks and buffers the program allocates) and file-backed pages
# (its executable's code and data, shared with the page cache, which do not
# grow with the population), sampled every 100 ms from /proc.
users_run() {
	local name=$1 t="$WORK/time-$1" pid="" anon=0 file=0 a f
	shift
	# Not through timed: $! must be /usr/bin/time's own PID, its child the
	# measured program.
	/usr/bin/time -f "%U %S %M" -o "$t" taskset -c "$GEN_CPU" "$@" >/dev/null &
	local tpid=$!
	while [[ -z "$pid" ]] && kill -0 "$tpid" 2>/dev/null; do
		pid=$(pgrep -P "$tpid" || true)
		sleep 0.01
	done
	while [[ -n "$pid" ]] && read -r a f < <(awk '/^RssAnon/ {a = $2} /^RssFile/ {f = $2} END {if (a != "") print a, f}' "/proc/$pid/status" 2>/dev/null); do
		((a > anon)) && anon=$a
		((f > file)) && file=$f
		sleep 0.1
	done
	wait "$tpid"
	read -r user sys rss <"$t"
	jq -r --arg n "$name" --arg u "$user" --arg s "$sys" --arg rss "$rss" --arg anon "$anon" --arg file "$file" --arg secs "$SECS" \
		'"RESULT tool=\($n) rps=\(.overall.rps | floor) core_share=\((($u | tonumber) + ($s | tonumber)) / ($secs | tonumber) * 1000 | round / 1000) max_rss_mib=\(($rss | tonumber) / 1024 | round) anon_rss_mib=\(($anon | tonumber) / 1024 | round) file_rss_mib=\(($file | tonumber) / 1024 | round)"' "$WORK/$name.json"
}

if [[ " $PHASES " == *" users "* ]]; then
	echo "# users: 1,000 closed-model users, 0.5-1.5 s think time, spawned at 500/s" >&2
	start_target
	# lab load: the generator inside the lab binary.
	users_run lab-1000users "$LAB" load --quiet --target "$URL" --scenario "$WORK/get.yaml" --users 1000 \
		--spawn-rate 500 --think 500ms-1.5s --duration "$DURATION" --max-requests 100000000 --json "$WORK/lab-1000users.json"
	# The same generator (package load) in a bare Go program, as the anchor
	# (16 MB) was measured.
	users_run load-bare-1000users sh -c "exec \"\$0\" -gen '$URL' -users 1000 -think-min 500ms -think-max 1.5s -duration '$DURATION' >'$WORK/load-bare-1000users.json'" "$WORK/benchtarget"
	# The lab binary's resident memory before any load: its libraries' pages.
	/usr/bin/time -f "%M" -o "$WORK/time-baseline" "$LAB" load --help >/dev/null
	echo "RESULT tool=lab-idle max_rss_mib=$(($(cat "$WORK/time-baseline") / 1024))"
fi
