#!/usr/bin/env bash
# fuzz-smoke.sh: runs every native fuzz target briefly, by a count of
# executions (FUZZCOUNT, default 2000 each) rather than by time: a
# time-based run can end in "context deadline exceeded" with no reproducer
# when the machine is loaded, and a count is the same amount of fuzzing on
# any machine. FUZZTIME=10m (a duration) fuzzes each target that long
# instead. Every target runs even if one fails; the failures are listed at
# the end and the exit status is 1 if there were any. Their seed corpora
# already ran as ordinary tests in `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${FUZZTIME:-}" ]; then
	fuzztime="$FUZZTIME"
else
	fuzztime="${FUZZCOUNT:-2000}x"
fi

failed=()
ran=0
# Both modules (the server's and bench/'s); in each, only the packages with
# a fuzz target in a test file are asked for the list (which builds them).
for mod in . bench; do
	pkgs=$(go -C "$mod" list -f '{{.ImportPath}} {{.Dir}}' ./...)
	while read -r pkg dir <&3; do
		grep -qs '^func Fuzz' "$dir"/*_test.go || continue
		for target in $(go -C "$mod" test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
			ran=$((ran + 1))
			echo "== $pkg $target ($fuzztime)"
			start=$SECONDS
			if ! go -C "$mod" test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"; then
				failed+=("$pkg $target")
			fi
			echo "   $((SECONDS - start)) s"
		done
	done 3<<<"$pkgs"
done

if [ "${#failed[@]}" -gt 0 ]; then
	echo "== fuzz smoke: ${#failed[@]} of $ran targets failed:"
	printf '   %s\n' "${failed[@]}"
	echo "   (a failing input is saved under the package's testdata/fuzz/; go test -run NAME/HASH reruns it)"
	exit 1
fi
echo "== fuzz smoke: all $ran targets passed"
