#!/usr/bin/env bash
# layers.sh [DIR]: fails if a package imports one above it, in the tree
# at DIR (default: this repository). Called by lint.sh.
#
# The server's packages, bottom to top (a package may import any package
# on a lower level; on its own level, only the edges in same_level):
#
#   0  prefork, internal/...         leaf helpers
#      client                        the Go client: imports no server package
#   1  poller                        epoll reactor and worker pool
#   2  wsconn                        WebSocket connections on the poller
#   3  handler                       what runs on a connection
#   4  broker, auth, admin           the product's parts (admin -> broker)
#   5  gateway                       assembles the product from them
#   6  main                          the root package, github.com/wsgate/wsgate
#
# bench/ (a module of its own: bench and bench/baseline) is a tool on the
# side, not a level: it may import up to handler, and nothing imports it.
#
# Tests: a package's own test files (package x) are part of it and obey
# its rule. Its external tests (package x_test) may import what x may;
# above that only as the test_up table says, for integration tests that
# drive x from a higher layer. The same table lets bench's tests (package
# main, so never external) run a server with its admin API.
#
# pending lists the violations known today, each with the change that
# removes it: they are printed but do not fail, and a pending entry that
# no longer occurs fails, so that it is deleted once fixed.
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

module=github.com/wsgate/wsgate

declare -A level=(
	[prefork]=0 [internal]=0 [client]=0
	[poller]=1
	[wsconn]=2
	[handler]=3
	[broker]=4 [auth]=4 [admin]=4
	[gateway]=5
	[main]=6
)
# Importer>imported edges allowed within one level.
same_level=" admin>broker "
# bench imports up to this package's level.
bench_up=handler
# "package kind up-to": kind xtest is external tests, test all its tests.
test_up=(
	"wsconn xtest handler" # examples and apps_link_test.go serve handler's Channels
	"bench test admin"     # attack_test.go runs the admin publish API
	"client xtest gateway" # the client against a real wsgate
)
# "importer imported why": tolerated until the named change lands.
pending=()

# group maps an import path inside the module to its row above.
group() {
	local rel="${1#"$module"}"
	rel="${rel#/}"
	case "$rel" in
	"") echo main ;;
	internal | internal/*) echo internal ;;
	bench | bench/*) echo bench ;;
	*) echo "$rel" ;;
	esac
}

# name is how a message names a package: its path below the module.
name() {
	local rel="${1#"$module"}"
	rel="${rel#/}"
	echo "${rel:-main}"
}

# verdict prints why from may not import to (kind: "" for the package,
# test or xtest), or nothing if it may.
verdict() {
	local from="$1" to="$2" kind="$3" lf lt entry p k up ceil
	[ "$from" = "$to" ] && return 0
	if [ "$to" = bench ]; then
		echo "bench is a tool, not a layer"
		return 0
	fi
	lt="${level[$to]}"
	if [ "$from" = bench ]; then
		ceil="${level[$bench_up]}"
	else
		lf="${level[$from]}"
		((lt < lf)) && return 0
		[[ "$same_level" == *" $from>$to "* ]] && return 0
		ceil=-1
	fi
	if [ -n "$kind" ]; then
		for entry in "${test_up[@]}"; do
			read -r p k up <<<"$entry"
			if [ "$p" = "$from" ] && { [ "$k" = test ] || [ "$k" = "$kind" ]; }; then
				((${level[$up]} > ceil)) && ceil="${level[$up]}"
			fi
		done
	fi
	((lt <= ceil)) && return 0
	if [ "$from" = bench ]; then
		echo "bench may import up to $bench_up"
	elif ((lt == lf)); then
		echo "$to is on $from's level"
	else
		echo "$to is above $from"
	fi
}

# Every package of both modules (bench/ may still be inside the root's).
lines=$(
	for mod in . bench; do
		go -C "$mod" list -f '{{.ImportPath}}|{{join .Imports " "}}|{{join .TestImports " "}}|{{join .XTestImports " "}}' ./...
	done | sort -u
)

declare -A seen=()
status=0
while IFS='|' read -r pkg imports timports ximports; do
	from=$(group "$pkg")
	if [ "$from" != bench ] && [ -z "${level[$from]:-}" ]; then
		echo "layers: $(name "$pkg") is on no level: place it in scripts/layers.sh"
		status=1
		continue
	fi
	for kind in "" test xtest; do
		case "$kind" in
		"") list="$imports" what="imports" ;;
		test) list="$timports" what="'s tests import" ;;
		xtest) list="$ximports" what="'s external tests import" ;;
		esac
		for imp in $list; do
			[[ "$imp" == "$module" || "$imp" == "$module"/* ]] || continue
			to=$(group "$imp")
			if [ "$to" != bench ] && [ -z "${level[$to]:-}" ]; then
				continue # reported as a package of its own
			fi
			why=$(verdict "$from" "$to" "$kind")
			[ -z "$why" ] && continue
			msg="layers: $(name "$pkg")${what/#imports/ imports} $(name "$imp") ($why)"
			known=""
			for entry in "${pending[@]}"; do
				read -r p k rest <<<"$entry"
				if [ "$p" = "$from" ] && [ "$k" = "$to" ]; then
					known="$rest"
					seen["$p $k"]=1
				fi
			done
			if [ -n "$known" ]; then
				echo "$msg [pending: $known]"
			else
				echo "$msg"
				status=1
			fi
		done
	done
done <<<"$lines"

for entry in "${pending[@]}"; do
	read -r p k _ <<<"$entry"
	if [ -z "${seen["$p $k"]:-}" ]; then
		echo "layers: $p no longer imports $k: delete its pending entry in scripts/layers.sh"
		status=1
	fi
done
# main is the command line only: of this module it imports gateway alone.
for imp in $(go list -f '{{join .Imports " "}}' .); do
	if [[ "$imp" == "$module"/* && "$imp" != "$module/gateway" ]]; then
		echo "layers: main imports $(name "$imp") (main calls gateway only; the rest belongs there)"
		status=1
	fi
done
exit "$status"
