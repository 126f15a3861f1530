#!/usr/bin/env bash
# The balancer bench: the speed bar of `vdctl balance`, in one run on this
# machine, against the balancers people put in front of replicas instead.
#
# Four tiny backends (one nginx master, one worker, four `return 200 "ok\n"`
# servers on 127.0.0.1) are loaded with wrk (-t1 -c50, DURATION s, after a
# WARMUP s warm-up) four ways:
#
#   direct   wrk against the first backend
#   vdctl    build/vdctl balance --policy least-outstanding --stats 0
#   haproxy  HAProxy 2.6, nbthread 1, leastconn, http-reuse always
#   nginx    nginx, 1 worker, least_conn, upstream keepalive 64
#
# For fairness on 2 cores the balancer under test runs on CPU 0 and wrk and
# the backends on CPU 1 (taskset), the same way for every balancer; direct has
# the same placement with CPU 0 idle. Then each balancer alone, freshly
# started, holds IDLE_N idle keep-alive client connections (idle_conns.c: one
# GET /ping on each, then held IDLE_HOLD s) while its VmRSS is read.
#
# Prints req/s, p50, p99 and errors per target, vdctl's ratios to HAProxy and
# the bar: vdctl req/s >= 1.0x HAProxy's, p99 <= 1.2x HAProxy's, resident
# memory < 10 MB (10,000,000 bytes) holding 1,000 idle client connections.
# A missed bar is printed, not an error: the exit status is 0 when every
# figure was measured, 1 when some could not be (e.g. no `vdctl balance`).
#
# Progress goes to stderr, results to stdout. Everything listens on and is
# aimed at 127.0.0.1 only; every run is bounded in time; every process
# started is stopped on exit. Needs wrk, haproxy, nginx (nginx-light), gcc,
# taskset, curl, ss.
set -euo pipefail
cd "$(dirname "$0")/../.."

VDCTL=${VDCTL:-$PWD/build/vdctl}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-50}
IDLE_N=${IDLE_N:-1000}
IDLE_HOLD=${IDLE_HOLD:-10}
[ "$IDLE_HOLD" -ge 3 ] || IDLE_HOLD=3   # the memory is read while they are held
PROXY_CPU=0
LOAD_CPU=1
BENCH=$PWD/tests/bench
PATH_REQ=/ping

work=$(mktemp -d /tmp/vdctl-bench-balancer.XXXXXX)
declare -A live   # pid -> name of every process started and not yet stopped
status=0

log() { printf 'bench: %s\n' "$*" >&2; }

alive() { kill -0 "$1" 2>/dev/null; }

# The process and its descendants, deepest last.
tree() {
	local p c
	for p in "$@"; do
		echo "$p"
		for c in $(pgrep -P "$p" 2>/dev/null || true); do tree "$c"; done
	done
}

# Stops the given processes and their children: TERM, then KILL for those
# still there after 3 s. Only processes this script started (and their
# children, listed while they run) are signalled.
stop() {
	local all p i left
	all=$(tree "$@")
	[ -n "$all" ] || return 0
	kill -TERM $all 2>/dev/null || true
	for i in $(seq 30); do
		left=
		for p in $all; do alive "$p" && left+=" $p"; done
		[ -z "$left" ] && break
		sleep 0.1
	done
	[ -z "$left" ] || kill -KILL $left 2>/dev/null || true
	for p in "$@"; do
		wait "$p" 2>/dev/null || true
		unset "live[$p]"
	done
	for p in $all; do alive "$p" && leftover+=" $p"; done
	return 0
}
leftover=

