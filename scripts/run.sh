#!/usr/bin/env bash
# make run: the main job. `make run` has already set up the machine and built
# vdctl; this applies the quickstart manifest and says where it answers.
set -euo pipefail
cd "$(dirname "$0")/.."

manifest=examples/quickstart.yaml
vdctl=build/vdctl

# the controller heals the replicas and serves the manifest's balancer
if ! "$vdctl" status >/dev/null 2>&1; then
	"$vdctl" controller --daemon
fi
"$vdctl" apply "$manifest"
for _ in $(seq 50); do
	curl -fsS --max-time 2 http://127.0.0.1:8000/ping >/dev/null 2>&1 && break
	sleep 0.2
done
echo
"$vdctl" status quickstart
echo
echo "run: the balancer: http://127.0.0.1:8000/ping"
echo "run: the replicas answering /ping:"
"$vdctl" get -o json quickstart |
	sed -n 's/.*"port": \([0-9]*\).*/\1/p' |
	while read -r port; do
		if curl -fsS --max-time 2 "http://127.0.0.1:$port/ping" >/dev/null; then
			echo "run:   http://127.0.0.1:$port/ping"
		fi
	done
echo "run: try /info on each; 'vdctl top' watches them; 'vdctl delete $manifest' removes them"
