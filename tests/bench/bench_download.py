#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench_download - `didfs download` against xrdcp, measured in one run.

Starts a real XRootD server on loopback (tests/env/xrdrse.py), puts data on it
in Rucio's deterministic layout, registers it with `didfs add-replicas --walk`
and prints, each against xrdcp of the same replicas in the same run:

  (a) one big file: `didfs download` (catalog look-up, replica choice,
      adler32+md5 on the fly, .part + rename) vs `xrdcp`      aim >= 0.95
  (b) a dataset of many small files: one `didfs download` vs `xrdcp` run
      once per file                                            aim >= 5

Best of BENCH_REPEAT runs, the tools alternating.  Sizes (env):
BENCH_BIG_BYTES (1G), BENCH_SMALL_COUNT (1000), BENCH_SMALL_BYTES (1M),
BENCH_REPEAT (3), BENCH_PARALLEL (16).  Data and downloads go to /dev/shm
when it has room (else /tmp) so the disk does not hide the protocols.
Third-party copy vs `xrdcp --tpc only` is in bench_transfer.py (c).
Must run as root.  Run small: BENCH_BIG_BYTES=64M BENCH_SMALL_COUNT=100 ...
"""
import hashlib
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
sys.path.insert(0, HERE)
from bench_transfer import best_of, size_env  # noqa: E402  (same BENCH_REPEAT)

BUILD = os.environ.get("DIDFS_BUILD", os.path.join(ROOT, "build"))
DIDFS = os.path.join(BUILD, "tools", "didfs")


BIG = size_env("BENCH_BIG_BYTES", "1G")
SMALL_N = int(os.environ.get("BENCH_SMALL_COUNT", "1000"))
SMALL = size_env("BENCH_SMALL_BYTES", "1M")
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
PARALLEL = int(os.environ.get("BENCH_PARALLEL", "16"))


def say(msg):
    print(f"bench_download: {msg}", flush=True)


def run(cmd):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"bench_download: {' '.join(map(str, cmd))} failed ({p.returncode}): "
                         f"{p.stderr[-2000:]}")
    return p


def hash_path(scope, name):
    h = hashlib.md5(f"{scope}:{name}".encode()).hexdigest()
    return f"{scope}/{h[:2]}/{h[2:4]}/{name}"


def place(server, rel, data_fn, nbytes):
    uid, gid = xrdrse.ensure_user()
    local = server.local_path("/rucio/" + rel)
    os.makedirs(os.path.dirname(local), exist_ok=True)
    with open(local, "wb") as f:
        left, i = nbytes, 0
        while left > 0:
            chunk = data_fn(i, min(left, 1 << 20))
            f.write(chunk)
            left -= len(chunk)
            i += 1
    for dirpath, dirs, files in os.walk(server.local_path("/rucio")):
        os.chown(dirpath, uid, gid)
    os.chown(local, uid, gid)
    return local


def room():
    need = 4 * BIG + 3 * SMALL_N * SMALL
    st = os.statvfs("/dev/shm") if os.path.isdir("/dev/shm") else None
    return "/dev/shm" if st and st.f_bavail * st.f_frsize > need else tempfile.gettempdir()


def main():
    if os.geteuid() != 0:
        raise SystemExit("bench_download: must run as root (xrootd -R xrootd)")
    if not os.path.exists(DIDFS):
        raise SystemExit(f"bench_download: {DIDFS} not found: build first (DIDFS_BUILD)")
    xrdcp = shutil.which("xrdcp") or "/usr/bin/xrdcp"
    base = room()
    work = tempfile.mkdtemp(prefix="didfs-bench-dl-", dir=base)
    os.chmod(work, 0o755)
    out = tempfile.mkdtemp(prefix="didfs-bench-dl-out-", dir=base)
    catalog = os.path.join(work, "catalog.db")
    rses = xrdrse.Rses.create(os.path.join(work, "rses"), 1)
    try:
        rses.start()
        srv = rses.servers[0]
        rses.register(catalog, DIDFS)
        didfs = [DIDFS, "--catalog", catalog]
        run(didfs + ["add-scope", "bench"])
        block = os.urandom(1 << 20)
        say(f"server {srv.name} :{srv.port}, data in {work}, best of {REPEAT}")

        # (a) one big file ----------------------------------------------------
        big_rel = hash_path("bench", "big.dat")
        place(srv, big_rel, lambda i, n: bytes([i & 0xff]) + block[1:n], BIG)
        run(didfs + ["add-replicas", "--rse", srv.name, "--walk", srv.local_path("/rucio"),
                     "--scope", "bench"])
        pfn = srv.root_url("/rucio/" + big_rel)
        dst_dir = os.path.join(out, "a")
        dst = os.path.join(dst_dir, "big.dat")

        def dl_big():
            shutil.rmtree(dst_dir, ignore_errors=True)
            t = time.perf_counter()
            run(didfs + ["download", "bench:big.dat", "--dir", dst_dir, "--no-subdir"])
            return time.perf_counter() - t

        def xrdcp_big():
            shutil.rmtree(dst_dir, ignore_errors=True)
            os.makedirs(dst_dir)
            t = time.perf_counter()
            run([xrdcp, "-f", "-s", pfn, dst])
            return time.perf_counter() - t

        t = best_of({"didfs": dl_big, "xrdcp": xrdcp_big})
        a, x = BIG / 1e6 / t["didfs"], BIG / 1e6 / t["xrdcp"]
        say(f"(a) one {BIG >> 20} MiB file: didfs download {a:.1f} MB/s (verified adler32+md5), "
            f"xrdcp {x:.1f} MB/s, ratio {a / x:.2f} (aim >= 0.95)")
        shutil.rmtree(dst_dir, ignore_errors=True)
        os.unlink(srv.local_path("/rucio/" + big_rel))

        # (b) a dataset of many small files -------------------------------------
        names = [f"small/f{i:05d}.dat" for i in range(SMALL_N)]
        uid, gid = xrdrse.ensure_user()
        for i, n in enumerate(names):
            local = srv.local_path("/rucio/" + hash_path("bench", n))
            os.makedirs(os.path.dirname(local), exist_ok=True)
            with open(local, "wb") as f:
                f.write(i.to_bytes(4, "little") + block[4:SMALL])
        for dirpath, dirs, files in os.walk(srv.local_path("/rucio")):
            os.chown(dirpath, uid, gid)
            for fn in files:
                os.chown(os.path.join(dirpath, fn), uid, gid)
        run(didfs + ["add-dataset", "bench:small"])
        t0 = time.perf_counter()
        run(didfs + ["add-replicas", "--rse", srv.name, "--walk", srv.local_path("/rucio"),
                     "--scope", "bench", "--dataset", "bench:small"])
        say(f"registered {SMALL_N} files by walking the storage in {time.perf_counter() - t0:.2f} s")
        pfns = [srv.root_url("/rucio/" + hash_path("bench", n)) for n in names]
        small_dir = os.path.join(out, "b")

        def dl_small():
            shutil.rmtree(small_dir, ignore_errors=True)
            t = time.perf_counter()
            run(didfs + ["download", "bench:small", "--dir", small_dir, "--parallel", PARALLEL])
            return time.perf_counter() - t

        def xrdcp_each():
            shutil.rmtree(small_dir, ignore_errors=True)
            os.makedirs(small_dir)
            t = time.perf_counter()
            for i, p in enumerate(pfns):
                run([xrdcp, "-f", "-s", p, os.path.join(small_dir, f"f{i:05d}.dat")])
            return time.perf_counter() - t

        t = best_of({"didfs": dl_small, "xrdcp": xrdcp_each})
        say(f"(b) {SMALL_N} files of {SMALL >> 10} KiB: one didfs download {SMALL_N / t['didfs']:.1f} "
            f"files/s, xrdcp per file {SMALL_N / t['xrdcp']:.1f} files/s, "
            f"ratio {t['xrdcp'] / t['didfs']:.2f}x (aim >= 5)")
    finally:
        rses.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
