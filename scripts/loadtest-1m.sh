#!/usr/bin/env bash
# loadtest-1m.sh: a million concurrent WebSocket connections on one machine.
#
# wsgate runs as a supervisor of enough worker processes for N connections
# (each under the per-process descriptor limit) sharing one port, joined by
# its embedded NATS; the bench tool runs as many processes, dialing from many
# loopback source addresses at a controlled rate. After the ramp every
# connection is held for HOLD, then ROUNDS messages are published to a
# channel every connection subscribed to, one every 40 s (PUB_RATE=0.025)
# so that each fan-out to a million is measured on its own, not queued
# behind the previous one: each must reach each connection exactly once. Everything stops cleanly at the end, and every process this
# script started is stopped on failure or Ctrl-C too.
#
# It checks first that the machine can take it (memory, descriptors, ports)
# and says what is missing instead of thrashing.
#
# Both sides' logs stay in OUT (wsgate.log, bench.log), with every server
# worker's /metrics scraped before it stops (metrics/worker-<i>.txt). A
# connection that ended during the run fails it, and the summary says which
# side ended it and why: the bench's count of how each ended (the server's
# close status, or a drop without one) beside the server's close counters.
#
# Environment: N=1000000 HOLD=60s ROUNDS=5 PUB_RATE=0.025 RATE=6000
#   SRC=127.0.1.1-127.0.1.60 PORT=18500 ADMIN_PORT=18600
#   OUT=bench/results/1m-<date>
#   CHECK_ONLY=1 (preflight only)
set -euo pipefail
cd "$(dirname "$0")/.."

N="${N:-1000000}"
HOLD="${HOLD:-60s}"
ROUNDS="${ROUNDS:-5}"
PUB_RATE="${PUB_RATE:-0.025}"
RATE="${RATE:-6000}"
SRC="${SRC:-127.0.1.1-127.0.1.60}"
PORT="${PORT:-18500}"
ADMIN_PORT="${ADMIN_PORT:-18600}" # worker i serves its metrics on ADMIN_PORT+1+i
OUT="${OUT:-bench/results/1m-$(date -u +%Y%m%d-%H%M%S)}"

