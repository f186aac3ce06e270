#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench_mount_ls - `ls -l` of a large dataset through `didfs mount` against
`ls -l` of a local directory with as many files, measured in the same run.

Registers BENCH_LS_FILES (100000) files in one dataset with
`didfs add-replicas --list` (no data is needed to list), mounts the catalog
and prints:

  cold  the first `ls -l` of the dataset after the mount (readdirplus
        streaming the catalog's child cursor)
  warm  the best of BENCH_REPEAT (3) further runs, vs `ls -l` of a local
        directory of as many empty files (tmpfs, or BENCH_NATIVE_DIR)
                                                            aim <= 1.5x
  for an open dataset (listed afresh by the daemon on every opendir, attributes
  from readdirplus) and for the same dataset closed (its listing and entries
  cached by the kernel), with the number of security/ACL xattr probes the
  mount answered during one warm run.

`ls` runs with LC_ALL=C, output to /dev/null.  No XRootD server is needed.
Must run as root (FUSE).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_mount as bm  # noqa: E402

N = int(os.environ.get("BENCH_LS_FILES", "100000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
bm.NAME = "bench_mount_ls"


def ls(path):
    t = time.perf_counter()
    subprocess.run(["ls", "-l", path], stdout=subprocess.DEVNULL, check=True,
                   env=dict(os.environ, LC_ALL="C"))
    return time.perf_counter() - t


def main():
    if os.geteuid() != 0:
        raise SystemExit("bench_mount_ls: must run as root (FUSE)")
    work = tempfile.mkdtemp(prefix="didfs-bench-ls-", dir=bm.DEST)
    native_parent = os.environ.get("BENCH_NATIVE_DIR") or bm.shm_or_tmp(1 << 30)
    native = tempfile.mkdtemp(prefix="didfs-bench-ls-native-", dir=native_parent)
    cat = os.path.join(work, "catalog.db")
    m = None
    try:
        d = [bm.DIDFS, "--catalog", cat]
        bm.run(d + ["init"])
        bm.run(d + ["add-scope", "user.root"])
        bm.run(d + ["add-rse", "LS1"])
        bm.run(d + ["add-protocol", "--rse", "LS1", "--scheme", "root", "--hostname",
                    "127.0.0.1", "--port", "1", "--prefix", "/rucio"])
        bm.run(d + ["add-dataset", "user.root:big"])
        lst = os.path.join(work, "files.txt")
        with open(lst, "w") as f:
            for i in range(N):
                f.write(f"user.root:file_{i:07d}.root {1000 + i} {(i + 1) & 0xffffffff:08x}\n")
        t = time.perf_counter()
        bm.run(d + ["add-replicas", "--rse", "LS1", "--list", lst, "--dataset", "user.root:big"])
        reg = time.perf_counter() - t
        for i in range(N):
            open(os.path.join(native, f"file_{i:07d}.root"), "wb").close()
        ls(native)
        nat = min(ls(native) for _ in range(REPEAT))
        bm.say(f"{N} files registered in {reg:.1f} s; native directory in {native_parent}")
        for closed in (False, True):
            if closed:
                bm.run(d + ["close", "user.root:big"])
            m = bm.Mount(cat, os.path.join(work, "mnt"), os.path.join(work, "cache"))
            ds = os.path.join(m.path, "user.root", "big")
            cold = ls(ds)
            warm = min(ls(ds) for _ in range(REPEAT))
            before = m.stats()["n_probe"]
            ls(ds)
            probes = m.stats()["n_probe"] - before
            count = len(os.listdir(ds))
            assert count == N, count
            bm.say(f"ls -l of {'a closed' if closed else 'an open'} dataset of {N} files: cold "
                   f"{cold:.2f} s, warm {warm:.2f} s; native {nat:.2f} s; warm ratio "
                   f"{warm / nat:.2f}x (aim <= 1.5x); {probes} xattr probes answered in a "
                   f"warm run")
            m.stop()
            m = None
    finally:
        if m:
            m.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(native, ignore_errors=True)


if __name__ == "__main__":
    main()
