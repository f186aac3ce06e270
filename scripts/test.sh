#!/bin/bash
# Set up everything on a fresh Debian 12 machine and run every test:
# C unit tests (meson test) and pytest integration tests against real
# XRootD servers, FUSE mounts and SQLite files, all on the ASan/UBSan build,
# plus a short libFuzzer run of each fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
B=${DIDFS_TEST_BUILD:-build-asan}
if [ ! -d "$B" ]; then
	meson setup "$B" -Dfuse=enabled -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debug >/dev/null
fi
ninja -C "$B"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
meson test -C "$B" --print-errorlogs
scripts/fuzz.sh "${DIDFS_FUZZ_SECONDS:-20}"
# The integration tests run the binaries many times; leak reports of
# third-party libraries at exit would only add noise there.
export ASAN_OPTIONS=detect_leaks=0
DIDFS_BUILD=$PWD/$B /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration
