# SPDX-License-Identifier: Apache-2.0
"""Integration tests of the transfer layer (transfer/) through didfs-xfer
against real XRootD servers on loopback (tests/env/rsefixture.py): round
trips over root://, https:// and davs:// checked byte for byte and against
the server's adler32, ranged reads, stat, delete, rename, third-party copy
(root and HTTP), many files in one getmany, and the failures: a server that
stops or dies mid-read, a server that is down, missing files, permission
denied, unknown schemes.  No test measures time; subprocess timeouts only
guard against hangs.

The binary is $DIDFS_BUILD/transfer/didfs-xfer (DIDFS_BUILD defaults to
build/ at the repository root).
"""
import hashlib
import os
import pwd
import signal
import subprocess
import time
import zlib

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("DIDFS_BUILD", os.path.join(ROOT, "build"))
XFER = os.path.join(BUILD, "transfer", "didfs-xfer")

# exit statuses of didfs-xfer (enum dm_status)
ENOENT, EPERM, EIO, ETIMEDOUT, ENOTSUP, EINVAL = 2, 4, 7, 8, 10, 1
HANG_GUARD = 120  # seconds; a call that takes this long is a hang


def adler32_hex(data):
    return "%08x" % (zlib.adler32(data) & 0xffffffff)


def file_adler32(path):
    a = 1
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return "%08x" % (a & 0xffffffff)
            a = zlib.adler32(b, a)


class Xfer:
    def __init__(self, rses):
        if not os.path.exists(XFER):
            pytest.fail(f"didfs-xfer not found at {XFER}: build first (DIDFS_BUILD)")
        self.base = [XFER, "--ca-dir", rses.ca_dir, "--timeout", "20",
                     "--connect-timeout", "5", "--stall-timeout", "10"]

    def run(self, *args, opts=(), timeout=HANG_GUARD):
        return subprocess.run(self.base + list(opts) + [str(a) for a in args],
                              capture_output=True, timeout=timeout)

    def ok(self, *args, **kw):
        p = self.run(*args, **kw)
        assert p.returncode == 0, (f"didfs-xfer {' '.join(map(str, args))} exited "
                                   f"{p.returncode}: {p.stderr.decode(errors='replace')}")
        return p.stdout.decode(errors="replace")

    def fails(self, status, cls, *args, **kw):
        p = self.run(*args, **kw)
        err = p.stderr.decode(errors="replace")
        assert p.returncode == status, f"expected exit {status}, got {p.returncode}: {err}"
        if cls:
            assert f": {cls}: " in err, err
        return err


@pytest.fixture
def xfer(rses):
    return Xfer(rses)


def url(server, scheme, path):
    return {"root": server.root_url, "https": server.https_url,
            "davs": server.davs_url}[scheme](path)


def parse_kv(line):
    return dict(kv.split("=", 1) for kv in line.split())


def xrootd_ids():
    pw = pwd.getpwnam("xrootd")
    return pw.pw_uid, pw.pw_gid


def place(server, path, data=None, size=None):
    """Put a file straight into a server's data directory (owned by xrootd)."""
    uid, gid = xrootd_ids()
    local = server.local_path(path)
    d = os.path.dirname(local)
    os.makedirs(d, exist_ok=True)
    while d.startswith(server.data_dir) and d != server.data_dir:
        os.chown(d, uid, gid)
        d = os.path.dirname(d)
    with open(local, "wb") as f:
        if data is not None:
            f.write(data)
    if size is not None:
        os.truncate(local, size)
    os.chown(local, uid, gid)
    return local


