#!/usr/bin/env bash
# deps.sh installs what the test suite needs beyond Go, idempotently:
#   - Debian's python3-websockets, for the Python interop client
#     (wsconn/testdata/interop/python, run with /usr/bin/python3);
#   - Debian's chromium, for the browser interop test;
#   - Node's ws and playwright-core, from the committed lockfile, for the
#     Node and browser interop clients (wsconn/testdata/interop/node);
#   - staticcheck, at a pinned version.
# It reaches only Debian's archive, the npm registry and the Go module proxy.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
staticcheck_version="v0.8.2"

say() { printf 'deps.sh: %s\n' "$*"; }

# as_root runs a command as root: directly when we are root, else with sudo.
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	else
		sudo "$@"
	fi
}

# Debian packages: websockets for Debian's python3 (not a pyenv or
# virtualenv python that may come first on PATH), and chromium for the
# browser interop test (driven by playwright-core, which downloads no
# browser of its own).
missing=()
for pkg in python3-websockets chromium; do
	status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
	if [ "$status" = "install ok installed" ]; then
		say "$pkg already installed ($(dpkg-query -W -f='${Version}' "$pkg"))"
	else
		missing+=("$pkg")
	fi
done
if [ "${#missing[@]}" -gt 0 ]; then
	say "installing ${missing[*]} with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	# Two test runs at once (a flakiness check) must not fail on each
	# other's apt lock: apt-get update does not wait for it, so take ours.
	as_root flock /tmp/wsgate-deps-apt.lock env DEBIAN_FRONTEND=noninteractive apt-get update -q
	as_root flock /tmp/wsgate-deps-apt.lock env DEBIAN_FRONTEND=noninteractive \
		apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}"
fi
/usr/bin/python3 -c 'import websockets; print("deps.sh: python websockets", websockets.__version__)'

# Node: ws, exactly as package-lock.json pins it. npm ci removes and
# reinstalls node_modules, so skip it when every locked package is already
# installed at its locked version.
node_dir="$root/wsconn/testdata/interop/node"
command -v node >/dev/null || { say "node not found on PATH"; exit 1; }
command -v npm >/dev/null || { say "npm not found on PATH"; exit 1; }
installed_matches_lock='
const locked = require("./package-lock.json").packages;
for (const [dir, pkg] of Object.entries(locked)) {
	if (dir !== "" && require("./" + dir + "/package.json").version !== pkg.version) process.exit(1);
}'
if (cd "$node_dir" && node -e "$installed_matches_lock" 2>/dev/null); then
	say "node_modules in $node_dir is up to date"
else
	say "npm ci in $node_dir"
	(cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
(cd "$node_dir" && node -e 'console.log("deps.sh: node", process.version, "ws", require("ws/package.json").version)')

# staticcheck, pinned, in $(go env GOPATH)/bin where scripts/lint.sh runs it
# (GOBIN is overridden so that a GOBIN set elsewhere does not move it).
command -v go >/dev/null || { say "go not found on PATH"; exit 1; }
gobin="$(go env GOPATH)/bin"
have="$("$gobin/staticcheck" -version 2>/dev/null || true)" # "staticcheck 2026.2.2 (0.8.2)"
if [[ "$have" == *"(${staticcheck_version#v})"* ]]; then
	say "staticcheck $staticcheck_version already installed in $gobin"
else
	say "go install honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"
	GOBIN="$gobin" go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"
fi
"$gobin/staticcheck" -version
case ":$PATH:" in
*":$gobin:"*) ;;
*) say "note: $gobin is not on PATH; run staticcheck as $gobin/staticcheck" ;;
esac
say "done"
