# SPDX-License-Identifier: Apache-2.0
"""The mount's inode table is capped: beyond FS_NODES_CACHED (8192) DID nodes
that only the kernel holds, the least recently used are dropped to a small
"ghost" (inode number, the collection it was found in or its scope:name, and
the kernel's lookup count) and loaded again from the catalog by id when the
kernel asks for them.  These tests prove that an evicted inode still answers
with its own DID (not another's), in a dataset and at the top of a scope, and
that the kernel forgetting its inodes frees the ghosts too.
"""
import os
import subprocess

N = 10000  # > FS_NODES_CACHED


def stats(m):
    out = {}
    for line in os.getxattr(m.path, "user.rucio.stats").decode().splitlines():
        k, v = line.split()
        out[k] = int(v)
    return out


def register(didfs, tmp_path, dataset):
    didfs("add-scope", "user.root")
    didfs("add-rse", "INO1")
    didfs("add-protocol", "--rse", "INO1", "--scheme", "root", "--hostname", "127.0.0.1",
          "--port", "1", "--prefix", "/rucio")
    lst = tmp_path / "files.txt"
    with open(lst, "w") as f:
        for i in range(N):
            f.write(f"user.root:ino_{i:06d} {1000 + i} {(i + 1):08x}\n")
    args = ["add-replicas", "--rse", "INO1", "--list", str(lst)]
    if dataset:
        didfs("add-dataset", "user.root:inos")
        args += ["--dataset", "user.root:inos"]
    didfs(*args)


def check_evicted_inodes_reload(didfs, mount, tmp_path, dataset):
    register(didfs, tmp_path, dataset)
    m = mount(didfs)
    top = m.path / "user.root" / ("inos" if dataset else "")
    listed = subprocess.run(["ls", "-l", str(top)], check=True, capture_output=True,
                            text=True).stdout
    assert listed.count("ino_") == N
    st = stats(m)
    assert st["evictions_inodes"] >= N - 8192, st
    assert st["inodes_evicted"] > 0, st
    # the first names listed are the oldest: evicted; the kernel still has
    # their inodes and asks the mount about them by number
    for i in (0, 1, 17, 1000):
        p = top / f"ino_{i:06d}"
        assert os.getxattr(p, "user.rucio.adler32").decode() == f"{(i + 1):08x}"
        assert os.getxattr(p, "user.rucio.did").decode() == f"user.root:ino_{i:06d}"
        assert os.stat(p).st_size == 1000 + i
    assert stats(m)["reloads_inodes"] >= 4
    # the kernel forgets what it does not use: the ghosts go with it
    before = stats(m)["inodes_evicted"]
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")
    after = stats(m)["inodes_evicted"]
    assert after < before, (before, after)


def test_evicted_inodes_of_a_dataset_load_again_by_id(didfs, mount, tmp_path):
    check_evicted_inodes_reload(didfs, mount, tmp_path, True)


def test_evicted_inodes_at_the_top_of_a_scope_load_again_by_name(didfs, mount, tmp_path):
    check_evicted_inodes_reload(didfs, mount, tmp_path, False)


GHOSTS_LISTED_MAX = 131072  # FS_GHOSTS_LISTED_MAX (fs/fs_i.h)


def test_listing_past_the_ghost_bound_names_everything(didfs, mount, tmp_path):
    """Past FS_GHOSTS_LISTED_MAX ghosts a listing hands the kernel names
    without inodes: every name is still listed, the ghost table stops
    growing (the mount's memory stays bounded however many names are
    listed), and a name listed that way is found by an ordinary lookup with
    its own attributes."""
    n = GHOSTS_LISTED_MAX + 3 * 8192  # without the bound: n - 8192 ghosts, past the assert
    didfs("add-scope", "user.root")
    didfs("add-rse", "INO1")
    didfs("add-protocol", "--rse", "INO1", "--scheme", "root", "--hostname", "127.0.0.1",
          "--port", "1", "--prefix", "/rucio")
    didfs("add-dataset", "user.root:many")
    lst = tmp_path / "many.txt"
    with open(lst, "w") as f:
        for i in range(n):
            f.write(f"user.root:m_{i:07d} {1000 + i % 5000} {(i + 1):08x}\n")
    didfs("add-replicas", "--rse", "INO1", "--list", str(lst), "--dataset", "user.root:many")
    m = mount(didfs)
    top = m.path / "user.root" / "many"
    with os.scandir(top) as it:
        names = [e.name for e in it]
    assert len(names) == n and len(set(names)) == n
    st = stats(m)
    assert GHOSTS_LISTED_MAX <= st["inodes_evicted"] <= GHOSTS_LISTED_MAX + 8192, st
    for i in (n - 1, n - 2, GHOSTS_LISTED_MAX + 2 * 8192 + 10):
        p = top / f"m_{i:07d}"
        assert os.stat(p).st_size == 1000 + i % 5000
        assert os.getxattr(p, "user.rucio.did").decode() == f"user.root:m_{i:07d}"
