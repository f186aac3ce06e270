# SPDX-License-Identifier: Apache-2.0
"""The REST catalog (catalog/rest/): the `didfs` command with
`--catalog https://...` against a real `didfs serve` over TLS on loopback
(tests/env/servefixture.py), configured by a real rucio.cfg; real XRootD
storage elements where data is read; a rule carried out by `didfs daemon`
on the server's catalog and seen over REST; userpass, X.509 proxy and
certificate authentication; a token expiring between calls renewed; the
local catalog cache surviving reopen and not poisoned by a failed fill;
offline (serve stopped): cached listings still answer, uncached ones fail
fast; and bad servers (a tiny Python server on loopback: garbage, a
truncated stream, 500, a stall mid-stream, a wrong CA): clear errors, no
crash, no hang."""
import json
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

from catfixture import didfs_bin
from servefixture import Served, free_port


class Rest:
    """The didfs command against a REST catalog, with its own rucio.cfg,
    token cache and catalog cache (XDG_CACHE_HOME) in a directory."""

    def __init__(self, url, d, cfg, env_extra=None):
        self.url = url
        self.d = str(d)
        self.cfg = cfg
        self.env = dict(os.environ)
        for k in ("RUCIO_HOME", "RUCIO_ACCOUNT", "X509_USER_PROXY", "X509_CERT_DIR",
                  "DIDFS_ACCOUNT", "DIDFS_REST_CACHE", "DIDFS_CACHE_DIR", "DIDFS_TIMEOUT"):
            self.env.pop(k, None)
        self.env["RUCIO_CONFIG"] = cfg
        self.env["XDG_CACHE_HOME"] = os.path.join(self.d, "cache")
        self.env.update(env_extra or {})

    def run(self, *args, json_out=False, timeout=120, env=None):
        cmd = [didfs_bin(), "--catalog", self.url] + (["--json"] if json_out else []) + \
            [str(a) for a in args]
        e = dict(self.env)
        e.update(env or {})
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e)

    def __call__(self, *args, **kw):
        p = self.run(*args, **kw)
        assert p.returncode == 0, f"didfs {args} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
        assert "AddressSanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr
        return p.stdout

    def json(self, *args, **kw):
        return json.loads(self(*args, json_out=True, **kw))

    def fails(self, *args, cls=None, contains=None, **kw):
        p = self.run(*args, **kw)
        assert p.returncode != 0, f"didfs {args} should have failed:\n{p.stdout}"
        assert "AddressSanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr
        if cls:
            assert f"didfs: {cls}:" in p.stderr, p.stderr
        if contains:
            assert contains in p.stderr, p.stderr
        return p.stderr


def rest_for(served, d, **kw):
    os.makedirs(str(d), exist_ok=True)
    return Rest(served.url, d, served.rucio_cfg(d, **kw))


def populate(served):
    d = served.didfs
    d("add-scope", "user.root", "--account", "root")
    d("add-rse", "SITE-A")
    d("set-account-limit", "root", "SITE-A", "-1")
    d("add-dataset", "user.root:ds1")
    d("add-container", "user.root:cont")
    files = []
    for i, n in enumerate(["f1", "data/2024/run1.root", "f3"]):
        files.append(f"user.root:{n} {100 + i} 0000000{i + 1}")
    lst = os.path.join(served.tmp, "files.txt")
    with open(lst, "w") as f:
        f.write("\n".join(files) + "\n")
    d("add-replicas", "--rse", "SITE-A", "--list", lst, "--dataset", "user.root:ds1")
    d("attach", "user.root:cont", "user.root:ds1")
    d("set-metadata", "user.root:ds1", "--key", "run", "--value", "42")


