#!/usr/bin/env bash
# The apply bench: N Docker replicas of the example image (default 20), from
# none to every one answering, with `vdctl apply` and with the tools people
# use instead, in one run on this machine:
#
#   raw      the Engine API floor: create+start, 8 calls at once, then /ping
#   compose  docker-compose up -d --scale web=N, then /ping of every replica
#   swarm    docker service create --replicas N, until converged (swarm
#            publishes through its ingress on every address, so its replicas
#            are not pinged: this bench aims only at 127.0.0.1)
#
# Each is run RUNS times (default 3; swarm once) and the median is kept.
# Also: a no-op `vdctl apply` of the N replicas. Prints the times and
# vdctl's ratios. The bar: vdctl <= 1.15 x raw, vdctl < compose, no-op < 100 ms.
#
# Then what observing costs as a service grows (NOOP_ONLY=1: only this): for each size in NOOP_SIZES
# (default "10 100 1000"), the replicas are made once and a no-op `vdctl
# apply` and a `vdctl get` are timed (median of 5), with the Docker API
# connections each made (counted with strace when it is installed). With
# BASELINE=path/to/another/vdctl, that binary is timed on the same replicas
# in the same run (e.g. a build of the previous commit). The bar: a no-op
# apply of 100 replicas under 100 ms.
set -euo pipefail
cd "$(dirname "$0")/../.."

N=${N:-20}
RUNS=${RUNS:-3}
IMAGE=vdctl/example-svc:latest
VDCTL=$PWD/build/vdctl
work=$(mktemp -d /tmp/vdctl-bench-apply.XXXXXX)
export VDCTL_STATE_DIR=$work/state
svc=bench-apply

cleanup() {
	"$VDCTL" delete "$svc" >/dev/null 2>&1 || true
	"$work/raw_apply" down bench-raw "$N" >/dev/null 2>&1 || true
	(cd "$work" && docker-compose -p vdbench down -t 1 >/dev/null 2>&1) || true
	docker service rm vdbench >/dev/null 2>&1 || true
	[ -n "${swarm_made:-}" ] && docker swarm leave --force >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

gcc -std=c11 -D_GNU_SOURCE -O2 -o "$work/raw_apply" tests/bench/raw_apply.c -lcurl -ljansson -lpthread
# 2 cpus on these machines: 0.05 cpu each keeps 20 replicas within capacity
cat >"$work/bench.yaml" <<YAML
service: $svc
backend: docker
image: $IMAGE
command: ["/svc", "--model", "sync", "--workers", "2"]
replicas: $N
resources: {cpus: 0.05, memory: 32Mi}
health: {http: /ping}
YAML
cat >"$work/docker-compose.yml" <<YAML
version: "2.4"
services:
  web:
    image: $IMAGE
    command: ["/svc", "--model", "sync", "--workers", "2"]
    mem_limit: 32m
    memswap_limit: 32m
    cpus: 0.05
    ports: ["127.0.0.1::8080"]
YAML

now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc -l; }
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

vdctl_times=() noop_times=() raw_times=() compose_times=()
[ -n "${NOOP_ONLY:-}" ] && RUNS=0
for run in $(seq "$RUNS"); do
	printf 'bench: run %d of %d\n' "$run" "$RUNS" >&2
	t=$(now)
	"$VDCTL" apply "$work/bench.yaml" >/dev/null
	vdctl_times+=("$(elapsed "$t")")
	t=$(now)
	"$VDCTL" apply "$work/bench.yaml" | grep -q "nothing to change"
	noop_times+=("$(elapsed "$t")")
	"$VDCTL" delete "$svc" >/dev/null

	raw_times+=("$("$work/raw_apply" up bench-raw "$IMAGE" "$N")")
	"$work/raw_apply" down bench-raw "$N"

	t=$(now)
	(cd "$work" && docker-compose -p vdbench up -d --scale web="$N" >/dev/null 2>&1)
	ports=$(docker ps --filter label=com.docker.compose.project=vdbench \
		--format '{{.Ports}}' | sed -n 's/.*127\.0\.0\.1:\([0-9]*\)->.*/\1/p')
	"$work/raw_apply" wait $ports >/dev/null
	compose_times+=("$(elapsed "$t")")
	(cd "$work" && docker-compose -p vdbench down -t 1 >/dev/null 2>&1)
