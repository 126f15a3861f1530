#!/usr/bin/env bash
# Run every test binary (unit, then integration), then the fuzz targets for a
# short time, and end with one line: "tests: N passed, M failed".
#
# cmocka prints "[==========] N test(s) run." and "[  PASSED  ] N test(s)."
# per binary; a binary that dies before its summary counts as one failure.
# Options: -u unit tests only; -i integration only; -b DIR the build
# directory (default build; `make check` uses build-san); a NAME filters
# binaries. Logs go to DIR/test-logs/.
#
# A sanitizer report fails the binary, even when every test in it passed:
# ASan and LSan write theirs, for the binary and anything it runs, to
# DIR/test-logs/NAME.san.PID (appended to the log); UBSan, which ignores
# log_path next to ASan, writes to stderr (the log, or the output a test
# collects from a program it runs) and exits 86.
set -uo pipefail
cd "$(dirname "$0")/.."

only=""
filter=""
bdir=build
while [ $# -gt 0 ]; do
	case "$1" in
	-u) only=unit ;;
	-i) only=integration ;;
	-b)
		[ $# -ge 2 ] || { echo "run.sh: -b needs a directory" >&2; exit 2; }
		bdir=${2%/}
		shift
		;;
	*) filter=$1 ;;
	esac
	shift
done

case $bdir in
/*) broot=$bdir ;;
*) broot=$PWD/$bdir ;;
esac
export VD_SVC_BIN=$broot/svc
export VD_VDCTL_BIN=$broot/vdctl
export VD_IMAGES_DIR=$PWD/examples/images
export VD_ROOT=$PWD

# for the test binaries and what they run (only sanitized ones read them):
# halt at the first report
asan_options=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1}
ubsan_options=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:exitcode=86}
# how reports begin: ASan and LSan ("==PID==ERROR: ...Sanitizer"), UBSan
san_re='^==[0-9]+==ERROR: [A-Za-z]+Sanitizer|: runtime error: '

passed=0
failed=0
failures=()
logdir=$bdir/test-logs
mkdir -p "$logdir"

run_one() {
	local bin=$1 name log run ok status
	name=$(basename "$bin")
	log=$logdir/$name.log
	printf '== %s\n' "$name"
	rm -f "$logdir/$name".san.*
	# every binary is bounded: a hang is a failure, not a stuck CI
	ASAN_OPTIONS=$asan_options:log_path=$broot/test-logs/$name.san \
		UBSAN_OPTIONS=$ubsan_options \
		timeout --kill-after=10 "${VD_TEST_TIMEOUT:-900}" "$bin" >"$log" 2>&1
	status=$?
	grep -E '^\[ *(RUN|OK|FAILED|PASSED|SKIPPED|  ERROR) *\]|^\[=+\]' "$log" |
		grep -vE '^\[ RUN' | sed 's/^/   /'
	# a sanitizer report fails the binary whatever its tests said
	if compgen -G "$logdir/$name.san.*" >/dev/null ||
		grep -qE "$san_re" "$log"; then
		cat "$logdir/$name".san.* >>"$log" 2>/dev/null
		failed=$((failed + 1))
		failures+=("$name (sanitizer report; see $log)")
		grep -E -A 30 "$san_re" "$log" | head -n 40 | sed 's/^/   | /'
		return
	fi
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
	for bin in "$bdir"/tests/$kind/test_*; do
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