def test_listings_metadata_rules(served, tmp_path):
    populate(served)
    r = rest_for(served, tmp_path / "u")
    assert "user.root" in r("list-scopes")
    assert r("whoami").split()  # root, through /accounts/whoami or the config
    assert "root" in r("whoami")
    dids = r.json("list-dids", "user.root:*")
    names = {x["did"].split(":", 1)[1] for x in dids}
    assert {"ds1", "cont"} <= names, dids
    content = r.json("list-content", "user.root:ds1")
    assert sorted(x["did"].split(":", 1)[1] for x in content) == ["data/2024/run1.root", "f1", "f3"]
    files = r.json("list-files", "user.root:cont")
    assert sorted(x["did"].split(":", 1)[1] for x in files) == ["data/2024/run1.root", "f1", "f3"]
    assert {x["bytes"] for x in files} == {100, 101, 102}
    reps = r.json("list-file-replicas", "user.root:ds1")
    assert sorted(x["name"] for x in reps) == ["data/2024/run1.root", "f1", "f3"]
    assert {x["rse"] for x in reps} == {"SITE-A"}
    # metadata: read, set, delete through the server; the server's catalog has it
    meta = r.json("get-metadata", "user.root:ds1")
    assert meta.get("run") == "42", meta
    r("set-metadata", "user.root:ds1", "--key", "campaign", "--value", "mc23")
    assert served.didfs.json("get-metadata", "user.root:ds1").get("campaign") == "mc23"
    r("delete-metadata", "user.root:ds1", "--key", "campaign")
    assert "campaign" not in served.didfs.json("get-metadata", "user.root:ds1")
    # a write the server refuses keeps Rucio's class and the local store's text
    err = r.fails("get-metadata", "user.root:nothere", cls="DataIdentifierNotFound")
    local = served.didfs.run("get-metadata", "user.root:nothere").stderr
    assert err.strip() == local.strip()
    # new dataset and attach through the server
    r("add-dataset", "user.root:ds2")
    r("attach", "user.root:cont", "user.root:ds2")
    assert "ds2" in served.didfs("list-content", "user.root:cont")
    r.fails("add-dataset", "user.root:ds2", cls="DataIdentifierAlreadyExists")
    # rules: add, info, list, update, delete
    rid = r("add-rule", "user.root:ds1", "1", "SITE-A").split()[0]
    assert len(rid) == 32
    info = r("rule-info", rid)
    assert "SITE-A" in info and rid in info
    assert rid in r("list-rules", "user.root:ds1")
    r("update-rule", rid, "--comment", "over REST")
    assert "over REST" in json.dumps(served.didfs.json("rule-info", rid))
    r.fails("add-rule", "user.root:ds1", "1", "SITE-A", cls="DuplicateRule")
    r.fails("add-rule", "user.root:ds1", "1", "NOPE&&", cls="InvalidRSEExpression")
    r("delete-rule", rid)
    r.fails("rule-info", "0" * 32, cls="RuleNotFound")
    # RSEs
    assert "SITE-A" in r("list-rses")
    # usage: the same rows as the server's own catalog gives
    assert r.json("list-account-usage", "root") == served.didfs.json("list-account-usage", "root")
    # what a REST catalog cannot do names the call and the server
    err = r.fails("add-rse", "SITE-B", cls="UnsupportedOperation")
    assert served.url in err


def test_x509_proxy_and_cert(served, tmp_path):
    from servefixture import USER_DN
    populate(served)
    served.didfs("add-account", "jdoe")
    served.didfs("add-scope", "user.jdoe", "--account", "jdoe")
    # the DN is mapped through the API (admin)
    tok = served.token()
    rr = served.req("POST", "/accounts/jdoe/identities", token=tok,
                    data=json.dumps({"identity": USER_DN, "authtype": "X509",
                                     "email": "j@example.org", "default": True}))
    assert rr.status_code == 201, rr.text
    for auth in ("x509_proxy", "x509"):
        r = rest_for(served, tmp_path / auth, auth_type=auth, account="jdoe")
        assert "jdoe" in r("whoami")
        r("add-dataset", f"user.jdoe:by_{auth}")
        assert f"by_{auth}" in served.didfs("list-dids", "user.jdoe:*")
        # jdoe may not write in root's scope: the server decides
        r.fails("add-dataset", f"user.root:{auth}_nope", cls="AccessDenied")


