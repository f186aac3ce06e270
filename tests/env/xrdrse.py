# SPDX-License-Identifier: Apache-2.0
"""xrdrse - real XRootD storage elements on loopback for tests and the quickstart.

Shared by the command-line tools start-rses / stop-rses and the pytest plugin
rsefixture.py.  Each server is a Debian `xrootd` process started as root with
`-R xrootd` (so it runs as the xrootd user), with its own data directory,
admin and pid directories, one free TCP port that serves root:// and https://
(XrdHttp on the same port, TLS with a test CA), adler32 checksums, root
third-party copy (ofs.tpc) and HTTP third-party copy (XrdHttpTPC).  The export
is writable except /ro, which is read-only (for permission-denied tests).

XRootD cannot be told to listen on loopback only: it binds every interface.
The servers have no authentication, so start them only on machines whose
other interfaces are trusted (CI, laptops behind a firewall).

State file (WORKDIR/rses.json), version 1:

    {"version": 1, "workdir": ..., "host": "127.0.0.1", "prefix": "/rucio",
     "ca_dir": WORKDIR/ca/certificates, "ca_file": WORKDIR/ca/ca.pem,
     "servers": [{"name": "XRD1", "index": 1, "host": "127.0.0.1",
                  "root_port": P, "https_port": P,
                  "root_url": "root://127.0.0.1:P", "https_url": "https://127.0.0.1:P",
                  "prefix": "/rucio", "data_dir": WORKDIR/XRD1/data,
                  "config": ..., "log": ..., "pid": PID, "site": "SITE1", "tier": 1},
                 ...]}

A file at path /rucio/a/b is WORKDIR/XRD1/data/rucio/a/b on disk and
root://127.0.0.1:P//rucio/a/b or https://127.0.0.1:P/rucio/a/b on the wire.
"""
import grp
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

XRD_USER = "xrootd"
HOST = "127.0.0.1"
STATE = "rses.json"
READY_TIMEOUT = 30.0
READY_RE = re.compile(r"^------ xrootd \S+ initialization completed", re.M)


class RseError(Exception):
    pass


def log(msg):
    print(f"xrdrse: {msg}", file=sys.stderr, flush=True)


# ---- users, keys and ports ------------------------------------------------

def ensure_user():
    """The xrootd user and group (Debian's package creates them; a bare
    machine may not have them).  Returns (uid, gid)."""
    try:
        grp.getgrnam(XRD_USER)
    except KeyError:
        subprocess.run(["groupadd", "--system", XRD_USER], check=True)
    try:
        pw = pwd.getpwnam(XRD_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "-g", XRD_USER, "-d", "/var/spool/xrootd",
                        "-s", "/usr/sbin/nologin", XRD_USER], check=True)
        pw = pwd.getpwnam(XRD_USER)
    return pw.pw_uid, pw.pw_gid


def check_traversable(path, uid, gid):
    """Every ancestor of path must let the xrootd user through (pytest's
    /tmp/pytest-of-root is 0700, for instance)."""
    p = os.path.abspath(path)
    while True:
        st = os.stat(p)
        mode = st.st_mode
        ok = (mode & 0o001) or (st.st_uid == uid and mode & 0o100) or \
             (st.st_gid == gid and mode & 0o010)
        if not ok:
            raise RseError(f"{p} is not searchable by the {XRD_USER} user (mode "
                           f"{oct(mode & 0o777)}): choose a work directory under a "
                           f"world-searchable path such as /tmp")
        if p == "/":
            return
        p = os.path.dirname(p)


def _bindable(port):
    for fam, addr in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
        try:
            s = socket.socket(fam, socket.SOCK_STREAM)
        except OSError:
            continue
        try:
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind((addr, port))
            return True
        except OSError:
            return False
        finally:
            s.close()
    return False


