#!/usr/bin/env bash
# tune-linux.sh: the kernel settings and limits a Linux host needs to hold a
# million WebSocket connections (wsgate's, or those of a load generator).
#
# By default it only reads: for each setting it prints the current value,
# the value it would set, and whether that is a change. With --apply (as
# root) it sets them now (sysctl -w) and for every boot
# (/etc/sysctl.d/60-wsgate.conf, /etc/security/limits.d/60-wsgate.conf).
# Running it again changes nothing.
#
# It only ever raises a limit, never lowers one that is already higher. The
# exception is the per-socket default buffer sizes (tcp_rmem, tcp_wmem),
# which it lowers only when asked with --small-buffers: see there.
#
# For tests, WSGATE_SYSCTL_ROOT (default /proc/sys) and WSGATE_ETC_ROOT
# (default /etc) point it at a fake tree; with both set, --apply writes
# files there and never calls sysctl(8). WSGATE_MEMINFO (default
# /proc/meminfo) gives the memory size that tcp_mem is derived from.
set -euo pipefail

# The per-process descriptor limit asked for: a million sockets plus room
# for the listener, logs and the odd pipe.
readonly NOFILE_WANT=1048576

usage() {
	cat <<'EOF'
usage: scripts/tune-linux.sh [--dry-run | --apply] [--small-buffers]

Checks (and with --apply, sets) the Linux settings for a million sockets:
fs.file-max, fs.nr_open, the nofile limit, the local port range, accept and
SYN backlogs, TCP memory, tcp_tw_reuse, nf_conntrack_max (when conntrack
is loaded) and vm.max_map_count. Values are only raised, never lowered.

  --dry-run        print each setting, its current value, the value it
                   would set and whether that is a change (the default;
                   needs no root)
  --apply          set them now (sysctl -w) and at boot, writing
                   /etc/sysctl.d/60-wsgate.conf and
                   /etc/security/limits.d/60-wsgate.conf; needs root
  --small-buffers  also lower the default TCP buffer size per socket
                   (tcp_rmem/tcp_wmem middle value) to 16384: more sockets
                   fit in memory, each starts with a smaller window
  -h, --help       this text

Environment (for tests): WSGATE_SYSCTL_ROOT (default /proc/sys),
WSGATE_ETC_ROOT (default /etc), WSGATE_MEMINFO (default /proc/meminfo).
EOF
}

mode=dry-run
small_buffers=false
while (($# > 0)); do
	case $1 in
	--dry-run) mode=dry-run ;;
	--apply) mode=apply ;;
	--small-buffers) small_buffers=true ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "tune-linux.sh: unknown argument: $1" >&2
		usage >&2
		exit 2
		;;
	esac
	shift
done

sysctl_root=${WSGATE_SYSCTL_ROOT:-/proc/sys}
etc_root=${WSGATE_ETC_ROOT:-/etc}
meminfo=${WSGATE_MEMINFO:-/proc/meminfo}
sysctl_conf=$etc_root/sysctl.d/60-wsgate.conf
limits_conf=$etc_root/security/limits.d/60-wsgate.conf

# real_system is true when both trees are the live ones. A half-fake setup
# (fake /proc/sys, real /etc, or the reverse) is refused for --apply: it
# would write a boot config that does not match what was set.
real_system=false
if [[ -z ${WSGATE_SYSCTL_ROOT:-} && -z ${WSGATE_ETC_ROOT:-} ]]; then
	real_system=true
elif [[ -z ${WSGATE_SYSCTL_ROOT:-} || -z ${WSGATE_ETC_ROOT:-} ]] && [[ $mode == apply ]]; then
	echo "tune-linux.sh: set both WSGATE_SYSCTL_ROOT and WSGATE_ETC_ROOT, or neither" >&2
	exit 2
fi
if [[ $mode == apply && $real_system == true && $EUID -ne 0 ]]; then
	echo "tune-linux.sh: --apply needs root (try: sudo $0 --apply)" >&2
	exit 1