# ---- round trips ------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["root", "https", "davs"])
def test_put_get_roundtrip(rses, xfer, make_file, tmp_path, scheme):
    s = rses.servers[0]
    src = make_file(5 * 1024 * 1024 + 123)
    data = src.read_bytes()
    u = url(s, scheme, f"/rucio/rt/{scheme}/deep/er/file.bin")
    xfer.ok("put", src, u)
    # on the server's disk, byte for byte
    assert open(s.local_path(f"/rucio/rt/{scheme}/deep/er/file.bin"), "rb").read() == data
    out = tmp_path / "back.bin"
    res = parse_kv(xfer.ok("get", u, out))
    assert out.read_bytes() == data
    assert int(res["bytes"]) == len(data)
    assert res["adler32"] == adler32_hex(data)
    assert res["md5"] == hashlib.md5(data).hexdigest()
    # the server's own checksum agrees
    assert xfer.ok("cksum", u).strip() == adler32_hex(data)
    assert xfer.ok("cksum", u, "adler32").strip() == adler32_hex(data)


@pytest.mark.parametrize("scheme", ["root", "https"])
def test_put_overwrites_and_empty_file(rses, xfer, make_file, tmp_path, scheme):
    s = rses.servers[1]
    u = url(s, scheme, f"/rucio/ow/{scheme}/f")
    xfer.ok("put", make_file(100000), u)
    small = make_file(10)
    xfer.ok("put", small, u)
    assert xfer.ok("stat", u).strip() == "size=10 is_dir=0"
    empty = make_file(0)
    xfer.ok("put", empty, u)
    out = tmp_path / "e"
    res = parse_kv(xfer.ok("get", u, out))
    assert res["bytes"] == "0" and res["adler32"] == "00000001"
    assert out.read_bytes() == b""


def test_single_slash_root_url_is_absolute(rses, xfer, make_file):
    s = rses.servers[0]
    src = make_file(1000)
    u = f"root://127.0.0.1:{s.port}/rucio/single/slash"
    xfer.ok("put", src, u)
    assert open(s.local_path("/rucio/single/slash"), "rb").read() == src.read_bytes()
    assert xfer.ok("stat", u).strip() == "size=1000 is_dir=0"


def test_roots_tls(rses, xfer, make_file):
    s = rses.servers[0]
    src = make_file(70000)
    xfer.ok("put", src, s.root_url("/rucio/tls/f"))
    u = f"roots://127.0.0.1:{s.port}//rucio/tls/f"
    assert xfer.ok("cksum", u).strip() == adler32_hex(src.read_bytes())


# ---- stat, ranged reads, delete, rename --------------------------------------

@pytest.mark.parametrize("scheme", ["root", "https", "davs"])
def test_stat(rses, xfer, make_file, scheme):
    s = rses.servers[0]
    xfer.ok("put", make_file(4321), url(s, scheme, f"/rucio/st/{scheme}/dir/f"))
    assert parse_kv(xfer.ok("stat", url(s, scheme, f"/rucio/st/{scheme}/dir/f"))) == \
        {"size": "4321", "is_dir": "0"}
    assert parse_kv(xfer.ok("stat", url(s, scheme, f"/rucio/st/{scheme}/dir")))["is_dir"] == "1"


@pytest.mark.parametrize("scheme", ["root", "https"])
def test_pread(rses, xfer, scheme):
    s = rses.servers[0]
    data = os.urandom(3 * 1024 * 1024 + 7)
    place(s, f"/rucio/pr/{scheme}/f", data)
    u = url(s, scheme, f"/rucio/pr/{scheme}/f")
    n = len(data)
    for off, length in [(0, 1), (0, 4096), (1000, 65536), (1 << 20, 1 << 20),
                        (n - 10, 10), (n - 10, 100), (0, n), (0, n + 5000)]:
        out = xfer.run("pread", u, off, length)
        assert out.returncode == 0, out.stderr
        assert out.stdout == data[off:off + length], (off, length)
    for off in (n, n + 1, n + 12345):
        out = xfer.run("pread", u, off, 100)
        assert out.returncode == 0, out.stderr
        assert out.stdout == b""