def free_port(taken=()):
    """A TCP port free on every interface (XRootD binds them all), chosen
    below the kernel's ephemeral range so that no outgoing connection can
    grab it while a server is down for a restart."""
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    lo, hi = 20000, max(20001, low - 1)
    if hi - lo < 1000:
        lo, hi = 1024, max(1025, low - 1)
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.randint(lo, hi)
        if port not in taken and _bindable(port):
            return port
    # fall back to whatever the kernel gives
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("0.0.0.0", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_open(port, host=HOST, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _openssl(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RseError(f"openssl {' '.join(args)} failed: {p.stderr.strip()}")
    return p.stdout


def make_pki(ca_root, uid, gid):
    """Test CA, a host certificate for 127.0.0.1 / ::1 / localhost, and a
    hashed CA directory (for XrdCl, curl and XrdHttpTPC).  Idempotent."""
    os.makedirs(ca_root, exist_ok=True)
    os.chmod(ca_root, 0o755)
    ca_key = os.path.join(ca_root, "ca.key")
    ca_pem = os.path.join(ca_root, "ca.pem")
    host_key = os.path.join(ca_root, "hostkey.pem")
    host_pem = os.path.join(ca_root, "hostcert.pem")
    certdir = os.path.join(ca_root, "certificates")
    if not os.path.exists(ca_pem):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key,
                 "-out", ca_pem, "-days", "3650", "-subj", "/CN=didfs test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=ca_root)
    if not os.path.exists(host_pem):
        ext = os.path.join(ca_root, "host.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
                    "basicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n")
        csr = os.path.join(ca_root, "host.csr")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", host_key, "-out", csr,
                 "-subj", "/CN=localhost", cwd=ca_root)
        _openssl("x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
                 "-CAcreateserial", "-out", host_pem, "-days", "3650", "-extfile", ext,
                 cwd=ca_root)
        os.unlink(csr)
    os.chmod(ca_key, 0o600)
    os.chown(host_key, uid, gid)
    os.chmod(host_key, 0o600)
    os.chmod(host_pem, 0o644)
    os.chmod(ca_pem, 0o644)
    os.makedirs(certdir, exist_ok=True)
    os.chmod(certdir, 0o755)
    shutil.copy(ca_pem, os.path.join(certdir, "didfs-test-ca.pem"))
    h = _openssl("x509", "-hash", "-noout", "-in", ca_pem, cwd=ca_root).strip()
    link = os.path.join(certdir, h + ".0")
    if not os.path.lexists(link):
        os.symlink("didfs-test-ca.pem", link)
    return {"ca_file": ca_pem, "ca_dir": certdir, "host_cert": host_pem, "host_key": host_key}


# ---- one server -----------------------------------------------------------

CONFIG = """\
# didfs test storage element {name} (generated by tests/env/xrdrse.py)
all.role server
xrd.port {port}
all.export /
all.export /ro r/o
oss.localroot {data}
all.adminpath {admin}
all.pidpath {run}
all.sitename {site}
xrootd.chksum max 32 adler32
ofs.tpc pgm /usr/bin/xrdcp --server
xrd.tls {host_cert} {host_key}
xrd.tlsca certdir {ca_dir}
xrd.protocol XrdHttp libXrdHttp.so
{http_tpc}
"""


def http_tpc_available():
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64",
              "/usr/lib"):
        if os.path.isdir(d) and any(n.startswith("libXrdHttpTPC") for n in os.listdir(d)):
            return True
    return False


def _alive(pid):
    """True if pid runs and is not a zombie."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except OSError:
        return False


def _is_xrootd(pid, config):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        return any(a.endswith(b"xrootd") for a in argv[:1]) and config.encode() in argv
    except OSError:
        return False


class Server:
    """One XRootD server; fields mirror its entry in the state file."""

    def __init__(self, workdir, index, port=None, pki=None, prefix="/rucio", tier=None,
                 site=None, name=None):
        self.workdir = os.path.abspath(workdir)
        self.index = index
        self.name = name or f"XRD{index}"
        self.host = HOST
        self.port = port or free_port()
        self.prefix = prefix
        self.tier = tier if tier is not None else (1 if index <= 2 else 2)
        self.site = site or f"SITE{index}"
        self.base = os.path.join(self.workdir, self.name)
        self.data_dir = os.path.join(self.base, "data")
        self.config = os.path.join(self.base, "xrootd.cfg")
        self.logdir = os.path.join(self.base, "log")
        self.log = os.path.join(self.logdir, "xrootd.log")
        self.pid = None
        self.proc = None  # Popen when started by this process
        self.pki = pki

    # URLs -----------------------------------------------------------------
    @property
    def root_port(self):
        return self.port

    @property
    def https_port(self):
        return self.port

    def root_url(self, path=""):
        """root://127.0.0.1:P//abs/path (Rucio's double slash)."""
        if path and not path.startswith("/"):
            path = "/" + path
        return f"root://{self.host}:{self.port}/{path}"

    def https_url(self, path=""):
        if path and not path.startswith("/"):
            path = "/" + path
        return f"https://{self.host}:{self.port}{path}"

    def davs_url(self, path=""):
        return "davs" + self.https_url(path)[5:]

    def local_path(self, path):
        """Where a server path (/rucio/a/b) lives on disk."""
        return os.path.join(self.data_dir, path.lstrip("/"))

    def to_json(self):
        return {"name": self.name, "index": self.index, "host": self.host,
                "root_port": self.port, "https_port": self.port,
                "root_url": f"root://{self.host}:{self.port}",
                "https_url": f"https://{self.host}:{self.port}",
                "prefix": self.prefix, "data_dir": self.data_dir, "config": self.config,
                "log": self.log, "pid": self.pid, "site": self.site, "tier": self.tier}

    @classmethod
    def from_json(cls, workdir, d, pki):
        s = cls(workdir, d["index"], port=d["root_port"], pki=pki, prefix=d.get("prefix", "/rucio"),
                tier=d.get("tier"), site=d.get("site"), name=d["name"])
        s.pid = d.get("pid")
        return s

    # life cycle -------------------------------------------------------------
    def prepare(self, uid, gid):
        for d, owner, mode in ((self.base, None, 0o755), (self.data_dir, (uid, gid), 0o755),
                               (os.path.join(self.base, "admin"), (uid, gid), 0o700),
                               (os.path.join(self.base, "run"), (uid, gid), 0o755),
                               (self.logdir, (uid, gid), 0o755)):
            os.makedirs(d, exist_ok=True)
            if owner:
                os.chown(d, *owner)
            os.chmod(d, mode)
        for sub in (self.prefix.strip("/"), "ro"):
            if sub:
                p = os.path.join(self.data_dir, sub)
                os.makedirs(p, exist_ok=True)
                os.chown(p, uid, gid)
        with open(self.config, "w") as f:
            f.write(CONFIG.format(
                name=self.name, port=self.port, data=self.data_dir,
                admin=os.path.join(self.base, "admin"), run=os.path.join(self.base, "run"),
                site=self.site, host_cert=self.pki["host_cert"], host_key=self.pki["host_key"],
                ca_dir=self.pki["ca_dir"],
                http_tpc="http.exthandler xrdtpc libXrdHttpTPC.so" if http_tpc_available()
                else "# XrdHttpTPC not installed: no HTTP third-party copy"))

    def alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            return False
        return _alive(self.pid)

    def start(self, timeout=READY_TIMEOUT):
        """Start (again, on the same port) and wait until it serves."""
        if self.alive():
            return
        xrootd = shutil.which("xrootd") or "/usr/bin/xrootd"
        uid, gid = ensure_user()
        if not os.path.exists(self.config):
            self.prepare(uid, gid)
        # a fresh log per start, so readiness is read from this run only
        if os.path.exists(self.log):
            os.replace(self.log, self.log + ".prev")
        out = open(os.path.join(self.logdir, "xrootd.out"), "ab")
        self.proc = subprocess.Popen(
            [xrootd, "-R", XRD_USER, "-c", self.config, "-l", self.log,
             "-s", os.path.join(self.base, "run", "xrootd.pid")],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=self.base)
        out.close()
        self.pid = self.proc.pid
        self.wait_ready(timeout)

    def _log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RseError(f"{self.name}: xrootd exited during start-up; log {self.log}:\n"
                               + self._log_text()[-3000:])
            if READY_RE.search(self._log_text()) and port_open(self.port):
                return
            time.sleep(0.05)
        raise RseError(f"{self.name}: not serving on port {self.port} after {timeout:.0f} s; "
                       f"log {self.log}:\n" + self._log_text()[-3000:])

    def stop(self, grace=5.0):
        """SIGTERM, then SIGKILL after grace seconds; fine if already dead."""
        pid = self.pid
        if pid and _alive(pid) and (self.proc is not None or _is_xrootd(pid, self.config)):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + grace
            while _alive(pid) and time.monotonic() < deadline:
                if self.proc is not None:
                    self.proc.poll()
                time.sleep(0.05)
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                deadline = time.monotonic() + 5
                while _alive(pid) and time.monotonic() < deadline:
                    if self.proc is not None:
                        self.proc.poll()
                    time.sleep(0.05)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self.proc = None
        run = os.path.join(self.base, "run")
        if os.path.isdir(run):
            for n in os.listdir(run):
                if n.endswith(".pid") or n == "pid":
                    try:
                        os.unlink(os.path.join(run, n))
                    except OSError:
                        pass
        self.pid = None

    def kill(self):
        """SIGKILL at once (a crash)."""
        if self.pid and _alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)
            while _alive(self.pid):
                if self.proc is not None:
                    self.proc.poll()
                time.sleep(0.02)


