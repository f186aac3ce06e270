# SPDX-License-Identifier: Apache-2.0
"""Bad input to `didfs serve`: malformed, truncated and over-limit bodies,
invalid UTF-8, wrong types, encoded '/', '..' and NUL in paths, a client
sending its headers one byte at a time, many idle connections.  Each gets
Rucio's error or a closed connection; the server keeps serving others and
the catalog is unchanged."""
import socket
import ssl
import subprocess
import threading
import time

import pytest

from servefixture import Served


def dump(served):
    return subprocess.run(["sqlite3", served.catalog, ".dump"], capture_output=True, text=True).stdout


def seed(served):
    served.didfs("add-scope", "lab", "--account", "root")
    served.didfs("add-rse", "XRD1")
    served.didfs("add-dataset", "lab:ds")


BAD_BODIES = [
    ("POST", "/dids/lab/ds2", b'{"type": "DATASET"', "ValueError"),            # truncated
    ("POST", "/dids/lab/ds2", b'not json', "ValueError"),
    ("POST", "/dids/lab/ds2", b'{"type": "DATA\xff\xfeSET"}', "ValueError"),   # invalid UTF-8
    ("POST", "/dids/lab/ds2", b'{"type": 5}', "TypeError"),
    ("POST", "/dids/lab/ds2", b'{"type": "DATASET", "rules": "x"}', "TypeError"),
    ("POST", "/dids/lab/ds2", b'[]', "TypeError"),
    ("POST", "/dids/lab/ds/dids", b'{"dids": [{"scope": 1, "name": "x"}]}', "TypeError"),
    ("POST", "/dids/lab/ds/dids", b'{"dids": {}}', "TypeError"),
    ("POST", "/replicas", b'{"rse": "XRD1", "files": [{"scope": "lab", "name": "f", "bytes": -1, "adler32": "01"}]}', "TypeError"),
    ("POST", "/replicas", b'{"rse": "XRD1", "files": [{"scope": "lab", "name": "f\\u0000x", "bytes": 1}]}', "ValueError"),
    ("POST", "/rules/", b'{"dids": [], "account": "root", "copies": "1", "rse_expression": "XRD1"}', "TypeError"),
    ("POST", "/replicas/list", b'{"dids": [{"scope": "lab"}]}', "KeyError"),
    ("PUT", "/dids/lab/ds/status", b'{"open": "no"}', "TypeError"),
]


def test_bad_bodies_catalog_unchanged(served):
    seed(served)
    before = dump(served)
    for method, path, body, cls in BAD_BODIES:
        r = served.req(method, path, data=body)
        assert 400 <= r.status_code < 600, (path, body, r.status_code)
        assert r.headers.get("ExceptionClass") == cls, (path, body, r.status_code, r.text)
        assert r.json()["ExceptionClass"] == cls
    assert dump(served) == before
    assert served.get("/ping", token=None).status_code == 200


def test_paths_with_slash_dotdot_nul(served):
    seed(served)
    before = dump(served)
    for path, status in [("/dids/lab/a%2Fb", 404), ("/dids/lab/..%2F..%2Fetc", 500),
                         ("/dids/lab/x%00y", 400), ("/dids/lab/%zz", 500), ("/dids/%2F/x", 500),
                         ("/rses/A%00B", 400), ("/accounts/ro%00ot", 400),
                         ("/dids/lab/ds/meta/%00", 400)]:
        r = served.get(path)
        assert r.status_code == status, (path, r.status_code, r.text)
        assert "ExceptionClass" in r.headers
    r = served.post("/dids/lab/x%00y", data='{"type": "DATASET"}')
    assert r.status_code == 400
    assert dump(served) == before


def test_body_over_limit(tmp_path, serve_pki):
    s = Served(tmp_path, serve_pki, extra_args=["--max-body", "4096"])
    try:
        s.didfs("add-scope", "lab", "--account", "root")
        before = dump(s)
        r = s.post("/dids/lab/big", data=b'{"type": "DATASET", "x": "' + b"a" * 10000 + b'"}')
        assert r.status_code == 413 and r.headers["ExceptionClass"] == "RequestEntityTooLarge"
        assert dump(s) == before
        assert s.get("/ping", token=None).status_code == 200
    finally:
        s.stop()


def tls_conn(served):
    ctx = ssl.create_default_context(cafile=served.ca)
    raw = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def test_slow_headers_and_idle_connections(tmp_path, serve_pki):
    s = Served(tmp_path, serve_pki, extra_args=["--timeout", "3", "--max-connections", "1100"])
    try:
        # a client sending its request one byte at a time
        slow = tls_conn(s)
        stop = threading.Event()

        def trickle():
            req = b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200
            for c in req:
                if stop.is_set():
                    return
                try:
                    slow.send(bytes([c]))
                except OSError:
                    return
                time.sleep(0.05)

        t = threading.Thread(target=trickle)
        t.start()
        # 1,000 idle TCP connections (no TLS handshake)
        idle = []
        for _ in range(1000):
            try:
                idle.append(socket.create_connection(("127.0.0.1", s.port), timeout=5))
            except OSError:
                break
        assert len(idle) >= 900
        # others are still served meanwhile
        for _ in range(5):
            assert s.get("/ping", token=None).status_code == 200
        stop.set()
        t.join()
        for c in idle:
            c.close()
        slow.close()
        time.sleep(0.5)
        assert s.get("/accounts/whoami", allow_redirects=False).status_code == 303
        assert s.alive()
    finally:
        assert s.stop() == 0  # SIGTERM: a clean stop
