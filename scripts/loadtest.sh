#!/usr/bin/env bash
# loadtest.sh: build, start a server, run bench scenarios end to end, and
# leave JSON results and PNG charts in a results folder. Every process it
# starts is stopped when it exits, also on failure or Ctrl-C.
#
#   scripts/loadtest.sh [scenario] [server]
#
#   scenario  idle | echo | broadcast | all (default: all)
#   server    wsgate | baseline | both (default: both: the same scenarios
#             against wsgate and against the goroutine-per-connection
#             gorilla/websocket baseline, then a comparison table)
#
# Sizes (environment): IDLE_N=15000 ECHO_N=1000 BCAST_N=15000 HOLD=20s
# DURATION=10s SIZE=64 MESSAGES=40 PUB_RATE=2 RATE=3000
# SRC=127.0.0.2-127.0.0.33 OUT=bench/results/compare-<date>
set -euo pipefail
cd "$(dirname "$0")/.."

scenario="${1:-all}"
server="${2:-both}"
case "$scenario" in idle|echo|broadcast|all) ;; *) echo "loadtest: unknown scenario '$scenario'" >&2; exit 2 ;; esac
case "$server" in wsgate|baseline|both) ;; *) echo "loadtest: unknown server '$server'" >&2; exit 2 ;; esac

IDLE_N="${IDLE_N:-15000}" ECHO_N="${ECHO_N:-1000}" BCAST_N="${BCAST_N:-15000}"
HOLD="${HOLD:-20s}" DURATION="${DURATION:-10s}" SIZE="${SIZE:-64}"
MESSAGES="${MESSAGES:-40}" PUB_RATE="${PUB_RATE:-2}" RATE="${RATE:-3000}"
SRC="${SRC:-127.0.0.2-127.0.0.33}"
OUT="${OUT:-bench/results/compare-$(date -u +%Y%m%d-%H%M%S)}"
WSGATE_PORT="${WSGATE_PORT:-18080}" BASELINE_PORT="${BASELINE_PORT:-18090}"

bin="$(mktemp -d)"
pids=()
cleanup() {
	local status=$?
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	done
	rm -rf "$bin"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== build"
go build -o "$bin/wsgate" .
# bench is a module of its own (bench/go.mod); -C runs go there, so -o
# is an absolute path.
go -C bench build -o "$bin/" . ./baseline # $bin/bench, $bin/baseline
mkdir -p "$OUT"

# wait_port waits until something listens on 127.0.0.1:$1.
wait_port() {
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "loadtest: nothing listens on port $1" >&2
	return 1
}

# start_server NAME: starts it in the background and prints its pid.
start_server() {
	case "$1" in
	wsgate)
		"$bin/wsgate" -addr "127.0.0.1:$WSGATE_PORT" -log-level warn -max-queue 8M &
		;;
	baseline)
		"$bin/baseline" -addr "127.0.0.1:$BASELINE_PORT" &
		;;
	esac
	pids+=("$!")
	server_pid=$!
}

# wait_bench waits for the bench started last (in the background, so that
# Ctrl-C is handled at once) and fails if it failed.
wait_bench() {
	bench_pid=$!
	pids+=("$bench_pid")
	wait "$bench_pid"
}

port_of() { if [ "$1" = wsgate ]; then echo "$WSGATE_PORT"; else echo "$BASELINE_PORT"; fi; }

run_scenario() { # server scenario
	local name=$1 sc=$2 port
	port=$(port_of "$name")
	start_server "$name"
	wait_port "$port"
	echo "== $name: $sc"
	case "$sc" in
	idle)
		"$bin/bench" idle -url "ws://127.0.0.1:$port/ws" -n "$IDLE_N" -rate "$RATE" -hold "$HOLD" \
			-src "$SRC" -pid "$server_pid" -label "$name" -out "$OUT" >/dev/null &
		;;
	echo)
		"$bin/bench" echo -url "ws://127.0.0.1:$port/echo" -n "$ECHO_N" -rate "$RATE" -duration "$DURATION" \
			-size "$SIZE" -src "$SRC" -pid "$server_pid" -label "$name" -out "$OUT" >/dev/null &
		;;
	broadcast)
		"$bin/bench" broadcast -url "ws://127.0.0.1:$port/ws" -n "$BCAST_N" -rate "$RATE" \
			-messages "$MESSAGES" -pub-rate "$PUB_RATE" -src "$SRC" -pid "$server_pid" -label "$name" -out "$OUT" >/dev/null &
		;;
	esac
	wait_bench
	# A fresh server per scenario: one run's memory does not colour the next.
	kill -TERM "$server_pid"
	wait "$server_pid" 2>/dev/null || true
}

scenarios=(idle echo broadcast)
[ "$scenario" != all ] && scenarios=("$scenario")
servers=(wsgate baseline)
[ "$server" != both ] && servers=("$server")

for sc in "${scenarios[@]}"; do
	for s in "${servers[@]}"; do
		run_scenario "$s" "$sc"
	done
	if [ "${#servers[@]}" = 2 ]; then
		"$bin/bench" report -o "$OUT" -name "compare-$sc" "$OUT/wsgate-$sc.json" "$OUT/baseline-$sc.json"
	fi
done

if [ "${#servers[@]}" = 2 ]; then
	"$bin/bench" table "$OUT"/wsgate-*.json "$OUT"/baseline-*.json | tee "$OUT/table.md"
fi
echo "== results in $OUT"
ls -1 "$OUT"
