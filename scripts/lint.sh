#!/usr/bin/env bash
# lint.sh: formatting, vet, staticcheck and the packages' layer order
# (scripts/layers.sh), failing on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt: these files need formatting:" >&2
	echo "$unformatted" >&2
	exit 1
fi

# Both modules: the server (.) and bench/ (a go.mod of its own).
modules=(. bench)

for mod in "${modules[@]}"; do
	echo "== go vet (module $mod)"
	go -C "$mod" vet ./...
done

STATICCHECK="$(go env GOPATH)/bin/staticcheck"
if [ ! -x "$STATICCHECK" ]; then
	echo "staticcheck is not installed: run scripts/deps.sh" >&2
	exit 1
fi
for mod in "${modules[@]}"; do
	echo "== staticcheck (module $mod)"
	(cd "$mod" && "$STATICCHECK" ./...)
done

echo "== layers"
scripts/layers.sh
