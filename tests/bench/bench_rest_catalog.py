#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench_rest_catalog - the REST catalog (catalog/rest/) against the local
catalog file it is served from, measured in one run.

Starts `didfs serve` over TLS on loopback (tests/env/servefixture.py) on a
catalog with one dataset of BENCH_FILES (default 100000) files, then prints:

  (a) `didfs list-content` of the dataset through https:// cold (empty
      local cache: one streamed GET, filled in one transaction) and warm
      (the local cache, no request), each as a ratio to the same command on
      the local catalog file                    aim: cold <= 3x, warm <= 1.2x
      and without the cache (DIDFS_REST_CACHE=off: what the server and TLS cost)
  (b) REST requests per listing (from serve's access log)       aim <= 5
  (c) `list-file-replicas` of 1000 files one by one after the listing: the
      requests they cost (the dataset's replicas come in one POST)
  (d) the client's peak RSS while listing (cold)                aim < 64 MiB

Best of BENCH_REPEAT (3) runs.  Never part of the test suite.
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
import servefixture  # noqa: E402
from catfixture import didfs_bin  # noqa: E402

NFILES = int(os.environ.get("BENCH_FILES", "100000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))


PEAK = [0.0]


def run(cmd, env):
    """Seconds the command took; its peak RSS (MiB) goes to PEAK[0]."""
    t0 = time.time()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.time() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {err}")
    PEAK[0] = ru.ru_maxrss / 1024
    return dt


def main():
    tmp = tempfile.mkdtemp(prefix="bench-rest-")
    s = None
    try:
        pki = servefixture.make_pki(os.path.join(tmp, "pki"))
        os.makedirs(os.path.join(tmp, "srv"))
        s = servefixture.Served(os.path.join(tmp, "srv"), pki)
        d = s.didfs
        d("add-scope", "user.root", "--account", "root")
        d("add-rse", "SITE-A")
        d("add-protocol", "--rse", "SITE-A", "--scheme", "root", "--hostname", "st.example.org",
          "--port", "1094", "--prefix", "/data")
        lst = os.path.join(tmp, "files.txt")
        with open(lst, "w") as f:
            for i in range(NFILES):
                f.write(f"user.root:file_{i:07d}.root {1000 + i} {i:08x}\n")
        d("add-dataset", "user.root:big")
        d("add-replicas", "--rse", "SITE-A", "--list", lst, "--dataset", "user.root:big")
        cfg = s.rucio_cfg(tmp)
        env = dict(os.environ, RUCIO_CONFIG=cfg, XDG_CACHE_HOME=os.path.join(tmp, "xdg"),
                   DIDFS_REST_TTL="3600", DIDFS_REST_CACHE_SIZE="4G")
        for k in ("RUCIO_HOME", "X509_CERT_DIR", "DIDFS_REST_CACHE", "DIDFS_CACHE_DIR"):
            env.pop(k, None)
        local = [didfs_bin(), "--catalog", s.catalog, "list-content", "user.root:big"]
        remote = [didfs_bin(), "--catalog", s.url, "list-content", "user.root:big"]
        run([didfs_bin(), "--catalog", s.url, "whoami"], env)  # the token, once
        t_local = min(run(local, env) for _ in range(REPEAT))
        cold, reqs, rss = [], [], 0.0
        for _ in range(REPEAT):
            shutil.rmtree(os.path.join(tmp, "xdg", "didfs"), ignore_errors=True)
            run([didfs_bin(), "--catalog", s.url, "whoami"], env)
            n0 = open(s.access_log).read().count("\n")
            cold.append(run(remote, env))
            rss = max(rss, PEAK[0])
            reqs.append(open(s.access_log).read().count("\n") - n0)
        nocache = min(run(remote, dict(env, DIDFS_REST_CACHE="off")) for _ in range(REPEAT))
        n0 = open(s.access_log).read().count("\n")
        warm = min(run(remote, env) for _ in range(REPEAT))
        warm_reqs = open(s.access_log).read().count("\n") - n0
        print(f"(a) list-content of {NFILES} files: local {t_local:.3f} s, REST cold "
              f"{min(cold):.3f} s (ratio {min(cold) / t_local:.2f}, aim <= 3), warm {warm:.3f} s "
              f"(ratio {warm / t_local:.2f}, aim <= 1.2); without the cache (the server and"
              f" the wire alone) {nocache:.3f} s (ratio {nocache / t_local:.2f})")
        print(f"(b) REST requests per cold listing: {min(reqs)} (aim <= 5); per warm listing: "
              f"{warm_reqs / REPEAT:.0f}")
        n0 = open(s.access_log).read().count("\n")
        k = min(1000, NFILES)
        t0 = time.time()
        for i in range(k):
            run([didfs_bin(), "--catalog", s.url, "list-file-replicas",
                 f"user.root:file_{i:07d}.root"], env)
        dt = time.time() - t0
        n = open(s.access_log).read().count("\n") - n0
        print(f"(c) replicas of {k} files one by one after the listing: {n} REST requests "
              f"({n / k:.3f} per file), {dt / k * 1000:.1f} ms per command")
        print(f"(d) peak RSS of a cold REST listing of {NFILES} names: {rss:.1f} MiB (aim < 64;"
              f" an ASan build counts its shadow memory too)")
    finally:
        if s:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
