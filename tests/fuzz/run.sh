#!/usr/bin/env bash
# Build every tests/fuzz/fuzz_*.c with libFuzzer, ASan and UBSan, and run
# each for SECONDS (default 30) on a corpus seeded from the test fixtures and
# the reference manifests. Exits non-zero on any crash, leak or sanitizer
# report; ends with one line per target: "NAME: N runs in S s, no crash".
#
#   tests/fuzz/run.sh [SECONDS]
#
# Crash inputs are left in build/fuzz/ (crash-*, leak-*, timeout-*).
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-30}
out=build/fuzz
CC=${FUZZ_CC:-clang}

# The orchestrator sources each target needs, and what seeds its corpus,
# listed so a new module with engine dependencies does not end up in the
# fuzzers by accident.
declare -A sources seeds libs
sources[fuzz_manifest]="orchestrator/manifest.c orchestrator/ytree.c orchestrator/diag.c orchestrator/file.c orchestrator/units.c orchestrator/error.c orchestrator/log.c"
seeds[fuzz_manifest]="tests/unit/manifests/*.yaml manifests/*.yaml"
sources[fuzz_lb]="orchestrator/lb.c orchestrator/lb_client.c orchestrator/lb_upstream.c orchestrator/ev.c orchestrator/hist.c orchestrator/signals.c orchestrator/net.c orchestrator/error.c orchestrator/log.c"
seeds[fuzz_lb]="tests/fuzz/seeds/http/*"
libs[fuzz_lb]="-lhttp_parser"
flags=(-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-std=c11 -D_GNU_SOURCE -Iinclude)
read -r -a pkg_cflags <<<"$(pkg-config --cflags yaml-0.1 jansson)"
read -r -a pkg_libs <<<"$(pkg-config --libs yaml-0.1 jansson)"

if ! command -v "$CC" >/dev/null; then
	echo "fuzz: $CC not found (install clang and libclang-rt-dev)" >&2
	exit 1
fi
mkdir -p "$out"

status=0
summaries=()
for target_src in tests/fuzz/fuzz_*.c; do
	name=$(basename "$target_src" .c)
	bin=$out/$name
	corpus=$out/corpus-$name
	echo "== building $name"
	read -r -a srcs <<<"${sources[$name]:?no sources listed for $name in $0}"
	read -r -a extra <<<"${libs[$name]:-}"
	"$CC" "${flags[@]}" "${pkg_cflags[@]}" -o "$bin" "$target_src" "${srcs[@]}" \
		"${pkg_libs[@]}" "${extra[@]}" -lm

	# seed (the corpus keeps what the fuzzer found in earlier runs)
	mkdir -p "$corpus"
	for f in ${seeds[$name]}; do
		[ -f "$f" ] && [ "$(stat -c %s "$f")" -le 65536 ] &&
			cp "$f" "$corpus/seed-$(basename "$f")"
	done

	echo "== running $name for ${seconds}s"
	log=$out/$name.log
	start=$(date +%s)
	if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		"$bin" -max_total_time="$seconds" -rss_limit_mb=512 -max_len=65536 \
		-timeout=10 -artifact_prefix="$out/" -print_final_stats=1 \
		"$corpus" >"$log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
		summaries+=("$name: ${runs:-?} runs in $(($(date +%s) - start)) s, no crash")
	else
		tail -n 40 "$log" >&2
		summaries+=("$name: FAILED after $(($(date +%s) - start)) s (see $log)")
		status=1
	fi
done

printf '%s\n' "${summaries[@]}"
exit $status
