# SPDX-License-Identifier: Apache-2.0
"""Several daemon hosts on one PostgreSQL catalog (issue 9), on one machine:
two `didfs daemon` processes (different thread counts, each its own
heartbeats, as on two hosts) share a 2,000-file replication and every
request is done exactly once, read from both logs and from the catalog; a
daemon killed with SIGKILL mid-transfer leaves its claimed work to the
other once its heartbeat has expired; PostgreSQL restarted
(pg_ctl restart -m fast) in the middle of a replication and of a bulk
registration: the daemon and the CLI reconnect, the rule reaches OK and
nothing is lost or duplicated, or the CLI fails cleanly with the catalog
unchanged.

Real parts only: a throwaway PostgreSQL 15 cluster (tests/env/pgfixture.py),
the session's XRootD servers (tests/env/rsefixture.py) and the Engine
helper of test_engine.py.  Waits are bounded polls; nothing asserts on time.
"""
import os
import subprocess
import threading
import time
import uuid

import pytest

from catfixture import Didfs
from pgfixture import pg_cluster  # noqa: F401  (fixture)
from test_engine import Daemon, Engine, files_of, no_uploads_left, wait_until

LONG = 900.0  # bound of a wait on a big replication (not a timing assertion)

# PostgreSQL-specific: once, in the PostgreSQL pass of scripts/test.sh
pytestmark = pytest.mark.postgresql_pass


@pytest.fixture
def eng(pg_cluster, rses, tmp_path):
    uri = pg_cluster.create_db("m" + uuid.uuid4().hex[:12])
    d = Didfs(uri, cwd=str(tmp_path))
    d("init")
    e = Engine(d, rses, tmp_path)
    e.pg = pg_cluster
    try:
        yield e
    finally:
        e.stop_all()


class HostDaemon(Daemon):
    """A `didfs daemon` as if on another host: in a UTS namespace of its
    own with hostname `host` (same network: loopback stays shared), so its
    peers cannot see its process and know it only by its heartbeats."""

    def __init__(self, eng, host, names, extra=None, args=()):
        self.log = eng.tmp / f"daemon-{host}-{uuid.uuid4().hex[:6]}.log"
        self.logf = open(self.log, "w")
        cmd = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', host,
               eng.d.bin, "--catalog", eng.d.catalog, "daemon", *names, "--config",
               str(eng.config(extra)), *map(str, args)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, cwd=str(eng.tmp))
        self.pid = self.proc.pid  # sh execs the daemon: the same process
        eng.daemons.append(self)


def one_row_per_copy(eng, nfiles, ncopies):
    dup = eng.d.sql("SELECT did_id, rse_num, count(*) FROM replicas GROUP BY did_id, rse_num"
                    " HAVING count(*) > 1")
    n = eng.d.sql("SELECT count(*) FROM replicas")[0][0]
    assert dup == [] and n == nfiles * ncopies, (dup[:5], n)


def hosts(eng, executable):
    return {r[0] for r in eng.d.sql("SELECT hostname FROM heartbeats WHERE executable = ?",
                                     executable)}


def test_two_daemon_hosts_share_a_2000_file_replication(eng):
    """Two `daemon all` processes, 2 and 6 threads: the judge, conveyor and
    finisher queues are shared (FOR UPDATE SKIP LOCKED, heartbeat hashing),
    every request is transferred once over both logs and DONE once in the
    catalog, and both did part of it."""
    n = 2000
    files = files_of("h", n, lambda i: 500 + (i % 97))
    eng.d("add-dataset", "mock:ds")
    eng.register("XRD3", files, dataset="mock:ds")
    extra = {"conveyor.tpc": False, "conveyor.parallel": 8}
    a = HostDaemon(eng, "hosta", ["all"], extra=extra, args=("--threads", "2"))
    b = HostDaemon(eng, "hostb", ["all"], extra=extra, args=("--threads", "6"))
    wait_until(lambda: hosts(eng, "didfs-conveyor") == {"hosta", "hostb"},
               "both hosts' conveyors beating", on_timeout=lambda: a.log_text() + b.log_text())
    rule = eng.d("add-rule", "mock:ds", "1", "XRD1").strip()
    eng.wait_rule(rule, timeout=LONG)
    assert a.stop() == 0 and b.stop() == 0
    ids_a, ids_b = a.done_requests(), b.done_requests()
    both = ids_a + ids_b
    assert len(both) == n and len(set(both)) == n, (len(both), len(set(both)))
    done = {t["id"] for t in eng.d.json("list-transfers", "--rule", rule, "--state", "DONE")}
    assert set(both) == done
    assert eng.d.sql("SELECT count(*) FROM requests WHERE rule_id = ? AND state <> 'D'",
                     rule) == [(0,)]
    assert ids_a and ids_b, f"one daemon did everything ({len(ids_a)} / {len(ids_b)})"
    one_row_per_copy(eng, n, 2)
    assert len(eng.storage_files("XRD1")) == n
    info = eng.rule(rule)
    assert info["locks_ok_cnt"] == n and info["locks_stuck_cnt"] == 0
    print(f"daemon with 2 threads did {len(ids_a)}, with 6 threads {len(ids_b)}")


