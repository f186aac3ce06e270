#!/bin/bash
# Set up everything on a fresh Debian 12 machine and run every test:
# C unit tests (meson test; the catalog's also on PostgreSQL) and the pytest
# integration suite against real XRootD servers and FUSE mounts, once on
# SQLite catalog files and once on PostgreSQL (DIDFS_TEST_STORE=postgresql:
# a throwaway PostgreSQL 15 cluster per test process), all on the ASan/UBSan
# build, plus a short libFuzzer run of each fuzz target.  Each pass runs in
# $DIDFS_TEST_JOBS processes (pytest-xdist, default 2), a test file's tests
# together and in order in one of them (--dist loadfile), as in one process.
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
JOBS=${DIDFS_TEST_JOBS:-2}
rc=0
for store in ${DIDFS_TEST_STORES:-sqlite postgresql}; do
	echo "== integration tests on $store =="
	DIDFS_TEST_STORE=$store DIDFS_BUILD=$PWD/$B /usr/bin/python3 -m pytest -q \
		-p no:cacheprovider -n "$JOBS" --dist loadfile tests/integration || rc=1
done
exit $rc