@pytest.mark.parametrize("scheme", ["root", "https"])
def test_readblocks_threads(rses, xfer, scheme):
    """A file read in blocks by 8 threads through xfer_pread, as the mount
    reads (root:// keeps its open handle cached between the reads)."""
    s = rses.servers[1]
    data = os.urandom(9 * 1024 * 1024 + 333)
    place(s, f"/rucio/blocks/{scheme}", data)
    res = parse_kv(xfer.ok("--parallel", "8", "readblocks", url(s, scheme, f"/rucio/blocks/{scheme}"),
                           "256K"))
    assert int(res["bytes"]) == len(data)
    assert res["adler32"] == adler32_hex(data)
    assert res["md5"] == hashlib.md5(data).hexdigest()
    assert int(res["reads"]) == (len(data) + (256 << 10) - 1) // (256 << 10)


@pytest.mark.parametrize("scheme", ["root", "https"])
def test_delete(rses, xfer, make_file, scheme):
    s = rses.servers[1]
    u = url(s, scheme, f"/rucio/del/{scheme}/f")
    xfer.ok("put", make_file(2000), u)
    xfer.ok("rm", u)
    assert not os.path.exists(s.local_path(f"/rucio/del/{scheme}/f"))
    err = xfer.fails(ENOENT, "SourceNotFound", "stat", u)
    assert u in err
    err = xfer.fails(ENOENT, "SourceNotFound", "rm", u)
    assert u in err


@pytest.mark.parametrize("scheme", ["root", "https", "davs"])
def test_rename(rses, xfer, make_file, scheme):
    s = rses.servers[1]
    src = make_file(123456)
    a = url(s, scheme, f"/rucio/mv/{scheme}/f.rucio.upload")
    b = url(s, scheme, f"/rucio/mv/{scheme}/new/dir/f")
    xfer.ok("put", src, a)
    xfer.ok("mv", a, b)
    xfer.fails(ENOENT, "SourceNotFound", "stat", a)
    assert xfer.ok("cksum", b).strip() == adler32_hex(src.read_bytes())
    # renaming what is not there
    err = xfer.fails(ENOENT, None, "mv", a, b)
    assert a in err


def test_rename_across_servers_refused(rses, xfer):
    a = rses.servers[0].root_url("/rucio/x")
    b = rses.servers[1].root_url("/rucio/x")
    err = xfer.fails(EINVAL, "InputValidationError", "mv", a, b)
    assert "same storage endpoint" in err


# ---- third-party copy ----------------------------------------------------------

def test_tpc_root(rses, xfer, make_file):
    s1, s2 = rses.servers[0], rses.servers[1]
    src = make_file(7 * 1024 * 1024 + 5)
    a = s1.root_url("/rucio/tpc/src.bin")
    b = s2.root_url("/rucio/tpc/root/sub/dst.bin")
    xfer.ok("put", src, a)
    xfer.ok("tpc", a, b)
    want = adler32_hex(src.read_bytes())
    assert xfer.ok("cksum", b).strip() == want
    assert file_adler32(s2.local_path("/rucio/tpc/root/sub/dst.bin")) == want
    # again onto the existing copy: overwritten, still right
    xfer.ok("tpc", a, b)
    assert xfer.ok("cksum", b).strip() == want


def test_tpc_https(rses, xfer, make_file):
    s1, s3 = rses.servers[0], rses.servers[2]
    src = make_file(3 * 1024 * 1024)
    a = s1.https_url("/rucio/tpc/hsrc.bin")
    b = s3.davs_url("/rucio/tpc/http/sub/dst.bin")
    xfer.ok("put", src, a)
    xfer.ok("tpc", a, b)
    assert file_adler32(s3.local_path("/rucio/tpc/http/sub/dst.bin")) == \
        adler32_hex(src.read_bytes())


@pytest.mark.parametrize("scheme", ["root", "https"])
def test_tpc_missing_source(rses, xfer, scheme):
    a = url(rses.servers[0], scheme, "/rucio/tpc/no-such-file")
    b = url(rses.servers[1], scheme, "/rucio/tpc/never")
    err = xfer.fails(ENOENT, "SourceNotFound", "tpc", a, b)
    assert a in err