def test_token_renewed(tmp_path, serve_pki):
    os.makedirs(tmp_path / "srv")
    s = Served(tmp_path / "srv", serve_pki, extra_args=["--token-lifetime", "2"])
    try:
        populate(s)
        r = rest_for(s, tmp_path / "u")
        assert "user.root" in r("list-scopes")
        n_auth = open(s.access_log).read().count("/auth/userpass")
        time.sleep(3.5)  # the cached token has expired on the server
        assert "ds1" in r("list-dids", "user.root:*")
        log = open(s.access_log).read()
        assert log.count("/auth/userpass") == n_auth + 1, log
        assert " 401 " in log or "401" in log.split("/auth/userpass")[-2]
    finally:
        s.stop()


def test_token_cache_is_keyed_by_the_credential(served, tmp_path):
    """The on-disk token cache holds a token per credential, not per name:
    the same username with a wrong password is refused by the server, never
    handed the cached token of the right one (a proxy or certificate is keyed
    by its bytes the same way, not by its path)."""
    populate(served)
    good = rest_for(served, tmp_path / "u")
    assert "user.root" in good("list-scopes")
    n_auth = open(served.access_log).read().count("/auth/userpass")
    # the same cache directory, the same username, another password
    bad_cfg = served.rucio_cfg(tmp_path / "bad", password="not-the-password")
    bad = Rest(served.url, tmp_path / "u", bad_cfg)
    bad.fails("list-scopes", contains="Cannot authenticate")
    assert open(served.access_log).read().count("/auth/userpass") == n_auth + 1
    # the right one still uses its cached token (no new login)
    assert "user.root" in good("list-scopes")
    assert open(served.access_log).read().count("/auth/userpass") == n_auth + 1


def test_cache_offline_and_reopen(tmp_path, serve_pki):
    os.makedirs(tmp_path / "srv")
    s = Served(tmp_path / "srv", serve_pki)
    try:
        populate(s)
        r = rest_for(s, tmp_path / "u")
        r.env["DIDFS_TIMEOUT"] = "10"
        r.env["DIDFS_REST_TTL"] = "1"
        # filled: the scope's roots and a dataset's content, in one call each
        before = open(s.access_log).read().count("\n")
        assert "ds1" in r("list-content", "user.root:cont")
        assert "f1" in r("list-content", "user.root:ds1")
        cache_files = [f for f in os.listdir(tmp_path / "u" / "cache" / "didfs")
                       if f.startswith("catalog-")]
        assert cache_files, os.listdir(tmp_path / "u" / "cache" / "didfs")
        # within the ttl, the cache answers without asking the server
        after = open(s.access_log).read().count("\n")
        assert "f1" in r("list-content", "user.root:ds1")
        assert open(s.access_log).read().count("\n") == after
        assert after > before
    finally:
        s.stop()
    # offline: cached listings still answer (past their ttl), uncached fail fast
    time.sleep(1.2)
    out = r("list-content", "user.root:ds1")
    assert "f1" in out and "data/2024/run1.root" in out
    t0 = time.time()
    err = r.fails("list-content", "user.root:never_seen", cls="ServerUnreachable")
    assert time.time() - t0 < 10 + 20, "an uncached lookup must fail within the timeout"
    assert "127.0.0.1" in err


