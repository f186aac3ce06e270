# SPDX-License-Identifier: Apache-2.0
# The namespace of `didfs mount` on real FUSE mounts: scopes, roots,
# containers, datasets, stat, names with '/' (every name round-trips through
# the layout rule of fs/ns.c), children of other scopes, open collections
# changing under the mount, read-only refusals, the daemonizing start, a
# stale mount after a crash, and SIGTERM.
import email.utils
import errno
import os
import signal
import stat
import subprocess
import time
import urllib.parse

import pytest


def layout(name, dids):
    """The path components of `name` by the rule of fs/ns.c (dids: the
    names of DIDs in the scope)."""
    seps = [i for i, c in enumerate(name)
            if c == "/" and 0 < i < len(name) - 1 and name[i - 1] != "/"
            and name[i + 1] != "/" and name[:i] not in dids]
    comps, start = [], 0
    for j in seps:
        comps.append(name[start:j])
        start = j + 1
    comps.append(name[start:])
    return [("%2E" * len(c)) if c in (".", "..") else c.replace("/", "%2F") for c in comps]


def decode(rel_components):
    return "/".join(urllib.parse.unquote(c) for c in rel_components)


def walk_files(root):
    """{decoded name: path} of every file under root."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        comps = [] if rel == "." else rel.split(os.sep)
        for f in files:
            out[decode(comps + [f])] = os.path.join(dirpath, f)
    return out


def register(runner, tmp_path, names, rse="XRD1", dataset=None, scope="user.root"):
    lines = [f"{scope}:{n} {100 + i} {'%08x' % (i + 1)}" for i, n in enumerate(names)]
    lst = tmp_path / f"list-{len(lines)}-{time.time_ns()}.txt"
    lst.write_text("\n".join(lines) + "\n")
    args = ["add-replicas", "--rse", rse, "--list", lst]
    if dataset:
        if not runner.run("get-metadata", dataset).returncode == 0:
            runner("add-dataset", dataset)
        args += ["--dataset", dataset]
    runner(*args)


TRICKY = [
    "plain.txt",
    "data/2024/run1.root", "data/2024/run2.root", "data/2025/x.h5",
    "/store/mc/a.root", "/store/mc/b.root", "//double-lead",
    "a//b", "a/b/", "a/c", "trailing/",
    "x", "x/y", "x/y/z",
    "m/./n", "p/../q", "deep/1/2/3/4/5/6/f.root",
    "dots.in.name/f-1_2.dat",
]


def test_listing_scopes_roots_container_dataset(lake, mount, make_file):
    lake("add-scope", "other")
    f1, f2 = make_file(1000), make_file(2000)
    lake("upload", f1, f2, "--rse", "XRD1", "--dataset", "user.root:ds1")
    lake("add-dataset", "user.root:ds2")
    lake("add-container", "user.root:cont")
    lake("attach", "user.root:cont", "user.root:ds1", "user.root:ds2")
    lake("add-container", "other:top")
    m = mount(lake)
    root = m.path
    assert sorted(os.listdir(root)) == ["other", "user.root"]
    # the scope lists its DIDs without a parent
    assert sorted(os.listdir(root / "user.root")) == ["cont"]
    assert sorted(os.listdir(root / "other")) == ["top"]
    assert os.listdir(root / "other" / "top") == []
    assert sorted(os.listdir(root / "user.root" / "cont")) == ["ds1", "ds2"]
    assert sorted(os.listdir(root / "user.root" / "cont" / "ds1")) == sorted([f1.name, f2.name])
    # any DID resolves under its scope, listed or not
    for name in ("ds1", "ds2", f1.name):
        assert (root / "user.root" / name).exists()
    assert not (root / "user.root" / "nope").exists()
    assert not (root / "nosuchscope").exists()
    # stat: sizes, modes, times from the catalog
    dids = {d["did"]: d for d in lake.json("list-dids", "user.root:*")}
    st = os.stat(root / "user.root" / "cont" / "ds1" / f1.name)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o444
    assert st.st_size == 1000
    st2 = os.stat(root / "user.root" / f2.name)
    assert st2.st_size == 2000 and st2.st_ino == os.stat(
        root / "user.root" / "cont" / "ds1" / f2.name).st_ino
    for d in (root, root / "user.root", root / "user.root" / "cont"):
        assert stat.S_ISDIR(os.stat(d).st_mode) and stat.S_IMODE(os.stat(d).st_mode) == 0o555
    meta = lake.json("get-metadata", f"user.root:{f1.name}")
    created = email.utils.parsedate_to_datetime(meta["created_at"].replace("UTC", "+0000"))
    assert int(st.st_mtime) == int(created.timestamp())


def test_names_with_slashes_round_trip(lake, mount, tmp_path):
    # files in a dataset, and the same kind of names as roots of another scope
    register(lake, tmp_path, TRICKY, dataset="user.root:ds")
    lake("add-scope", "flat")
    register(lake, tmp_path, TRICKY, scope="flat")
    m = mount(lake)
    names = set(TRICKY)
    for base, scope in ((m.path / "user.root" / "ds", "user.root"), (m.path / "flat", "flat")):
        found = walk_files(base)
        assert set(found) == names, (set(found) ^ names)
        for name in TRICKY:
            expect = base.joinpath(*layout(name, names))
            assert os.path.isfile(expect), (name, expect)
            assert os.stat(expect).st_size == 100 + TRICKY.index(name)
            assert found[name] == str(expect)
            # reachable by name through the scope too, and as one %-escaped component
            one = m.path / scope / urllib.parse.quote(name, safe="")
            assert os.path.isfile(one), one
            assert os.getxattr(one, "user.rucio.did").decode() == f"{scope}:{name}"
    # "x" is a file and a prefix: the DID keeps the name, its relatives one component
    assert os.path.isfile(m.path / "flat" / "x")
    assert os.path.isfile(m.path / "flat" / "x%2Fy")
    assert os.path.isfile(m.path / "flat" / "x%2Fy%2Fz")
    # lower-case escapes decode the same way
    assert os.path.isfile(m.path / "flat" / "%2fstore" / "mc" / "a.root")
    # a leading '/' stays in the first component
    assert sorted(os.listdir(m.path / "flat" / "%2Fstore" / "mc")) == ["a.root", "b.root"]
    # bad escapes and names no DID has are simply absent
    for bad in ("%zz", "%", "data%2", "nope/x", "data/2024/none"):
        assert not os.path.exists(m.path / "flat" / bad), bad


def test_collection_names_with_slashes_and_other_scopes(lake, mount, tmp_path):
    lake("add-container", "user.root:mc16")
    lake("add-dataset", "user.root:mc16/ds1")
    lake("add-dataset", "user.root:mc16/sub/ds2")
    lake("attach", "user.root:mc16", "user.root:mc16/ds1", "user.root:mc16/sub/ds2")
    register(lake, tmp_path, ["run/a.root", "run/b.root", "c.root"], dataset="user.root:mc16/ds1")
    lake("add-scope", "other")
    long_name = "L" * 250
    register(lake, tmp_path, ["shared/o.root", long_name], scope="other")
    lake("attach", "user.root:mc16/ds1", "other:shared/o.root", f"other:{long_name}")
    m = mount(lake)
    top = m.path / "user.root"
    # mc16 is a DID, so the '/' after it is no separator: mc16/ds1 is one
    # component; mc16/sub is no DID, so mc16/sub/ds2 splits there
    assert os.listdir(top) == ["mc16"]
    assert sorted(os.listdir(top / "mc16")) == ["mc16%2Fds1", "mc16%2Fsub"]
    assert os.listdir(top / "mc16" / "mc16%2Fsub") == ["ds2"]
    assert os.path.isdir(top / "mc16%2Fsub" / "ds2")
    ds = top / "mc16" / "mc16%2Fds1"
    assert os.path.isdir(top / "mc16%2Fds1")
    # a child of another scope shows as scope:name (laid out the same way);
    # one whose component would pass 255 bytes is not listed
    assert sorted(os.listdir(ds)) == ["c.root", "other:shared", "run"]
    assert os.listdir(ds / "other:shared") == ["o.root"]
    assert os.getxattr(ds / "other:shared" / "o.root", "user.rucio.did") == b"other:shared/o.root"
    assert sorted(os.listdir(ds / "run")) == ["a.root", "b.root"]
    assert os.path.isfile(m.path / "other" / long_name)
    # a DID that is not a child is not in the collection
    assert not os.path.exists(top / "mc16" / "c.root")
    assert not os.path.exists(ds / "other:nothere")


def test_big_dataset_listing_is_complete_and_resumable(lake, mount, tmp_path):
    names = [f"f{i:05d}" for i in range(5000)] + [f"dir{i % 7}/g{i:05d}" for i in range(3000)]
    register(lake, tmp_path, names, dataset="user.root:big")
    m = mount(lake)
    ds = m.path / "user.root" / "big"
    top = os.listdir(ds)
    assert len(top) == 5000 + 7 and len(set(top)) == len(top)
    with os.scandir(ds) as it:
        sizes = {e.name: e.stat().st_size for e in it if e.is_file()}
    assert len(sizes) == 5000 and sizes["f00000"] == 100
    assert sum(len(os.listdir(ds / f"dir{k}")) for k in range(7)) == 3000
    assert set(walk_files(ds)) == set(names)


def test_open_collection_changes_show_up(lake, mount, make_file):
    a, b = make_file(100), make_file(200)
    lake("upload", a, "--rse", "XRD1", "--dataset", "user.root:live")
    m = mount(lake, dir_ttl=1)
    ds = m.path / "user.root" / "live"
    assert os.listdir(ds) == [a.name]
    lake("upload", b, "--rse", "XRD1", "--dataset", "user.root:live")
    # an open collection is listed afresh
    assert sorted(os.listdir(ds)) == sorted([a.name, b.name])
    lake("detach", "user.root:live", f"user.root:{a.name}")
    assert os.listdir(ds) == [b.name]
    deadline = time.time() + 30
    while os.path.exists(ds / a.name) and time.time() < deadline:
        time.sleep(0.2)
    assert not os.path.exists(ds / a.name)
    # closing makes it immutable: it still lists the same
    lake("close", "user.root:live")
    assert os.listdir(ds) == [b.name]


def test_poller_drops_cached_attributes_of_a_changed_open_collection(lake, mount, make_file):
    a, b = make_file(100), make_file(200)
    lake("upload", a, "--rse", "XRD1", "--dataset", "user.root:polled")
    # kernel caches an hour: only the mount's poller can refresh the dataset
    m = mount(lake, dir_ttl=3600)
    ds = m.path / "user.root" / "polled"
    assert os.listdir(ds) == [a.name]
    ctime = os.stat(ds).st_ctime
    # updated_at has a resolution of one second: change it in a later second
    while int(time.time()) <= int(ctime):
        time.sleep(0.1)
    lake("upload", b, "--rse", "XRD1", "--dataset", "user.root:polled")
    deadline = time.time() + 60
    while os.stat(ds).st_ctime == ctime and time.time() < deadline:
        time.sleep(0.2)
    assert os.stat(ds).st_ctime > ctime
    assert sorted(os.listdir(ds)) == sorted([a.name, b.name])


def test_read_only(lake, mount, make_file):
    a = make_file(100)
    lake("upload", a, "--rse", "XRD1", "--dataset", "user.root:ro")
    m = mount(lake)
    ds = m.path / "user.root" / "ro"
    f = ds / a.name
    for op in (lambda: open(f, "r+b"), lambda: open(f, "wb"), lambda: open(ds / "new", "w"),
               lambda: os.mkdir(ds / "d"), lambda: os.unlink(f), lambda: os.rename(f, ds / "z"),
               lambda: os.utime(f), lambda: os.chmod(f, 0o644), lambda: os.rmdir(ds),
               lambda: os.symlink("x", ds / "l"), lambda: os.truncate(f, 0)):
        with pytest.raises(OSError) as e:
            op()
        assert e.value.errno == errno.EROFS, e.value
    assert f.read_bytes() == a.read_bytes()
    assert os.statvfs(m.path).f_namemax == 255
    # copying out keeps working (no security labels or ACLs to carry)
    out = m.path.parent / "copy"
    p = subprocess.run(["cp", "-a", str(ds), str(out)], capture_output=True, text=True)
    assert p.returncode == 0 and not p.stderr, p.stderr
    assert (out / a.name).read_bytes() == a.read_bytes()


def test_background_mount_stale_mount_and_sigterm(lake, mount, make_file):
    a = make_file(5000)
    lake("upload", a, "--rse", "XRD1", "--dataset", "user.root:bg")
    m = mount(lake, background=True)
    assert m.pid, "no server process found for the mount"
    f = m.path / "user.root" / "bg" / a.name
    assert f.read_bytes() == a.read_bytes()
    # a crash leaves a dead mount behind ...
    m.kill()
    with pytest.raises(OSError) as e:
        os.stat(m.path)
    assert e.value.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    # ... which the next mount cleans up (start, not remount: no fusermount3 first)
    assert m.mounted()
    m.start()
    assert m.mounted() and f.read_bytes() == a.read_bytes()
    assert "stale mount" in m.log_text()
    # a second mount on a live one is refused
    p = lake.run("mount", m.path, "--cache-dir", m.cache_dir.parent / "other-cache", "-f")
    assert p.returncode == 1 and "already a FUSE mount" in p.stderr
    # SIGTERM unmounts cleanly
    os.kill(m.pid, signal.SIGTERM)
    deadline = time.time() + 30
    while m.mounted() and time.time() < deadline:
        time.sleep(0.05)
    assert not m.mounted()
    assert "session ended" in m.log_text()


def test_mount_refuses_bad_arguments(didfs, tmp_path):
    (tmp_path / "mnt").mkdir()
    p = didfs.run("mount", tmp_path / "nope", "-f")
    assert p.returncode == 1 and "mountpoint" in p.stderr
    p = didfs.run("mount", tmp_path / "mnt", "--block-size", "1500000", "-f")
    assert p.returncode == 1 and "--block-size" in p.stderr
    p = didfs.run("mount", tmp_path / "mnt", "--cache-size", "1M", "-f")
    assert p.returncode == 1 and "--cache-size" in p.stderr
    p = subprocess.run([didfs.bin, "--catalog", str(tmp_path / "missing.db"), "mount",
                        str(tmp_path / "mnt"), "-f"], capture_output=True, text=True)
    assert p.returncode == 1