def test_tpc_between_schemes_not_supported(rses, xfer):
    a = rses.servers[0].root_url("/rucio/x")
    b = rses.servers[1].https_url("/rucio/x")
    err = xfer.fails(ENOTSUP, "RSEProtocolNotSupported", "tpc", a, b)
    assert a in err and b in err


# ---- many files ---------------------------------------------------------------

def test_getmany(rses, xfer, tmp_path):
    n = 300
    files = []
    for i in range(n):
        s = rses.servers[i % 3]
        data = os.urandom(1000 + i * 37)
        path = f"/rucio/many/{i // 100}/f{i:04d}"
        place(s, path, data)
        scheme = ("root", "https", "davs")[i % 3] if i % 2 else "root"
        files.append((url(s, scheme, path), tmp_path / f"out{i:04d}", data))
    missing = rses.servers[0].root_url("/rucio/many/missing")
    lst = tmp_path / "list"
    lst.write_text("# url path\n\n" + "".join(f"{u} {p}\n" for u, p, _ in files)
                   + f"{missing} {tmp_path / 'missing.out'}\n")
    p = xfer.run("--parallel", "16", "getmany", lst)
    out = p.stdout.decode()
    assert p.returncode == ENOENT, p.stderr
    lines = out.splitlines()
    assert sum(1 for l in lines if l.startswith("OK ")) == n
    fail = [l for l in lines if l.startswith("FAIL ")]
    assert len(fail) == 1 and missing in fail[0] and "SourceNotFound" in fail[0]
    ok = {l.split()[1]: parse_kv(" ".join(l.split()[2:])) for l in lines if l.startswith("OK ")}
    for u, path, data in files:
        assert path.read_bytes() == data
        assert ok[u]["adler32"] == adler32_hex(data)
    assert not (tmp_path / "missing.out").exists()
    assert f"getmany: {n} ok, 1 failed" in p.stderr.decode()


def _logins(server, scheme):
    """Sessions opened on a server, from its log: one per root:// connection
    ("XrootdXeq: ... login"), one per https connection ("XrootdBridge: ...
    login as ...")."""
    tag = "XrootdXeq:" if scheme == "root" else "XrootdBridge:"
    with open(server.log, errors="replace") as f:
        return sum(1 for line in f if tag in line and " login" in line)


@pytest.mark.parametrize("scheme", ["root", "https"])
def test_getmany_reuses_connections(rses, xfer, tmp_path, scheme):
    """Many files, few connections: root:// multiplexes everything on one,
    https keeps one per operation in flight (a new TLS handshake per file
    would show as one login per file in the server's log)."""
    s = rses.servers[1]
    n, parallel = 120, 6
    lines = []
    for i in range(n):
        path = f"/rucio/reuse/{scheme}/f{i}"
        place(s, path, b"x" * (i + 1))
        lines.append(f"{url(s, scheme, path)} {tmp_path / f'o{i}'}\n")
    lst = tmp_path / "list"
    lst.write_text("".join(lines))
    before = _logins(s, scheme)
    xfer.ok("--parallel", str(parallel), "getmany", lst)
    new = _logins(s, scheme) - before
    assert 1 <= new <= (1 if scheme == "root" else parallel + 1), \
        f"{new} logins for {n} files"


def test_getmany_bad_list(rses, xfer, tmp_path):
    lst = tmp_path / "list"
    lst.write_text("root://127.0.0.1:1//only-a-url\n")
    p = xfer.run("getmany", lst)
    assert p.returncode == 64
    assert b"line 1" in p.stderr


# ---- failures -----------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["root", "https"])
def test_missing_file(rses, xfer, tmp_path, scheme):
    u = url(rses.servers[0], scheme, "/rucio/does/not/exist")
    out = tmp_path / "x"
    err = xfer.fails(ENOENT, "SourceNotFound", "get", u, out)
    assert u in err and "no such file" in err.lower()
    assert not out.exists()
    xfer.fails(ENOENT, "SourceNotFound", "cksum", u)
    xfer.fails(ENOENT, "SourceNotFound", "pread", u, 0, 10)


