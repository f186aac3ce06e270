# SPDX-License-Identifier: Apache-2.0
"""servefixture - `didfs serve` on a free loopback port over https, for tests.

    def test_x(served):                      # a fresh catalog, root = ddmlab/secret
        r = served.get("/ping")              # requests against it, CA verified
        served.stop(); served.restart()      # down and up again, same port and catalog
        cfg = served.rucio_cfg(tmp_path)     # a [client] rucio.cfg for Rucio's clients
        served.rucio("41.0.0", tmp_path, "whoami")

A test PKI is made per test session (openssl): a CA, a server certificate
for 127.0.0.1/localhost, a user certificate (DN "CN=Test User,OU=Users,
DC=didfs,DC=org" in RFC 2253 order) and an RFC 3820 proxy of it.  The server
is stopped with SIGTERM (then SIGKILL) whatever the test does.  Rucio's
clients come from ../shared/peers/rucio-clients (next to the repository, or
/work/shared); tests that need them skip with the missing directory named.
"""
import json
import os
import signal
import socket
import subprocess
import time

import pytest
import requests

from catfixture import Didfs, didfs_bin

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
USER_DN = "CN=Test User,OU=Users,DC=didfs,DC=org"
USER_DN_LEGACY = "/DC=org/DC=didfs/OU=Users/CN=Test User"


def peers_dir():
    for d in (os.path.join(ROOT, "..", "shared", "peers", "rucio-clients"),
              "/work/shared/peers/rucio-clients"):
        if os.path.isdir(d):
            return os.path.abspath(d)
    return None


def need_peers():
    d = peers_dir()
    if not d:
        pytest.skip("Rucio's clients not found: "
                    f"{os.path.abspath(os.path.join(ROOT, '..', 'shared', 'peers', 'rucio-clients'))}"
                    " is missing")
    return d


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _ssl(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"openssl {' '.join(args)}: {p.stderr}")
    return p.stdout


