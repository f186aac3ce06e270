# didfs upload / download against real XRootD servers (root:// and https://
# on loopback) and one misbehaving WebDAV server: Rucio's safe upload
# protocol, best-replica download with fall-over and verification, and the
# failure cases: stalled server, checksum mismatch, missing file on storage,
# permission denied, unknown scheme.
import hashlib
import http.server
import os
import shutil
import signal
import threading
import time
import zlib

import pytest


def adler32_hex(data):
    return "%08x" % (zlib.adler32(data) & 0xffffffff)


def hash_path(scope, name):
    h = hashlib.md5(f"{scope}:{name}".encode()).hexdigest()
    sp = scope.replace(".", "/") if scope.startswith(("user", "group")) else scope
    return f"/rucio/{sp}/{h[:2]}/{h[2:4]}/{name}"


def stray_files(root):
    """Files under a directory whose names say they are unfinished."""
    out = []
    for dirpath, _, files in os.walk(root):
        out += [os.path.join(dirpath, f) for f in files
                if f.endswith((".rucio.upload", ".part"))]
    return out


def test_upload_then_download_round_trip(lake, make_file, tmp_path):
    a, b = make_file(3 << 20), make_file(1000)
    out = lake.json("upload", a, b, "--rse", "XRD1", "--dataset", "user.root:ds")
    assert [o["did"] for o in out] == [f"user.root:{a.name}", f"user.root:{b.name}"]
    assert out[0]["pfn"].endswith(hash_path("user.root", a.name))
    files = {f["did"]: f for f in lake.json("list-files", "user.root:ds")}
    assert set(files) == {f"user.root:{a.name}", f"user.root:{b.name}"}
    # the bytes sit at Rucio's deterministic path, with the right checksum
    srv = lake.rses["XRD1"]
    on_disk = srv.local_path(hash_path("user.root", a.name))
    assert open(on_disk, "rb").read() == a.read_bytes()
    assert files[f"user.root:{a.name}"]["adler32"] == adler32_hex(a.read_bytes())
    reps = lake.json("list-file-replicas", "user.root:ds")
    assert {r["state"] for r in reps} == {"AVAILABLE"} and {r["rse"] for r in reps} == {"XRD1"}
    assert not stray_files(srv.data_dir)
    # download everything back and compare byte for byte
    p = lake.run("download", "user.root:ds", "--dir", tmp_path / "dl")
    assert p.returncode == 0, p.stderr
    for f in (a, b):
        assert (tmp_path / "dl" / "user.root" / f.name).read_bytes() == f.read_bytes()
    assert not stray_files(tmp_path / "dl")
    # a second download finds the files present and verified
    p = lake.run("download", "user.root:ds", "--dir", tmp_path / "dl")
    assert p.returncode == 0 and "2 already present" in p.stdout


def test_upload_is_idempotent_and_refuses_other_content(lake, make_file, tmp_path):
    a = make_file(5000, "same.dat")
    lake("upload", a, "--rse", "XRD1")
    p = lake.run("upload", a, "--rse", "XRD1")
    assert p.returncode == 0 and "already on XRD1" in p.stderr
    other = tmp_path / "other"
    other.mkdir()
    (other / "same.dat").write_bytes(b"different content")
    before = lake.dump()
    lake.fails("upload", other / "same.dat", "--rse", "XRD2", cls="DataIdentifierAlreadyExists")
    assert lake.dump() == before
    # the same file to a second RSE adds a replica
    lake("upload", a, "--rse", "XRD2")
    assert sorted(r["rse"] for r in lake.json("list-file-replicas", "user.root:same.dat")) == ["XRD1", "XRD2"]


