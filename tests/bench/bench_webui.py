#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench_webui - the web UI's pages (/ui, server/ui.c over catalog/overview.c)
on a large catalog against the same pages on a small one, same run.

A small catalog (10 files, one rule, 10 finished transfers) and a large one
(BENCH_FILES files, default 1,000,000, in one dataset with one rule holding a
lock per file, BENCH_RULES single-file rules, default 2,000, and
BENCH_FILES / 10 finished transfers in the last hour in requests_history)
are each served by `didfs serve`; every page is fetched BENCH_REPEAT times
(default 5) with a logged-in session.  Printed per page: the median seconds
on each and the ratio large/small; a bounded page costs about the same on
both (aim: every page <= 0.5 s on the large catalog).  The finished
transfers are written into requests_history with sqlite3 (what the conveyor
leaves there), since a million real transfers are not the point here.

Env: DIDFS_BUILD, BENCH_FILES, BENCH_RULES, BENCH_REPEAT.
"""
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "env"))
import servefixture  # noqa: E402

NFILES = int(os.environ.get("BENCH_FILES", "1000000"))
NRULES = int(os.environ.get("BENCH_RULES", "2000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))


def say(msg):
    print(f"bench_webui: {msg}", flush=True)


def fill(s, tmp, nfiles, nrules, ntransfers):
    d = s.didfs
    d("add-scope", "mock", "--account", "root")
    for r in ("SRC", "DST", "OTHER"):
        d("add-rse", r)
    d("add-dataset", "mock:bigds")
    lst = os.path.join(tmp, f"list-{uuid.uuid4().hex[:6]}.txt")
    with open(lst, "w") as f:
        for i in range(nfiles):
            f.write(f"mock:file{i:08d} 1000 0000abcd\n")
    d("add-replicas", "--rse", "SRC", "--list", lst, "--dataset", "mock:bigds", timeout=3600)
    big = d("add-rule", "mock:bigds", "1", "DST", timeout=3600).strip()
    for i in range(nrules):
        d("add-rule", f"mock:file{i:08d}", "1", "OTHER")
    db = sqlite3.connect(s.catalog, timeout=60)
    now = int(time.time())
    nums = dict(db.execute("SELECT rse, num FROM rses"))
    rows = ((uuid.uuid4().hex, 1 + i % nfiles, nums["DST"], nums["SRC"], big, "D" if i % 50 else "F",
             0, None if i % 50 else "connection reset", 1000, "root", now - 3000 + i % 3000,
             now - 2999 + i % 3000, now - 3000, now - 3000 + i % 3000) for i in range(ntransfers))
    db.executemany("INSERT INTO requests_history(id, did_id, dest_rse_num, source_rse_num, rule_id,"
                   " state, retry_count, err_msg, bytes, account, submitted_at, transferred_at,"
                   " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.execute("INSERT INTO heartbeats VALUES ('conveyor', 'benchhost', 1, 0, ?, ?)", (now, now))
    db.commit()
    db.close()
    return big


def timed(sess, url):
    ts = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        r = sess.get(url, allow_redirects=False)
        ts.append(time.perf_counter() - t)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
    return statistics.median(ts)


def main():
    tmp = tempfile.mkdtemp(prefix="bench-webui-")
    pki = servefixture.make_pki(os.path.join(tmp, "pki"))
    servers = []
    try:
        os.makedirs(os.path.join(tmp, "small"), exist_ok=True)
        small = servefixture.Served(os.path.join(tmp, "small"), pki)
        servers.append(small)
        os.makedirs(os.path.join(tmp, "large"), exist_ok=True)
        large = servefixture.Served(os.path.join(tmp, "large"), pki)
        servers.append(large)
        rule_small = fill(small, tmp, 10, 1, 10)
        t = time.perf_counter()
        rule_large = fill(large, tmp, NFILES, NRULES, NFILES // 10)
        say(f"large catalog: {NFILES} files, {NRULES + 1} rules, {NFILES // 10} finished transfers"
            f" ({time.perf_counter() - t:.0f} s to build)")
        pages = ["/ui/rules", "/ui/rules?state=STUCK", "/ui/rules?account=root&state=REPLICATING",
                 "/ui/rule?id={rule}", "/ui/stuck", "/ui/transfers", "/ui/rses", "/ui/daemons",
                 "/ui/dids?scope=mock", "/ui/dids?scope=mock&prefix=file0009",
                 "/ui/did?scope=mock&name=bigds", "/ui/did?scope=mock&name=file00000001"]
        sessions = {}
        for s in servers:
            sess = servefixture.requests.Session()
            sess.verify = s.ca
            sess.trust_env = False
            r = sess.post(s.url + "/ui/login", data={"username": "ddmlab", "password": "secret"},
                          allow_redirects=False)
            assert r.status_code == 303, r.text
            sessions[s] = sess
        worst = 0.0
        for p in pages:
            ts = timed(sessions[small], small.url + p.format(rule=rule_small))
            tl = timed(sessions[large], large.url + p.format(rule=rule_large))
            worst = max(worst, tl)
            say(f"{p:45s} small {ts:7.3f} s  large {tl:7.3f} s  ratio {tl / ts:6.1f}")
        say(f"slowest page on the large catalog: {worst:.3f} s (aim <= 0.5 s)")
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
