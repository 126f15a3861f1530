#!/usr/bin/env bash
# The load generator bench: the speed bar of `vdctl load`, in one run on this
# machine, against wrk and Artillery 2 on one nginx backend (one worker,
# `return 200 "ok\n"`, on 127.0.0.1, pinned to CPU 0; the load tools on CPU 1).
#
#   closed   wrk -t1 -c50 -d10s (keep-alive) against vdctl's closed model,
#            50 users, no wait time, 10 s. Bar: vdctl req/s >= 0.8x wrk's.
#   open     the same Artillery script (one GET a virtual user, a new
#            connection each) at rising arrival rates (RATES) for DURATION s:
#            the highest rate vdctl holds within 1% (responses >= 99% of the
#            arrivals asked for, no error, no user skipped), next to what
#            Artillery 2 (npm install --ignore-scripts artillery@2 in a temp
#            dir) reaches at best when asked for each of ARTILLERY_RATES/s.
#            Bar: vdctl's rate >= 10x Artillery's.
#   example  examples/load/artillery.yml, unchanged, under Artillery and
#            vdctl against build/svc on 127.0.0.1:8080 (when that port is free).
#
# A missed bar is printed, not an error. When npm cannot fetch Artillery, the
# bench says so and prints the other figures. Everything is aimed at
# 127.0.0.1; every run is bounded in time; every process started is stopped.
set -euo pipefail
cd "$(dirname "$0")/../.."

# The bench runs in a network namespace of its own, on that namespace's
# loopback: on the host's, dockerd's iptables rules turn on connection
# tracking, and its table (nf_conntrack_max entries, each kept 120 s after
# close) caps every tool near 26,000 new connections a second. A fresh
# namespace has no rules, so nothing is tracked and the tools are measured,
# not the table. Artillery is fetched from npm first, from the host's
# network (the namespace reaches no registry). NETNS=0 runs on the host.
if [ "${NETNS:-1}" = 1 ] && [ -z "${VD_BENCH_IN_NETNS:-}" ]; then
	art_dir=$PWD/build/bench-artillery
	if [ ! -x "$art_dir/node_modules/.bin/artillery" ]; then
		printf 'bench: npm install --ignore-scripts artillery@2 (in %s)\n' "$art_dir" >&2
		mkdir -p "$art_dir"
		(cd "$art_dir" && timeout 600 npm install --silent --no-audit --no-fund \
			--ignore-scripts artillery@2 >"$art_dir/npm.log" 2>&1) || true
	fi
	exec unshare --net env VD_BENCH_IN_NETNS=1 ARTILLERY_DIR="$art_dir" "$0" "$@"
fi
if [ -n "${VD_BENCH_IN_NETNS:-}" ]; then
	ip link set lo up
fi

VDCTL=${VDCTL:-$PWD/build/vdctl}
SVC=${SVC:-$PWD/build/svc}
DURATION=${DURATION:-10}
RATES=${RATES:-"10000 20000 30000 40000 50000 60000 70000 80000"}
ARTILLERY_RATES=${ARTILLERY_RATES:-"3000 6000"}
LOAD_CPU=1
SERVER_CPU=0

work=$(mktemp -d /tmp/vdctl-bench-loadgen.XXXXXX)
pids=()
log() { printf 'bench: %s\n' "$*" >&2; }

cleanup() {
	local rc=$? p
	set +e
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for tool in wrk nginx taskset jq ss; do
	command -v "$tool" >/dev/null || { log "missing $tool (make setup installs the peers)"; exit 1; }
done
[ -x "$VDCTL" ] || { log "no $VDCTL: run make"; exit 1; }
ulimit -n "$(ulimit -Hn)"

free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 30000))
		[ -z "$(ss -Htan "sport = :$p")" ] && { echo "$p"; return; }
	done
}

# ------------------------------------------------------------------ nginx
PORT=$(free_port)
mkdir -p "$work/tmp"
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log error;
events { worker_connections 32768; }
http {
	access_log off;
	client_body_temp_path $work/tmp/body;
	proxy_temp_path $work/tmp/proxy;
	fastcgi_temp_path $work/tmp/fastcgi;
	uwsgi_temp_path $work/tmp/uwsgi;
	scgi_temp_path $work/tmp/scgi;
	keepalive_requests 1000000;
	keepalive_timeout 300s;
	default_type text/plain;
	server { listen 127.0.0.1:$PORT backlog=4096; location / { return 200 "ok\n"; } }
}
EOF
taskset -c $SERVER_CPU nginx -c "$work/nginx.conf" &
pids+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$PORT/" >/dev/null || { log "nginx did not start"; exit 1; }
log "nginx on 127.0.0.1:$PORT"

