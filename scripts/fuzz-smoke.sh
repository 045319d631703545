#!/usr/bin/env bash
# fuzz-smoke.sh: runs every native fuzz target for a short while (default
# 10s each; FUZZTIME=1m for longer). Their seed corpora already ran as
# ordinary tests in `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-10s}"

for pkg in $(go list ./...); do
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "== $pkg $target ($FUZZTIME)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
	done
done
