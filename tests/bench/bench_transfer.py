#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench_transfer - the transfer layer against xrdcp, measured in one run.

Starts two real XRootD servers on loopback (tests/env/xrdrse.py) and prints,
for each figure, didfs-xfer's rate, xrdcp's rate and their ratio:

  (a) one big file read over root:// : `didfs-xfer get` (which also computes
      adler32 and md5 on the fly) vs `xrdcp`                  aim >= 0.95
  (b) many small files: one `didfs-xfer getmany` vs `xrdcp` run once per
      file (what a script or a per-file client does)          aim >= 5
  (c) third-party copy of the big file between the two servers:
      `didfs-xfer tpc` (which then compares both servers' adler32) vs
      `xrdcp --tpc only` (no verification), and vs
      `xrdcp --tpc only --cksum adler32` (XrdCl's end-to-end verification)

Each measurement is the best of BENCH_REPEAT runs, the two tools alternating.
Sizes (env): BENCH_BIG_BYTES (default 1G), BENCH_SMALL_COUNT (1000),
BENCH_SMALL_BYTES (1M), BENCH_REPEAT (3), BENCH_PARALLEL (getmany, 16),
BENCH_WORK (the servers' data) and BENCH_DEST (downloaded files): both
default to /dev/shm when it has room, else /tmp, so that a slow disk does
not hide the protocols.  The binary is $DIDFS_BUILD/transfer/didfs-xfer.
Must run as root (the servers run as the xrootd user).

Run small:  BENCH_BIG_BYTES=64M BENCH_SMALL_COUNT=100 tests/bench/bench_transfer.py
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "env"))
import xrdrse  # noqa: E402

BUILD = os.environ.get("DIDFS_BUILD", os.path.join(ROOT, "build"))
XFER = os.path.join(BUILD, "transfer", "didfs-xfer")


def size_env(name, default):
    v = os.environ.get(name, default).strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(v[-1:], 1)
    return int(v[:-1] if v[-1:] in "KMG" else v) * mult


BIG = size_env("BENCH_BIG_BYTES", "1G")
SMALL_N = int(os.environ.get("BENCH_SMALL_COUNT", "1000"))
SMALL = size_env("BENCH_SMALL_BYTES", "1M")
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
PARALLEL = int(os.environ.get("BENCH_PARALLEL", "16"))


def say(msg):
    print(f"bench_transfer: {msg}", flush=True)


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, **kw)
    if p.returncode != 0:
        raise SystemExit(f"bench_transfer: {' '.join(cmd)} failed ({p.returncode}): "
                         f"{p.stderr.decode(errors='replace')[-2000:]}")
    return p


def timed(cmd, before=None):
    if before:
        before()
    t = time.perf_counter()
    run(cmd)
    return time.perf_counter() - t


def best_of(fns):
    """fns: {label: callable returning seconds}; alternate, keep the best."""
    best = {k: float("inf") for k in fns}
    for _ in range(REPEAT):
        for k, fn in fns.items():
            best[k] = min(best[k], fn())
    return best


def mbs(nbytes, secs):
    return nbytes / 1e6 / secs


def place_random(server, path, nbytes):
    uid, gid = xrdrse.ensure_user()
    local = server.local_path(path)
    os.makedirs(os.path.dirname(local), exist_ok=True)
    d = os.path.dirname(local)
    while d != server.data_dir:
        os.chown(d, uid, gid)
        d = os.path.dirname(d)
    with open(local, "wb") as f:
        left = nbytes
        block = os.urandom(1 << 20)
        i = 0
        while left > 0:
            n = min(left, len(block))
            # vary the blocks cheaply so the file is not one repeated MiB
            f.write(bytes([i & 0xff]) + block[1:n] if n > 1 else block[:n])
            left -= n
            i += 1
    os.chown(local, uid, gid)
    return local


def warm(path):
    with open(path, "rb") as f:
        while f.read(8 << 20):
            pass


def shm_or_tmp():
    """/dev/shm when it holds everything (source, copy, downloads) with room
    to spare, so that the figures measure the protocols, not the disk."""
    need = 6 * BIG + 3 * SMALL_N * SMALL
    st = os.statvfs("/dev/shm") if os.path.isdir("/dev/shm") else None
    room = st.f_bavail * st.f_frsize if st else 0
    return "/dev/shm" if room > need else tempfile.gettempdir()


def dest_dir():
    d = os.environ.get("BENCH_DEST") or shm_or_tmp()
    return tempfile.mkdtemp(prefix="didfs-bench-", dir=d)