# ---- bad servers -------------------------------------------------------------
class BadServer:
    """A tiny HTTPS server on loopback that answers every request with one
    canned behaviour (after a correct /auth/userpass)."""

    def __init__(self, pki, mode):
        self.mode = mode
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(os.path.join(pki, "host.pem"), os.path.join(pki, "host.key"))
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        self.sock.settimeout(0.2)
        while not self.stop_ev.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        try:
            c = self.ctx.wrap_socket(c, server_side=True)
            c.settimeout(30)
            while True:
                req = b""
                while b"\r\n\r\n" not in req:
                    chunk = c.recv(4096)
                    if not chunk:
                        return
                    req += chunk
                head = req.split(b"\r\n\r\n")[0].decode()
                path = head.split()[1]
                n = 0
                for line in head.split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        n = int(line.split(":")[1])
                body = req.split(b"\r\n\r\n", 1)[1]
                while len(body) < n:
                    body += c.recv(4096)
                if path.startswith("/auth/"):
                    c.sendall(b"HTTP/1.1 200 OK\r\nX-Rucio-Auth-Token: tok-1\r\n"
                              b"Content-Length: 0\r\n\r\n")
                    continue
                self.answer(c)
                return
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def answer(self, c):
        m = self.mode
        if m == "garbage":
            body = b"<html>this is not JSON</html>\n"
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                      + str(len(body)).encode() + b"\r\n\r\n" + body)
        elif m == "garbage-stream":
            body = b'"user.root"\n{not json\n'
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-json-stream\r\n"
                      b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        elif m == "truncated":
            row = b'{"scope": "s", "name": "n1", "type": "FILE", "bytes": 1}\n'
            part = row + row[:20]
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-json-stream\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n" +
                      format(len(part), "x").encode() + b"\r\n" + part + b"\r\n")
            c.shutdown(socket.SHUT_RDWR)
        elif m == "500":
            c.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
                      b"Content-Length: 13\r\n\r\nInternal oops")
        elif m == "stall":
            row = b'{"scope": "s", "name": "n1", "type": "FILE", "bytes": 1}\n'
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-json-stream\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n" +
                      format(len(row), "x").encode() + b"\r\n" + row + b"\r\n")
            self.stop_ev.wait(60)

    def stop(self):
        self.stop_ev.set()
        self.t.join(10)
        self.sock.close()


@pytest.mark.parametrize("mode,cmd,expect", [
    ("garbage", ["list-scopes"], "not JSON"),
    ("garbage-stream", ["list-scopes"], "line 2"),
    ("truncated", ["list-content", "s:ds"], "cut off"),
    ("500", ["list-scopes"], "HTTP 500"),
    ("stall", ["list-content", "s:ds"], "stalled"),
])
def test_bad_servers(tmp_path, serve_pki, mode, cmd, expect):
    b = BadServer(serve_pki, mode)
    try:
        d = tmp_path / "u"
        os.makedirs(d)
        cfg = d / "rucio.cfg"
        cfg.write_text(f"[client]\nrucio_host = {b.url}\nauth_type = userpass\nusername = u\n"
                       f"password = p\nca_cert = {os.path.join(serve_pki, 'ca.pem')}\n"
                       "account = root\n")
        r = Rest(b.url, d, str(cfg), env_extra={"DIDFS_TIMEOUT": "3"})
        t0 = time.time()
        err = r.fails(*cmd, timeout=60)
        assert time.time() - t0 < 40
        assert expect in err, err
        assert "127.0.0.1" in err, err
    finally:
        b.stop()


def test_wrong_ca(served, tmp_path, serve_pki):
    d = tmp_path / "u"
    os.makedirs(d)
    other = tmp_path / "other-ca"
    os.makedirs(other)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(other / "k.pem"), "-out", str(other / "ca.pem"), "-days", "1", "-subj",
                    "/CN=not the serve CA"], check=True, capture_output=True)
    cfg = d / "rucio.cfg"
    cfg.write_text(f"[client]\nrucio_host = {served.url}\nauth_type = userpass\n"
                   f"username = ddmlab\npassword = secret\nca_cert = {other / 'ca.pem'}\n")
    r = Rest(served.url, d, str(cfg))
    err = r.fails("list-scopes", cls="RucioException")
    assert "TLS" in err and str(other / "ca.pem") in err, err