fi

# ---------------------------------------------------------------------------
# Helpers.

# key_path prints the file under sysctl_root for a dotted key.
key_path() {
	printf '%s/%s' "$sysctl_root" "${1//.//}"
}

# read_key prints a key's value with its fields separated by one space, or
# fails if the key does not exist here (a module not loaded, a container).
read_key() {
	local path fields
	path=$(key_path "$1")
	[[ -r $path ]] || return 1
	read -r -a fields <"$path" || [[ ${#fields[@]} -gt 0 ]] || return 1
	printf '%s' "${fields[*]}"
}

max() { if (($1 > $2)); then echo "$1"; else echo "$2"; fi; }
min() { if (($1 < $2)); then echo "$1"; else echo "$2"; fi; }

# is_uint reports whether every argument is a non-negative integer.
is_uint() {
	local v
	for v in "$@"; do
		[[ $v =~ ^[0-9]+$ ]] || return 1
	done
}

# conf_value prints the value a key has in our existing sysctl.d file, if any.
conf_value() {
	[[ -r $sysctl_conf ]] || return 1
	local key value
	while IFS='=' read -r key value; do
		key=${key//[[:space:]]/}
		if [[ $key == "$1" ]]; then
			read -r -a value <<<"$value"
			printf '%s' "${value[*]}"
			return 0
		fi
	done <"$sysctl_conf"
	return 1
}

# ---------------------------------------------------------------------------
# The settings. Each is: key, policy, target, and why. Policies:
#
#   raise   one integer: max(current, target)
#   widen   a range "lo hi": the union of current and target
#   each    several integers: max of each field
#   exact   exactly target (used where a bigger number is not "more")
#   small   tcp_rmem/tcp_wmem: with --small-buffers, lower min and default
#           to target's, keep max; otherwise leave as it is
#
# A key that does not exist on this host (nf_conntrack_max without the
# conntrack module, some keys inside containers) is reported and skipped.

# tcp_mem is counted in pages and must scale with RAM, so its target is
# computed: pressure at 1/8 and the hard limit at 1/4 of memory.
page_kib=$(($(getconf PAGESIZE 2>/dev/null || echo 4096) / 1024))
mem_kib=$(awk '$1 == "MemTotal:" { print $2 }' "$meminfo" 2>/dev/null || true)
if ! is_uint "${mem_kib:-x}"; then
	echo "tune-linux.sh: cannot read MemTotal from $meminfo" >&2
	exit 1
fi
mem_pages=$((mem_kib / page_kib))
tcp_mem_target="$((mem_pages / 16)) $((mem_pages / 8)) $((mem_pages / 4))"

# The nofile limit we write: never below what this shell already has or
# what our limits file already says.
nofile_hard_now=$(ulimit -Hn)
nofile_soft_now=$(ulimit -Sn)
nofile=$NOFILE_WANT
if is_uint "$nofile_hard_now"; then nofile=$(max "$nofile" "$nofile_hard_now"); fi
if [[ -r $limits_conf ]]; then
	while read -r _ _ item value; do
		if [[ $item == nofile ]] && is_uint "$value"; then nofile=$(max "$nofile" "$value"); fi
	done < <(grep -Ev '^[[:space:]]*(#|$)' "$limits_conf" || true)
fi

settings=(
	# fs.file-max: open files in the whole system. Every socket is a file,
	# and a load generator on the same host holds the other end of each
	# connection: two million, and room to spare. It is only a ceiling;
	# nothing is allocated up front.
	"fs.file-max|raise|4194304|system-wide open files: both ends of a million loopback connections, plus slack"

	# fs.nr_open: the largest value RLIMIT_NOFILE (ulimit -n, LimitNOFILE=)
	# may be set to. The kernel default is 1048576, exactly 2^20: a hard
	# nofile limit of a million plus a few needs more. Must be raised
	# before the nofile limit, and stay at least as high as it.
	"fs.nr_open|raise|$(max 1100000 "$nofile")|ceiling for any process's nofile limit; must be >= the nofile hard limit"

	# ip_local_port_range: ephemeral ports for outgoing connections. A
	# server needs none per client, but a load generator (or a proxy
	# dialing upstream) uses one per connection per (source address,
	# destination): the default 32768-60999 gives only ~28,000. With the
	# range starting at 1024, an outgoing connection may take a port a
	# server wants to listen on later: list those in
	# net.ipv4.ip_local_reserved_ports (e.g. 8080,8090).
	"net.ipv4.ip_local_port_range|widen|1024 65535|ephemeral ports for outgoing connections (load generators, proxies): ~64,000 per source address; reserve listening ports in ip_local_reserved_ports"

	# somaxconn: the most completed connections a listen() backlog may
	# hold before accept() takes them. wsgate listens with SOMAXCONN; a
	# reconnect storm (a million clients after a restart) overflows a
	# small queue and clients retry after a second.
	"net.core.somaxconn|raise|65535|cap on each listener's accept queue: absorbs reconnect storms"

	# tcp_max_syn_backlog: half-open connections (SYN received, handshake
	# not finished) kept per listener; past it the kernel drops SYNs or
	# falls back to SYN cookies.
	"net.ipv4.tcp_max_syn_backlog|raise|65535|half-open connections per listener during a connect burst"

	# netdev_max_backlog: packets queued per CPU between the NIC driver
	# and the TCP stack when they arrive faster than softirq processing.
	# Bursts of handshakes and small messages from many clients overflow
	# the default 1000 (drops show in /proc/net/softnet_stat).
	"net.core.netdev_max_backlog|raise|65536|packets queued per CPU between driver and stack during bursts"

	# tcp_mem: memory for all TCP buffers of the system, in pages: below
	# the first value no pressure, above the second the kernel shrinks
	# buffers, at the third it refuses memory ("TCP: out of memory --
	# consider tuning tcp_mem") and connections stall or drop. The default
	# tops out near 9% of RAM; a million sockets with even 4 KiB queued
	# each need 4 GiB. Raised to 1/16, 1/8, 1/4 of RAM.
	"net.ipv4.tcp_mem|each|$tcp_mem_target|pages for all TCP buffers (no pressure / pressure / hard limit): 1/16, 1/8, 1/4 of RAM"

	# tcp_rmem and tcp_wmem: per socket "min default max" buffer sizes in
	# bytes. An idle socket holds no buffer memory; these are ceilings on
	# what each socket may queue before the application reads (rmem) or
	# the peer acknowledges (wmem). The default (middle) value is where
	# every socket starts, and autotuning grows busy sockets towards max.
	# Trade-off of --small-buffers (default 16384): a million sockets that
	# all receive at once (a broadcast to slow readers, a flood) can pin
	# at most ~16 GiB instead of ~128 GiB with rmem's 131072, but a new
	# connection starts with a 16 KiB window, so a single transfer ramps
	# up more slowly (autotuning still grows it up to max when
	# net.ipv4.tcp_moderate_rcvbuf=1). max is kept as it is.
	"net.ipv4.tcp_rmem|small|4096 16384|receive buffer per socket (min default max); lowered only with --small-buffers"
	"net.ipv4.tcp_wmem|small|4096 16384|send buffer per socket (min default max); lowered only with --small-buffers"

	# tcp_tw_reuse: 1 lets a new outgoing connection reuse a local port
	# still in TIME_WAIT when timestamps make it safe. It affects only the
	# side that connects (a load generator reconnecting a million clients
	# runs out of ports otherwise); the default 2 does this on loopback
	# only. Not a limit, so "exact" rather than "raise".
	"net.ipv4.tcp_tw_reuse|exact|1|reuse TIME_WAIT ports for new outgoing connections (the connecting side)"

	# nf_conntrack_max: connections the netfilter connection tracker
	# holds, loopback included, when the nf_conntrack module is loaded
	# (firewalls, Docker, NAT). When it is full new connections are
	# dropped ("nf_conntrack: table full, dropping packet"). About 300
	# bytes per tracked connection, allocated as used. Consider also
	# nf_conntrack_buckets (the hash size, default max/4 or less) for
	# shorter chains, or NOTRACK rules for the WebSocket port.
	"net.netfilter.nf_conntrack_max|raise|2097152|tracked connections (only when conntrack is loaded); full table drops new connections"

	# vm.max_map_count: memory mappings per process. A Go server holding a
	# million connections (a goroutine-per-connection one especially, with
	# gigabytes of stacks) and its allocator's many spans can pass the
	# default 65530, and mmap then fails: the runtime dies with "out of
	# memory". Only a ceiling.
	"vm.max_map_count|raise|262144|memory mappings per process: a large Go heap and many stacks need more than 65530"
)

# ---------------------------------------------------------------------------
# Work out, for each setting, the value it should have.

# wanted prints the value for policy, target and the current value.
wanted() {
	local policy=$1 target=$2 current=$3
	local -a t c
	read -r -a t <<<"$target"
	read -r -a c <<<"$current"
	case $policy in
	raise)
		max "${c[0]}" "${t[0]}"
		;;
	widen)
		echo "$(min "${c[0]}" "${t[0]}") $(max "${c[1]}" "${t[1]}")"
		;;
	each)
		local i out=()
		for i in "${!t[@]}"; do out+=("$(max "${c[i]}" "${t[i]}")"); done
		echo "${out[*]}"
		;;
	exact)
		echo "$target"
		;;
	small)
		if [[ $small_buffers == true ]]; then
			echo "$(min "${c[0]}" "${t[0]}") $(min "${c[1]}" "${t[1]}") ${c[2]}"
		else
			echo "$current"
		fi
		;;
	esac
}

