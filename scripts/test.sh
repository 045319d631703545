#!/usr/bin/env bash
# test.sh: the whole test suite, exactly as CI runs it (.ci/run calls this).
# Installs what the tests need (scripts/deps.sh), then lints, runs every
# test of both modules (the server's and bench/'s) with the race detector
# in random order, and smoke-fuzzes.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
scripts/lint.sh

# Two modules: the server (.) and the load generator (bench/, its own
# go.mod so that the server's lists none of its dependencies). No go.work:
# each is tested as it builds on its own.
modules=(. bench)

for mod in "${modules[@]}"; do
	echo "== go test -race -shuffle=on ./... (module $mod)"
	go -C "$mod" test -race -shuffle=on -count=1 -timeout 10m ./...
done

scripts/fuzz-smoke.sh

for mod in "${modules[@]}"; do
	echo "== every benchmark once, module $mod (they must keep running; figures come from longer runs)"
	go -C "$mod" test -run '^$' -bench . -benchtime 1x -timeout 5m ./...
done

echo "== scaled-down million-connection load test (40,000 connections, 3 workers)"
# Its ports: a free run below the kernel's ephemeral range, so that two
# test runs at once do not share one server.
read -r lt_port lt_admin < <(python3 - <<'EOF'
import random, socket
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for _ in range(200):
    base = random.randrange(20000, lo - 16)
    socks = []
    try:
        for p in range(base, base + 16):
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            socks.append(s)
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base, base + 5)
    break
EOF
) || true # none found: the defaults
N=40000 HOLD=5s ROUNDS=3 PUB_RATE=0.5 PORT="$lt_port" ADMIN_PORT="$lt_admin" OUT="$(mktemp -d)" scripts/loadtest-1m.sh

echo "== scripts/tune-linux_test.sh"
scripts/tune-linux_test.sh
shot="${WSGATE_ARTIFACTS:-test-artifacts}/chat.png"
if [ -s "$shot" ]; then
	echo "== test artifact: the chat demo in Chromium, $(cd "$(dirname "$shot")" && pwd)/chat.png"
fi
echo "== all tests passed"