def rm(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def main():
    if os.geteuid() != 0:
        raise SystemExit("bench_transfer: must run as root (xrootd -R xrootd)")
    if not os.path.exists(XFER):
        raise SystemExit(f"bench_transfer: {XFER} not found: build first (DIDFS_BUILD)")
    xrdcp = shutil.which("xrdcp") or "/usr/bin/xrdcp"
    work = tempfile.mkdtemp(prefix="didfs-bench-rses-",
                            dir=os.environ.get("BENCH_WORK") or shm_or_tmp())
    os.chmod(work, 0o755)
    out = dest_dir()
    rses = xrdrse.Rses.create(work, 2)
    try:
        rses.start()
        s1, s2 = rses.servers
        say(f"servers {s1.name} :{s1.port}, {s2.name} :{s2.port} with data in {work}; "
            f"downloads into {out}; best of {REPEAT}")

        # (a) one big file --------------------------------------------------
        big = place_random(s1, "/rucio/bench/big", BIG)
        warm(big)
        src = s1.root_url("/rucio/bench/big")
        dst = os.path.join(out, "big")
        t = best_of({
            "didfs": lambda: timed([XFER, "-q", "get", src, dst], lambda: rm(dst)),
            "didfs_nomd5": lambda: timed([XFER, "-q", "--no-md5", "get", src, dst],
                                         lambda: rm(dst)),
            "xrdcp": lambda: timed([xrdcp, "-f", "-s", src, dst], lambda: rm(dst)),
        })
        rm(dst)
        a, a2, x = mbs(BIG, t["didfs"]), mbs(BIG, t["didfs_nomd5"]), mbs(BIG, t["xrdcp"])
        say(f"(a) one {BIG >> 20} MiB file over root://: didfs-xfer get {a:.1f} MB/s "
            f"(adler32+md5 on the fly; {a2:.1f} MB/s adler32 only), xrdcp {x:.1f} MB/s, "
            f"ratio {a / x:.2f} (aim >= 0.95)")

        # (b) many small files ------------------------------------------------
        uid, gid = xrdrse.ensure_user()
        names = [f"/rucio/bench/small/{i // 100:03d}/f{i:05d}" for i in range(SMALL_N)]
        block = os.urandom(SMALL)
        for i, n in enumerate(names):
            local = s1.local_path(n)
            os.makedirs(os.path.dirname(local), exist_ok=True)
            with open(local, "wb") as f:
                f.write(i.to_bytes(4, "little") + block[4:])
            os.chown(local, uid, gid)
            os.chown(os.path.dirname(local), uid, gid)
        os.chown(s1.local_path("/rucio/bench/small"), uid, gid)
        smalldir = os.path.join(out, "small")
        os.makedirs(smalldir, exist_ok=True)
        lst = os.path.join(work, "getmany.list")
        with open(lst, "w") as f:
            for i, n in enumerate(names):
                f.write(f"{s1.root_url(n)} {smalldir}/f{i:05d}\n")

        def clean_small():
            for e in os.listdir(smalldir):
                os.unlink(os.path.join(smalldir, e))

        def xrdcp_each():
            clean_small()
            t0 = time.perf_counter()
            for i, n in enumerate(names):
                run([xrdcp, "-f", "-s", s1.root_url(n), f"{smalldir}/f{i:05d}"])
            return time.perf_counter() - t0

        t = best_of({
            "didfs": lambda: timed([XFER, "-q", "--parallel", str(PARALLEL), "getmany", lst],
                                   clean_small),
            "xrdcp": xrdcp_each,
        })
        clean_small()
        total = SMALL_N * SMALL
        say(f"(b) {SMALL_N} files of {SMALL >> 10} KiB over root://: didfs-xfer getmany "
            f"(--parallel {PARALLEL}) {t['didfs']:.2f} s ({SMALL_N / t['didfs']:.0f} files/s, "
            f"{mbs(total, t['didfs']):.1f} MB/s), xrdcp per file {t['xrdcp']:.2f} s "
            f"({SMALL_N / t['xrdcp']:.0f} files/s), ratio {t['xrdcp'] / t['didfs']:.1f}x "
            f"(aim >= 5)")

        # (c) third-party copy ---------------------------------------------------
        tdst = s2.root_url("/rucio/bench/tpc/big")
        tlocal = s2.local_path("/rucio/bench/tpc/big")
        t = best_of({
            "didfs": lambda: timed([XFER, "tpc", src, tdst], lambda: rm(tlocal)),
            "xrdcp": lambda: timed([xrdcp, "-f", "-s", "--tpc", "only", src, tdst],
                                   lambda: rm(tlocal)),
            "xrdcp_cksum": lambda: timed([xrdcp, "-f", "-s", "--tpc", "only", "--cksum",
                                          "adler32", src, tdst], lambda: rm(tlocal)),
        })
        d, x, xc = (mbs(BIG, t[k]) for k in ("didfs", "xrdcp", "xrdcp_cksum"))
        say(f"(c) third-party copy of {BIG >> 20} MiB root->root: didfs-xfer tpc {d:.1f} MB/s "
            f"({t['didfs']:.2f} s, adler32 verified), xrdcp --tpc only {x:.1f} MB/s "
            f"({t['xrdcp']:.2f} s), ratio {d / x:.2f}; xrdcp --tpc only --cksum adler32 "
            f"{xc:.1f} MB/s ({t['xrdcp_cksum']:.2f} s), ratio {d / xc:.2f}")
    finally:
        rses.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
