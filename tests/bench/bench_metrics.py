#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench_metrics - what the metrics cost on the hot paths, each figure
with metrics on against metrics off in the same run (aim >= 0.97):

  (a) warm sequential reads through `didfs mount` (bench_mount's part a: a
      file in the kernel's page cache read again), with and without
      --metrics
  (b) the same file read with O_DIRECT from the mount's block cache: every
      read a FUSE round trip through the timed read path
  (c) `didfs serve` GET /ping with 32 keep-alive clients (wrk, https), the
      default (metrics recorded, /metrics for loopback) against
      --metrics-allow off (nothing recorded)

Rounds alternate on/off, in turns first (BENCH_ROUNDS, 3), and the best of each counts, so a
neighbour's load hits both alike.  Sizes: BENCH_WARM_BYTES (256M),
BENCH_SECONDS (wrk, 5).  BENCH_ONLY=mount or serve runs one half.  Must run as root (XRootD, FUSE).
"""
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "env"))
sys.path.insert(0, HERE)
os.environ.setdefault("BENCH_WARM_BYTES", "256M")
import bench_mount as bm  # noqa: E402
import bench_serve as bs  # noqa: E402
import servefixture  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
ONLY = set(os.environ.get("BENCH_ONLY", "mount,serve").split(","))


def say(msg):
    print(f"bench_metrics: {msg}", flush=True)


def mount_parts(lake, src):
    f = bm.make_file(os.path.join(src, "warm.bin"), bm.WARM)
    lake.upload(f)
    mounts = {"off": lake.mount(), "on": lake.mount(["--metrics", f"127.0.0.1:{servefixture.free_port()}"])}
    warm = {"on": 1e9, "off": 1e9}
    direct = {"on": 1e9, "off": 1e9}
    try:
        paths = {k: os.path.join(m.path, "user.root", "bench", "warm.bin") for k, m in mounts.items()}
        for p in paths.values():
            bm.read_all(p)
            bm.read_all(p)
        for i in range(ROUNDS):
            for k in (("off", "on") if i % 2 == 0 else ("on", "off")):
                warm[k] = min(warm[k], bm.timed(lambda: bm.read_all(paths[k])))
                direct[k] = min(direct[k], bm.timed(lambda: bm.read_all(paths[k], 1 << 17,
                                                                       os.O_DIRECT)))
    finally:
        for m in mounts.values():
            m.stop()
    gb = {k: bm.WARM / v / 1e9 for k, v in warm.items()}
    say(f"(a) warm sequential read of {bm.WARM >> 20} MiB: metrics on {gb['on']:.2f} GB/s, "
        f"off {gb['off']:.2f} GB/s, ratio {gb['on'] / gb['off']:.3f} (aim >= 0.97)")
    gb = {k: bm.WARM / v / 1e9 for k, v in direct.items()}
    say(f"(b) O_DIRECT 128 KiB reads from the block cache: metrics on {gb['on']:.2f} GB/s, "
        f"off {gb['off']:.2f} GB/s, ratio {gb['on'] / gb['off']:.3f} (aim >= 0.97)")


def serve_part(tmp):
    os.makedirs(os.path.join(tmp, "pki"))
    pki = servefixture.make_pki(os.path.join(tmp, "pki"))
    srv = {}
    try:
        for k, extra in (("on", ()), ("off", ("--metrics-allow", "off"))):
            d = os.path.join(tmp, f"serve-{k}")
            os.makedirs(d)
            srv[k] = servefixture.Served(d, pki, extra_args=["--access-log", "off", *extra])
        best = {"on": 0.0, "off": 0.0}
        for i in range(ROUNDS):
            for k in (("off", "on") if i % 2 == 0 else ("on", "off")):
                rps, bad = bs.wrk(srv[k].url + "/ping")
                if bad:
                    raise SystemExit(f"bench_metrics: {bad} non-2xx answers to /ping ({k})")
                best[k] = max(best[k], rps)
        r = srv["on"].get("/metrics", token=False)
        assert r.status_code == 200 and 'family="ping"' in r.text, r.text[:500]
    finally:
        for s in srv.values():
            s.stop()
    say(f"(c) serve GET /ping: metrics on {best['on']:,.0f} req/s, off {best['off']:,.0f} req/s, "
        f"ratio {best['on'] / best['off']:.3f} (aim >= 0.97)")


def main():
    if os.geteuid() != 0:
        raise SystemExit("bench_metrics: must run as root (xrootd -R xrootd, FUSE)")
    if not os.path.exists(bm.DIDFS):
        raise SystemExit(f"bench_metrics: {bm.DIDFS} not found: build first (DIDFS_BUILD)")
    work = tempfile.mkdtemp(prefix="didfs-bench-metrics-", dir=bm.shm_or_tmp(3 * bm.WARM))
    os.chmod(work, 0o755)
    src = os.path.join(work, "src")
    os.makedirs(src)
    lake = bm.Lake(work)
    try:
        lake.start()
        say(f"best of {ROUNDS} alternating rounds")
        if "mount" in ONLY:
            mount_parts(lake, src)
        if "serve" in ONLY:
            serve_part(work)
    finally:
        lake.stop()
        shutil.rmtree(work, ignore_errors=True)
        for d in os.listdir(bm.DEST):
            if d.startswith("didfs-bench-mnt-"):
                shutil.rmtree(os.path.join(bm.DEST, d), ignore_errors=True)


if __name__ == "__main__":
    main()
