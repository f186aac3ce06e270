#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench_ingest - watch-folder ingest and the auditor.

(a) ingest: BENCH_INGEST_FILES small files (64-1024 bytes, 1,000 a
    directory) with trigger files (adler32, bytes, one metadata key) in the
    interface directory of a non-deterministic file:// RSE, registered by one
    `didfs ingest --once` (each file read, verified against its trigger,
    registered with its metadata, attached to its dataset, the trigger
    removed).  The peer measured in the same run: `add-replicas --walk` of
    identical trees without triggers on other RSEs (each file read and
    hashed, registered in batches).  Prints both rates and the ratio
    ingest/walk (aim >= 0.5).
(b) audit: an RSE with BENCH_AUDIT_FILES replicas (registered with
    add-replicas --list) and a storage dump of the same size with 10 files
    missing and 10 unknown ones; `didfs audit --list` must find exactly
    those.  Prints the seconds and the peak RSS of didfs and of its sort(1)
    children against the 64 MiB limit.

The ingest part runs in BENCH_ROUNDS (5) rounds, ingest and walk alternating,
so that load changes on a shared machine hit both alike.

Sizes (env): BENCH_INGEST_FILES (100000), BENCH_AUDIT_FILES (1000000);
BENCH_DIR (default /tmp) for the trees.  The didfs binary: $DIDFS_BUILD/tools/didfs
(default build/; use an optimized build, not the sanitizer one).

