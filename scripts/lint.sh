#!/usr/bin/env bash
# lint.sh: formatting, vet and staticcheck, failing on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt: these files need formatting:" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
STATICCHECK="$(go env GOPATH)/bin/staticcheck"
if [ ! -x "$STATICCHECK" ]; then
	echo "staticcheck is not installed: run scripts/deps.sh" >&2
	exit 1
fi
"$STATICCHECK" ./...
