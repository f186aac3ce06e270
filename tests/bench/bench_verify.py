#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench_verify - the cost of per-block verification on cold reads through
`didfs mount`, measured against the same reads without it in the same run.

Starts a real XRootD server on loopback (tests/env/xrdrse.py), uploads a
BENCH_BIG_BYTES file with `didfs upload` (which records its per-block
checksum manifest), then, BENCH_REPEAT times, alternating: a fresh mount with
an empty block cache reads the whole file sequentially (a) with every fetched
block checked against the manifest (the default) and (b) with
DIDFS_NO_VERIFY=1 in the mount's environment (benchmarks only: no per-block
checks).  Prints both rates (best of the runs) and the ratio (aim >= 0.95).

Sizes (env): BENCH_BIG_BYTES (1G), BENCH_REPEAT (3); BENCH_DEST for the
block cache (default /tmp).  Must run as root.

Run small:  BENCH_BIG_BYTES=256M tests/bench/bench_verify.py
"""
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_mount as bm  # noqa: E402

NAME = "bench_verify"


def say(msg):
    print(f"{NAME}: {msg}", flush=True)


def cold_read(lake, verify):
    if verify:
        os.environ.pop("DIDFS_NO_VERIFY", None)
    else:
        os.environ["DIDFS_NO_VERIFY"] = "1"
    try:
        m = lake.mount()
    finally:
        os.environ.pop("DIDFS_NO_VERIFY", None)
    try:
        p = os.path.join(m.path, "user.root", "bench", "big.bin")
        os.stat(p)
        t = bm.timed(lambda: bm.read_all(p))
        st = m.stats()
        log = open(os.path.join(m.cache_dir, "bench-mount.log")).read()
    finally:
        m.stop()
        shutil.rmtree(os.path.dirname(m.path), ignore_errors=True)
    if st.get("checksum_failures", 0):
        raise SystemExit(f"{NAME}: checksum failures during the benchmark")
    if verify == ("DIDFS_NO_VERIFY=1" in log):
        raise SystemExit(f"{NAME}: the mount did not run in the mode asked for")
    return t


def main():
    if os.geteuid() != 0:
        raise SystemExit(f"{NAME}: must run as root (xrootd -R xrootd, FUSE)")
    if not os.path.exists(bm.DIDFS):
        raise SystemExit(f"{NAME}: {bm.DIDFS} not found: build first (DIDFS_BUILD)")
    work = tempfile.mkdtemp(prefix="didfs-bench-verify-", dir=bm.shm_or_tmp(3 * bm.BIG))
    os.chmod(work, 0o755)
    src = os.path.join(work, "src")
    os.makedirs(src)
    lake = bm.Lake(work)
    try:
        lake.start()
        f = bm.make_file(os.path.join(src, "big.bin"), bm.BIG)
        lake.upload(f)
        os.unlink(f)
        best = {True: 1e9, False: 1e9}
        for _ in range(bm.REPEAT):
            for verify in (True, False):
                best[verify] = min(best[verify], cold_read(lake, verify))
        on, off = (bm.BIG / best[k] / 1e6 for k in (True, False))
        say(f"cold sequential read of {bm.BIG >> 20} MiB over root:// through a fresh mount, "
            f"best of {bm.REPEAT}: verified against the manifest {on:.0f} MB/s, without "
            f"per-block verification {off:.0f} MB/s, ratio {on / off:.2f} (aim >= 0.95)")
    finally:
        lake.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
