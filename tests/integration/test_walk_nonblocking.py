# SPDX-License-Identifier: Apache-2.0
# `add-replicas --walk` never holds the catalog's write transaction while it
# reads or hashes files (a walk hashing one 24 GiB file once made every other
# writer fail with "catalog is busy" after 30 s): it hashes first and then
# registers in short batches.  The walk is frozen (SIGSTOP) while it has a
# big file open and hashing, and another CLI write, with a 1 s busy timeout,
# must succeed meanwhile.  Progress (files, bytes, rate, ETA) is drawn on
# stderr only when stderr is a terminal.
import hashlib
import os
import signal
import subprocess
import time
import zlib

import pytest
from ptyrun import run_on_pty


@pytest.fixture
def cat(didfs):
    didfs("add-scope", "mock", "--account", "root")
    didfs("add-scope", "other", "--account", "root")
    didfs("add-rse", "R1")
    didfs("add-dataset", "mock:walked")
    return didfs


def layout_path(root, scope, name):
    h = hashlib.md5(f"{scope}:{name}".encode()).hexdigest()
    return root / scope / h[:2] / h[2:4] / name


def put(root, scope, name, data=None, sparse=0):
    p = layout_path(root, scope, name)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "wb") as f:
        if sparse:
            f.truncate(sparse)
        else:
            f.write(data)
    return p


def has_open(pid, path):
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                    return True
            except OSError:
                pass
    except OSError:
        pass
    return False


def test_walk_hashing_does_not_block_other_writers(cat, tmp_path):
    root = tmp_path / "storage"
    small = put(root, "mock", "small.dat", b"x" * 1000)
    big = put(root, "mock", "big.dat", sparse=4 << 30)
    walk = subprocess.Popen([cat.bin, "--catalog", cat.catalog, "--json", "add-replicas",
                             "--rse", "R1", "--walk", str(root), "--md5",
                             "--dataset", "mock:walked"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not has_open(walk.pid, big) and walk.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        assert walk.poll() is None, "the walk ended before it was seen hashing the big file"
        os.kill(walk.pid, signal.SIGSTOP)  # frozen in the middle of hashing
        try:
            assert has_open(walk.pid, big)
            env = dict(os.environ, DIDFS_BUSY_TIMEOUT="1")
            p = subprocess.run([cat.bin, "--catalog", cat.catalog, "set-metadata", "mock:walked",
                                "--key", "campaign", "--value", "run3"],
                               capture_output=True, text=True, env=env)
            assert p.returncode == 0, f"a writer was blocked by the walk: {p.stderr}"
            p = subprocess.run([cat.bin, "--catalog", cat.catalog, "add-dataset", "mock:other"],
                               capture_output=True, text=True, env=env)
            assert p.returncode == 0, p.stderr
        finally:
            os.kill(walk.pid, signal.SIGCONT)
        out, err = walk.communicate(timeout=600)
    finally:
        if walk.poll() is None:
            walk.kill()
            walk.wait()
    assert walk.returncode == 0, err
    assert "\r" not in err and "hashing" not in err  # no progress off a terminal
    import json
    res = json.loads(out)
    assert res["files"] == 2 and res["new_replicas"] == 2
    meta = cat.json("get-metadata", "mock:big.dat")
    assert meta["bytes"] == 4 << 30
    assert meta["md5"] == "c9a5a6878d97b48cc965c1e41859f034"  # md5 of 4 GiB of zeros
    assert cat.json("get-metadata", "mock:walked")["campaign"] == "run3"
    files = {d["did"] for d in cat.json("list-files", "mock:walked")}
    assert files == {"mock:small.dat", "mock:big.dat"}
    assert small.exists()


def test_walk_registers_in_batches_and_reruns_idempotently(cat, tmp_path):
    root = tmp_path / "storage"
    n = 4500  # more than two batches
    for i in range(n):
        put(root, "mock", f"f{i:05d}.dat", str(i).encode())
    res = cat.json("add-replicas", "--rse", "R1", "--walk", root, "--dataset", "mock:walked")
    assert res["files"] == n and res["new_replicas"] == n
    files = cat.json("list-files", "mock:walked")
    assert len(files) == n
    meta = cat.json("get-metadata", "mock:f04321.dat")
    assert meta["adler32"] == f"{zlib.adler32(b'4321') & 0xffffffff:08x}"
    # as after an interrupted walk: running it again adds nothing and changes nothing
    before = cat.dump()
    res = cat.json("add-replicas", "--rse", "R1", "--walk", root, "--dataset", "mock:walked")
    assert res["new_replicas"] == 0
    assert cat.dump() == before


def test_strict_walk_refuses_before_registering_anything(cat, tmp_path):
    root = tmp_path / "storage"
    for i in range(2500):
        put(root, "mock", f"f{i:05d}.dat", b"d")
    (root / "mock" / "zz-dark.txt").write_text("dark data")
    before = cat.dump()
    err = cat.fails("add-replicas", "--rse", "R1", "--walk", root, "--strict",
                    cls="InputValidationError", contains="nothing registered")
    assert "zz-dark.txt" in err
    assert cat.dump() == before


def test_walk_shows_progress_on_a_terminal_only(cat, tmp_path):
    root = tmp_path / "storage"
    for i in range(5):
        put(root, "mock", f"f{i}.dat", os.urandom(100000))
    put(root, "mock", "big.dat", sparse=256 << 20)
    rc, out, tty = run_on_pty([cat.bin, "--catalog", cat.catalog, "add-replicas", "--rse", "R1",
                               "--walk", str(root), "--md5"])
    assert rc == 0, tty
    assert "Registered 6 file(s)" in out
    # the final hashing line: all files, all bytes of the known totals, a rate
    assert "hashing (adler32, md5): 6/6 files" in tty, tty
    assert "256.5 MiB/256.5 MiB" in tty, tty
    assert "/s" in tty and "registering: 6/6 files" in tty, tty
    assert "\r" in tty
    # the same walk with stderr on a pipe prints no progress at all
    p = cat.run("add-replicas", "--rse", "R1", "--walk", root)
    assert p.returncode == 0 and p.stderr == "", p.stderr