# ---- a set of servers -----------------------------------------------------

class Rses:
    """The servers of one work directory and the state file that lists them."""

    def __init__(self, workdir, servers, pki, prefix="/rucio"):
        self.workdir = os.path.abspath(workdir)
        self.servers = servers
        self.pki = pki
        self.prefix = prefix
        self.ca_dir = pki["ca_dir"]
        self.ca_file = pki["ca_file"]

    @property
    def state_file(self):
        return os.path.join(self.workdir, STATE)

    def __getitem__(self, name):
        for s in self.servers:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_json(self):
        return {"version": 1, "workdir": self.workdir, "host": HOST, "prefix": self.prefix,
                "ca_dir": self.ca_dir, "ca_file": self.ca_file,
                "servers": [s.to_json() for s in self.servers]}

    def save(self):
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.to_json(), f, indent=2)
            f.write("\n")
        os.replace(tmp, self.state_file)

    @classmethod
    def create(cls, workdir, n=3, prefix="/rucio"):
        if n < 1:
            raise RseError("need at least one server")
        workdir = os.path.abspath(workdir)
        if os.path.exists(os.path.join(workdir, STATE)):
            raise RseError(f"{workdir} already holds {STATE}: stop-rses it first, or use "
                           f"--resume to restart its servers")
        if not prefix.startswith("/"):
            raise RseError(f"prefix must be absolute, not '{prefix}'")
        uid, gid = ensure_user()
        os.makedirs(workdir, exist_ok=True)
        os.chmod(workdir, 0o755)
        check_traversable(workdir, uid, gid)
        pki = make_pki(os.path.join(workdir, "ca"), uid, gid)
        ports = set()
        servers = []
        for i in range(1, n + 1):
            port = free_port(ports)
            ports.add(port)
            s = Server(workdir, i, port=port, pki=pki, prefix=prefix)
            s.prepare(uid, gid)
            servers.append(s)
        return cls(workdir, servers, pki, prefix)

    @classmethod
    def load(cls, workdir):
        workdir = os.path.abspath(workdir)
        path = os.path.join(workdir, STATE)
        try:
            with open(path) as f:
                d = json.load(f)
        except FileNotFoundError:
            raise RseError(f"no {STATE} in {workdir}: nothing started there")
        ca_root = os.path.dirname(d["ca_file"])
        pki = {"ca_file": d["ca_file"], "ca_dir": d["ca_dir"],
               "host_cert": os.path.join(ca_root, "hostcert.pem"),
               "host_key": os.path.join(ca_root, "hostkey.pem")}
        servers = [Server.from_json(workdir, s, pki) for s in d["servers"]]
        return cls(workdir, servers, pki, d.get("prefix", "/rucio"))

    def start(self, timeout=READY_TIMEOUT):
        """Start every server that is not running; on failure stop them all."""
        try:
            for s in self.servers:
                if not s.alive():
                    s.start(timeout)
        except BaseException:
            self.stop()
            raise
        finally:
            self.save()

    def stop(self, names=None):
        for s in self.servers:
            if names is None or s.name in names:
                s.stop()
        self.save()

    def register(self, catalog, didfs):
        """Register the servers as RSEs with the didfs CLI."""
        def run(*args):
            cmd = [didfs, "--catalog", catalog, *map(str, args)]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                raise RseError(f"{' '.join(cmd)} failed ({p.returncode}): "
                               f"{p.stderr.strip() or p.stdout.strip()}")
            return p.stdout

        catalog = str(catalog)
        if "://" in catalog:  # a database (PostgreSQL): bootstrapped unless info works
            if subprocess.run([didfs, "--catalog", catalog, "info"],
                              capture_output=True).returncode != 0:
                run("init")
        elif not os.path.exists(catalog):
            run("init")
        for s in self.servers:
            run("add-rse", s.name)
            run("set-rse-attribute", "--rse", s.name, "--key", "tier", "--value", s.tier)
            run("set-rse-attribute", "--rse", s.name, "--key", "site", "--value", s.site)
            # root preferred (lower number wins), https second
            for scheme, prio, impl in (("root", 1, "rucio.rse.protocols.xrootd.Default"),
                                       ("https", 2, "rucio.rse.protocols.webdav.Default")):
                run("add-protocol", "--rse", s.name, "--scheme", scheme,
                    "--hostname", s.host, "--port", s.port, "--prefix", self.prefix,
                    "--impl", impl, "--read", prio, "--write", prio, "--delete", prio,
                    "--tpc-read", prio, "--tpc-write", prio)
