#!/usr/bin/env bash
# test.sh: the whole test suite, exactly as CI runs it (.ci/run calls this).
# Installs what the tests need (scripts/deps.sh), then lints, runs every
# test with the race detector in random order, and smoke-fuzzes.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
scripts/lint.sh

echo "== go test -race -shuffle=on ./..."
go test -race -shuffle=on -count=1 -timeout 10m ./...

scripts/fuzz-smoke.sh

echo "== every benchmark once (they must keep running; figures come from longer runs)"
go test -run '^$' -bench . -benchtime 1x -timeout 5m ./...

echo "== scaled-down million-connection load test (40,000 connections, 3 workers)"
N=40000 HOLD=5s ROUNDS=3 PUB_RATE=0.5 OUT="$(mktemp -d)" scripts/loadtest-1m.sh

echo "== scripts/tune-linux_test.sh"
scripts/tune-linux_test.sh
shot="${WSGATE_ARTIFACTS:-test-artifacts}/chat.png"
if [ -s "$shot" ]; then
	echo "== test artifact: the chat demo in Chromium, $(cd "$(dirname "$shot")" && pwd)/chat.png"
fi
echo "== all tests passed"
