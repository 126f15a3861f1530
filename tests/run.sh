#!/usr/bin/env bash
# Run every test binary (unit, then integration), then the fuzz targets for a
# short time, and end with one line: "tests: N passed, M failed".
#
# cmocka prints "[==========] N test(s) run." and "[  PASSED  ] N test(s)."
# per binary; a binary that dies before its summary counts as one failure.
# Options: -u unit tests only; -i integration only; a NAME filters binaries.
set -uo pipefail
cd "$(dirname "$0")/.."

only=""
filter=""
for a in "$@"; do
	case "$a" in
	-u) only=unit ;;
	-i) only=integration ;;
	*) filter=$a ;;
	esac
done

export VD_SVC_BIN=$PWD/build/svc
export VD_VDCTL_BIN=$PWD/build/vdctl
export VD_IMAGES_DIR=$PWD/examples/images
export VD_ROOT=$PWD

passed=0
failed=0
failures=()
logdir=build/test-logs
mkdir -p "$logdir"

run_one() {
	local bin=$1 name log run ok status
	name=$(basename "$bin")
	log=$logdir/$name.log
	printf '== %s\n' "$name"
	# every binary is bounded: a hang is a failure, not a stuck CI
	timeout --kill-after=10 "${VD_TEST_TIMEOUT:-900}" "$bin" >"$log" 2>&1
	status=$?
	grep -E '^\[ *(RUN|OK|FAILED|PASSED|SKIPPED|  ERROR) *\]|^\[=+\]' "$log" |
		grep -vE '^\[ RUN' | sed 's/^/   /'
	run=$(sed -n 's/^\[=*\] \([0-9]*\) test(s) run\./\1/p' "$log" | tail -n 1)
	ok=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' "$log" | tail -n 1)
	if [ -z "$run" ]; then
		failed=$((failed + 1))
		failures+=("$name (exit $status before its summary; see $log)")
		tail -n 20 "$log" | sed 's/^/   | /'
		return
	fi
	ok=${ok:-0}
	passed=$((passed + ok))
	if [ "$ok" -lt "$run" ] || [ "$status" -ne 0 ]; then
		failed=$((failed + (run > ok ? run - ok : 1)))
		failures+=("$name (see $log)")
		grep -vE '^\[' "$log" | tail -n 20 | sed 's/^/   | /'
	fi
}

for kind in unit integration; do
	[ -z "$only" ] || [ "$only" = "$kind" ] || continue
	for bin in build/tests/$kind/test_*; do
		[ -x "$bin" ] || continue
		[ -z "$filter" ] || [[ "$bin" == *"$filter"* ]] || continue
		run_one "$bin"
	done
done

if [ -z "$only" ] && [ -z "$filter" ] && [ -x tests/fuzz/run.sh ]; then
	printf '== fuzz (short run)\n'
	if tests/fuzz/run.sh "${VD_FUZZ_SECONDS:-30}" >"$logdir/fuzz.log" 2>&1; then
		passed=$((passed + 1))
		tail -n 3 "$logdir/fuzz.log" | sed 's/^/   /'
	else
		failed=$((failed + 1))
		failures+=("fuzz (see $logdir/fuzz.log)")
		tail -n 20 "$logdir/fuzz.log" | sed 's/^/   | /'
	fi
fi

for f in "${failures[@]}"; do
	printf 'FAILED: %s\n' "$f"
done
printf 'tests: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