def test_download_over_https_only_rse(lake, make_file, tmp_path):
    srv = lake.rses["XRD3"]
    lake("add-rse", "WEB3")
    lake("add-protocol", "--rse", "WEB3", "--scheme", "davs", "--hostname", "127.0.0.1",
         "--port", srv.port, "--prefix", "/rucio")
    a = make_file(2 << 20)
    lake("upload", a, "--rse", "WEB3")
    pfn = lake.json("list-file-replicas", f"user.root:{a.name}")[0]["pfn"]
    assert pfn.startswith("davs://")
    lake("download", f"user.root:{a.name}", "--dir", tmp_path / "dl", "--no-subdir")
    assert (tmp_path / "dl" / a.name).read_bytes() == a.read_bytes()


def two_replicas(lake, make_file, size=1 << 20):
    a = make_file(size)
    lake("upload", a, "--rse", "XRD1")
    lake("upload", a, "--rse", "XRD2")
    return a


def test_download_falls_over_when_a_replica_is_missing(lake, make_file, tmp_path):
    a = two_replicas(lake, make_file)
    os.unlink(lake.rses["XRD1"].local_path(hash_path("user.root", a.name)))
    p = lake.run("download", f"user.root:{a.name}", "--dir", tmp_path / "dl")
    assert p.returncode == 0, p.stderr
    assert "XRD1 failed" in p.stderr and "trying the next replica" in p.stderr
    assert (tmp_path / "dl" / "user.root" / a.name).read_bytes() == a.read_bytes()


