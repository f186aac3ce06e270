# SPDX-License-Identifier: Apache-2.0
"""The mount's memory stays bounded: its VmHWM (peak RSS) after reading
several GiB through it with a cold block cache, and after `ls -lR` of
100,000 files, stays under 64 MiB.  An RSS ceiling is a limit, not a timing.

Sizes: DIDFS_MEM_READ_GIB (2) GiB read as files of 512 MiB uploaded to one
XRootD server of the session's fixture, with a 1 GiB block cache (so the
cache evicts too); DIDFS_MEM_LS_FILES (100,000) files registered with
`add-replicas --list` (no data is needed to list).  Under AddressSanitizer
the RSS measures the sanitizer (shadow memory, quarantine), not the mount:
the tests are skipped in such a build.
"""
import os
import subprocess

import pytest

from catfixture import build_dir

LIMIT = 64 << 20
READ_GIB = int(os.environ.get("DIDFS_MEM_READ_GIB", "2"))
LS_FILES = int(os.environ.get("DIDFS_MEM_LS_FILES", "100000"))


def sanitized():
    path = os.path.join(build_dir(), "tools", "didfs")
    with open(path, "rb") as f:
        return b"__asan_init" in f.read()


pytestmark = pytest.mark.skipif(sanitized(), reason="RSS under AddressSanitizer is the "
                                "sanitizer's, not the mount's")


def vm(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0]) * 1024
    return out


def test_rss_bounded_while_reading_gibs(lake, mount, tmp_path):
    """Block-sized buffers, per-thread malloc arenas and the transfer layer's
    buffers do not grow with the bytes read."""
    files = []
    for i in range(READ_GIB * 2):
        p = tmp_path / f"big{i}.bin"
        with open(p, "wb") as f:
            for _ in range(32):
                f.write(os.urandom(16 << 20))
        files.append(p)
    lake("upload", *map(str, files), "--rse", "XRD1", "--dataset", "user.root:mem")
    for p in files:
        p.unlink()
    m = mount(lake, cache_size="1G")
    seen = []
    for p in files:
        subprocess.run(["dd", f"if={m.path}/user.root/mem/{p.name}", "of=/dev/null", "bs=1M"],
                       check=True, capture_output=True)
        seen.append(vm(m.pid))
    hwm = seen[-1]["VmHWM"]
    assert hwm < LIMIT, f"peak RSS {hwm / 2**20:.1f} MiB after {READ_GIB} GiB read: {seen}"


def test_rss_bounded_after_listing_100k_files(didfs, mount, tmp_path):
    """Every entry of a listing is a node the kernel holds until it forgets
    it: 100,000 of them (and the catalog's page caches) stay under 64 MiB."""
    didfs("add-scope", "user.root")
    didfs("add-rse", "LS1")
    didfs("add-protocol", "--rse", "LS1", "--scheme", "root", "--hostname", "127.0.0.1",
          "--port", "1", "--prefix", "/rucio")
    didfs("add-dataset", "user.root:many")
    lst = tmp_path / "files.txt"
    with open(lst, "w") as f:
        for i in range(LS_FILES):
            f.write(f"user.root:many/f{i:07d} {1000 + i} {(i + 1) & 0xffffffff:08x}\n")
    didfs("add-replicas", "--rse", "LS1", "--list", str(lst), "--dataset", "user.root:many")
    m = mount(didfs)
    subprocess.run(["ls", "-lR", f"{m.path}/user.root/many"], check=True,
                   stdout=subprocess.DEVNULL)
    hwm = vm(m.pid)["VmHWM"]
    assert hwm < LIMIT, f"peak RSS {hwm / 2**20:.1f} MiB after ls -lR of {LS_FILES} files"