def test_daemon_killed_mid_transfer_the_other_finishes(eng):
    """SIGKILL of one of two conveyors (on two hosts) while it holds
    submitted requests: the other cannot see the process, so it takes them
    over once the heartbeat has expired (heartbeat.timeout); the rule
    reaches OK and every file is on storage once."""
    n = 120
    files = files_of("k", n, lambda i: 300000 + i)
    eng.d("add-dataset", "mock:ds")
    eng.register("XRD3", files, dataset="mock:ds")
    slow = {"conveyor.tpc": False, "conveyor.parallel": 4, "conveyor.stream_below": 0,
            "transfer.chunk_bytes": "16K", "transfer.chunks_in_flight": 1,
            "heartbeat.timeout": 6}
    a = HostDaemon(eng, "hosta", ["conveyor"], extra=slow, args=("--threads", "2"))
    b = HostDaemon(eng, "hostb", ["conveyor", "judge-evaluator"], extra=slow,
                   args=("--threads", "3"))
    wait_until(lambda: hosts(eng, "didfs-conveyor") == {"hosta", "hostb"},
               "both hosts' conveyors beating")
    rule = eng.d("add-rule", "mock:ds", "1", "XRD2").strip()

    def submitted_by_a():
        return eng.d.sql("SELECT count(*) FROM requests WHERE state = 'S'"
                         " AND last_processed_by LIKE 'hosta:%'")[0][0]
    wait_until(lambda: submitted_by_a() > 0, "the first conveyor to hold submitted requests",
               timeout=LONG, interval=0.05)
    held = submitted_by_a()
    a.kill()
    eng.wait_rule(rule, timeout=LONG)
    assert b.stop() == 0
    log_b = b.log_text()
    assert "of a conveyor that is gone put back in the queue" in log_b, log_b[-3000:]
    one_row_per_copy(eng, n, 2)
    no_uploads_left(eng)
    assert len(eng.storage_files("XRD2")) == n
    done_a, done_b = set(a.done_requests()), set(b.done_requests())
    assert not done_a & done_b and len(done_a | done_b) >= n - held
    print(f"killed holding {held} submitted requests; it had done {len(done_a)},"
          f" the other did {len(done_b)}")


def test_postgresql_restarted_mid_replication(eng):
    """pg_ctl restart -m fast while a daemon replicates: it reconnects (its
    transactions redone), the rule reaches OK, one replica row per copy,
    each request DONE once."""
    n = 150
    files = files_of("r", n, lambda i: (1 << 20) + i)
    eng.d("add-dataset", "mock:ds")
    eng.register("XRD3", files, dataset="mock:ds")
    # slow streams, so that the restart lands mid-replication
    dm = eng.start("all", extra={"conveyor.tpc": False, "conveyor.parallel": 2,
                                 "conveyor.stream_below": 0, "transfer.chunk_bytes": "16K",
                                 "transfer.chunks_in_flight": 1})
    rule = eng.d("add-rule", "mock:ds", "2", "tier=1").strip()

    def done():  # finished requests move to requests_history
        return eng.d.sql("SELECT count(*) FROM requests_history WHERE rule_id = ?"
                         " AND state = 'D'", rule)[0][0]
    wait_until(lambda: done() >= 10, "some transfers done", timeout=LONG)
    eng.pg.restart()
    at_restart = done()
    eng.wait_rule(rule, timeout=LONG)
    assert dm.alive(), dm.log_text()[-3000:]
    assert dm.stop() == 0
    one_row_per_copy(eng, n, 3)
    reqs = eng.d.json("list-transfers", "--rule", rule)
    assert len(reqs) == 2 * n and all(r["state"] == "DONE" for r in reqs)
    for rse in ("XRD1", "XRD2"):
        assert len(eng.storage_files(rse)) == n, rse
    assert at_restart < 2 * n, "everything was done before the restart"
    print(f"PostgreSQL restarted after {at_restart} of {2 * n} transfers")


def test_postgresql_restarted_mid_bulk_registration(eng, tmp_path):
    """pg_ctl restart -m fast while `add-replicas --list` registers 300,000
    files: the CLI redoes its transaction and registers every file once, or
    fails with a clear error and the catalog holds none of them."""
    n = 300000
    lst = tmp_path / "big.txt"
    with open(lst, "w") as f:
        for i in range(n):
            f.write(f"mock:big/f{i:07d} {1000 + i % 500} {i & 0xffffffff:08x}\n")
    eng.d("add-dataset", "mock:big")
    p = subprocess.Popen([eng.d.bin, "--catalog", eng.d.catalog, "add-replicas", "--rse", "XRD1",
                          "--dataset", "mock:big", "--list", str(lst)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # restart while the rows stream in (the COPY runs inside one transaction)
    wait_until(lambda: eng.pg.psql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
                                   " AND query ILIKE 'COPY%'").strip() not in ("", "0")
               or p.poll() is not None, "the COPY to start", timeout=LONG, interval=0.02)
    restarted = p.poll() is None
    if restarted:
        eng.pg.restart()
    out, err = p.communicate(timeout=LONG)
    files = eng.d.sql("SELECT count(*) FROM dids WHERE scope = 'mock' AND did_type = 'F'")[0][0]
    reps = eng.d.sql("SELECT count(*) FROM replicas")[0][0]
    if p.returncode == 0:
        assert files == n and reps == n, (files, reps)
        assert len(eng.d.json("list-files", "mock:big")) == n
    else:
        assert "didfs: " in err and "Traceback" not in err, err
        assert files == 0 and reps == 0, (files, reps, err)
    print(f"restarted mid-COPY: {restarted}; exit {p.returncode}; {err.strip()[-200:]}")
    assert restarted, "the registration finished before the restart could hit it"