# Every connection stays in netfilter's connection-tracking table (loaded by
# dockerd's iptables rules) for nf_conntrack_tcp_timeout_time_wait (120 s)
# after it closes; a full table drops SYNs, whatever the tool. So wait for it
# to drain before each run, and say where the ceiling is.
ct=/proc/sys/net/netfilter
ct_max=$(cat $ct/nf_conntrack_max 2>/dev/null || echo 0)
settle() {
	local i
	sleep 2
	[ "$ct_max" -gt 0 ] || return 0
	for i in $(seq 150); do
		[ "$(cat $ct/nf_conntrack_count)" -lt $((ct_max / 20)) ] && return 0
		sleep 1
	done
}

# ----------------------------------------------------------- closed model
log "closed model: wrk -t1 -c50 -d${DURATION}s"
wrk_rps=$(taskset -c $LOAD_CPU wrk -t1 -c50 -d"${DURATION}s" "http://127.0.0.1:$PORT/" |
	awk '/^Requests\/sec:/ { print $2 }')
cat >"$work/closed.yaml" <<EOF
target: http://127.0.0.1:$PORT
users: 50
duration: ${DURATION}s
requests: [{path: /}]
EOF
log "closed model: vdctl load, 50 users, ${DURATION}s"
taskset -c $LOAD_CPU "$VDCTL" load --report-every 0 --output "$work/closed.json" \
	"$work/closed.yaml" >/dev/null
vd_rps=$(jq '.summary.request_rate' "$work/closed.json")
vd_closed_err=$(jq '[.summary.errors[]] | add // 0' "$work/closed.json")
settle

# ------------------------------------------------------------- open model
script() { # RATE FILE
	cat >"$2" <<EOF
config:
  target: "http://127.0.0.1:$PORT"
  phases:
    - duration: $DURATION
      arrivalRate: $1
scenarios:
  - flow:
      - get:
          url: "/"
EOF
}

held=0
settle
for rate in $RATES; do
	script "$rate" "$work/open.yml"
	log "open model: vdctl load at $rate/s for ${DURATION}s"
	timeout $((DURATION + 60)) taskset -c $LOAD_CPU "$VDCTL" load --report-every 0 \
		--output "$work/open.json" "$work/open.yml" >/dev/null || true
	read -r ok errs skipped p99 <<<"$(jq -r '[.summary.responses,
		([.summary.errors[]] | add // 0), .summary.vusers_skipped,
		.summary.response_time.p99] | @tsv' "$work/open.json")"
	log "  $ok responses, $errs errors, $skipped skipped, p99 ${p99} ms"
	settle
	if [ -z "${VD_BENCH_IN_NETNS:-}" ] && [ "$ct_max" -gt 0 ] &&
		[ $((rate * DURATION)) -gt "$ct_max" ]; then
		log "  (more connections than nf_conntrack_max=$ct_max: the table overflows)"
	fi
	if [ "$errs" -eq 0 ] && [ "$skipped" -eq 0 ] &&
		[ "$ok" -ge $((rate * DURATION * 99 / 100)) ]; then
		held=$rate
	else
		break
	fi
done

# --------------------------------------------------------------- artillery
art=""
art_rps=""
if [ -n "${ARTILLERY_DIR:-}" ] && [ -x "$ARTILLERY_DIR/node_modules/.bin/artillery" ]; then
	art=$ARTILLERY_DIR/node_modules/.bin/artillery
	log "artillery: $art"
elif [ -z "${ARTILLERY_DIR:-}" ] &&
	log "artillery: npm install --ignore-scripts artillery@2 (in $work)" &&
	(cd "$work" && timeout 600 npm install --silent --no-audit --no-fund --ignore-scripts \
	artillery@2 >"$work/npm.log" 2>&1) && [ -x "$work/node_modules/.bin/artillery" ]; then
	art=$work/node_modules/.bin/artillery
else
	log "npm could not fetch Artillery 2 (see below); its figures are left out"
	tail -n 5 "${ARTILLERY_DIR:-$work}/npm.log" >&2 || true
