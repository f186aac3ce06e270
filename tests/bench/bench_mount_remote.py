#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench_mount_remote - the remote mount (`didfs mount --server URL`, issue
11) against the local-catalog mount of the same catalog and against Rucio's
own client, measured in the same run.

Starts `didfs serve` over TLS on loopback (the test PKI of
tests/env/servefixture.py) on a fresh catalog, real XRootD servers for the
data part (tests/env/xrdrse.py), and prints:

Datasets are closed (immutable: the kernel and the catalog cache keep their
listings; an open one is listed afresh after the TTL, 5 s).

  (a) `ls -l` of a dataset of BENCH_LS_FILES (100000) files: cold (a fresh
      mount, empty block and catalog caches) and warm (best of
      BENCH_REPEAT), through the remote mount and through a local-catalog
      mount of the server's catalog file; ratios remote/local
                                              aim: cold <= 3x, warm <= 1.2x
  (b) REST requests the server logged for one `ls -l` of a dataset of 1,000
      files through a fresh remote mount (from the lookup of / down)
                                                                 aim <= 5
  (c) the mount's RSS (VmRSS, and the peak VmHWM) after listing a dataset of
      BENCH_RSS_NAMES (1000000) names through the remote mount
                                                           aim < 64 MiB
  (d) first byte of an uncached BENCH_BIG_BYTES (1G) file through a fresh
      remote mount (open + one 4 KiB read at the middle: catalog look-ups
      over REST, replica choice, the block fetch) vs `rucio download` of the
      same file with Rucio's client (BENCH_RUCIO_VERSION, 1.31.7, from
      ../shared/peers/rucio-clients; skipped with the reason when missing)
                                                          aim >= 10x faster
  (e) reading BENCH_SMALL_FILES (1000) files of BENCH_SMALL_BYTES (64K) each,
      a whole dataset, through a fresh remote mount (every file opened and
      read, 8 readers) vs `rucio download` of the dataset with Rucio's
      client; the ratio of the times

BENCH_ONLY=a,b,c,d,e runs some parts.  Must run as root (FUSE).  Run small:
BENCH_LS_FILES=20000 BENCH_RSS_NAMES=100000 BENCH_BIG_BYTES=256M
tests/bench/bench_mount_remote.py
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "env"))
import bench_mount as bm  # noqa: E402
import servefixture as sf  # noqa: E402
import xrdrse  # noqa: E402

bm.NAME = "bench_mount_remote"
N_LS = int(os.environ.get("BENCH_LS_FILES", "100000"))
N_RSS = int(os.environ.get("BENCH_RSS_NAMES", "1000000"))
BIG = bm.size_env("BENCH_BIG_BYTES", "1G")
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
ONLY = set(os.environ.get("BENCH_ONLY", "a,b,c,d,e").split(","))
N_SMALL = int(os.environ.get("BENCH_SMALL_FILES", "1000"))
SMALL = bm.size_env("BENCH_SMALL_BYTES", "64K")
RUCIO = os.environ.get("BENCH_RUCIO_VERSION", "1.31.7")


def ls(path):
    t = time.perf_counter()
    subprocess.run(["ls", "-l", path], stdout=subprocess.DEVNULL, check=True,
                   env=dict(os.environ, LC_ALL="C"))
    return time.perf_counter() - t


def register(cat, rse, dataset, n, prefix, work):
    d = [bm.DIDFS, "--catalog", cat]
    bm.run(d + ["add-dataset", dataset])
    lst = os.path.join(work, f"{prefix}.txt")
    with open(lst, "w") as f:
        for i in range(n):
            f.write(f"user.root:{prefix}_{i:07d}.root {1000 + i} {(i + 1) & 0xffffffff:08x}\n")
    t = time.perf_counter()
    bm.run(d + ["add-replicas", "--rse", rse, "--list", lst, "--dataset", dataset])
    bm.run(d + ["close", dataset])  # immutable: cached long, by the kernel and the catalog cache
    os.unlink(lst)
    return time.perf_counter() - t


def access_count(served):
    try:
        with open(served.access_log) as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out


class Box:
    """A scratch directory for one mount (mountpoint and caches)."""

    def __init__(self, work, tag):
        self.dir = tempfile.mkdtemp(prefix=f"didfs-bench-{tag}-", dir=work)

    def mount(self, catalog, extra=()):
        return bm.Mount(catalog, os.path.join(self.dir, "mnt"), os.path.join(self.dir, "cache"),
                        extra)