done

if [ "$RUNS" -gt 0 ]; then
	printf 'bench: swarm\n' >&2
	if ! docker info --format '{{.Swarm.LocalNodeState}}' | grep -qx active; then
		docker swarm init --advertise-addr 127.0.0.1 >/dev/null
		swarm_made=1
	fi
	t=$(now)
	docker service create --name vdbench --replicas "$N" --limit-cpu 0.05 --limit-memory 32m \
		--detach=false --quiet "$IMAGE" /svc --model sync --workers 2 >/dev/null
	swarm=$(elapsed "$t")

	vd=$(printf '%s\n' "${vdctl_times[@]}" | median)
	noop=$(printf '%s\n' "${noop_times[@]}" | median)
	raw=$(printf '%s\n' "${raw_times[@]}" | median)
	compose=$(printf '%s\n' "${compose_times[@]}" | median)
	printf '\n%d replicas from none to all answering, median of %d runs (swarm: 1 run)\n' "$N" "$RUNS"
	printf '  %-28s %8.2f s\n' "vdctl apply" "$vd" "raw Engine API (8 parallel)" "$raw" \
		"docker-compose up --scale" "$compose" "docker service create (swarm)" "$swarm"
	printf '  %-28s %8.0f ms\n' "vdctl apply, no change" "$(echo "$noop * 1000" | bc -l)"
	printf '\nratios: vdctl/raw %.2f (bar <= 1.15), vdctl/compose %.2f (bar < 1), vdctl/swarm %.2f\n' \
		"$(echo "$vd / $raw" | bc -l)" "$(echo "$vd / $compose" | bc -l)" "$(echo "$vd / $swarm" | bc -l)"
fi

# --------------------------------------------------- the cost of observing
docker service rm vdbench >/dev/null 2>&1 || true
NOOP_SIZES=${NOOP_SIZES:-10 100 1000}
# one connect() per Docker API call: count them when strace is here
calls() {
	if command -v strace >/dev/null; then
		strace -f -qq -e trace=connect -o "$work/strace" "$@" >/dev/null 2>&1 || true
		grep -c 'docker.sock' "$work/strace" || true
	else
		echo "-"
	fi
}
timed5() {
	local ts=() t
	for _ in 1 2 3 4 5; do
		t=$(now)
		"$@" >/dev/null 2>&1 || true
		ts+=("$(elapsed "$t")")
	done
	printf '%s\n' "${ts[@]}" | median
}
printf '\nobserving: no-op apply and get, median of 5 (ms), Docker API connections\n'
printf '(--no-wait: the apply without its health pass over the replicas it keeps)\n'
printf '  %-16s %-24s %-12s %-24s\n' "replicas" "apply (no change)" "--no-wait" "get"
for n in $NOOP_SIZES; do
	printf 'bench: %d replicas\n' "$n" >&2
	# 8 MiB and a hundredth of a cpu each (the least an engine enforces):
	# a thousand idle replicas ask for 10 cpus, so they are overcommitted
	sed -e "s/^replicas: .*/replicas: $n/" -e 's/^resources: .*/resources: {cpus: 0.01, memory: 8Mi}/' \
		"$work/bench.yaml" >"$work/noop.yaml"
	"$VDCTL" apply --overcommit --timeout 10m "$work/noop.yaml" >/dev/null
	for bin in "$VDCTL" ${BASELINE:-}; do
		a=$(timed5 "$bin" apply "$work/noop.yaml")
		nw=$(timed5 "$bin" apply --no-wait "$work/noop.yaml")
		g=$(timed5 "$bin" get)
		ac=$(calls "$bin" apply "$work/noop.yaml")
		gc=$(calls "$bin" get)
		label=$n
		[ "$bin" = "$VDCTL" ] || label="$n (baseline)"
		printf '  %-16s %7.0f ms, %5s calls %7.0f ms  %7.0f ms, %5s calls\n' "$label" \
			"$(echo "$a * 1000" | bc -l)" "$ac" "$(echo "$nw * 1000" | bc -l)" \
			"$(echo "$g * 1000" | bc -l)" "$gc"
	done
	"$VDCTL" delete "$svc" >/dev/null
done