changes=0
failures=0
conf_lines=()  # key = value lines of the sysctl.d file
to_set=()      # key=value to set now

if [[ $mode == apply ]]; then
	echo "== apply: setting kernel parameters and writing boot config"
else
	echo "== dry run: nothing is changed (--apply, as root, sets what is marked 'change')"
fi
printf '%-32s %-30s %-30s %s\n' SETTING CURRENT "WOULD SET" STATUS

for entry in "${settings[@]}"; do
	IFS='|' read -r key policy target why <<<"$entry"
	if ! current=$(read_key "$key"); then
		printf '%-32s %-30s %-30s %s\n' "$key" "-" "-" "skip: not on this host"
		printf '    # %s\n' "$why"
		continue
	fi
	# shellcheck disable=SC2086 # fields are meant to split
	if ! is_uint $current; then
		printf '%-32s %-30s %-30s %s\n' "$key" "$current" "-" "skip: unexpected value"
		continue
	fi
	want=$(wanted "$policy" "$target" "$current")
	status=ok
	if [[ $want != "$current" ]]; then
		status=change
		changes=$((changes + 1))
		to_set+=("$key=$want")
	elif [[ $policy == small && $small_buffers == false ]]; then
		small=$(small_buffers=true wanted "$policy" "$target" "$current")
		[[ $small == "$current" ]] || status="ok (--small-buffers would set $small)"
	elif [[ $policy == raise || $policy == each ]] && [[ $want != "$target" ]]; then
		status="ok (already at least $target)"
	fi
	printf '%-32s %-30s %-30s %s\n' "$key" "$current" "$want" "$status"
	printf '    # %s\n' "$why"

	# The boot config holds what the key will be after this run, so that
	# a reboot keeps it and a second run writes the same file. The buffer
	# defaults are ours to write only with --small-buffers; a line a
	# previous --small-buffers run wrote is kept.
	if [[ $policy == small && $small_buffers == false ]]; then
		if prev=$(conf_value "$key"); then conf_lines+=("$key = $prev"); fi
	else
		conf_lines+=("$key = $want")
	fi