@pytest.mark.parametrize("scheme", ["root", "https"])
def test_permission_denied(rses, xfer, make_file, tmp_path, scheme):
    s = rses.servers[2]
    # a directory of root's the xrootd user may not enter
    denied = s.local_path(f"/rucio/denied-{scheme}")
    os.makedirs(denied, exist_ok=True)
    os.chown(denied, 0, 0)
    os.chmod(denied, 0o700)
    with open(os.path.join(denied, "secret"), "wb") as f:
        f.write(b"secret")
    src = make_file(100)
    u = url(s, scheme, f"/rucio/denied-{scheme}/new")
    err = xfer.fails(EPERM, "RSEAccessDenied", "put", src, u)
    assert u in err and "permission denied" in err.lower()
    xfer.fails(EPERM, "RSEAccessDenied", "get", url(s, scheme, f"/rucio/denied-{scheme}/secret"),
               tmp_path / "s")
    # the read-only export
    err = xfer.fails(EPERM, "RSEAccessDenied", "put", src, url(s, scheme, "/ro/new"))
    assert "read/only" in err


def test_unknown_scheme(xfer, tmp_path):
    err = xfer.fails(ENOTSUP, "RSEProtocolNotSupported", "get", "gsiftp://127.0.0.1/x",
                     tmp_path / "x")
    assert "gsiftp://127.0.0.1/x" in err and "'gsiftp'" in err
    assert not (tmp_path / "x").exists()
    xfer.fails(EINVAL, "InputValidationError", "stat", "not-a-url")


def _wait_for_bytes(path, proc, minimum=1, limit=60):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if os.path.getsize(path) >= minimum:
                return True
        except OSError:
            pass
        time.sleep(0.005)
    return False


