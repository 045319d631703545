#!/usr/bin/env bash
# tune-linux_test.sh: tests scripts/tune-linux.sh against a fake /proc/sys
# and /etc in a temporary directory: dry-run changes nothing, --apply writes
# the values and both files, a second run finds nothing to change, values
# already higher are kept, and a missing conntrack module is skipped. It
# never writes to the live system. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

script=scripts/tune-linux.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# fake_key writes a key's value into the fake /proc/sys.
fake_key() {
	local path=$tmp/proc/sys/${1//.//}
	mkdir -p "$(dirname "$path")"
	printf '%s\n' "$2" >"$path"
}

# value prints a key of the fake /proc/sys with fields separated by spaces.
value() {
	local fields
	read -r -a fields <"$tmp/proc/sys/${1//.//}"
	echo "${fields[*]}"
}

expect_value() {
	local got
	got=$(value "$1")
	[[ $got == "$2" ]] || fail "$1: got '$got', want '$2'"
}

# run runs the script on the fake tree, output in $tmp/out.
run() {
	WSGATE_SYSCTL_ROOT=$tmp/proc/sys WSGATE_ETC_ROOT=$tmp/etc WSGATE_MEMINFO=$tmp/meminfo \
		"$script" "$@" >"$tmp/out" 2>&1 || {
		cat "$tmp/out" >&2
		fail "$script $* exited $?"
	}
}

expect_out() {
	grep -qF -- "$1" "$tmp/out" || {
		cat "$tmp/out" >&2
		fail "output lacks '$1'"
	}
}

# snapshot prints every file of the fake tree with its content.
snapshot() {
	find "$tmp/proc" "$tmp/etc" -type f 2>/dev/null | sort | while read -r f; do
		printf '%s: %s\n' "${f#"$tmp"}" "$(cat "$f")"
	done
}

# A host as a distribution kernel leaves it (tabs as in /proc), 16 GiB of
# RAM, file-max already higher than the script's target, no conntrack.
mkdir -p "$tmp/etc"
printf 'MemTotal:       16777216 kB\nMemFree:        8000000 kB\n' >"$tmp/meminfo"
fake_key fs.file-max 9223372036854775807
fake_key fs.nr_open 1048576
fake_key net.ipv4.ip_local_port_range $'32768\t60999'
fake_key net.core.somaxconn 4096
fake_key net.ipv4.tcp_max_syn_backlog 2048
fake_key net.core.netdev_max_backlog 1000
fake_key net.ipv4.tcp_mem $'100\t200\t300'
fake_key net.ipv4.tcp_rmem $'4096\t131072\t6291456'
fake_key net.ipv4.tcp_wmem $'4096\t16384\t4194304'
fake_key net.ipv4.tcp_tw_reuse 2
fake_key vm.max_map_count 65530
# tcp_mem target for 16 GiB in pages of this machine's size.
pages=$((16777216 / ($(getconf PAGESIZE) / 1024)))
want_tcp_mem="$((pages / 16)) $((pages / 8)) $((pages / 4))"

echo "== --help and bad arguments"
"$script" --help | grep -q -- --small-buffers || fail "--help does not describe --small-buffers"
rc=0
"$script" --bogus >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "unknown argument: got exit $rc, want 2"

echo "== dry run changes nothing"
before=$(snapshot)
run
run --dry-run
expect_out "fs.nr_open"
expect_out "change"
expect_out "skip: not on this host" # nf_conntrack_max
[[ $(snapshot) == "$before" ]] || fail "dry run changed the fake tree"
[[ ! -e $tmp/etc/sysctl.d/60-wsgate.conf ]] || fail "dry run wrote the sysctl.d file"

echo "== apply"
run --apply
expect_value fs.file-max 9223372036854775807 # never lowered
expect_value fs.nr_open 1100000
expect_value net.ipv4.ip_local_port_range "1024 65535"
expect_value net.core.somaxconn 65535
expect_value net.ipv4.tcp_max_syn_backlog 65535
expect_value net.core.netdev_max_backlog 65536
expect_value net.ipv4.tcp_mem "$want_tcp_mem"
expect_value net.ipv4.tcp_rmem "4096 131072 6291456" # not without --small-buffers
expect_value net.ipv4.tcp_tw_reuse 1
expect_value vm.max_map_count 262144
[[ ! -e $tmp/proc/sys/net/netfilter/nf_conntrack_max ]] || fail "created nf_conntrack_max"

conf=$tmp/etc/sysctl.d/60-wsgate.conf
limits=$tmp/etc/security/limits.d/60-wsgate.conf
[[ -f $conf ]] || fail "no $conf"
[[ -f $limits ]] || fail "no $limits"
for line in "fs.nr_open = 1100000" "net.ipv4.ip_local_port_range = 1024 65535" \
	"net.core.somaxconn = 65535" "net.ipv4.tcp_tw_reuse = 1" "fs.file-max = 9223372036854775807"; do
	grep -qxF "$line" "$conf" || fail "$conf lacks '$line'"
done
! grep -q 'tcp_rmem\|nf_conntrack' "$conf" || fail "$conf has keys it should not: $(cat "$conf")"
nofile=$(awk '$1 == "*" && $2 == "hard" && $3 == "nofile" { print $4 }' "$limits")
[[ ${nofile:-0} -ge 1048576 ]] || fail "$limits: got hard nofile '${nofile:-}', want >= 1048576"
grep -qE '^root +soft +nofile ' "$limits" || fail "$limits has no root line"
[[ $(stat -c %a "$conf") == 644 ]] || fail "$conf mode is $(stat -c %a "$conf"), want 644"

echo "== second run: nothing to change"
after=$(snapshot)
run
expect_out "nothing to change"
run --apply
expect_out "nothing to change"
[[ $(snapshot) == "$after" ]] || fail "second --apply changed the fake tree"

echo "== --small-buffers lowers the default only, and stays idempotent"
run --dry-run --small-buffers
expect_out "4096 16384 6291456"
[[ $(snapshot) == "$after" ]] || fail "dry run with --small-buffers changed the fake tree"
run --apply --small-buffers
expect_value net.ipv4.tcp_rmem "4096 16384 6291456"
expect_value net.ipv4.tcp_wmem "4096 16384 4194304"
grep -qxF "net.ipv4.tcp_rmem = 4096 16384 6291456" "$conf" || fail "$conf lacks tcp_rmem"
run --apply --small-buffers
expect_out "nothing to change"
run --apply # without the flag: keeps what a --small-buffers run wrote
expect_out "nothing to change"
grep -qxF "net.ipv4.tcp_rmem = 4096 16384 6291456" "$conf" || fail "a run without --small-buffers dropped tcp_rmem"

echo "== conntrack loaded: raised and written"
fake_key net.netfilter.nf_conntrack_max 262144
run --apply
expect_value net.netfilter.nf_conntrack_max 2097152
grep -qxF "net.netfilter.nf_conntrack_max = 2097152" "$conf" || fail "$conf lacks nf_conntrack_max"
run
expect_out "nothing to change"

echo "== a value higher than the target is kept"
fake_key net.core.somaxconn 100000
run --apply
expect_value net.core.somaxconn 100000
grep -qxF "net.core.somaxconn = 100000" "$conf" || fail "$conf does not keep the higher somaxconn"
run
expect_out "nothing to change"

# The checks below touch the live system only by reading it. They run as
# an unprivileged user where possible, so that even a broken guard could
# not write anything.
as_user=()
if [[ $EUID -eq 0 ]]; then
	if command -v setpriv >/dev/null; then
		as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	else
		echo "== skipping live-system checks: root without setpriv"
		echo "PASS"
		exit 0
	fi
fi
user_script=$tmp/user/tune-linux.sh
mkdir -p "$tmp/user"
cp "$script" "$user_script"
chmod 0755 "$tmp" "$tmp/user" "$user_script"

echo "== half-fake roots are refused for --apply"
rc=0
WSGATE_SYSCTL_ROOT=$tmp/proc/sys "${as_user[@]}" "$user_script" --apply >"$tmp/out" 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "fake /proc/sys with real /etc: got exit $rc, want 2"

echo "== dry run of this host, without root"
"${as_user[@]}" "$user_script" --dry-run >"$tmp/out" 2>&1 || {
	cat "$tmp/out" >&2
	fail "dry run of the live system failed"
}
expect_out "fs.file-max"

echo "PASS"