cleanup() {
	local rc=$? p
	set +e
	trap - EXIT INT TERM
	for p in "${!live[@]}"; do
		alive "$p" && stop "$p"
	done
	# Nothing of ours may remain: no process named by our temp dir, no listener
	# on our ports.
	for p in $(pgrep -f "$work" 2>/dev/null); do leftover+=" $p"; done
	if [ -n "$leftover" ]; then
		log "WARNING: processes still running after cleanup:$leftover"
		[ "$rc" -eq 0 ] && rc=1
	elif [ -n "${ports[*]:-}" ] && ss -Htln | awk '{ print $4 }' | grep -qE ":(${ports[*]// /|})\$"; then
		log "WARNING: something still listens on one of the bench's ports"
		[ "$rc" -eq 0 ] && rc=1
	else
		log "every process started was stopped"
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for tool in wrk haproxy nginx gcc taskset curl ss; do
	command -v "$tool" >/dev/null || { log "missing $tool (make setup installs the peers)"; exit 1; }
done
[ "$(nproc)" -ge 2 ] || { log "needs 2 CPUs for the placement (proxy on CPU 0, load on CPU 1)"; exit 1; }
ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# Eight free ports on 127.0.0.1: 4 backends, 3 balancers, 1 spare.
ports=()
while [ ${#ports[@]} -lt 8 ]; do
	p=$((20000 + RANDOM % 30000))
	case " ${ports[*]} " in *" $p "*) continue ;; esac
	[ -z "$(ss -Htan "sport = :$p")" ] && ports+=("$p")
done
P1=${ports[0]} P2=${ports[1]} P3=${ports[2]} P4=${ports[3]}
PORT_VDCTL=${ports[4]} PORT_HAPROXY=${ports[5]} PORT_NGINX=${ports[6]}

fill() { # template output [PORT]
	sed -e "s|@WORK@|$work|g" -e "s|@PORT@|${3:-0}|g" \
		-e "s|@P1@|$P1|g" -e "s|@P2@|$P2|g" -e "s|@P3@|$P3|g" -e "s|@P4@|$P4|g" "$1" >"$2"
}
mkdir -p "$work/backends-tmp" "$work/nginx-proxy-tmp"
chmod 755 "$work"
fill "$BENCH/balancer-backends.conf" "$work/backends.conf"
fill "$BENCH/balancer-haproxy.conf" "$work/haproxy.conf" "$PORT_HAPROXY"
fill "$BENCH/balancer-nginx.conf" "$work/nginx-proxy.conf" "$PORT_NGINX"
gcc -std=c11 -O2 -Wall -o "$work/idle_conns" "$BENCH/idle_conns.c"

# start NAME CPU CMD...: runs CMD pinned to CPU in the background; sets $started.
start() {
	local name=$1 cpu=$2
	shift 2
	taskset -c "$cpu" "$@" >"$work/$name.log" 2>&1 &
	started=$!
	live[$started]=$name
}

# wait_http NAME PID PORT: until PORT answers 200 "ok" (10 s at most).
wait_http() {
	local i body
	for i in $(seq 100); do
		if ! alive "$2"; then
			log "$1 exited; its output:"
			sed 's/^/  /' "$work/$1.log" >&2
			return 1
		fi
		body=$(curl -s -m 2 "http://127.0.0.1:$3$PATH_REQ" 2>/dev/null || true)
		[ "$body" = ok ] && return 0
		sleep 0.1
	done
	log "$1 did not answer 200 ok on 127.0.0.1:$3 within 10 s; its output:"
	sed 's/^/  /' "$work/$1.log" >&2
	return 1
}

# Every backend through the balancer: 16 requests all 200 "ok".
check_all_ok() {
	local i body
	for i in $(seq 16); do
		body=$(curl -s -m 2 "http://127.0.0.1:$2$PATH_REQ" 2>/dev/null || true)
		[ "$body" = ok ] || { log "$1: request $i answered '${body:0:60}', not ok"; return 1; }
	done
}

# cpu_snapshot PID...: "busy total ours" in clock ticks: busy is user, nice,
# system and steal time of every CPU (/proc/stat), total every column, ours the
# CPU time of the given processes plus this script and the children it reaped
# (wrk). busy - ours over a run is what others (builds, tests, the host) took.
cpu_snapshot() {
	local p ours=0 t
	for p in "$@" $$; do
		t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 + $14 + $15 }' || true)
		ours=$((ours + ${t:-0}))
	done
	awk -v ours="$ours" '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i
		printf "%d %d %d\n", $2 + $3 + $4 + $9, t, ours; exit }' /proc/stat
}
# other_load BEFORE AFTER: CPU time others took during a run, in % of one CPU.
other_load() {
	awk -v a="$1" -v b="$2" -v n="$(nproc)" 'BEGIN { split(a, x, " "); split(b, y, " ")
		tot = (y[2] - x[2]) / n; o = (y[1] - x[1]) - (y[3] - x[3]); if (o < 0) o = 0
		printf "%.0f", (tot > 0 ? 100 * o / tot : 0) }'
}

