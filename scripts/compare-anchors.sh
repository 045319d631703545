#!/usr/bin/env bash
# compare-anchors.sh: wsgate against the reference servers, side by side, in
# one run: server CPU per echoed message and echo throughput and tail
# latency at C=100 and C=1000 (64-byte messages, closed loop), memory per
# idle connection at IDLE_N, and the rate at which one server process
# accepts and upgrades CONNECT_N connections offered as fast as the load
# generator can. One fresh server per measurement, ROUNDS interleaved
# rounds; prints one line per measurement with the CPU the machine's other
# processes used meanwhile (the machine is shared), a table of the best
# round of each server (lowest CPU and latency, lowest memory, highest
# rates), and the same as ratios to uWebSockets.
#
#   scripts/compare-anchors.sh [server ...]   (default: wsgate uws gws nbio gorilla)
#
# Servers: wsgate (built from this tree), and those in ANCHORS
# (default ../shared/anchors: uws, gws, nbio, gorilla, gobwas-naive).
# wsgate runs with the limits a benchmark would trip turned off
# (-max-msg-rate -1 -max-byte-rate -1 -max-conns-per-ip -1, and for the
# connect rate -accept-rate -1: its default admits 10,000 a second) and no
# admin listener. Environment: ROUNDS=2 IDLE_N=15000 CONNECT_N=15000
# DURATION=10s SRC=127.0.0.2-127.0.0.5 PORT=18180 OUT=(temporary).
set -euo pipefail
cd "$(dirname "$0")/.."

ANCHORS="${ANCHORS:-$(cd .. && pwd)/shared/anchors}"
ROUNDS="${ROUNDS:-2}" IDLE_N="${IDLE_N:-15000}" CONNECT_N="${CONNECT_N:-15000}" DURATION="${DURATION:-10s}"
SRC="${SRC:-127.0.0.2-127.0.0.5}" PORT="${PORT:-18180}"
OUT="${OUT:-$(mktemp -d)}"
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(wsgate uws gws nbio gorilla)

bin="$(mktemp -d)"
pid=""
cleanup() {
	local status=$?
	[ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
	rm -rf "$bin"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== build"
go build -o "$bin/wsgate" .
(cd bench && go build -o "$bin/bench" .)
for s in "${servers[@]}"; do
	case "$s" in
	wsgate) ;;
	uws) [ -x "$ANCHORS/uws" ] || { echo "compare: no $ANCHORS/uws" >&2; exit 2; } ;;
	gws|nbio|gorilla|gobwas-naive) (cd "$ANCHORS" && go build -o "$bin/$s" "./servers/$s") ;;
	*) echo "compare: unknown server '$s'" >&2; exit 2 ;;
	esac
done
mkdir -p "$OUT"
ulimit -n 20000

# start runs server $1 on PORT and waits until it listens.
start() {
	case "$1" in
	wsgate) "$bin/wsgate" -addr "127.0.0.1:$PORT" -admin off -log-level warn \
		-max-msg-rate -1 -max-byte-rate -1 -max-conns-per-ip -1 ${2:+-accept-rate -1} & ;;
	uws) "$ANCHORS/uws" "$PORT" >/dev/null 2>&1 & ;;
	*) "$bin/$1" -addr "127.0.0.1:$PORT" >/dev/null 2>&1 & ;;
	esac
	pid=$!
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "compare: $1 does not listen on port $PORT" >&2
	exit 1
}

stop() {
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=""
}

path() { if [ "$1" = wsgate ]; then echo /echo; else echo /ws; fi; }

