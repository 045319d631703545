#!/usr/bin/env bash
# compare-anchors.sh: wsgate against the reference servers, side by side, in
# one run: server CPU per echoed message and echo throughput and tail
# latency at C=100 and C=1000 (64-byte messages, closed loop), and memory
# per idle connection at IDLE_N. One fresh server per measurement, ROUNDS
# interleaved rounds; prints one line per measurement and a table of the
# best round of each server (lowest CPU, lowest memory).
#
#   scripts/compare-anchors.sh [server ...]   (default: wsgate uws gws gorilla)
#
# Servers: wsgate (built from this tree), and those in ANCHORS
# (default ../shared/anchors: uws, gws, nbio, gorilla, gobwas-naive).
# wsgate runs with the limits a benchmark would trip turned off
# (-max-msg-rate -1 -max-byte-rate -1 -max-conns-per-ip -1) and no admin
# listener. Environment: ROUNDS=2 IDLE_N=15000 DURATION=10s
# SRC=127.0.0.2-127.0.0.5 PORT=18180 OUT=(temporary).
set -euo pipefail
cd "$(dirname "$0")/.."

ANCHORS="${ANCHORS:-$(cd .. && pwd)/shared/anchors}"
ROUNDS="${ROUNDS:-2}" IDLE_N="${IDLE_N:-15000}" DURATION="${DURATION:-10s}"
SRC="${SRC:-127.0.0.2-127.0.0.5}" PORT="${PORT:-18180}"
OUT="${OUT:-$(mktemp -d)}"
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(wsgate uws gws gorilla)

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
		-max-msg-rate -1 -max-byte-rate -1 -max-conns-per-ip -1 & ;;
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

for round in $(seq "$ROUNDS"); do
	for s in "${servers[@]}"; do
		for c in 100 1000; do
			start "$s"
			"$bin/bench" echo -url "ws://127.0.0.1:$PORT$(path "$s")" -n "$c" -duration "$DURATION" \
				-size 64 -pid "$pid" -label "$s" 2>/dev/null >"$OUT/$s-echo$c-$round.json"
			stop
			jq -r --arg s "$s" --arg r "$round" '"round \($r) \($s) echo C=\(.echo.conns): \(.echo.server_cpu_us_per_msg*10|round/10) µs/msg, \(.echo.msgs_per_s|round) msg/s, p99 \(.echo.rtt_ms.p99) ms, p99.9 \(.echo.rtt_ms.p99_9) ms"' \
				"$OUT/$s-echo$c-$round.json"
		done
		start "$s"
		p=/ws
		"$bin/bench" idle -url "ws://127.0.0.1:$PORT$p" -n "$IDLE_N" -rate 4000 -hold 5s -src "$SRC" \
			-pid "$pid" -label "$s" 2>/dev/null >"$OUT/$s-idle-$round.json"
		stop
		jq -r --arg s "$s" --arg r "$round" '"round \($r) \($s) idle: \(.open_conns) open, \(.server.kib_per_conn*100|round/100) KiB/conn"' \
			"$OUT/$s-idle-$round.json"
	done
done

echo
{
echo "| server | CPU µs/msg C=100 | C=1000 | p99 ms C=1000 | msg/s C=100 | idle KiB/conn at $IDLE_N |"
echo "|---|---:|---:|---:|---:|---:|"
for s in "${servers[@]}"; do
	best() { jq -s "$1" "$OUT"/$s-$2-*.json; }
	c100=$(best 'map(.echo.server_cpu_us_per_msg)|min*10|round/10' echo100)
	c1k=$(best 'map(.echo.server_cpu_us_per_msg)|min*10|round/10' echo1000)
	p99=$(best 'map(.echo.rtt_ms.p99)|min' echo1000)
	mps=$(best 'map(.echo.msgs_per_s)|max|round' echo100)
	kib=$(best 'map(select(.open_conns > 0)|.server.kib_per_conn)|min*100|round/100' idle)
	echo "| $s | $c100 | $c1k | $p99 | $mps | $kib |"
done
} | tee "$OUT/table.md"
echo "results: $OUT"