def part_a(served, work):
    cat = served.catalog
    t = register(cat, "LS1", "user.root:big", N_LS, "f", work)
    bm.say(f"(a) {N_LS} files registered in {t:.1f} s")
    res = {}
    for kind, catalog in (("local", cat), ("remote", served.url)):
        m = Box(work, kind).mount(catalog)
        try:
            ds = os.path.join(m.path, "user.root", "big")
            cold = ls(ds)
            warm = min(ls(ds) for _ in range(REPEAT))
            n = len(os.listdir(ds))
            assert n == N_LS, (kind, n)
        finally:
            m.stop()
        res[kind] = (cold, warm)
    (lc, lw), (rc, rw) = res["local"], res["remote"]
    bm.say(f"(a) ls -l of {N_LS} files: remote cold {rc:.2f} s, warm {rw:.2f} s; local-catalog "
           f"mount cold {lc:.2f} s, warm {lw:.2f} s; ratio cold {rc / lc:.2f}x (aim <= 3x), "
           f"warm {rw / lw:.2f}x (aim <= 1.2x)")


def part_b(served, work):
    register(served.catalog, "LS1", "user.root:k1", 1000, "k", work)
    m = Box(work, "req").mount(served.url)
    try:
        before = access_count(served)
        ls(os.path.join(m.path, "user.root", "k1"))
        time.sleep(0.5)  # the access log is written after each answer
        n = access_count(served) - before
    finally:
        m.stop()
    bm.say(f"(b) REST requests for one ls -l of 1000 files through a fresh remote mount: {n} "
           f"(aim <= 5)")


def part_c(served, work):
    t = register(served.catalog, "LS1", "user.root:huge", N_RSS, "h", work)
    bm.say(f"(c) {N_RSS} names registered in {t:.1f} s")
    m = Box(work, "rss").mount(served.url)
    try:
        n = 0
        with os.scandir(os.path.join(m.path, "user.root", "huge")) as it:
            for _ in it:
                n += 1
        assert n == N_RSS, n
        s = status(m.proc.pid)
    finally:
        m.stop()
    bm.say(f"(c) the remote mount after listing {N_RSS} names: VmRSS {s['VmRSS'] / 2**20:.1f} MiB, "
           f"peak VmHWM {s['VmHWM'] / 2**20:.1f} MiB (aim < 64 MiB)")


def rucio_download(served, work, tag, did):
    """Seconds `rucio download` (Rucio's own client) takes for did."""
    peers = sf.peers_dir()
    d = os.path.join(work, f"rucio-dl-{tag}")
    os.makedirs(d, exist_ok=True)
    env = dict(os.environ, RUCIO_CONFIG=served.rucio_cfg(d), TMPDIR=d)
    env.pop("RUCIO_HOME", None)
    env.pop("X509_CERT_DIR", None)
    t = time.perf_counter()
    subprocess.run([os.path.join(peers, "run"), RUCIO, "rucio", "download", "--dir",
                    os.path.join(d, "out"), did], env=env, cwd=d, check=True,
                   capture_output=True, timeout=3600)
    dt = time.perf_counter() - t
    shutil.rmtree(d, ignore_errors=True)
    return dt


def part_e(served, work, tmp):
    src = os.path.join(tmp, "small")
    os.makedirs(src, exist_ok=True)
    names = []
    for i in range(N_SMALL):
        p = os.path.join(src, f"s{i:05d}.dat")
        with open(p, "wb") as f:
            f.write(os.urandom(SMALL))
        names.append(p)
    for i in range(0, N_SMALL, 200):
        bm.run([bm.DIDFS, "--catalog", served.catalog, "upload", *names[i:i + 200], "--rse",
                "XRD1", "--dataset", "user.root:smallds"])
    shutil.rmtree(src, ignore_errors=True)
    bm.run([bm.DIDFS, "--catalog", served.catalog, "close", "user.root:smallds"])
    m = Box(work, "small").mount(served.url)
    try:
        ds = os.path.join(m.path, "user.root", "smallds")
        t = time.perf_counter()
        files = sorted(os.listdir(ds))

        def read_one(n):
            with open(os.path.join(ds, n), "rb") as f:
                return len(f.read())
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(8) as ex:
            got = sum(ex.map(read_one, files))
        mt = time.perf_counter() - t
        assert len(files) == N_SMALL and got == N_SMALL * SMALL, (len(files), got)
    finally:
        m.stop()
    if not sf.peers_dir():
        bm.say(f"(e) {N_SMALL} files of {SMALL >> 10} KiB through the remote mount: {mt:.2f} s;"
               f" rucio download skipped: Rucio's clients not found (../shared/peers/rucio-clients)")
        return
    dl = rucio_download(served, work, "small", "user.root:smallds")
    bm.say(f"(e) {N_SMALL} files of {SMALL >> 10} KiB (one dataset): remote mount {mt:.2f} s, "
           f"rucio download ({RUCIO}) {dl:.2f} s; the mount {dl / mt:.1f}x faster")