Run small:  BENCH_INGEST_FILES=10000 BENCH_AUDIT_FILES=100000 tests/bench/bench_ingest.py
"""
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib

NAME = "bench_ingest"
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DIDFS = os.path.join(os.environ.get("DIDFS_BUILD", os.path.join(ROOT, "build")), "tools", "didfs")
LIMIT_RSS = 64 << 20


def say(msg):
    print(f"{NAME}: {msg}", flush=True)


def run(catalog, *args, check=True):
    p = subprocess.run([DIDFS, "--catalog", catalog, *map(str, args)], capture_output=True,
                       text=True)
    if check and p.returncode != 0:
        raise SystemExit(f"{NAME}: didfs {' '.join(map(str, args))} failed: {p.stderr}")
    return p


def timed_rusage(cmd, out_path):
    """Run cmd (stdout to out_path); (seconds, stdout, peak RSS).  wait4's
    rusage covers the process and the children it waited for (sort(1))."""
    t0 = time.time()
    with open(out_path, "w") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE)
        _, status, ru = os.wait4(p.pid, 0)
    dt = time.time() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{NAME}: {' '.join(cmd)} failed: {p.stderr.read().decode()}")
    return dt, open(out_path).read(), ru.ru_maxrss * 1024


def make_tree(top, first, n, triggers, seed):
    rnd = random.Random(seed)
    for i in range(first, first + n):
        d = os.path.join(top, f"d{i // 1000:04d}")
        os.makedirs(d, exist_ok=True)
        data = rnd.randbytes(rnd.randint(64, 1024))
        p = os.path.join(d, f"f{i:07d}.dat")
        with open(p, "wb") as f:
            f.write(data)
        if triggers:
            with open(p + ".trigger", "w") as f:
                f.write(f"adler32={zlib.adler32(data) & 0xFFFFFFFF:08x}\nbytes={len(data)}\n"
                        f"run={i % 10}\n")


def bench_ingest(work, n, rounds):
    """rounds of n/rounds files, ingest and walk alternating (first one, then
    the other), so that a load change on a shared machine hits both alike."""
    cat = os.path.join(work, "ingest.db")
    run(cat, "init")
    run(cat, "add-scope", "bench", "--account", "root")
    ing_root = os.path.join(work, "ING")
    os.makedirs(ing_root)
    run(cat, "add-rse", "ING", "--non-deterministic")
    run(cat, "add-protocol", "--rse", "ING", "--scheme", "file", "--prefix", ing_root)
    per = n // rounds
    t_ing = t_walk = 0.0
    say(f"{rounds} rounds of {per} files with trigger files (ingest) and without (walk)")
    for r in range(rounds):
        walk_root = os.path.join(work, f"WALK{r}")
        os.makedirs(walk_root)
        run(cat, "add-rse", f"WALK{r}", "--non-deterministic")
        run(cat, "add-protocol", "--rse", f"WALK{r}", "--scheme", "file", "--prefix", walk_root)
        make_tree(os.path.join(ing_root, f"in{r}"), r * per, per, True, r)
        make_tree(walk_root, r * per, per, False, r)
        subprocess.run(["sync"])
        cfg = os.path.join(work, f"ingest{r}.conf")
        with open(cfg, "w") as f:
            f.write(f"rse = ING\nroot = {ing_root}\ndir = in{r}\nscope = bench\n"
                    "dataset = bench_run{run}\n")

        def ingest():
            t0 = time.time()
            p = run(cat, "--json", "ingest", "--config", cfg, "--once")
            st = json.loads(p.stdout)
            if st["registered"] != per or st["failed"]:
                raise SystemExit(f"{NAME}: ingest registered {st['registered']} of {per}: {p.stdout}")
            return time.time() - t0

        def walk():
            t0 = time.time()
            p = run(cat, "--json", "add-replicas", "--rse", f"WALK{r}", "--scope", "bench",
                    "--walk", walk_root)
            w = json.loads(p.stdout)
            if w["new_replicas"] != per:
                raise SystemExit(f"{NAME}: the walk registered {w['new_replicas']} of {per}")
            return time.time() - t0

        if r % 2:
            t_walk += walk()
            t_ing += ingest()
        else:
            t_ing += ingest()
            t_walk += walk()
    n = per * rounds
    r_ing, r_walk = n / t_ing, n / t_walk
    say(f"ingest {n} files with triggers: {t_ing:.2f} s, {r_ing:.0f} files/s")
    say(f"add-replicas --walk of the same trees: {t_walk:.2f} s, {r_walk:.0f} files/s")
    say(f"ratio ingest/walk: {r_ing / r_walk:.2f} (aim >= 0.5)")


def layout(scope, name):
    h = hashlib.md5(f"{scope}:{name}".encode()).hexdigest()
    return f"{scope}/{h[:2]}/{h[2:4]}/{name}"


def bench_audit(work, n):
    cat = os.path.join(work, "audit.db")
    run(cat, "init")
    run(cat, "add-scope", "aud", "--account", "root")
    run(cat, "add-rse", "AUD")
    run(cat, "add-protocol", "--rse", "AUD", "--scheme", "file", "--prefix",
        os.path.join(work, "AUD"))
    lst = os.path.join(work, "replicas.txt")
    dump = os.path.join(work, "dump.txt")
    say(f"registering {n} replicas and writing a storage dump")
    lost = {f"file{i:08d}" for i in range(5, n, max(1, n // 10))}
    with open(lst, "w") as f, open(dump, "w") as g:
        for i in range(n):
            name = f"file{i:08d}"
            f.write(f"aud:{name} 100 0000000{i % 10}\n")
            if name not in lost:
                g.write(layout("aud", name) + "\n")
        for i in range(10):
            g.write(f"aud/zz/zz/dark{i}\n")
    run(cat, "add-replicas", "--rse", "AUD", "--list", lst)
    dt, out, rss = timed_rusage([DIDFS, "--catalog", cat, "--json", "audit", "--rse", "AUD",
                                 "--list", dump, "--tmp-dir", work],
                                os.path.join(work, "audit.json"))
    res = json.loads(out)
    if res["dark_count"] != 10 or {x["name"] for x in res["lost"]} != lost:
        raise SystemExit(f"{NAME}: audit found {res['dark_count']} dark, {res['lost_count']} lost")
    say(f"audit of {n} replicas against a {n - len(lost) + 10}-line dump: {dt:.2f} s,"
        f" {n / dt:.0f} replicas/s")
    say(f"peak RSS (didfs and its sort children): {rss / 2**20:.1f} MiB,"
        f" {rss / LIMIT_RSS:.2f} of the 64 MiB limit")


def main():
    if not os.path.exists(DIDFS):
        raise SystemExit(f"{NAME}: {DIDFS} not found: build first (DIDFS_BUILD)")
    n_ing = int(os.environ.get("BENCH_INGEST_FILES", "100000"))
    n_aud = int(os.environ.get("BENCH_AUDIT_FILES", "1000000"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    work = tempfile.mkdtemp(prefix="bench-ingest-", dir=os.environ.get("BENCH_DIR", "/tmp"))
    try:
        if n_ing:
            bench_ingest(work, n_ing, rounds)
        if n_aud:
            bench_audit(work, n_aud)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