def test_failed_fill_keeps_cache(served, tmp_path, serve_pki):
    """A listing whose answer breaks off leaves the previous good listing:
    the same cache file ($DIDFS_REST_CACHE) first filled from the real
    server, then asked through a server that truncates its stream, then
    read offline."""
    populate(served)
    cache = str(tmp_path / "shared-cache.db")
    extra = {"DIDFS_REST_CACHE": cache, "DIDFS_REST_TTL": "0", "DIDFS_TIMEOUT": "5"}
    good = rest_for(served, tmp_path / "good")
    good.env.update(extra)
    assert "data/2024/run1.root" in good("list-content", "user.root:ds1")
    b = BadServer(serve_pki, "truncated")
    try:
        d = tmp_path / "bad"
        os.makedirs(d)
        cfg = d / "rucio.cfg"
        cfg.write_text(f"[client]\nrucio_host = {b.url}\nauth_type = userpass\nusername = u\n"
                       f"password = p\nca_cert = {os.path.join(serve_pki, 'ca.pem')}\n")
        bad = Rest(b.url, d, str(cfg), env_extra=extra)
        bad.fails("list-content", "user.root:ds1", contains="cut off")
    finally:
        b.stop()
    # the bad server is gone: offline, the cache answers with the good listing
    out = bad("list-content", "user.root:ds1")
    assert "data/2024/run1.root" in out and "f1" in out and "s:n1" not in out, out


def test_rule_by_daemon_and_download(served, rses, make_file, tmp_path):
    rses.register(served.catalog, served.didfs.bin)
    d = served.didfs
    d("add-scope", "user.root", "--account", "root")
    for s in ("XRD1", "XRD2", "XRD3"):
        d("set-account-limit", "root", s, "-1")
    f = make_file(300000, name="restfile.dat")
    d("upload", f, "--rse", "XRD1", "--dataset", "user.root:rds")
    r = rest_for(served, tmp_path / "u")
    rid = r("add-rule", "user.root:rds", "1", "XRD2").split()[0]
    assert "REPLICATING" in r("rule-info", rid)
    for _ in range(6):
        d("daemon", "all", "--once", timeout=300)
        info = r("rule-info", rid)
        if "OK" in info.split():
            break
    assert "OK" in info.split(), info
    reps = r.json("list-file-replicas", "user.root:rds")
    assert {x["rse"] for x in reps} == {"XRD1", "XRD2"}
    assert all(x["pfn"].split("://")[0] in ("root", "https", "davs") and
               x["pfn"].endswith("/restfile.dat") for x in reps), reps
    # download through the REST catalog: the replicas and PFNs come from the server
    out = tmp_path / "dl"
    r("download", "user.root:rds", "--dir", out, timeout=300)
    got = list(out.rglob("restfile.dat"))
    assert got and got[0].read_bytes() == f.read_bytes()
    # upload through the REST catalog: registered COPYING, written, AVAILABLE, attached
    g = make_file(120000, name="uploaded_over_rest.dat")
    p = r.run("upload", g, "--rse", "XRD1", "--scope", "user.root", "--dataset",
              "user.root:rds_up", timeout=300)
    assert p.returncode == 0, p.stderr
    reps = served.didfs.json("list-file-replicas", "user.root:uploaded_over_rest.dat")
    assert [(x["rse"], x["state"]) for x in reps] == [("XRD1", "AVAILABLE")], reps
    assert "uploaded_over_rest.dat" in served.didfs("list-content", "user.root:rds_up")
    out2 = tmp_path / "dl2"
    r("download", "user.root:uploaded_over_rest.dat", "--dir", out2, timeout=300)
    got = list(out2.rglob("uploaded_over_rest.dat"))
    assert got and got[0].read_bytes() == g.read_bytes()


def test_replicas_cached_per_dataset(served, tmp_path):
    """Replicas of a listed dataset's files come from one POST /replicas/list:
    the first file's look-up fills them all, the others ask nothing; offline
    they are still there."""
    populate(served)
    r = rest_for(served, tmp_path / "u")
    r("list-content", "user.root:ds1")  # the listing names the files' dataset
    log = lambda: open(served.access_log).read()
    n0 = log().count("POST /replicas/list")
    for f in ("f1", "data/2024/run1.root", "f3"):
        reps = r.json("list-file-replicas", f"user.root:{f}")
        assert [x["rse"] for x in reps] == ["SITE-A"], reps
        assert reps[0]["name"] == f
    assert log().count("POST /replicas/list") == n0 + 1, log()
    served.stop()
    reps = r.json("list-file-replicas", "user.root:f3")
    assert [x["rse"] for x in reps] == ["SITE-A"]


