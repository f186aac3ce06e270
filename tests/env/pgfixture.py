#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# A throwaway PostgreSQL 15 cluster for tests (Debian's postgresql-15).
#
# initdb into a fresh temp dir (owned by the postgres user when we are root:
# root cannot run postgres, so the server programs run through runuser),
# listening on a free loopback port and on a unix socket in the temp dir,
# fsync off (nothing here must survive a crash).  Roles: the superuser
# "postgres" and "didfs" (password auth over TCP, scram-sha-256), owner of
# the database "didfs"; the socket trusts every local user.
#
# The cluster is stopped and its directory removed whatever happens: on
# leaving the `with` block or the fixture (test failures, KeyboardInterrupt),
# on SIGTERM/SIGINT in `run` mode, and, if this process is killed outright,
# by a guard process that notices its parent's pipe closing.
#
#   with PgCluster() as pg:            # Python
#       pg.uri  -> postgresql://didfs:PASSWORD@127.0.0.1:PORT/didfs
#       pg.psql("SELECT 1"); pg.restart()
#
#   def test_x(pg_cluster): ...        # pytest fixture (module scope)
#
#   pgfixture.py run -- CMD ARGS...    # run CMD with the cluster: exports
#       DIDFS_TEST_PG_URI, DIDFS_TEST_PG_BADPW_URI (same, wrong password),
#       DIDFS_TEST_PG_SOCKET_URI (the unix socket, no password),
#       DIDFS_TEST_PG_RESTART (a shell command: pg_ctl restart -m fast)
#       and exits with CMD's status (77 = skipped, as meson counts it, when
#       PostgreSQL 15 is not installed).
#   pgfixture.py restart DATADIR       # used by DIDFS_TEST_PG_RESTART
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

PGBIN = os.environ.get("DIDFS_PGBIN", "/usr/lib/postgresql/15/bin")
SKIP = 77