# busy is the machine's busy CPU time so far, in clock ticks.
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
# srvcpu is the server's CPU time so far, in clock ticks.
srvcpu() { awk '{print $14+$15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK) ncpu=$(nproc)

# measure runs bench with the arguments given, into $out, and sets other
# to the percentage of the machine the other processes used meanwhile:
# all busy CPU less the server's and bench's own.
measure() {
	local b0 s0 t0 b1 s1 t1 benchcpu
	b0=$(busy) s0=$(srvcpu) t0=$(date +%s.%N)
	benchcpu=$( { TIMEFORMAT=%U+%S; time "$bin/bench" "$@" 2>/dev/null >"$out"; } 2>&1 )
	b1=$(busy) s1=$(srvcpu) t1=$(date +%s.%N)
	other=$(awk -v b=$((b1 - b0)) -v s=$((s1 - s0)) -v c="$benchcpu" -v hz="$hz" -v n="$ncpu" -v t0="$t0" -v t1="$t1" \
		'BEGIN { split(c, p, "+"); o = (b - s) / hz - p[1] - p[2]; if (o < 0) o = 0; printf "%.0f", 100 * o / ((t1 - t0) * n) }')
}

for round in $(seq "$ROUNDS"); do
	for s in "${servers[@]}"; do
		for c in 100 1000; do
			start "$s"
			out="$OUT/$s-echo$c-$round.json"
			measure echo -url "ws://127.0.0.1:$PORT$(path "$s")" -n "$c" -duration "$DURATION" -size 64 -pid "$pid" -label "$s"
			stop
			jq -r --arg s "$s" --arg r "$round" --arg o "$other" '"round \($r) \($s) echo C=\(.echo.conns): \(.echo.server_cpu_us_per_msg*10|round/10) µs/msg, \(.echo.msgs_per_s|round) msg/s, p99 \(.echo.rtt_ms.p99) ms, p99.9 \(.echo.rtt_ms.p99_9) ms; others used \($o)% of the machine"' "$out"
		done
		start "$s"
		out="$OUT/$s-idle-$round.json"
		measure idle -url "ws://127.0.0.1:$PORT/ws" -n "$IDLE_N" -rate 4000 -hold 5s -src "$SRC" -pid "$pid" -label "$s"
		stop
		jq -r --arg s "$s" --arg r "$round" --arg o "$other" '"round \($r) \($s) idle: \(.open_conns) open, \(.server.kib_per_conn*100|round/100) KiB/conn; others used \($o)%"' "$out"
		start "$s" nolimit
		out="$OUT/$s-connect-$round.json"
		measure idle -url "ws://127.0.0.1:$PORT$(path "$s")" -n "$CONNECT_N" -rate 100000 -hold 1s -src "$SRC" -pid "$pid" -label "$s"
		stop
		jq -r --arg s "$s" --arg r "$round" --arg o "$other" '"round \($r) \($s) connect: \(.open_conns) of \(.target_conns) open, \(.connect_rate_per_s|round)/s; others used \($o)%"' "$out"
	done
done

echo
best() { jq -s "$1" "$OUT"/$2-$3-*.json; }
{
echo "| server | CPU µs/msg C=100 | C=1000 | p99 ms C=1000 | p99.9 ms C=1000 | msg/s C=100 | idle KiB/conn at $IDLE_N | connects/s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for s in "${servers[@]}"; do
	echo "| $s | $(best 'map(.echo.server_cpu_us_per_msg)|min*10|round/10' "$s" echo100) |" \
		"$(best 'map(.echo.server_cpu_us_per_msg)|min*10|round/10' "$s" echo1000) |" \
		"$(best 'map(.echo.rtt_ms.p99)|min' "$s" echo1000) | $(best 'map(.echo.rtt_ms.p99_9)|min' "$s" echo1000) |" \
		"$(best 'map(.echo.msgs_per_s)|max|round' "$s" echo100) |" \
		"$(best 'map(select(.open_conns > 0)|.server.kib_per_conn)|min*100|round/100' "$s" idle) |" \
		"$(best 'map(.connect_rate_per_s)|max|round' "$s" connect) |"
done
if [ -f "$OUT/uws-echo100-1.json" ]; then
	echo
	echo "Ratios to uWebSockets (above 1: uWebSockets does better, except connects/s):"
	echo
	echo "| server | CPU C=100 | CPU C=1000 | p99 C=1000 | idle memory | connects/s |"
	echo "|---|---:|---:|---:|---:|---:|"
	ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
	for s in "${servers[@]}"; do
		echo "| $s | $(ratio "$(best 'map(.echo.server_cpu_us_per_msg)|min' "$s" echo100)" "$(best 'map(.echo.server_cpu_us_per_msg)|min' uws echo100)") |" \
			"$(ratio "$(best 'map(.echo.server_cpu_us_per_msg)|min' "$s" echo1000)" "$(best 'map(.echo.server_cpu_us_per_msg)|min' uws echo1000)") |" \
			"$(ratio "$(best 'map(.echo.rtt_ms.p99)|min' "$s" echo1000)" "$(best 'map(.echo.rtt_ms.p99)|min' uws echo1000)") |" \
			"$(ratio "$(best 'map(select(.open_conns > 0)|.server.kib_per_conn)|min' "$s" idle)" "$(best 'map(select(.open_conns > 0)|.server.kib_per_conn)|min' uws idle)") |" \
			"$(ratio "$(best 'map(.connect_rate_per_s)|max' "$s" connect)" "$(best 'map(.connect_rate_per_s)|max' uws connect)") |"
	done
fi
} | tee "$OUT/table.md"
echo "results: $OUT"