def test_more_commands(served, tmp_path):
    populate(served)
    d = served.didfs
    d("set-rse-attribute", "--rse", "SITE-A", "--key", "tier", "--value", "1")
    d("add-protocol", "--rse", "SITE-A", "--scheme", "root", "--hostname", "st.example.org",
      "--port", "1094", "--prefix", "/data")
    r = rest_for(served, tmp_path / "u")
    # the catalog from $DIDFS_CATALOG instead of --catalog
    e = dict(r.env, DIDFS_CATALOG=served.url)
    p = subprocess.run([didfs_bin(), "list-scopes"], capture_output=True, text=True, env=e,
                       timeout=60)
    assert p.returncode == 0 and "user.root" in p.stdout, p.stderr
    assert "user.root:cont" in r("list-parent-dids", "user.root:ds1")
    assert "SITE-A" in r("list-rses", "tier=1")
    r.fails("list-rses", "tier=9", cls="InvalidRSEExpression")
    assert "tier" in r("list-rse-attributes", "SITE-A")
    assert "st.example.org" in r("list-protocols", "SITE-A")
    pfn = r("lfn2pfn", "--rse", "SITE-A", "user.root:f1").strip()
    assert pfn == d("lfn2pfn", "--rse", "SITE-A", "user.root:f1").strip(), pfn
    # the replicas' PFNs are the server's
    reps = r.json("list-file-replicas", "user.root:f1")
    assert reps[0]["pfn"].startswith("root://st.example.org:1094/"), reps
    r("add-container", "user.root:c2")
    r("attach", "user.root:c2", "user.root:cont")
    r("close", "user.root:ds1")
    assert served.didfs.json("get-metadata", "user.root:ds1")["is_open"] is False
    r.fails("attach", "user.root:ds1", "user.root:f1", cls="UnsupportedOperation")
    # --account: the server checks who may act as whom
    d("add-account", "jdoe")
    d("add-identity", "jdoe", "--username", "jdoe", "--password", "pw")
    cfg = served.rucio_cfg(tmp_path / "j", account="jdoe", user="jdoe", password="pw")
    j = Rest(served.url, tmp_path / "j", cfg)
    assert "jdoe" in j("whoami")
    j.fails("add-dataset", "user.root:not_yours", cls="AccessDenied")
    assert "not_yours" not in d("list-dids", "user.root:*")
    p = j.run("--account", "root", "whoami")
    assert p.returncode != 0 and "CannotAuthenticate" in p.stderr, p.stderr


def test_back_online_resynchronises(tmp_path, serve_pki, monkeypatch):
    """Server down: the cached content of an open container is served;
    server back (on the same address, its catalog changed meanwhile): after
    the TTL the listing is re-validated and shows the change."""
    import servefixture
    os.makedirs(tmp_path / "srv1")
    s = Served(tmp_path / "srv1", serve_pki)
    port = s.port
    try:
        populate(s)
        r = rest_for(s, tmp_path / "u")
        r.env["DIDFS_REST_TTL"] = "1"
        assert "user.root:ds1" in r("list-content", "user.root:cont")
    finally:
        s.stop()
    time.sleep(1.2)  # past the TTL: stale, and the server is gone
    assert "user.root:ds1" in r("list-content", "user.root:cont")  # offline, from the cache
    monkeypatch.setattr(servefixture, "free_port", lambda: port)
    os.makedirs(tmp_path / "srv2")
    s2 = Served(tmp_path / "srv2", serve_pki)
    try:
        assert s2.port == port
        populate(s2)
        s2.didfs("add-dataset", "user.root:ds9")
        s2.didfs("attach", "user.root:cont", "user.root:ds9")
        time.sleep(1.5)  # past the TTL; the old token is unknown to this server: renewed
        out = r("list-content", "user.root:cont")
        assert "user.root:ds9" in out and "user.root:ds1" in out, out
    finally:
        s2.stop()