def make_pki(d):
    os.makedirs(d, exist_ok=True)
    if os.path.exists(os.path.join(d, "proxy.pem")):
        return d
    _ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "30", "-subj", "/CN=didfs serve test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    with open(os.path.join(d, "host.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    _ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "host.key", "-out", "host.csr",
         "-subj", "/CN=localhost", cwd=d)
    _ssl("x509", "-req", "-in", "host.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "host.pem", "-days", "30", "-extfile", "host.ext", cwd=d)
    with open(os.path.join(d, "user.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=clientAuth\n")
    _ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "user.key", "-out", "user.csr",
         "-subj", "/DC=org/DC=didfs/OU=Users/CN=Test User", cwd=d)
    _ssl("x509", "-req", "-in", "user.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "user.pem", "-days", "30", "-extfile", "user.ext", cwd=d)
    # RFC 3820 proxy: subject = user's + CN=<serial>, signed by the user key
    with open(os.path.join(d, "proxy.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "proxyCertInfo=critical,language:id-ppl-inheritAll\n")
    _ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "proxy.key", "-out", "proxy.csr",
         "-subj", "/DC=org/DC=didfs/OU=Users/CN=Test User/CN=1234567", cwd=d)
    _ssl("x509", "-req", "-in", "proxy.csr", "-CA", "user.pem", "-CAkey", "user.key",
         "-set_serial", "1234567", "-out", "proxy.crt", "-days", "1", "-extfile", "proxy.ext", cwd=d)
    with open(os.path.join(d, "proxy.pem.tmp"), "w") as out:
        for part in ("proxy.crt", "proxy.key", "user.pem"):
            out.write(open(os.path.join(d, part)).read())
    os.chmod(os.path.join(d, "proxy.pem.tmp"), 0o600)
    os.rename(os.path.join(d, "proxy.pem.tmp"), os.path.join(d, "proxy.pem"))
    return d


class Served:
    def __init__(self, tmp, pki, extra_args=(), legacy_dn=False):
        self.tmp = str(tmp)
        self.pki = pki
        self.ca = os.path.join(pki, "ca.pem")
        self.catalog = os.path.join(self.tmp, "serve.db")
        self.didfs = Didfs(self.catalog)
        self.catalog = self.didfs.catalog  # a PostgreSQL URI on that store
        self.didfs("init", "--root-username", "ddmlab", "--root-password", "secret")
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.log = os.path.join(self.tmp, "serve.log")
        self.access_log = os.path.join(self.tmp, "access.log")
        self.extra_args = list(extra_args)
        self.legacy_dn = legacy_dn
        self._start()
        self.session = requests.Session()
        self.session.verify = self.ca
        self.session.trust_env = False  # else $REQUESTS_CA_BUNDLE overrides verify
        self._token = None

    def _start(self):
        args = [didfs_bin(), "--catalog", self.catalog, "serve",
                "--listen", f"127.0.0.1:{self.port}",
                "--tls-cert", os.path.join(self.pki, "host.pem"),
                "--tls-key", os.path.join(self.pki, "host.key"),
                "--ca-path", self.ca, "--access-log", self.access_log, *self.extra_args]
        if self.legacy_dn:
            args.append("--legacy-dn")
        seen = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        self.proc = subprocess.Popen(args, stdout=open(self.log, "a"), stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"didfs serve exited {self.proc.returncode}: {open(self.log).read()}")
            with open(self.log, errors="replace") as f:
                f.seek(seen)
                ready = "ready on" in f.read()
            if ready:
                break
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("didfs serve did not become ready: " + open(self.log).read())

    def restart(self):
        """Start the server again on the same port and catalog (after stop())."""
        self._start()

    def token(self, user="ddmlab", password="secret"):
        r = self.session.get(self.url + "/auth/userpass",
                             headers={"X-Rucio-Username": user, "X-Rucio-Password": password})
        assert r.status_code == 200, r.text
        return r.headers["X-Rucio-Auth-Token"]

    def req(self, method, path, token=True, headers=None, **kw):
        h = dict(headers or {})
        if token is True:
            if not self._token:
                self._token = self.token()
            h["X-Rucio-Auth-Token"] = self._token
        elif token:
            h["X-Rucio-Auth-Token"] = token
        return self.session.request(method, self.url + path, headers=h, **kw)

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, **kw):
        return self.req("POST", path, **kw)

    def rucio_cfg(self, d, auth_type="userpass", account="root", user="ddmlab", password="secret"):
        os.makedirs(str(d), exist_ok=True)
        path = os.path.join(str(d), "rucio.cfg")
        lines = ["[client]", f"rucio_host = {self.url}", f"auth_host = {self.url}",
                 f"auth_type = {auth_type}", f"ca_cert = {self.ca}", f"account = {account}",
                 "request_retries = 1"]
        if auth_type == "userpass":
            lines += [f"username = {user}", f"password = {password}"]
        elif auth_type == "x509":
            lines += [f"client_cert = {os.path.join(self.pki, 'user.pem')}",
                      f"client_key = {os.path.join(self.pki, 'user.key')}"]
        elif auth_type == "x509_proxy":
            lines += [f"client_x509_proxy = {os.path.join(self.pki, 'proxy.pem')}"]
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def rucio(self, version, d, *args, cfg=None, prog="rucio", check=True, timeout=120, input=None,
              env_extra=None):
        peers = need_peers()
        cfg = cfg or self.rucio_cfg(d)
        env = dict(os.environ)
        env["RUCIO_CONFIG"] = cfg
        tmpdir = os.path.join(str(d), "tmp")
        os.makedirs(tmpdir, exist_ok=True)
        env["TMPDIR"] = tmpdir
        env.pop("RUCIO_HOME", None)
        # Rucio's client takes X509_CERT_DIR before the config's ca_cert; other
        # fixtures (the lake's) point it at the storage CA for the whole run
        env.pop("X509_CERT_DIR", None)
        env.update(env_extra or {})
        p = subprocess.run([os.path.join(peers, "run"), version, prog, *map(str, args)], env=env,
                           capture_output=True, text=True, timeout=timeout, input=input, cwd=str(d))
        if check and p.returncode != 0:
            raise AssertionError(f"rucio {version} {' '.join(map(str, args))} exited {p.returncode}\n"
                                 f"stdout: {p.stdout}\nstderr: {p.stderr}\nserver log: {self.tail()}")
        return p

    def trust_at(self, rses):
        """Let the storage elements of `rses` (XrdHttp) trust this server's
        test CA, which signed the user certificate and its proxy: the CA goes
        into their hashed CA directory next to the storage CA (OpenSSL looks
        certificates up there when it verifies a client)."""
        h = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", self.ca],
                           capture_output=True, text=True, check=True).stdout.strip()
        dst = os.path.join(rses.ca_dir, "didfs-serve-test-ca.pem")
        with open(self.ca) as src, open(dst + ".tmp", "w") as out:
            out.write(src.read())
        os.chmod(dst + ".tmp", 0o644)
        os.replace(dst + ".tmp", dst)
        for i in range(10):
            link = os.path.join(rses.ca_dir, f"{h}.{i}")
            if os.path.islink(link) and os.readlink(link) == os.path.basename(dst):
                break
            if not os.path.lexists(link):
                os.symlink(os.path.basename(dst), link)
                break

    def tail(self, n=30):
        try:
            return "".join(open(self.access_log).readlines()[-n:]) + "".join(open(self.log).readlines()[-n:])
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM (SIGKILL after 15 s); returns the exit status.  A sanitizer
        report in the server's log fails the test."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        log = open(self.log, errors="replace").read()
        if "AddressSanitizer" in log or "runtime error:" in log:
            pytest.fail("didfs serve: sanitizer report in " + self.log + "\n" + log[-4000:])
        return self.proc.returncode


@pytest.fixture(scope="session")
def serve_pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("serve-pki")))


@pytest.fixture
def served(tmp_path, serve_pki):
    os.makedirs(tmp_path / "srv", exist_ok=True)
    s = Served(tmp_path / "srv", serve_pki)
    try:
        yield s
    finally:
        s.stop()
