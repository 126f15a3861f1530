#!/usr/bin/env bash
# Overload with clients that give up (issue 18): one replica of the example
# server in sync mode (4 workers, /timeout?ms=860: about 4.7 requests a
# second at most), an open-model load of RATE (default 20) requests a second
# for DURATION (default 30) s, each on its own connection (as Artillery),
# each client giving up after 10 s. Three balancers in front, one after the
# other, each with 4 requests at once to the replica and a 60 s queue:
#
#   vdctl          build/vdctl balance --max-inflight 4 (client-gone
#                  detection and early refusal on, as always)
#   haproxy        HAProxy 2.6, server maxconn 4, timeout queue 60s
#   haproxy-abort  the same with option abortonclose
#
# For each: goodput (2xx responses clients received before giving up),
# requests the replica served for clients who had gone (what it served less
# what clients received), and the p95 of what clients received; then
# vdctl's goodput against each HAProxy's. Goals: goodput >= HAProxy's with
# abortonclose and >= 1.5x HAProxy's default; served to departed clients
# under 5% of what was sent.
#
# Nothing is pinned: the balancers do little here (20 requests a second);
# the replica's workers are the bottleneck, the same for all three. A fresh
# replica for each run; after each load, the balancer is left 15 s for what
# it still holds to reach the replica, then stopped, and the replica's count
# read: what a balancer still queued then is not counted as served (HAProxy
# without abortonclose would go on serving departed clients for minutes).
# Everything listens on 127.0.0.1; every process started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

VDCTL=${VDCTL:-$PWD/build/vdctl}
SVC=${SVC:-$PWD/build/svc}
RATE=${RATE:-20}
DURATION=${DURATION:-30}
work=$(mktemp -d /tmp/vdctl-bench-overload.XXXXXX)
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
	for _ in $(seq 100); do
		curl -s -o /dev/null "http://127.0.0.1:$1/ping" && return 0
		sleep 0.1
	done
	echo "overload: nothing answers on port $1" >&2
	return 1
}
served() { curl -s --max-time 120 "http://127.0.0.1:$1/info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])'; }

# HAProxy's configuration: listening on $1, the replica on $2, $3 an option
haproxy_cfg() {
	cat <<CFG
global
	nbthread 1
	maxconn 4096
defaults
	mode http
	$3
	timeout connect 5s
	timeout client 300s
	timeout server 300s
	timeout queue 60s
	timeout http-request 60s
frontend f
	bind 127.0.0.1:$1
	default_backend b
backend b
	server s1 127.0.0.1:$2 maxconn 4
CFG
}

# one run through balancer NAME: vdctl, haproxy or haproxy-abort
run() {
	local name=$1 be lb before after p_svc p_lb
	be=$(free_port)
	lb=$(free_port)
	"$SVC" --model sync --workers 4 --listen 127.0.0.1 --port "$be" >"$work/svc-$name.log" 2>&1 &
	p_svc=$!
	pids+=("$p_svc")
	wait_port "$be"
	case $name in
	vdctl)
		"$VDCTL" balance --listen "127.0.0.1:$lb" --backend "127.0.0.1:$be" \
			--max-inflight 4 --stats 0 >"$work/lb-$name.log" 2>&1 &
		;;
	haproxy | haproxy-abort)
		haproxy_cfg "$lb" "$be" "$([ "$name" = haproxy-abort ] && echo 'option abortonclose')" \
			>"$work/$name.cfg"
		haproxy -db -f "$work/$name.cfg" >"$work/lb-$name.log" 2>&1 &
		;;
	esac
	p_lb=$!
	pids+=("$p_lb")
	wait_port "$lb"
	before=$(served "$be")
	cat >"$work/load-$name.yaml" <<YAML
target: http://127.0.0.1:$lb
model: open
arrivals: constant
timeout: 10s
phases:
  - {duration: ${DURATION}s, arrival_rate: $RATE, max_vusers: 100000}
requests:
  - {path: "/timeout?ms=860"}
YAML
	echo "overload: $name: $RATE req/s for $DURATION s, clients give up after 10 s" >&2
	"$VDCTL" load "$work/load-$name.yaml" --output "$work/res-$name.json" >"$work/load-$name.out" 2>&1 || true
	sleep 15 # what the balancer still holds reaches the replica, or not
	# then the balancer goes (what it still queues is never served): the
	# replica's workers finish what they hold (the example server reads
	# every connection it accepts into a queue of its own: a connection a
	# balancer closed after sending is served all the same) and answer /info
	kill -TERM "$p_lb" 2>/dev/null || true
	wait "$p_lb" 2>/dev/null || true
	after=$(served "$be")
	echo "$name $before $after" >>"$work/served.txt"
	kill -TERM "$p_svc" 2>/dev/null || true
	wait "$p_svc" 2>/dev/null || true
}

for name in ${ONLY:-vdctl haproxy haproxy-abort}; do run "$name"; done

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
served = {l.split()[0]: (int(l.split()[1]), int(l.split()[2])) for l in open(work + "/served.txt")}
rows = {}
for name in ("vdctl", "haproxy", "haproxy-abort"):
    r = json.load(open("%s/res-%s.json" % (work, name)))["summary"]
    ok = r["codes"].get("200", 0)
    before, after = served[name]
    # the replica's count includes the two /info asks and the ping of the wait
    replica = after - before - 1
    gone = max(0, replica - ok)
    rows[name] = ok
    codes = {k: v for k, v in r["codes"].items() if k != "200"}
    print("%-14s sent %4d  goodput %4d  served to departed clients %4d (%4.1f%% of sent)  "
          "p95 received %5.0f ms  other answers %s  client errors %s"
          % (name, r["requests"], ok, gone, 100.0 * gone / max(1, r["requests"]),
             r["response_time"]["p95"], json.dumps(codes, sort_keys=True),
             json.dumps(r["errors"], sort_keys=True)))
print("vdctl goodput / HAProxy's: %.2fx default (goal >= 1.5x), %.2fx abortonclose (goal >= 1.0x)"
      % (rows["vdctl"] / max(1, rows["haproxy"]), rows["vdctl"] / max(1, rows["haproxy-abort"])))
PY