# wrk_run NAME PORT PID...: warm-up, then the measured run into
# $work/wrk-NAME.txt; sets $others to what other processes took meanwhile
# (the PIDs, with their children, are the balancer and the backends).
wrk_run() {
	local name=$1 url="http://127.0.0.1:$2$PATH_REQ" w rc=0 procs before after
	shift 2
	procs=$(tree "$@")
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" --timeout 5s "$url" >/dev/null 2>&1 &
	w=$!
	live[$w]=wrk
	wait "$w" || true
	unset "live[$w]"
	# shellcheck disable=SC2086
	before=$(cpu_snapshot $procs)
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency --timeout 5s "$url" \
		>"$work/wrk-$name.txt" 2>&1 &
	w=$!
	live[$w]=wrk
	wait "$w" || rc=$?
	unset "live[$w]"
	# shellcheck disable=SC2086
	after=$(cpu_snapshot $procs)
	others=$(other_load "$before" "$after")
	[ "$rc" -eq 0 ] || { log "$name: wrk failed:"; sed 's/^/  /' "$work/wrk-$name.txt" >&2; return 1; }
	grep -q '^Requests/sec:' "$work/wrk-$name.txt" || { log "$name: no figures from wrk"; return 1; }
}

# "req/s p50_ms p99_ms non2xx socket_errors(connect/read/write/timeout)"
wrk_parse() {
	awk '
	function ms(v,  n) {
		n = v + 0
		if (v ~ /us$/) return n / 1000
		if (v ~ /ms$/) return n
		if (v ~ /m$/) return n * 60000
		if (v ~ /s$/) return n * 1000
		return n
	}
	/^Requests\/sec:/ { rps = $2 }
	/^ +50%/ { p50 = ms($2) }
	/^ +99%/ { p99 = ms($2) }
	/Non-2xx or 3xx responses:/ { non2xx = $NF }
	/Socket errors:/ { gsub(",", ""); serr = $4 "/" $6 "/" $8 "/" $10 }
	END { printf "%.0f %.3f %.3f %d %s\n", rps, p50, p99, non2xx + 0, (serr == "" ? "0/0/0/0" : serr) }
	' "$1"
}

declare -A result rss_kb rss_base_kb idle_note
targets=(direct vdctl haproxy nginx)

have_vdctl=
if [ -x "$VDCTL" ] && "$VDCTL" balance --help >/dev/null 2>&1; then
	have_vdctl=1
else
	log "$VDCTL has no 'balance' command: vdctl's figures will be reported missing"
fi

# balancer_cmd NAME PORT: the command line of each balancer.
balancer_cmd() {
	case $1 in
	vdctl) echo "$VDCTL" balance --listen "127.0.0.1:$2" \
		--backend "127.0.0.1:$P1" --backend "127.0.0.1:$P2" \
		--backend "127.0.0.1:$P3" --backend "127.0.0.1:$P4" \
		--policy least-outstanding --stats 0 ;;
	haproxy) echo haproxy -db -f "$work/haproxy.conf" ;;
	nginx) echo nginx -p "$work" -e "$work/nginx-proxy-error.log" -c "$work/nginx-proxy.conf" ;;
	esac
}
# Surfaces what a balancer said beyond its banner (warnings, alerts, errors).
banner='^(\[NOTICE\].*(haproxy version is|path to executable is)|info: balancing )'
said() { # name
	local f=$work/$1.log
	[ -s "$f" ] || return 0
	if grep -vqE "$banner" "$f"; then
		log "$1 said:"
		grep -vE "$banner" "$f" | head -20 | sed 's/^/  /' >&2
	fi
}
port_of() {
	case $1 in vdctl) echo "$PORT_VDCTL" ;; haproxy) echo "$PORT_HAPROXY" ;; nginx) echo "$PORT_NGINX" ;; esac
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average $load_before; ports: backends $P1 $P2 $P3 $P4, vdctl $PORT_VDCTL, haproxy $PORT_HAPROXY, nginx $PORT_NGINX"
log "starting 4 backends (nginx, 1 worker, CPU $LOAD_CPU)"
start backends "$LOAD_CPU" nginx -p "$work" -e "$work/backends-error.log" -c "$work/backends.conf"
backends_pid=$started
for p in "$P1" "$P2" "$P3" "$P4"; do wait_http backends "$backends_pid" "$p"; done