fi
export ARTILLERY_DISABLE_TELEMETRY=true DO_NOT_TRACK=1
art_seen=""
for rate in $ARTILLERY_RATES; do
	[ -n "$art" ] || break
	script "$rate" "$work/art.yml"
	log "artillery at $rate/s for ${DURATION}s"
	rm -f "$work/art.json"
	timeout $((DURATION + 120)) taskset -c $LOAD_CPU "$art" run --output "$work/art.json" \
		"$work/art.yml" >"$work/art.log" 2>&1 || true
	if [ -s "$work/art.json" ]; then
		art_ok=$(jq '.aggregate.counters["http.responses"] // 0' "$work/art.json")
		r=$(awk -v n="$art_ok" -v d="$DURATION" 'BEGIN { printf "%.0f", n / d }')
		log "  artillery: $art_ok responses"
		art_seen+=" asked $rate/s: $r/s;"
		[ -n "$art_rps" ] && [ "$art_rps" -ge "$r" ] || art_rps=$r
	else
		log "artillery wrote no report; see its log:"
		tail -n 5 "$work/art.log" >&2 || true
	fi
	settle
done

# ----------------------------------------- the example under both tools
example="skipped (127.0.0.1:8080 busy or no build/svc)"
if [ -x "$SVC" ] && [ -z "$(ss -Htln 'sport = :8080')" ]; then
	taskset -c $SERVER_CPU "$SVC" --model async --listen 127.0.0.1 --port 8080 >/dev/null 2>&1 &
	svc_pid=$!
	pids+=($svc_pid)
	sleep 0.5
	example="vdctl: "
	if timeout 120 "$VDCTL" load --report-every 0 --output "$work/ex.json" \
		examples/load/artillery.yml >/dev/null; then
		example+="$(jq -r '"\(.summary.responses) responses, \([.summary.errors[]] | add // 0) errors"' \
			"$work/ex.json")"
	else
		example+="failed"
	fi
	if [ -n "$art" ]; then
		example+="; artillery: "
		if timeout 180 "$art" run --output "$work/ex-art.json" examples/load/artillery.yml \
			>"$work/ex-art.log" 2>&1; then
			example+="$(jq -r '"\(.aggregate.counters["http.responses"] // 0) responses, \([.aggregate.counters | to_entries[] | select(.key | startswith("errors.")) | .value] | add // 0) errors"' \
				"$work/ex-art.json")"
		else
			example+="failed ($(tail -n 1 "$work/ex-art.log"))"
		fi
	fi
	kill -TERM "$svc_pid" 2>/dev/null && wait "$svc_pid" 2>/dev/null || true
fi

# ------------------------------------------------------------------ figures
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
bar() { awk -v r="$1" -v b="$2" 'BEGIN { print (r != "n/a" && r >= b) ? "met" : "MISSED" }'; }
closed_ratio=$(ratio "$vd_rps" "$wrk_rps")
echo "closed model, keep-alive, 50 connections, ${DURATION}s, one nginx worker:"
printf '  wrk   %10.0f req/s\n' "$wrk_rps"
printf '  vdctl %10.0f req/s  (%s errors)\n' "$vd_rps" "$vd_closed_err"
echo "  vdctl/wrk = $closed_ratio (bar 0.8: $(bar "$closed_ratio" 0.8))"
echo "open model, a new connection per virtual user, ${DURATION}s:"
echo "  vdctl holds $held arrivals/s within 1% (tried: $RATES)"
if [ -n "${VD_BENCH_IN_NETNS:-}" ]; then
	echo "  (in a network namespace of the bench's own: no connection tracking)"
elif [ "$ct_max" -gt 0 ]; then
	echo "  ceiling of this machine: nf_conntrack_max=$ct_max connections" \
		"tracked for 120 s after close, so at most $((ct_max / DURATION))/s for ${DURATION}s, any tool"
fi
if [ -n "$art_rps" ]; then
	open_ratio=$(ratio "$held" "$art_rps")
	echo "  artillery 2:$art_seen best $art_rps responses/s"
	echo "  vdctl/artillery = $open_ratio (bar 10: $(bar "$open_ratio" 10))"
else
	echo "  artillery 2: not measured (npm could not fetch it)"
fi
echo "examples/load/artillery.yml unchanged: $example"