done

# ---------------------------------------------------------------------------
# The files: what they should contain, and whether they do.

sysctl_text() {
	echo "# Written by wsgate scripts/tune-linux.sh: settings for a million sockets."
	echo "# Values are the larger of the host's and wsgate's; re-run the script to update."
	printf '%s\n' "${conf_lines[@]}"
}

limits_text() {
	echo "# Written by wsgate scripts/tune-linux.sh: open files for a million sockets."
	echo "# Applies to new PAM login sessions; systemd services need LimitNOFILE= instead."
	echo "# '*' does not match root in pam_limits, hence the root lines."
	local who kind
	for who in '*' root; do
		for kind in soft hard; do
			printf '%-5s %-4s nofile %s\n' "$who" "$kind" "$nofile"
		done
	done
}

# file_status prints "ok", "change (create)" or "change (rewrite)" for
# path against the wanted content on stdin.
file_status() {
	local path=$1 content
	content=$(cat)
	if [[ ! -e $path ]]; then
		echo "change (create)"
	elif [[ $(cat "$path") == "$content" ]]; then
		echo ok
	else
		echo "change (rewrite)"
	fi
}

echo
printf '%-32s %-30s %-30s %s\n' "nofile (this shell)" "soft $nofile_soft_now hard $nofile_hard_now" "soft $nofile hard $nofile" "via $limits_conf"
sysctl_file_status=$(sysctl_text | file_status "$sysctl_conf")
limits_file_status=$(limits_text | file_status "$limits_conf")
printf '%-62s %s\n' "$sysctl_conf" "$sysctl_file_status"
printf '%-62s %s\n' "$limits_conf" "$limits_file_status"
[[ $sysctl_file_status == ok ]] || changes=$((changes + 1))
[[ $limits_file_status == ok ]] || changes=$((changes + 1))