@pytest.mark.parametrize("scheme", ["root", "https"])
@pytest.mark.parametrize("how", ["hung", "crashed"])
def test_server_stops_mid_read(rses, xfer, tmp_path, scheme, how):
    """A server that hangs (SIGSTOP) or dies (SIGKILL) during a download:
    the download ends with a clear error within its timeouts and leaves no
    partial file behind."""
    s = rses.servers[2]
    place(s, "/rucio/big/sparse", size=2 << 30)  # sparse: cheap to make and to serve
    u = url(s, scheme, "/rucio/big/sparse")
    out = tmp_path / "partial"
    cmd = xfer.base + ["--stall-timeout", "3", "--timeout", "5", "--connect-timeout", "2",
                       "--chunk", "1M", "--inflight", "2", "get", u, str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        started = _wait_for_bytes(out, proc, minimum=1 << 20)
        os.kill(s.pid, signal.SIGSTOP)
        if how == "crashed":
            os.kill(s.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=HANG_GUARD)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if how == "hung" and s.alive():
            os.kill(s.pid, signal.SIGCONT)
        s.stop()
        s.start()
    assert started, "the download never started"
    err = err.decode(errors="replace")
    assert proc.returncode in (EIO, ETIMEDOUT), err
    assert u in err
    if how == "hung":
        assert "timed out" in err
    assert ("ServiceUnavailable" in err), err
    assert not out.exists()


@pytest.mark.parametrize("scheme", ["root", "https"])
def test_server_down_then_back(rses, xfer, make_file, scheme):
    s = rses.servers[2]
    src = make_file(5000)
    u = url(s, scheme, f"/rucio/outage/{scheme}")
    xfer.ok("put", src, u)
    s.stop()
    assert not s.alive()
    err = xfer.fails(EIO, "ServiceUnavailable", "stat", u,
                     opts=["--timeout", "5", "--connect-timeout", "2"])
    assert u in err and "cannot reach" in err
    s.start()  # same port, same data
    assert xfer.ok("cksum", u).strip() == adler32_hex(src.read_bytes())


# ---- the fixture's command-line tools -----------------------------------------

ENV = os.path.join(ROOT, "tests", "env")


def test_start_stop_rses_cli(make_file):
    import json
    import tempfile
    if os.geteuid() != 0:
        pytest.skip("needs root")
    work = tempfile.mkdtemp(prefix="didfs-rses-cli-", dir="/tmp")
    os.chmod(work, 0o755)
    didfs = os.path.join(BUILD, "tools", "didfs")
    catalog = os.path.join(work, "catalog.db")
    args = [os.path.join(ENV, "start-rses"), "-n", "2", work]
    if os.path.exists(didfs):
        args[1:1] = ["--register", catalog, "--didfs", didfs]
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=HANG_GUARD)
        assert p.returncode == 0, p.stderr
        state_file = p.stdout.strip()
        assert state_file == os.path.join(work, "rses.json")
        st = json.load(open(state_file))
        assert st["version"] == 1 and os.path.isdir(st["ca_dir"]) and os.path.isfile(st["ca_file"])
        assert [s["name"] for s in st["servers"]] == ["XRD1", "XRD2"]
        for s in st["servers"]:
            assert s["root_port"] == s["https_port"] and os.path.isdir(s["data_dir"])
            assert os.path.exists(f"/proc/{s['pid']}")
        x = [XFER, "--ca-file", st["ca_file"]]
        src = make_file(1000)
        s1 = st["servers"][0]
        q = subprocess.run(x + ["put", str(src), s1["https_url"] + "/rucio/cli/f"],
                           capture_output=True, timeout=HANG_GUARD)
        assert q.returncode == 0, q.stderr
        assert os.path.exists(os.path.join(s1["data_dir"], "rucio", "cli", "f"))
        if os.path.exists(didfs):
            r = subprocess.run([didfs, "--catalog", catalog, "--json", "list-rses"],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            assert "XRD1" in r.stdout and "XRD2" in r.stdout
            r = subprocess.run([didfs, "--catalog", catalog, "list-rses", "tier=1"],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0 and "XRD1" in r.stdout, r.stderr
            r = subprocess.run([didfs, "--catalog", catalog, "list-protocols", "XRD2"],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            assert "root" in r.stdout and "https" in r.stdout
            assert str(st["servers"][1]["root_port"]) in r.stdout
        # one server dies; stop-rses still stops the rest cleanly
        os.kill(st["servers"][0]["pid"], signal.SIGKILL)
        p = subprocess.run([os.path.join(ENV, "stop-rses"), work], capture_output=True,
                           text=True, timeout=HANG_GUARD)
        assert p.returncode == 0, p.stderr
        st2 = json.load(open(state_file))
        assert all(s["pid"] is None for s in st2["servers"])
        for s in st["servers"]:
            run = os.path.join(work, s["name"], "run")
            assert not any(n.endswith(".pid") for n in os.listdir(run))
        # resume on the same ports, with the data still there
        p = subprocess.run([os.path.join(ENV, "start-rses"), "--resume", work],
                           capture_output=True, text=True, timeout=HANG_GUARD)
        assert p.returncode == 0, p.stderr
        st3 = json.load(open(state_file))
        assert [s["root_port"] for s in st3["servers"]] == [s["root_port"] for s in st["servers"]]
        q = subprocess.run(x + ["stat", s1["root_url"] + "//rucio/cli/f"],
                           capture_output=True, text=True, timeout=HANG_GUARD)
        assert q.returncode == 0 and "size=1000" in q.stdout, q.stderr
        # starting again over a live work directory is refused
        p = subprocess.run([os.path.join(ENV, "start-rses"), work], capture_output=True,
                           text=True, timeout=HANG_GUARD)
        assert p.returncode != 0 and "already holds" in p.stderr
    finally:
        subprocess.run([os.path.join(ENV, "stop-rses"), work], capture_output=True,
                       timeout=HANG_GUARD)
        import shutil
        shutil.rmtree(work, ignore_errors=True)
