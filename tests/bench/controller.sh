#!/usr/bin/env bash
# The controller's footprint: an idle `vdctl controller` looking after N
# Docker replicas (default 50) behind its balancer, health-checking each
# every 2 s, and, for comparison in the same run, HAProxy 2.6 fronting the
# same N replicas with the same checks (`check inter 2s`): the part of the
# controller's work a person would otherwise run a daemon for.
#
# For each: resident memory (VmRSS) after a settling period, and CPU time
# over WINDOW seconds (default 30) as a share of one core. The bar (issue 9):
# the controller under 10 MB resident and under 1% of a core.
set -euo pipefail
cd "$(dirname "$0")/../.."

N=${N:-50}
WINDOW=${WINDOW:-30}
SETTLE=${SETTLE:-10}
VDCTL=$PWD/build/vdctl
work=$(mktemp -d /tmp/vdctl-bench-ctl.XXXXXX)
export VDCTL_STATE_DIR=$work/state
svc=bench-ctl
ctl_pid=
hap_pid=

cleanup() {
	[ -n "$hap_pid" ] && kill "$hap_pid" 2>/dev/null || true
	if [ -n "$ctl_pid" ]; then
		kill -TERM "$ctl_pid" 2>/dev/null || true
		wait "$ctl_pid" 2>/dev/null || true
	fi
	"$VDCTL" delete "$svc" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# utime + stime of a process, in clock ticks
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
measure() { # pid label
	local pid=$1 t0 t1
	t0=$(cpu_ticks "$pid")
	sleep "$WINDOW"
	t1=$(cpu_ticks "$pid")
	echo "$(rss_kb "$pid") $(echo "($t1 - $t0) * 100 / ($(getconf CLK_TCK) * $WINDOW)" | bc -l)"
}

lb_port=$(free_port)
metrics_port=$(free_port)
# 2 cpus on these machines: 0.02 cpu each keeps 50 replicas within capacity
cat >"$work/bench.yaml" <<YAML
service: $svc
backend: docker
image: vdctl/example-svc:latest
command: ["/svc", "--model", "sync", "--workers", "2"]
port: 8080
replicas: $N
resources: {cpus: 0.02, memory: 32Mi}
health: {http: /healthz, interval: 2s}
balancer: {listen: "127.0.0.1:$lb_port"}
YAML

"$VDCTL" controller --metrics "127.0.0.1:$metrics_port" 2>"$work/controller.log" &
ctl_pid=$!
for _ in $(seq 50); do [ -S "$work/state/control.sock" ] && break; sleep 0.1; done
echo "applying $N replicas through the controller ..."
"$VDCTL" apply --timeout 5m "$work/bench.yaml" | tail -n 1
for _ in $(seq 300); do
	ready=$("$VDCTL" status --json | python3 -c 'import json,sys; s=json.load(sys.stdin)["services"]; print(s[0]["ready"] if s else 0)')
	[ "$ready" = "$N" ] && break
	sleep 1
done
[ "$ready" = "$N" ] || { echo "only $ready of $N ready" >&2; exit 1; }
curl -fsS "127.0.0.1:$lb_port/ping" >/dev/null

echo "settling ${SETTLE}s, then measuring the idle controller for ${WINDOW}s ..."
sleep "$SETTLE"
read -r ctl_rss ctl_cpu < <(measure "$ctl_pid")

# HAProxy with the same replicas and checks
{
	echo "global"
	echo "  maxconn 1000"
	echo "defaults"
	echo "  mode http"
	echo "  timeout connect 2s"
	echo "  timeout client 60s"
	echo "  timeout server 60s"
	echo "frontend fe"
	echo "  bind 127.0.0.1:$(free_port)"
	echo "  default_backend be"
	echo "backend be"
	echo "  balance leastconn"
	echo "  option httpchk GET /healthz"
	"$VDCTL" status --json | python3 -c '
import json, sys
for r in json.load(sys.stdin)["services"][0]["replicas"]:
    print("  server %s %s check inter 2s" % (r["name"], r["address"]))'
} >"$work/haproxy.cfg"
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
hap_pid=$!
echo "settling ${SETTLE}s, then measuring HAProxy (same $N replicas, same checks) for ${WINDOW}s ..."
sleep "$SETTLE"
read -r hap_rss hap_cpu < <(measure "$hap_pid")

printf '\n%-34s %12s %14s\n' "idle, $N replicas, checks every 2s" "resident" "CPU (1 core)"
printf '%-34s %9.2f MB %13.3f%%\n' "vdctl controller" "$(echo "$ctl_rss/1024" | bc -l)" "$ctl_cpu"
printf '%-34s %9.2f MB %13.3f%%\n' "haproxy 2.6 (balancer + checks)" "$(echo "$hap_rss/1024" | bc -l)" "$hap_cpu"
printf '\nratio vdctl/haproxy: memory %.2f, cpu %.2f\n' "$(echo "$ctl_rss/$hap_rss" | bc -l)" \
	"$(echo "$ctl_cpu/($hap_cpu + 0.0001)" | bc -l)"
mem_ok=$(echo "$ctl_rss < 10240" | bc)
cpu_ok=$(echo "$ctl_cpu < 1" | bc)
echo "bar: resident < 10 MB: $([ "$mem_ok" = 1 ] && echo met || echo MISSED); CPU < 1% of a core: $([ "$cpu_ok" = 1 ] && echo met || echo MISSED)"
