#!/bin/bash
# Build the libFuzzer targets with clang and run each for N seconds (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
B=build-fuzz
if [ ! -d "$B" ]; then
	CC=clang CXX=clang++ meson setup "$B" -Dfuzz=true -Dfuse=disabled --buildtype=debug >/dev/null
fi
targets=$(cd tests/fuzz && ls fuzz_*.c 2>/dev/null | sed 's/\.c$//')
for t in $targets; do
	ninja -C "$B" "tests/fuzz/$t" >/dev/null
	corpus=tests/fuzz/corpus_${t#fuzz_}
	work=$(mktemp -d)
	cp -r "$corpus"/. "$work"/ 2>/dev/null || true
	echo "fuzzing $t for ${secs}s"
	"$B/tests/fuzz/$t" -max_total_time="$secs" -print_final_stats=1 "$work" 2>&1 | grep -E "stat::number_of_executed_units|ERROR|SUMMARY" || true
	rm -rf "$work"
	# libFuzzer exits non-zero and writes crash-, leak-, timeout- or oom- files
	# (memory over -rss_limit_mb) when it finds a bug
	if ls crash-* leak-* timeout-* oom-* >/dev/null 2>&1; then
		echo "fuzzer $t found a failure:"; ls crash-* leak-* timeout-* oom-* 2>/dev/null; exit 1
	fi
done
