# SPDX-License-Identifier: Apache-2.0
"""`didfs serve` lifecycle: one access-log line per request, SIGHUP reloads
the config file (a new token lifetime and version apply, a broken file is
refused and the running config kept), SIGTERM stops with status 0, 503 in
Rucio's format when no catalog handle is free, bad options refused."""
import os
import signal
import subprocess
import threading
import time

from catfixture import didfs_bin
from servefixture import Served, free_port


def test_access_log_and_sighup_reload(tmp_path, serve_pki):
    cfg = tmp_path / "serve.cfg"
    cfg.write_text("# test\ntoken_lifetime = 3600\nversion = 1.31.7\n")
    s = Served(tmp_path, serve_pki, extra_args=["--config", str(cfg)])
    try:
        assert s.get("/ping", token=None).json() == {"version": "1.31.7"}
        assert s.get("/accounts/root").status_code == 200
        # the line is written when the request completes, which may be just
        # after the client has its answer: wait for it (bounded)
        deadline = time.time() + 10
        while True:
            lines = open(s.access_log).read().splitlines()
            if any('root "GET /accounts/root" 200' in x for x in lines) or time.time() > deadline:
                break
            time.sleep(0.1)
        assert any('"GET /ping" 200' in x for x in lines)
        assert any('root "GET /accounts/root" 200' in x for x in lines)
        cfg.write_text("version = 41.0.0\n")
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline and s.get("/ping", token=None).json()["version"] != "41.0.0":
            time.sleep(0.1)
        assert s.get("/ping", token=None).json() == {"version": "41.0.0"}
        cfg.write_text("no_such_key = 1\n")
        s.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert s.alive() and s.get("/ping", token=None).json() == {"version": "41.0.0"}
        assert "unknown key 'no_such_key'" in open(s.log).read()
    finally:
        assert s.stop() == 0


def test_overload_is_503(tmp_path, serve_pki):
    # one catalog handle; a long listing holds it while another request waits past 5 s
    s = Served(tmp_path, serve_pki, extra_args=["--threads", "1"])
    try:
        d = s.didfs
        d("add-scope", "lab", "--account", "root")
        d("add-rse", "R1")
        d("add-dataset", "lab:ds")
        lst = tmp_path / "l.txt"
        lst.write_text("".join(f"lab:f{i} 1 00000001\n" for i in range(100000)))
        d("add-replicas", "--rse", "R1", "--list", str(lst), "--dataset", "lab:ds")
        tok = s.token()
        # a stream whose reader does not read holds the producer (and its handle)
        import socket
        import ssl
        ctx = ssl.create_default_context(cafile=s.ca)
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        raw.connect(("127.0.0.1", s.port))
        c = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        c.sendall(f"GET /dids/lab/ds/files HTTP/1.1\r\nHost: x\r\nX-Rucio-Auth-Token: {tok}\r\n\r\n".encode())
        c.recv(100)
        time.sleep(0.5)
        r = s.get("/accounts/root", token=tok)
        assert r.status_code == 503 and r.json()["ExceptionClass"] == "DatabaseException"
        c.close()
        time.sleep(0.5)
        assert s.get("/accounts/root", token=tok).status_code == 200
    finally:
        assert s.stop() == 0


def test_bad_options(tmp_path):
    cat = tmp_path / "c.db"
    subprocess.run([didfs_bin(), "--catalog", str(cat), "init"], check=True, capture_output=True)
    for args, msg in [(["--listen", "nonsense"], "InputValidationError"),
                      (["--tls-cert", "/nonexistent"], "--tls-cert and --tls-key go together"),
                      (["--config", "/nonexistent.cfg"], "cannot read config")]:
        p = subprocess.run([didfs_bin(), "--catalog", str(cat), "serve", *args],
                           capture_output=True, text=True, timeout=20)
        assert p.returncode == 1 and msg in p.stderr, (args, p.stderr)