# ---------------------------------------------------------------------------
# Apply.

# set_key sets key=value now: sysctl -w on the live system, a plain write
# under a fake root.
set_key() {
	local key=${1%%=*} value=${1#*=}
	if [[ $real_system == true ]] && command -v sysctl >/dev/null; then
		sysctl -q -w "$key=$value"
	else
		printf '%s\n' "$value" >"$(key_path "$key")"
	fi
}

# write_file replaces path with stdin, atomically, mode 0644.
write_file() {
	local path=$1 tmp
	mkdir -p "$(dirname "$path")"
	tmp=$(mktemp "$path.XXXXXX")
	cat >"$tmp"
	chmod 0644 "$tmp"
	mv -f "$tmp" "$path"
}

if [[ $mode == apply ]]; then
	echo
	# Order matters: fs.nr_open comes before any nofile limit above it.
	for kv in "${to_set[@]}"; do
		if set_key "$kv"; then
			echo "set   ${kv%%=*} = ${kv#*=}"
		else
			echo "FAILED to set ${kv%%=*} (read-only here?)" >&2
			failures=$((failures + 1))
		fi
	done
	if [[ $sysctl_file_status != ok ]]; then
		sysctl_text | write_file "$sysctl_conf"
		echo "wrote $sysctl_conf"
	fi
	if [[ $limits_file_status != ok ]]; then
		limits_text | write_file "$limits_conf"
		echo "wrote $limits_conf"
	fi
fi

echo
if ((changes == 0)); then
	echo "nothing to change"
elif [[ $mode == apply ]]; then
	echo "$changes change(s) applied$( ((failures == 0)) || echo ", $failures failed")"
else
	echo "$changes change(s) needed: run with --apply as root"
fi

cat <<EOF

Notes:
  - The nofile limit from $limits_conf applies to new login sessions
    (pam_limits), not to running processes or this shell.
  - systemd services ignore limits.d: set LimitNOFILE=$nofile in the unit's
    [Service] section (or DefaultLimitNOFILE= in /etc/systemd/system.conf),
    then systemctl daemon-reload and restart. Docker: --ulimit nofile=$nofile.
  - wsgate sizes -max-conns from its own limit: check with
    grep 'open files' /proc/<pid>/limits.
EOF

((failures == 0))