def with_storage(served, fn, *args):
    """Run fn with one XRootD RSE (XRD1) registered on the server's catalog."""
    rdir = tempfile.mkdtemp(prefix="didfs-bench-remote-rses-", dir=bm.DEST)
    os.chmod(rdir, 0o755)
    rses = xrdrse.Rses.create(os.path.join(rdir, "rses"), 1)
    rses.start()
    try:
        rses.register(served.catalog, bm.DIDFS)
        served.trust_at(rses)
        os.environ["X509_CERT_DIR"] = rses.ca_dir
        bm.run([bm.DIDFS, "--catalog", served.catalog, "set-account-limit", "root", "XRD1", "-1"])
        for f in fn:
            f(*args)
    finally:
        rses.stop()
        shutil.rmtree(rdir, ignore_errors=True)


def part_d(served, work, tmp):
    peers = sf.peers_dir()
    f = bm.make_file(os.path.join(tmp, "big.bin"), BIG)
    bm.run([bm.DIDFS, "--catalog", served.catalog, "upload", f, "--rse", "XRD1",
            "--dataset", "user.root:bigds"])
    os.unlink(f)
    m = Box(work, "fb").mount(served.url)
    try:
        p = os.path.join(m.path, "user.root", "bigds", "big.bin")
        t = time.perf_counter()
        fd = os.open(p, os.O_RDONLY)
        os.pread(fd, 4096, BIG // 2)
        fb = time.perf_counter() - t
        os.close(fd)
    finally:
        m.stop()
    if not peers:
        bm.say(f"(d) first byte of an uncached {BIG >> 20} MiB file through the remote mount: "
               f"{fb * 1000:.0f} ms; rucio download skipped: Rucio's clients not found "
               f"(../shared/peers/rucio-clients)")
        return
    dl = rucio_download(served, work, "big", "user.root:big.bin")
    bm.say(f"(d) first byte of an uncached {BIG >> 20} MiB file: remote mount "
           f"{fb * 1000:.0f} ms, rucio download ({RUCIO}) {dl:.2f} s; {dl / fb:.1f}x faster "
           f"(aim >= 10x)")


def main():
    if os.geteuid() != 0:
        raise SystemExit("bench_mount_remote: must run as root (FUSE)")
    work = tempfile.mkdtemp(prefix="didfs-bench-remote-", dir=bm.DEST)
    tmp = bm.shm_or_tmp(2 * BIG)
    pki = sf.make_pki(os.path.join(work, "pki"))
    os.makedirs(os.path.join(work, "srv"))
    served = sf.Served(os.path.join(work, "srv"), pki)
    try:
        d = [bm.DIDFS, "--catalog", served.catalog]
        bm.run(d + ["add-scope", "user.root"])
        bm.run(d + ["add-rse", "LS1"])
        bm.run(d + ["add-protocol", "--rse", "LS1", "--scheme", "root", "--hostname",
                    "127.0.0.1", "--port", "1", "--prefix", "/rucio"])
        os.environ["RUCIO_CONFIG"] = served.rucio_cfg(os.path.join(work, "cfg"))
        os.environ.pop("RUCIO_HOME", None)
        if "a" in ONLY:
            part_a(served, work)
        if "b" in ONLY:
            part_b(served, work)
        if "c" in ONLY:
            part_c(served, work)
        parts = [f for k, f in (("d", part_d), ("e", part_e)) if k in ONLY]
        if parts:
            with_storage(served, parts, served, work, tmp)
    finally:
        served.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
