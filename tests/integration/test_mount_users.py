# SPDX-License-Identifier: Apache-2.0
# Each local user acts as themselves on an --allow-other mount (issue 11,
# item 5), here on a local catalog: the mount's owner acts as --account, a
# uid in the --uid-map file as its mapped account (the rule's account in the
# catalog says so), anyone else gets EACCES for every change and nothing
# changes; refusal texts are per uid; storage paths are hidden from users
# who may not change anything; credentials files are taken only from their
# owner (a /tmp/x509up_u<B> planted by A is refused).  Real OS users
# (useradd), real FUSE, real XRootD.
import errno
import json
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

P = "user.rucio."
USERS = ("didfs-mu1", "didfs-mu2")

# Runs as another user: each step "op:arg..." -> result or errno.
AS_USER = r"""
import errno, json, os, sys
out = []
for step in sys.argv[1:]:
    op, _, rest = step.partition(":")
    try:
        if op == "set":
            path, name, value = rest.split("|")
            os.setxattr(path, name, value.encode())
            out.append("ok")
        elif op == "rm":
            path, name = rest.split("|")
            os.removexattr(path, name)
            out.append("ok")
        elif op == "get":
            path, name = rest.split("|")
            out.append(os.getxattr(path, name).decode())
        elif op == "list":
            out.append(sorted(os.listxattr(rest)))
        elif op == "read":
            with open(rest, "rb") as f:
                import hashlib
                out.append(hashlib.md5(f.read()).hexdigest())
        elif op == "write":
            path, data = rest.split("|")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, data.encode()); os.close(fd)
            out.append("ok")
    except OSError as e:
        out.append(e.errno)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def users():
    if os.geteuid() != 0:
        pytest.skip("needs root to create OS users")
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv (util-linux)")
    out = {}
    for u in USERS:
        try:
            pwd.getpwnam(u)
        except KeyError:
            subprocess.run(["useradd", "-M", "-s", "/bin/false", u], check=True)
        out[u] = pwd.getpwnam(u)
    return out


def run_as(pw, *steps, env=None):
    e = {"PATH": "/usr/bin:/bin", "HOME": "/"}
    e.update(env or {})
    p = subprocess.run(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                        "--clear-groups", "--", "/usr/bin/python3", "-c", AS_USER, *steps],
                       capture_output=True, text=True, timeout=120, env=e)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture
def world(lake, make_file, users):
    """A dataset with one file on XRD1, accounts jdoe and nob, a shared base
    directory other users can reach."""
    a = make_file(300_000)
    lake("upload", a, "--rse", "XRD1", "--dataset", "user.root:mu")
    for acc in ("jdoe", "nob"):
        lake("add-account", acc)
        for rse in ("XRD1", "XRD2", "XRD3"):
            lake("set-account-limit", acc, rse, "infinity")
    base = tempfile.mkdtemp(prefix="didfs-mu-", dir="/tmp")
    os.chmod(base, 0o755)
    yield lake, a, base
    shutil.rmtree(base, ignore_errors=True)


def write_map(base, text, mode=0o644):
    path = os.path.join(base, "uidmap")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def rules_by_account(lake):
    return sorted((r["account"], r["rse_expression"]) for r in lake.json("list-rules", "user.root:mu"))


def test_owner_mapped_and_unmapped_users(world, mount, users):
    lake, a, base = world
    mu1, mu2 = users[USERS[0]], users[USERS[1]]
    umap = write_map(base, "# who acts as whom\n"
                           f"{USERS[0]}   jdoe   # by user name\n"
                           "\n"
                           "65534\tnob\r\n")  # by uid, a CRLF line
    had = rules_by_account(lake)  # the upload's own rule
    m = mount(lake, allow_other=True, path=os.path.join(base, "mnt"), extra=["--uid-map", umap])
    try:
        ds = m.path / "user.root" / "mu"
        f = ds / a.name
        # the owner (root mounted): acts as --account (root)
        os.setxattr(ds, P + "rule", b"1 XRD2")
        # a user mapped by name acts as jdoe; one mapped by uid as nob
        assert run_as(mu1, f"set:{ds}|{P}rule|1 XRD3") == ["ok"]
        nobody = pwd.getpwuid(65534)
        assert run_as(nobody, f"set:{ds}|{P}rule|1 XRD1") == ["ok"]
        assert rules_by_account(lake) == sorted(had + [("jdoe", "XRD3"), ("nob", "XRD1"),
                                                       ("root", "XRD2")])

        # jdoe is not root: it may not delete root's rule
        root_rule = [r["id"] for r in lake.json("list-rules", "user.root:mu")
                     if r["account"] == "root" and r["rse_expression"] == "XRD2"][0]
        r = run_as(mu1, f"rm:{ds}|{P}rule.{root_rule}", f"get:{ds}|{P}error")
        assert r[0] == errno.EACCES, r
        assert r[1].startswith("AccessDenied:"), r

        # an unmapped user: EACCES for every change, nothing changes
        before = lake.dump()
        r = run_as(mu2, f"set:{ds}|{P}rule|1 XRD2", f"rm:{ds}|{P}rule.{root_rule}",
                   f"set:{ds}|{P}meta.color|red", f"set:{ds}|{P}lifetime|3600",
                   f"rm:{ds}|{P}lifetime", f"get:{ds}|{P}error")
        assert r[:5] == [errno.EACCES] * 5, r
        text = r[5]
        assert text.startswith("AccessDenied: uid %d may not change the catalog" % mu2.pw_uid), text
        assert "has no entry in the uid map " + umap in text, text
        assert lake.dump() == before, "a refused change reached the catalog"

        # refusal texts are per uid: neither root nor mu1 reads mu2's
        assert run_as(mu1, f"get:{ds}|{P}error") != [text]
        try:
            assert os.getxattr(ds, P + "error").decode() != text
        except OSError as e:
            assert e.errno == errno.ENODATA

        # reads of data stay open to all; storage paths only for those who may act
        want = __import__("hashlib").md5(a.read_bytes()).hexdigest()
        r2 = run_as(mu2, f"read:{f}", f"get:{f}|{P}replicas", f"list:{f}",
                    f"get:{f}|eos.url.xroot")
        assert r2[0] == want
        lines = [ln.split() for ln in r2[1].splitlines()]
        assert lines[0] == ["XRD1", "AVAILABLE", "-"] and all(ln[2] == "-" for ln in lines), r2[1]
        assert "eos.url.xroot" not in r2[2] and r2[3] == errno.ENODATA, r2
        mine = os.getxattr(f, P + "replicas").decode().splitlines()[0].split()
        assert mine[:2] == ["XRD1", "AVAILABLE"] and mine[2].startswith("root://"), mine
        r1 = run_as(mu1, f"get:{f}|{P}replicas", f"get:{f}|eos.url.xroot")
        assert r1[0].splitlines()[0].split()[2].startswith("root://") and r1[1].startswith("root://"), r1
    finally:
        m.cleanup()


def test_default_only_the_owner_changes(world, mount, users):
    lake, a, base = world
    mu1 = users[USERS[0]]
    had = rules_by_account(lake)
    m = mount(lake, allow_other=True, path=os.path.join(base, "mnt"))
    try:
        ds = m.path / "user.root" / "mu"
        before = lake.dump()
        r = run_as(mu1, f"set:{ds}|{P}rule|1 XRD2", f"get:{ds}|{P}error")
        assert r[0] == errno.EACCES, r
        assert "the mount has no uid map (--uid-map FILE)" in r[1], r
        assert lake.dump() == before
        os.setxattr(ds, P + "rule", b"1 XRD2")
        assert rules_by_account(lake) == sorted(had + [("root", "XRD2")])
    finally:
        m.cleanup()


def test_credentials_only_from_their_owner(world, mount, users):
    """A proxy planted as /tmp/x509up_u<B> by A, and an X509_USER_PROXY of
    B's process naming A's file, are both refused and named; B stays
    without rights."""
    lake, a, base = world
    mu1, mu2 = users[USERS[0]], users[USERS[1]]
    planted = f"/tmp/x509up_u{mu2.pw_uid}"
    a_file = os.path.join(base, "a-proxy")
    os.chmod(base, 0o1777)
    for p in (planted, a_file):
        if os.path.lexists(p):
            os.unlink(p)
    try:
        assert run_as(mu1, f"write:{planted}|-----BEGIN CERTIFICATE-----",
                      f"write:{a_file}|-----BEGIN CERTIFICATE-----") == ["ok", "ok"]
        assert os.stat(planted).st_uid == mu1.pw_uid
        m = mount(lake, allow_other=True, path=os.path.join(base, "mnt"))
        try:
            ds = m.path / "user.root" / "mu"
            before = lake.dump()
            r = run_as(mu2, f"set:{ds}|{P}rule|1 XRD2", f"get:{ds}|{P}error",
                       env={"X509_USER_PROXY": a_file})
            assert r[0] == errno.EACCES, r
            assert f"{planted} is owned by uid {mu1.pw_uid}, not by uid {mu2.pw_uid}: ignored" in r[1], r
            assert f"{a_file} is owned by uid {mu1.pw_uid}, not by uid {mu2.pw_uid}: ignored" in r[1], r
            assert lake.dump() == before
            # mu1's own file next to it is its own: accepted as found (a
            # local catalog still only listens to the map)
            r = run_as(mu1, f"set:{ds}|{P}rule|1 XRD2", f"get:{ds}|{P}error",
                       env={"X509_USER_PROXY": a_file})
            assert r[0] == errno.EACCES, r
            assert "credentials cannot be checked by a local catalog" in r[1], r
            assert lake.dump() == before
        finally:
            m.cleanup()
    finally:
        for p in (planted, a_file):
            if os.path.lexists(p):
                os.unlink(p)


def test_uid_map_must_be_safe_and_valid(world, users):
    lake, a, base = world
    mnt = os.path.join(base, "mnt")
    os.makedirs(mnt, exist_ok=True)

    def mount_fails(umap):
        p = subprocess.run([lake.bin, "--catalog", lake.catalog, "mount", mnt, "--foreground",
                            "--cache-dir", os.path.join(base, "cache"), "--uid-map", umap],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 1, (p.stdout, p.stderr)
        return p.stderr

    err = mount_fails(write_map(base, f"{USERS[0]} jdoe\n", 0o666))
    assert "is writable by everyone (mode 0666)" in err, err
    err = mount_fails(write_map(base, f"{USERS[0]} jdoe\n", 0o664))
    assert "is writable by its group" in err, err
    err = mount_fails(write_map(base, f"{USERS[0]} jdoe\nno-such-user-x jdoe\n"))
    assert "line 2: unknown user 'no-such-user-x'" in err, err
    err = mount_fails(write_map(base, "1001 jdoe extra\n"))
    assert "line 1: expected" in err, err
    err = mount_fails(write_map(base, "1001 JDoe\n"))
    assert "InvalidObject" in err and "line 1" in err, err
    err = mount_fails(write_map(base, "1001 jdoe\n\n1001 nob\n"))
    assert "line 3: uid 1001 is mapped twice (also on line 1)" in err, err
    path = write_map(base, "1001 jdoe\n")
    os.chown(path, users[USERS[0]].pw_uid, -1)
    err = mount_fails(path)
    assert f"is owned by uid {users[USERS[0]].pw_uid}" in err, err
    assert not subprocess.run(["mountpoint", "-q", mnt]).returncode == 0