say() { printf '%s loadtest-1m: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { say "$*"; exit 1; }

# --- preflight -------------------------------------------------------------
nofile=$(ulimit -n)
per_proc=$((nofile - 200))
[ "$per_proc" -ge 1000 ] || die "open-files limit is $nofile per process; need at least 1200 (ulimit -n, or scripts/tune-linux.sh --apply)"
procs=$(((N + per_proc - 1) / per_proc))                # bench processes
workers=$(((N * 11 / 10 + nofile - 129) / (nofile - 128))) # wsgate -workers auto: 10% slack for uneven spreading
[ $((ADMIN_PORT + workers + 1)) -le 65535 ] || die "ADMIN_PORT=$ADMIN_PORT: $workers workers need ports up to $((ADMIN_PORT + workers + 1))"
# wsgate listens with SO_REUSEPORT: a second run on the same port would
# share it silently, each server getting half of the other's connections.
for p in "$PORT" $(seq $((ADMIN_PORT + 1)) $((ADMIN_PORT + workers))); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		die "port $p is in use (another run?): set PORT and ADMIN_PORT"
	fi
done
read -r port_lo port_hi </proc/sys/net/ipv4/ip_local_port_range
ports_per_src=$((port_hi - port_lo + 1))
src_lo=${SRC%-*}
src_hi=${SRC#*-}
n_src=$(( ${src_hi##*.} - ${src_lo##*.} + 1 ))
[ "$n_src" -ge 1 ] || die "SRC=$SRC: want a range like 127.0.1.1-127.0.1.60 (last octet varies)"
[ $((n_src * ports_per_src)) -ge "$N" ] ||
	die "$n_src source addresses x $ports_per_src local ports = $((n_src * ports_per_src)) < $N connections: widen SRC or net.ipv4.ip_local_port_range"
file_max=$(cat /proc/sys/fs/file-max)
[ "$file_max" -ge $((2 * N + 10000)) ] || die "fs.file-max is $file_max; both ends need $((2 * N)) descriptors (scripts/tune-linux.sh --apply)"
avail_kib=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
# Per connection: two sockets in the kernel (~5 KiB each, measured here),
# ~0.5 KiB in a server worker, ~1 KiB in a bench process; ~20 MiB a process.
need_kib=$((N * 12 + (procs + workers) * 20 * 1024 + 512 * 1024))
[ "$avail_kib" -ge "$need_kib" ] ||
	die "MemAvailable is $((avail_kib / 1024)) MiB; $N connections need about $((need_kib / 1024)) MiB (lower N)"
# TCP memory: during a broadcast every connection holds a message in one
# socket or the other until the bench reads it, and past the pressure
# threshold of net.ipv4.tcp_mem the kernel shrinks windows and stalls
# writes for everyone: deliveries then take minutes, pongs come late, and
# the server's heartbeat rightly drops the connections whose pongs are
# later than -pong-timeout. Measured here (sockstat's TCP mem at its peak
# in a broadcast): 2.24 KiB per connection for a million, 2.04 for 100,000;
# a quarter more for slack.
TCP_PEAK_BYTES="${TCP_PEAK_BYTES:-2300}"
read -r _ tcp_pressure _ </proc/sys/net/ipv4/tcp_mem
page_kib=$(($(getconf PAGESIZE) / 1024))
tcp_need_pages=$((N * TCP_PEAK_BYTES * 5 / 4 / (page_kib * 1024)))
[ "$tcp_pressure" -ge "$tcp_need_pages" ] ||
	die "net.ipv4.tcp_mem's pressure threshold is $tcp_pressure pages ($((tcp_pressure * page_kib / 1024)) MiB); a broadcast to $N connections needs about $tcp_need_pages ($((tcp_need_pages * page_kib / 1024)) MiB): scripts/tune-linux.sh --apply, or sysctl -w net.ipv4.tcp_mem=..."
say "preflight ok: $N connections, $workers server workers + $procs bench processes ($per_proc each), $n_src source addresses, need ~$((need_kib / 1024)) MiB of $((avail_kib / 1024)) MiB available"
[ "${CHECK_ONLY:-}" = 1 ] && exit 0

# --- run -------------------------------------------------------------------
bin="$(mktemp -d)"
gate_pid=""
bench_pid=""
cleanup() {
	local status=$?
	if [ -n "$bench_pid" ]; then
		kill -INT "$bench_pid" 2>/dev/null || true # it stops its workers
		for _ in $(seq 100); do kill -0 "$bench_pid" 2>/dev/null || break; sleep 0.1; done
	fi
	if [ -n "$gate_pid" ] && kill -0 "$gate_pid" 2>/dev/null; then
		kill -TERM "$gate_pid" 2>/dev/null || true
		for _ in $(seq 300); do kill -0 "$gate_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$gate_pid" 2>/dev/null || true
	fi
	pkill -KILL -f "$bin/" 2>/dev/null || true # anything left of ours
	rm -rf "$bin"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "building"
go build -o "$bin/wsgate" .
go -C bench build -o "$bin/bench" . # its own module; $bin is absolute
mkdir -p "$OUT"

# Two cores run ~110 processes here, so the server is told what such a box
# needs: heartbeats every 5 minutes instead of 30 s (a million pings a
# minute would take a core), and 30 s for a handshake at the peak of the ramp.
say "starting wsgate: $workers workers for $N connections"
"$bin/wsgate" -addr "127.0.0.1:$PORT" -admin "127.0.0.1:$ADMIN_PORT" -workers auto -max-conns "$N" -log-level warn \
	-ping-interval 5m -pong-timeout 60s -handshake-timeout 30s -shutdown-timeout 60s 2>"$OUT/wsgate.log" &
gate_pid=$!
for _ in $(seq 300); do
	(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
	kill -0 "$gate_pid" 2>/dev/null || die "wsgate exited at start: $(tail -3 "$OUT/wsgate.log")"
	sleep 0.1
done
sleep 1 # the last workers

say "bench: ramp at $RATE/s, hold $HOLD, $ROUNDS broadcast rounds"
"$bin/bench" broadcast -url "ws://127.0.0.1:$PORT/ws" -n "$N" -rate "$RATE" -src "$SRC" \
	-hold "$HOLD" -messages "$ROUNDS" -pub-rate "$PUB_RATE" -drain 300s -timeout 60s \
	-label "wsgate-$N" -out "$OUT" >/dev/null 2> >(tee "$OUT/bench.log" >&2) &
bench_pid=$!
# The kernel's side, sampled while the bench runs: TCP memory in pages
# (its peak) and the time spent under TCP memory pressure.
pressure_ms() { awk '/^TcpExt:/ { if (!n) { for (i = 1; i <= NF; i++) if ($i == "TCPMemoryPressuresChrono") c = i; n = 1 } else print $c }' /proc/net/netstat; }
pressure_before=$(pressure_ms)
( while kill -0 "$bench_pid" 2>/dev/null; do
	awk '/^TCP:/ { for (i = 1; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat
	sleep 2
done | sort -n | tail -1 >"$OUT/tcp-mem-peak-pages" ) &
sampler_pid=$!
wait "$bench_pid" # in the background, so that Ctrl-C is handled at once
bench_pid=""
wait "$sampler_pid" || true
pressure_after=$(pressure_ms)
echo "tcp_mem_peak_pages=$(cat "$OUT/tcp-mem-peak-pages") page_kib=$page_kib pressure_threshold_pages=$tcp_pressure" \
	"pressure_ms=$((pressure_after - pressure_before))" >"$OUT/kernel.txt"

say "scraping the workers' metrics"
mkdir -p "$OUT/metrics"
python3 - "$ADMIN_PORT" "$workers" "$OUT/metrics" <<'EOF' || say "some workers' metrics could not be read"
import sys, urllib.request
port, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
failed = 0
for i in range(n):
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port + 1 + i}/metrics", timeout=10).read()
    except OSError as e:
        print(f"worker {i}: {e}", file=sys.stderr)
        failed += 1
        continue
    open(f"{out}/worker-{i}.txt", "wb").write(body)
sys.exit(1 if failed else 0)
EOF

say "stopping wsgate"
kill -TERM "$gate_pid"
wait "$gate_pid" || true
gate_pid=""

# A summary from the JSON and the metrics, without jq.
python3 - "$OUT/wsgate-$N-broadcast.json" "$OUT/metrics" "$OUT/wsgate.log" "$OUT/kernel.txt" <<'EOF'
import glob, json, re, sys
r = json.load(open(sys.argv[1]))
s, b = r["server"], r["broadcast"]
peak = r["peak_open_conns"]
print(f"peak connections held:      {peak:,} of {r['target_conns']:,} (failures: {r['failures'] or 'none'})")
print(f"ramp:                       {r['ramp_seconds']:.0f} s, {r['connect_rate_per_s']:,.0f} conns/s")
print(f"server workers' memory:     {s['after_ramp']['rss_kib']/1024:,.0f} MiB RSS, {s['kib_per_conn']:.2f} KiB per connection")
print(f"kernel memory (both ends):  Slab +{(s['kernel_slab_after_ramp_kib']-s['kernel_slab_before_kib'])/1024:,.0f} MiB, "
      f"{s['kernel_kib_per_conn']:.1f} KiB per connection (two sockets), TCP buffers {s['kernel_tcp_buffers_after_ramp_kib']/1024:,.0f} MiB")
print(f"server CPU during the run:  {s['run_cpu_secs']:.1f} s over {s['run_seconds']:.0f} s; peak threads {s['peak_threads']}")
print(f"broadcast:                  {b['messages']} messages x {b['subscribers']:,} subscribers: "
      f"{b['received']:,}/{b['expected_deliveries']:,} received, missing {b['missing']}, dup {b['duplicates']}, "
      f"out of order {b['out_of_order']}")
l = b["delivery_ms"]
print(f"delivery latency:           p50 {l['p50']:.0f} ms, p99 {l['p99']:.0f} ms, max {l['max']:.0f} ms")

# Who ended what: the bench's view, then the server's.
ends = r.get("ends") or {}
print(f"connections ended early:    {sum(ends.values()):,} by the bench's count "
      f"({', '.join(f'{k} {v}' for k, v in sorted(ends.items())) or 'none'}), "
      f"{b.get('ended_during_broadcast', 0)} of them during the broadcast; {r.get('pings_answered', 0):,} pings answered")
totals, files = {}, glob.glob(sys.argv[2] + "/worker-*.txt")
for f in files:
    for line in open(f):
        m = re.match(r"wsgate_(\w+_total(?:\{[^}]*\})?)\s+([0-9.e+]+)$", line)
        if m:
            totals[m.group(1)] = totals.get(m.group(1), 0) + float(m.group(2))
keys = ["heartbeat_timeouts_total", "heartbeat_late_pongs_total", "heartbeat_waits_restarted_total", "heartbeat_graces_total",
        "slow_consumer_closes_total", "rate_limited_closes_total", "message_timeout_closes_total",
        "too_big_closes_total", "forced_closes_total"]
print(f"server ({len(files)} workers):      " + ", ".join(f"{k.removesuffix('_total')} {totals.get(k, 0):,.0f}" for k in keys))
codes = {k: v for k, v in totals.items() if k.startswith("connections_closed_total{") and v}
# Scraped once the bench is done: its own closes at the end are in these.
print("server close codes (the bench's own at its end included): " + (", ".join(f"{k[len('connections_closed_total'):]} {v:,.0f}"
                                                 for k, v in sorted(codes.items())) or "none"))
warns = [l.strip() for l in open(sys.argv[3]) if "heartbeat" in l or "slow consumer" in l]
for w in warns[:10]:
    print("server log:                 " + w[:200])
k = dict(kv.split("=") for kv in open(sys.argv[4]).read().split())
peak_mib = int(k["tcp_mem_peak_pages"] or 0) * int(k["page_kib"]) / 1024
print(f"kernel TCP memory:          peak {peak_mib:,.0f} MiB ({peak_mib * 1024 / max(peak, 1):.2f} KiB per connection), "
      f"pressure threshold {int(k['pressure_threshold_pages']) * int(k['page_kib']) / 1024:,.0f} MiB, "
      f"{int(k['pressure_ms']) / 1000:,.0f} s under pressure")
problems = []
if int(k["pressure_ms"]):
    problems.append("the kernel was under TCP memory pressure (raise net.ipv4.tcp_mem: scripts/tune-linux.sh --apply)")
if sum(ends.values()):
    problems.append(f"{sum(ends.values())} connections ended before the bench closed them (see above and bench.log)")
if peak < r["target_conns"]:
    problems.append(f"only {peak} of {r['target_conns']} connections opened")
if b["missing"] or b["duplicates"] or b["out_of_order"] or b["incomplete_subscribers"]:
    problems.append("broadcast deliveries were lost, duplicated or reordered")
if problems:
    print("FAILED: " + "; ".join(problems))
    sys.exit(1)
EOF
say "results in $OUT"