def test_download_falls_over_on_a_corrupted_replica(lake, make_file, tmp_path):
    a = two_replicas(lake, make_file)
    bad = lake.rses["XRD1"].local_path(hash_path("user.root", a.name))
    with open(bad, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00corrupt\x00")
    p = lake.run("download", f"user.root:{a.name}", "--dir", tmp_path / "dl")
    assert p.returncode == 0, p.stderr
    assert "adler32" in p.stderr and "trying the next replica" in p.stderr
    assert (tmp_path / "dl" / "user.root" / a.name).read_bytes() == a.read_bytes()
    # corrupt the other one too: nothing is left under the final name
    bad2 = lake.rses["XRD2"].local_path(hash_path("user.root", a.name))
    with open(bad2, "r+b") as f:
        f.write(b"garbage")
    p = lake.run("download", f"user.root:{a.name}", "--dir", tmp_path / "dl2")
    assert p.returncode == 1
    assert "didfs: ChecksumMismatch:" in p.stderr
    assert not (tmp_path / "dl2" / "user.root" / a.name).exists()
    assert not stray_files(tmp_path / "dl2")


def test_download_from_a_stalled_server_ends_with_an_error(lake, make_file, tmp_path):
    a = make_file(256 << 20)
    lake("upload", a, "--rse", "XRD3")
    srv = lake.rses["XRD3"]
    import subprocess
    cmd = [lake.bin, "--catalog", lake.catalog, "download", f"user.root:{a.name}",
           "--dir", str(tmp_path / "dl"), "--timeout", "5"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # let the transfer start, then freeze the server mid-read
        deadline = time.time() + 30
        part = tmp_path / "dl" / "user.root" / (a.name + ".part")
        while time.time() < deadline and not (part.exists() and part.stat().st_size > 0):
            time.sleep(0.02)
        os.kill(srv.pid, signal.SIGSTOP)
        t0 = time.time()
        out, err = p.communicate(timeout=120)
        elapsed = time.time() - t0
    finally:
        os.kill(srv.pid, signal.SIGCONT)
        if p.poll() is None:
            p.kill()
    assert p.returncode == 1, (out, err)
    assert "XRD3" in err or "timed out" in err.lower() or "stall" in err.lower(), err
    assert elapsed < 100  # it ended on its own timeout, it did not hang
    assert not (tmp_path / "dl" / "user.root" / a.name).exists()
    assert not stray_files(tmp_path / "dl")


def test_upload_permission_denied_leaves_nothing(lake, make_file):
    # a scope whose directory on XRD2 belongs to root: the xrootd user may
    # not create the hash directories below it
    lake("add-scope", "user.perm")
    top = os.path.join(lake.rses["XRD2"].data_dir, "rucio", "user", "perm")
    os.makedirs(top, exist_ok=True)
    os.chown(top, 0, 0)
    os.chmod(top, 0o755)
    try:
        a = make_file(1000)
        before = lake.dump()
        err = lake.fails("upload", a, "--rse", "XRD2", "--scope", "user.perm")
        assert "denied" in err.lower() or "permission" in err.lower(), err
        assert lake.dump() == before
        assert not stray_files(top)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_upload_unknown_scheme_and_blocked_rse(lake, make_file):
    lake("add-rse", "GRID1")
    lake("add-protocol", "--rse", "GRID1", "--scheme", "gsiftp", "--hostname", "127.0.0.1",
         "--port", 2811, "--prefix", "/data")
    a = make_file(100)
    before = lake.dump()
    err = lake.fails("upload", a, "--rse", "GRID1")
    assert "gsiftp" in err
    assert lake.dump() == before
    lake("update-rse", "--rse", "XRD1", "--setting", "availability_write", "--value", "false")
    lake.fails("upload", a, "--rse", "XRD1", cls="RSEWriteBlocked")
    assert lake.dump() != before  # only the update-rse above
    lake.fails("upload", a, "--rse", "NOPE", cls="RSENotFound")


class LyingDav(http.server.BaseHTTPRequestHandler):
    """A WebDAV server that stores files faithfully but reports a wrong
    adler32 for every file: the upload's server-side check must catch it."""
    root = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _path(self, url=None):
        from urllib.parse import urlparse, unquote
        return os.path.join(self.root, unquote(urlparse(url or self.path).path).lstrip("/"))

    def _reply(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def do_PUT(self):
        p = self._path()
        n = int(self.headers.get("Content-Length", 0))
        if not os.path.isdir(os.path.dirname(p)):
            self.rfile.read(n)
            return self._reply(409)
        with open(p, "wb") as f:
            left = n
            while left:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    break
                f.write(chunk)
                left -= len(chunk)
        self._reply(201)

    def do_MKCOL(self):
        p = self._path()
        if os.path.isdir(p):
            return self._reply(405)
        if not os.path.isdir(os.path.dirname(p.rstrip("/"))):
            return self._reply(409)
        os.mkdir(p)
        self._reply(201)

    def do_HEAD(self):
        p = self._path()
        if not os.path.exists(p):
            return self._reply(404)
        self.send_response(200)
        self.send_header("Content-Length", str(os.path.getsize(p)))
        if self.headers.get("Want-Digest"):
            self.send_header("Digest", "adler32=00000001")
        self.end_headers()

    def do_PROPFIND(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))  # the XML body
        self._reply(405)

    def do_GET(self):
        p = self._path()
        if not os.path.exists(p):
            return self._reply(404)
        self._reply(200, open(p, "rb").read())

    def do_MOVE(self):
        os.replace(self._path(), self._path(self.headers["Destination"]))
        self._reply(201)

    def do_DELETE(self):
        p = self._path()
        if os.path.exists(p):
            os.unlink(p)
            return self._reply(204)
        self._reply(404)


@pytest.fixture
def liar(tmp_path):
    root = tmp_path / "liar"
    (root / "store").mkdir(parents=True)
    handler = type("H", (LyingDav,), {"root": str(root)})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1], root
    finally:
        srv.shutdown()
        srv.server_close()


def test_upload_checksum_mismatch_registers_nothing(lake, make_file, liar):
    port, root = liar
    lake("add-rse", "LIAR")
    lake("add-protocol", "--rse", "LIAR", "--scheme", "http", "--hostname", "127.0.0.1",
         "--port", port, "--prefix", "/store")
    a = make_file(4096)
    before = lake.dump()
    err = lake.fails("upload", a, "--rse", "LIAR", cls="FileConsistencyMismatch")
    assert "00000001" in err
    assert lake.dump() == before
    # nothing under the final name, and the temporary file is gone too
    files = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
    assert files == [], files