log "direct: wrk -t1 -c$CONNS ${WARMUP}s warm-up + ${DURATION}s against 127.0.0.1:$P1"
wrk_run direct "$P1" "$backends_pid" && result[direct]="$(wrk_parse "$work/wrk-direct.txt") $others"

for name in vdctl haproxy nginx; do
	if [ "$name" = vdctl ] && [ -z "$have_vdctl" ]; then continue; fi
	port=$(port_of "$name")
	log "$name: starting on 127.0.0.1:$port (CPU $PROXY_CPU), then wrk ${WARMUP}s warm-up + ${DURATION}s"
	# shellcheck disable=SC2046
	start "$name" "$PROXY_CPU" $(balancer_cmd "$name" "$port")
	pid=$started
	if wait_http "$name" "$pid" "$port" && check_all_ok "$name" "$port"; then
		wrk_run "$name" "$port" "$pid" "$backends_pid" &&
			result[$name]="$(wrk_parse "$work/wrk-$name.txt") $others"
		alive "$pid" || { log "$name exited during the run"; unset "result[$name]"; }
	fi
	stop "$pid"
	said "$name"
done

# vmrss FIELD PID...: the sum of /proc/PID/status FIELD (kB) of the processes.
vmrss() {
	local f=$1 p sum=0 v
	shift
	for p in "$@"; do
		v=$(awk -v f="$f:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null || true)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

for name in vdctl haproxy nginx; do
	if [ "$name" = vdctl ] && [ -z "$have_vdctl" ]; then continue; fi
	port=$(port_of "$name")
	log "$name: memory holding $IDLE_N idle keep-alive connections (one GET $PATH_REQ each, held ${IDLE_HOLD}s)"
	# shellcheck disable=SC2046
	start "$name-mem" "$PROXY_CPU" $(balancer_cmd "$name" "$port")
	pid=$started
	if ! wait_http "$name-mem" "$pid" "$port"; then stop "$pid"; continue; fi
	sleep 0.5
	procs=$(tree "$pid")
	rss_base_kb[$name]=$(vmrss VmRSS $procs)
	taskset -c "$LOAD_CPU" "$work/idle_conns" -r "$PATH_REQ" 127.0.0.1 "$port" "$IDLE_N" "$IDLE_HOLD" \
		>"$work/idle-$name.txt" 2>"$work/idle-$name.err" &
	ic=$!
	live[$ic]=idle_conns
	for i in $(seq 600); do
		grep -q '^ready' "$work/idle-$name.txt" 2>/dev/null && break
		alive "$ic" || break
		sleep 0.1
	done
	if grep -q '^ready' "$work/idle-$name.txt"; then
		sleep 0.5
		rss=$(vmrss VmRSS $procs)
		anon=$(vmrss RssAnon $procs)
		file=$(vmrss RssFile $procs)
		fds=0
		for p in $procs; do fds=$((fds + $(ls "/proc/$p/fd" 2>/dev/null | wc -l || true))); done
		held_while_read=
		alive "$ic" && held_while_read=1
		wait "$ic" || true
		unset "live[$ic]"
		ready=$(sed -n 's/^ready //p' "$work/idle-$name.txt")
		closed=$(sed -n 's/^done closed=//p' "$work/idle-$name.txt")
		idle_note[$name]="$ready, closed by the balancer while held=${closed:-?}, balancer fds=$fds; of VmRSS: RssAnon ${anon} kB, RssFile ${file} kB"
		case "$ready" in
		"opened=$IDLE_N ok=$IDLE_N bad=0")
			[ "${closed:-x}" = 0 ] && [ -n "$held_while_read" ] && alive "$pid" && rss_kb[$name]=$rss ;;
		esac
		[ -n "${rss_kb[$name]:-}" ] || log "$name: connections not all held ($ready, closed=${closed:-?}); $(cat "$work/idle-$name.err")"
	else
		log "$name: idle_conns did not get ready: $(cat "$work/idle-$name.err")"
		stop "$ic"
	fi
	stop "$pid"
	said "$name-mem"
done

# ---- results -----------------------------------------------------------------

fmt_row() { # name
	local r=${result[$1]:-}
	if [ -z "$r" ]; then
		if [ "$1" = vdctl ] && [ -z "$have_vdctl" ]; then
			printf '%-8s  %10s\n' "$1" "missing (no 'vdctl balance' in $VDCTL)"
		else
			printf '%-8s  %10s\n' "$1" "failed (see the progress output)"
		fi
		return
	fi
	set -- "$1" $r
	printf '%-8s  %10s  %8s  %8s  %8s  %-21s  %s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7"
}
field() { # name index(1=rps 2=p50 3=p99)
	local r=${result[$1]:-}
	if [ -n "$r" ]; then echo "$r" | cut -d' ' -f"$2"; fi
}
ratio() { # a b: a/b, empty when either is missing
	if [ -n "$1" ] && [ -n "$2" ]; then
		awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b }'
	fi
}
verdict() { # value op bar
	[ -n "$1" ] || { echo "not measured"; return; }
	if awk -v v="$1" -v b="$3" -v op="$2" 'BEGIN { exit !((op == ">=" && v >= b) || (op == "<=" && v <= b) || (op == "<" && v < b)) }'; then
		echo "met"
	else
		echo "MISSED"
	fi
}

