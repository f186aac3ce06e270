# SPDX-License-Identifier: Apache-2.0
# tests/env/pgfixture.py: the throwaway PostgreSQL 15 cluster the PostgreSQL
# tests run on is usable (TCP with a password, the unix socket, restart) and
# is stopped and removed whatever happens: leaving the block normally, by an
# exception, and when the process holding it is killed with SIGKILL.
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import pgfixture
from pgfixture import pg_cluster  # noqa: F401  (the fixture)

pytestmark = pytest.mark.skipif(pgfixture.available() is not None,
                                reason=str(pgfixture.available()))

FIXTURE = pgfixture.__file__


def listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def postgres_running_in(tmp):
    """Any process whose command line mentions the cluster's directory."""
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return any(tmp in line and "postgres" in line for line in out.splitlines())


def wait_for(cond, what, limit=120):
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for: {what}")
        time.sleep(0.2)


def test_cluster_usable_and_removed(pg_cluster):
    pg = pg_cluster
    assert pg.psql("SELECT current_user", db="didfs", user="didfs").strip() == "didfs"
    assert pg.psql("SELECT rolname FROM pg_roles WHERE rolname = 'didfs'").strip() == "didfs"
    assert listening(pg.port)
    assert pg.uri.startswith("postgresql://didfs:") and f":{pg.port}/didfs" in pg.uri
    # TCP needs the password: psql with the right one works, a wrong one fails
    env = dict(os.environ, PGCONNECT_TIMEOUT="10")
    psql = os.path.join(pgfixture.PGBIN, "psql")
    ok = subprocess.run([psql, "-X", "-tA", "-c", "SELECT 40 + 2", pg.uri], env=env,
                        capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.strip() == "42", ok.stderr
    bad = subprocess.run([psql, "-X", "-tA", "-c", "SELECT 1", pg.bad_password_uri],
                         env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "password authentication failed" in bad.stderr
    # restart -m fast: the server comes back on the same port with the data
    pg.psql("CREATE TABLE kept(x int); INSERT INTO kept VALUES (7)", db="didfs", user="didfs")
    pg.restart()
    assert pg.psql("SELECT x FROM kept", db="didfs", user="didfs").strip() == "7"


def test_stopped_on_exception():
    seen = {}
    with pytest.raises(ZeroDivisionError):
        with pgfixture.PgCluster() as pg:
            seen["tmp"], seen["port"] = pg.tmp, pg.port
            assert listening(pg.port)
            1 / 0
    assert not os.path.exists(seen["tmp"])
    assert not postgres_running_in(seen["tmp"])
    assert not listening(seen["port"])


def test_stopped_when_holder_killed(tmp_path):
    # a process starts a cluster, says where, and is killed with SIGKILL:
    # the guard process stops the cluster and removes its directory
    script = (f"import sys; sys.path.insert(0, {os.path.dirname(FIXTURE)!r}); import pgfixture\n"
              "pg = pgfixture.PgCluster().start()\n"
              "print(pg.tmp, pg.port, flush=True)\n"
              "import time; time.sleep(600)\n")
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline().split()
        assert len(line) == 2, "the holder did not start a cluster"
        tmp, port = line[0], int(line[1])
        assert listening(port)
        p.send_signal(signal.SIGKILL)
        p.wait()
        wait_for(lambda: not os.path.exists(tmp), f"{tmp} removed")
        wait_for(lambda: not postgres_running_in(tmp), "postgres stopped")
        assert not listening(port)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_run_mode_exports_and_skips(tmp_path):
    out = tmp_path / "env.txt"
    p = subprocess.run([sys.executable, FIXTURE, "run", "--", "sh", "-c",
                        f'echo "$DIDFS_TEST_PG_URI" > {out}; exit 3'],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 3  # the command's own status
    uri = out.read_text().strip()
    assert uri.startswith("postgresql://didfs:") and "@127.0.0.1:" in uri
    port = int(uri.rsplit(":", 1)[1].split("/")[0])
    assert not listening(port)
    # without PostgreSQL 15 installed the wrapper says so and exits 77
    p = subprocess.run([sys.executable, FIXTURE, "run", "--", "true"],
                       env=dict(os.environ, DIDFS_PGBIN=str(tmp_path / "nothing")),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 77 and "not found" in p.stderr
