#!/usr/bin/env bash
# make run: the main job. `make run` has already set up the machine and built
# vdctl; this checks the quickstart manifest and applies it.
set -euo pipefail
cd "$(dirname "$0")/.."

manifest=examples/quickstart.yaml
vdctl=build/vdctl

if ! "$vdctl" help 2>/dev/null | grep -q '^ *apply '; then
	"$vdctl" --version
	if "$vdctl" help 2>/dev/null | grep -q '^ *validate '; then
		"$vdctl" validate "$manifest"
	fi
	cat <<MSG
run: vdctl is built and the machine is ready (dockerd, libvirtd, the example
run: images). 'vdctl apply' does not exist yet, so nothing was started; the
run: example image can be tried by hand:
run:   docker run --rm -p 127.0.0.1:8080:8080 vdctl/example-svc:latest
MSG
	exit 0
fi

"$vdctl" apply "$manifest"
echo "run: the service answers at http://127.0.0.1:8000/ (try /info)"