def available():
    """None when PostgreSQL 15 can be used here, else why not."""
    for prog in ("initdb", "pg_ctl", "postgres"):
        if not os.access(os.path.join(PGBIN, prog), os.X_OK):
            return f"{os.path.join(PGBIN, prog)} not found (apt-get install postgresql-15)"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root and runuser is missing"
    return None


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd):
    """Run the server programs as the postgres user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


def _pg_ctl(datadir, *args, check=True, timeout=120):
    cmd = _as_postgres([os.path.join(PGBIN, "pg_ctl"), "-D", datadir] + list(args))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=check)


def restart(datadir, mode="fast"):
    """pg_ctl restart -m fast: every connection is terminated."""
    p = _pg_ctl(datadir, "restart", "-m", mode, "-w", "-t", "60", "-l",
                os.path.join(os.path.dirname(datadir), "server.log"), check=False)
    if p.returncode != 0:
        raise RuntimeError(f"pg_ctl restart failed: {p.stdout}{p.stderr}")


class PgCluster:
    def __init__(self, base=None, max_connections=50):
        self.base = base
        self.max_connections = max_connections
        self.tmp = None
        self.datadir = None
        self.port = None
        self.password = secrets.token_hex(12)
        self.guard = None
        self.running = False

    # ---- life cycle ----
    def start(self):
        why = available()
        if why:
            raise RuntimeError(f"PostgreSQL unavailable: {why}")
        self.tmp = tempfile.mkdtemp(prefix="didfs-pg-", dir=self.base)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        os.chmod(self.tmp, 0o700)
        if os.geteuid() == 0:
            shutil.chown(self.tmp, "postgres", "postgres")
        self.datadir = os.path.join(self.tmp, "data")
        pwfile = os.path.join(self.tmp, "pw")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        # the guard first: from here on the directory is ours to clean up
        self._start_guard()
        p = subprocess.run(_as_postgres([
            os.path.join(PGBIN, "initdb"), "-D", self.datadir, "-U", "postgres",
            "--pwfile", pwfile, "-E", "UTF8", "--locale=C", "-A", "scram-sha-256",
            "--no-sync"]), capture_output=True, text=True, timeout=300)
        os.unlink(pwfile)
        if p.returncode != 0:
            raise RuntimeError(f"initdb failed: {p.stdout}{p.stderr}")
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
            f.write("local all all trust\n"
                    "host all all 127.0.0.1/32 scram-sha-256\n")
        last = ""
        for _ in range(5):
            self.port = _free_port()
            with open(os.path.join(self.datadir, "postgresql.auto.conf"), "w") as f:
                f.write(f"port = {self.port}\n"
                        "listen_addresses = '127.0.0.1'\n"
                        f"unix_socket_directories = '{self.tmp}'\n"
                        "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                        f"max_connections = {self.max_connections}\n"
                        "shared_buffers = 64MB\n"
                        "log_min_messages = warning\n")
            p = _pg_ctl(self.datadir, "start", "-w", "-t", "60", "-l", self.log, check=False)
            if p.returncode == 0:
                break
            last = p.stdout + p.stderr + self.log_tail()
        else:
            raise RuntimeError(f"pg_ctl start failed: {last}")
        self.running = True
        self.psql("CREATE ROLE didfs LOGIN PASSWORD '%s'" % self.password)
        self.psql("CREATE DATABASE didfs OWNER didfs")

    def _start_guard(self):
        # A separate session that outlives a SIGKILL of this process: it
        # waits for EOF on its stdin (our end closes when we die) and then
        # stops the cluster and removes the directory.
        r, w = os.pipe()
        self.guard = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "_guard", self.tmp],
            stdin=r, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True)
        os.close(r)
        self._guard_w = w

    def stop(self):
        try:
            if self.datadir and os.path.exists(os.path.join(self.datadir, "postmaster.pid")):
                _pg_ctl(self.datadir, "stop", "-m", "immediate", "-w", "-t", "60", check=False)
        finally:
            self.running = False
            if self.guard:
                os.close(self._guard_w)
                try:
                    self.guard.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    self.guard.kill()
                self.guard = None
            if self.tmp:
                shutil.rmtree(self.tmp, ignore_errors=True)
                self.tmp = None

    def restart(self):
        restart(self.datadir)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # ---- use ----
    @property
    def log(self):
        return os.path.join(self.tmp, "server.log")

    def log_tail(self, n=4000):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    @property
    def uri(self):
        return f"postgresql://didfs:{self.password}@127.0.0.1:{self.port}/didfs"

    def uri_for(self, db):
        """The URI of database db of this cluster (as the didfs role)."""
        return f"postgresql://didfs:{self.password}@127.0.0.1:{self.port}/{db}"

    def create_db(self, db):
        """A new database owned by didfs; its URI."""
        self.psql(f"CREATE DATABASE {db} OWNER didfs")
        return self.uri_for(db)

    @property
    def bad_password_uri(self):
        return f"postgresql://didfs:not-{self.password}@127.0.0.1:{self.port}/didfs"

    @property
    def socket_uri(self):
        return f"postgresql://didfs@/didfs?host={self.tmp}&port={self.port}"

    def psql(self, sql, db="postgres", user="postgres"):
        """Run SQL through the unix socket; returns psql's unaligned output."""
        p = subprocess.run(_as_postgres([
            os.path.join(PGBIN, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-h", self.tmp, "-p", str(self.port), "-U", user, "-d", db, "-c", sql]),
            capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            raise RuntimeError(f"psql {sql!r} failed: {p.stderr}")
        return p.stdout

    def env(self):
        here = os.path.abspath(__file__)
        return {
            "DIDFS_TEST_PG_URI": self.uri,
            "DIDFS_TEST_PG_BADPW_URI": self.bad_password_uri,
            "DIDFS_TEST_PG_SOCKET_URI": self.socket_uri,
            "DIDFS_TEST_PG_RESTART": " ".join(shlex.quote(a) for a in
                                              [sys.executable, here, "restart", self.datadir]),
        }


# ---- pytest ----
try:
    import pytest

    @pytest.fixture(scope="module")
    def pg_cluster(tmp_path_factory):
        why = available()
        if why:
            pytest.skip(why)
        # room for several `didfs daemon all --threads N` (a connection per
        # daemon thread) and mounts at once
        with PgCluster(max_connections=300) as pg:
            yield pg
except ImportError:  # used as a script without pytest
    pass


# ---- command line ----
def _guard(tmp):
    try:
        sys.stdin.buffer.read()
    except BaseException:
        pass
    datadir = os.path.join(tmp, "data")
    if os.path.exists(os.path.join(datadir, "postmaster.pid")):
        _pg_ctl(datadir, "stop", "-m", "immediate", "-w", "-t", "60", check=False)
    shutil.rmtree(tmp, ignore_errors=True)


def _run(cmd):
    why = available()
    if why:
        print(f"SKIP: {why}", file=sys.stderr)
        return SKIP

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    with PgCluster() as pg:
        env = dict(os.environ, **pg.env())
        p = subprocess.Popen(cmd, env=env)
        try:
            rc = p.wait()
        except BaseException:
            p.kill()
            p.wait()
            raise
        if rc != 0:
            sys.stderr.write("---- PostgreSQL server log (tail) ----\n" + pg.log_tail())
        return rc


def main(argv):
    if len(argv) >= 2 and argv[1] == "_guard":
        _guard(argv[2])
        return 0
    if len(argv) >= 3 and argv[1] == "restart":
        restart(argv[2])
        return 0
    if len(argv) >= 3 and argv[1] == "run":
        cmd = argv[2:]
        if cmd and cmd[0] == "--":
            cmd = cmd[1:]
        if not cmd:
            print("usage: pgfixture.py run -- CMD [ARGS...]", file=sys.stderr)
            return 2
        return _run(cmd)
    print("usage: pgfixture.py run -- CMD [ARGS...] | restart DATADIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