echo "balancer bench: wrk -t1 -c$CONNS -d${DURATION}s --latency (after ${WARMUP}s warm-up), GET $PATH_REQ, 4 nginx backends"
echo "placement: balancer on CPU $PROXY_CPU; wrk and backends on CPU $LOAD_CPU; $(date -u '+%Y-%m-%d %H:%M UTC'), load average before: $load_before"
echo
printf '%-8s  %10s  %8s  %8s  %8s  %-21s  %s\n' target req/s 'p50 ms' 'p99 ms' non-2xx 'socket errors c/r/w/t' 'others %cpu'
for t in "${targets[@]}"; do fmt_row "$t"; done
echo "(others %cpu: CPU time not ours (other processes, steal) during the measured run, in % of one CPU; high means noisy)"
echo

rq=$(ratio "$(field vdctl 1)" "$(field haproxy 1)")
lq=$(ratio "$(field vdctl 3)" "$(field haproxy 3)")
printf 'vdctl/haproxy req/s  %-6s bar >= 1.0: %s\n' "${rq:-n/a}" "$(verdict "$rq" '>=' 1.0)"
printf 'vdctl/haproxy p99    %-6s bar <= 1.2: %s\n' "${lq:-n/a}" "$(verdict "$lq" '<=' 1.2)"
printf 'vdctl/nginx req/s    %-6s (information)\n' "$(ratio "$(field vdctl 1)" "$(field nginx 1)")"
printf 'vdctl/nginx p99      %-6s (information)\n' "$(ratio "$(field vdctl 3)" "$(field nginx 3)")"
printf 'vdctl/direct req/s   %-6s (information)\n' "$(ratio "$(field vdctl 1)" "$(field direct 1)")"
printf 'haproxy/direct req/s %-6s (information)\n' "$(ratio "$(field haproxy 1)" "$(field direct 1)")"
echo

echo "resident memory holding $IDLE_N idle keep-alive client connections (VmRSS; nginx: master + worker):"
mb() { awk -v k="$1" 'BEGIN { printf "%.2f MB (%.2f MiB, %d kB)", k * 1024 / 1e6, k / 1024, k }'; }
for name in vdctl haproxy nginx; do
	if [ -n "${rss_kb[$name]:-}" ]; then
		line="$(mb "${rss_kb[$name]}"), idle before: $(mb "${rss_base_kb[$name]}")"
	elif [ "$name" = vdctl ] && [ -z "$have_vdctl" ]; then
		line="missing (no 'vdctl balance')"
	else
		line="not measured${idle_note[$name]:+ (${idle_note[$name]})}"
	fi
	printf '  %-8s %s\n' "$name" "$line"
	if [ -n "${idle_note[$name]:-}" ] && [ -n "${rss_kb[$name]:-}" ]; then
		printf '  %-8s   %s\n' "" "${idle_note[$name]}"
	fi
done
mem_bytes=
if [ -n "${rss_kb[vdctl]:-}" ]; then mem_bytes=$((rss_kb[vdctl] * 1024)); fi
printf 'vdctl memory holding %d idle: bar < 10 MB: %s\n' "$IDLE_N" "$(verdict "$mem_bytes" '<' 10000000)"

for t in "${targets[@]}"; do [ -n "${result[$t]:-}" ] || status=1; done
[ -n "${rss_kb[vdctl]:-}" ] || status=1
[ "$status" -eq 0 ] || log "some figures could not be measured (see above)"
exit "$status"
