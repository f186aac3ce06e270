#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench_pg - the PostgreSQL catalog beside the SQLite one, in one run, on a
throwaway PostgreSQL 15 cluster of its own (tests/env/pgfixture.py: fsync
off, shared_buffers 64MB, on this host).  Figures and ratios only: nothing
here fails on a timing.

  (r) bench_register BENCH_REGISTER_FILES (1,000,000): bulk registration of
      file DID + replica + attachment through the didfs bulk path against
      raw inserts (SQLite) and a raw libpq COPY of the same rows into the
      same tables (PostgreSQL), in the same run; files/s, the ratio
      didfs/raw and the client's peak RSS (aims on PostgreSQL: >= 100,000
      files/s, ratio >= 0.5, RSS < 64 MiB); the README's SQLite figure
      beside them.
  (a) `didfs add-rule` on a dataset of BENCH_RULE_FILES (100,000) files
      registered with `add-replicas --list`, on SQLite and on PostgreSQL
      (two file:// RSEs, a rule of 1 copy from SRC to DST: locks, replicas
      and transfer requests): wall time of the command, locks/s, its peak
      RSS; the ratio PostgreSQL/SQLite.
  (c) peak RSS (VmHWM) of `didfs daemon all` on a PostgreSQL catalog of
      BENCH_CATALOG_FILES (1,000,000) files while it works: an asynchronous
      rule over all of them (the injector places the locks) and a rule on
      BENCH_REAL_FILES (10,000) real files copied between two file:// RSEs,
      then deleted with --purge-replicas (the reaper removes them); printed
      against the 64 MiB limit (as bench_engine.py (c) on SQLite).
  (g) cost growth, build/tests/bench/bench_growth on both stores: a DID
      lookup, listing a 1,000-file dataset and placing a rule on it, timed
      in one process through the C API, at 1,000,000 and at --max
      (10,000,000) files in the catalog; the ratio per call (aim <= 1.2x).

  tests/bench/bench_pg.py [--max N] [--phases racg]

Environment: DIDFS_BUILD (default build/; its tools/didfs and
tests/bench/), BENCH_DIR (work directory, default /tmp), BENCH_PHASES,
BENCH_REGISTER_FILES, BENCH_RULE_FILES, BENCH_CATALOG_FILES,
BENCH_REAL_FILES, BENCH_GROWTH_MAX (as --max), BENCH_DEADLINE (seconds per
wait, 3600).

Run small:  BENCH_REGISTER_FILES=100000 BENCH_RULE_FILES=10000 \\
            BENCH_CATALOG_FILES=100000 BENCH_REAL_FILES=1000 \\
            tests/bench/bench_pg.py --max 2000000
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "env"))

from pgfixture import PgCluster, available  # noqa: E402

sys.path.insert(0, HERE)
from bench_engine import stop, vm_status  # noqa: E402  (shared with the engine bench)

BUILD = os.environ.get("DIDFS_BUILD", os.path.join(ROOT, "build"))
DIDFS = os.path.join(BUILD, "tools", "didfs")
BENCH_REGISTER = os.path.join(BUILD, "tests", "bench", "bench_register")
BENCH_GROWTH = os.path.join(BUILD, "tests", "bench", "bench_growth")
LIMIT = 64 << 20

REGISTER_FILES = int(os.environ.get("BENCH_REGISTER_FILES", "1000000"))
RULE_FILES = int(os.environ.get("BENCH_RULE_FILES", "100000"))
CATALOG_FILES = int(os.environ.get("BENCH_CATALOG_FILES", "1000000"))
REAL_FILES = int(os.environ.get("BENCH_REAL_FILES", "10000"))
WORK = os.environ.get("BENCH_DIR", "/tmp")
DEADLINE = float(os.environ.get("BENCH_DEADLINE", "3600"))


def say(msg):
    print(f"bench_pg: {msg}", flush=True)


def mib(b):
    return b / (1 << 20)


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def readme_sqlite_figure():
    """The bulk registration rate the README states for SQLite."""
    try:
        with open(os.path.join(ROOT, "README.md")) as f:
            m = re.search(r"in bulk \((~?[\d,]+ files/s)\)", f.read())
        return m.group(1) if m else "(not found)"
    except OSError:
        return "(no README)"


class Cat:
    """didfs on one catalog (a path or a postgresql:// URI)."""

    def __init__(self, uri, shown):
        self.uri = uri
        self.shown = shown

    def cmd(self, *args, json_out=False):
        return [DIDFS, "--catalog", self.uri] + (["--json"] if json_out else []) + \
            [str(a) for a in args]

    def __call__(self, *args):
        p = subprocess.run(self.cmd(*args), capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"bench_pg: didfs {' '.join(map(str, args))} on {self.shown} "
                             f"failed: {p.stderr.strip()[-2000:]}")
        return p.stdout

    def json(self, *args):
        p = subprocess.run(self.cmd(*args, json_out=True), capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"bench_pg: didfs --json {' '.join(map(str, args))} on "
                             f"{self.shown} failed: {p.stderr.strip()[-2000:]}")
        return json.loads(p.stdout)


def measured(cmd):
    """Run one command; (seconds, peak RSS bytes, stdout) of that process alone."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # the pipes are small (a rule id, a summary line): wait4 before reading
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    out, err = p.stdout.read(), p.stderr.read()
    if p.returncode != 0:
        raise SystemExit(f"bench_pg: {' '.join(map(str, cmd[3:]))} failed: "
                         f"{err.decode(errors='replace')[-2000:]}")
    return dt, ru.ru_maxrss * 1024, out.decode()


class Stores:
    """A SQLite catalog in a directory and PostgreSQL databases of the cluster."""

    def __init__(self, pg):
        self.pg = pg

    def pg_db(self, name):
        self.pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.pg.psql(f"CREATE DATABASE {name} OWNER didfs")
        uri = self.pg.uri.rsplit("/", 1)[0] + "/" + name
        return Cat(uri, f"postgresql://didfs:***@127.0.0.1:{self.pg.port}/{name}")

    def drop(self, name):
        self.pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def new_catalog(cat):
    cat("init")
    cat("add-scope", "mock", "--account", "root")
    return cat


def fake_list(path, n, prefix, start=0):
    """n fake files "mock:<prefix>NNNNNNN bytes adler32" (no data behind)."""
    with open(path, "w") as f:
        for i in range(start, start + n):
            f.write(f"mock:{prefix}{i:07d} {1000000 + i % 4096} "
                    f"{(i * 2654435761) & 0xffffffff:08x}\n")


# ---- (r) ----------------------------------------------------------------------------

def phase_r(pg, work):
    say(f"(r) bench_register {REGISTER_FILES}: SQLite in {work}, then PostgreSQL "
        f"(load average {load()})")
    env = dict(os.environ, DIDFS_TEST_PG_URI=pg.uri)
    p = subprocess.run([BENCH_REGISTER, str(REGISTER_FILES), work], env=env,
                       capture_output=True, text=True)
    for line in p.stdout.splitlines():
        print("    " + line)
    if p.returncode != 0:
        raise SystemExit(f"bench_pg: (r) bench_register failed: {p.stderr[-2000:]}")
    rates = re.findall(r"didfs bulk path:\s+(\d+) files/s", p.stdout)
    if len(rates) == 2:
        say(f"(r) didfs bulk path: SQLite {int(rates[0]):,} files/s, PostgreSQL "
            f"{int(rates[1]):,} files/s; the README's SQLite figure: {readme_sqlite_figure()}")


# ---- (a) ----------------------------------------------------------------------------

def rule_case(cat, d):
    new_catalog(cat)
    for rse in ("SRC", "DST"):
        cat("add-rse", rse)
        cat("add-protocol", "--rse", rse, "--scheme", "file", "--prefix", f"{d}/{rse}")
    cat("add-dataset", "mock:big")
    lst = os.path.join(d, "files.txt")
    fake_list(lst, RULE_FILES, "f")
    reg_s, reg_rss, _ = measured(cat.cmd("add-replicas", "--rse", "SRC", "--list", lst,
                                         "--dataset", "mock:big"))
    rule_s, rule_rss, out = measured(cat.cmd("add-rule", "mock:big", "1", "DST"))
    rule = out.strip()
    info = cat.json("rule-info", rule)
    locks = info["locks_replicating_cnt"] + info["locks_ok_cnt"]
    if locks != RULE_FILES:
        raise SystemExit(f"bench_pg: (a) expected {RULE_FILES} locks, got {locks}")
    return reg_s, reg_rss, rule_s, rule_rss, locks


def phase_a(stores, work):
    say(f"(a) add-rule on a {RULE_FILES:,}-file dataset, SQLite and PostgreSQL "
        f"(load average {load()})")
    res = {}
    for store in ("SQLite", "PostgreSQL"):
        d = tempfile.mkdtemp(prefix="bench_pg-a-", dir=work)
        try:
            if store == "SQLite":
                cat = Cat(os.path.join(d, "cat.db"), os.path.join(d, "cat.db"))
            else:
                cat = stores.pg_db("bench_a")
            reg_s, reg_rss, rule_s, rule_rss, locks = rule_case(cat, d)
            res[store] = rule_s
            say(f"(a) {store:10s} add-rule on a {RULE_FILES:,}-file dataset: {rule_s:7.2f} s, "
                f"{locks / rule_s:9,.0f} locks/s (+ as many replicas and requests); peak RSS "
                f"{mib(rule_rss):6.1f} MiB = {rule_rss / LIMIT:.2f} of 64 MiB; registration "
                f"of the same files (add-replicas --list) {RULE_FILES / reg_s:,.0f} files/s, "
                f"peak RSS {mib(reg_rss):.1f} MiB")
        finally:
            if store == "PostgreSQL":
                stores.drop("bench_a")
            shutil.rmtree(d, ignore_errors=True)
    say(f"(a) add-rule time PostgreSQL/SQLite: {res['PostgreSQL'] / res['SQLite']:.2f}x")


# ---- (c) ----------------------------------------------------------------------------

def phase_c(stores, work):
    say(f"(c) didfs daemon all on a {CATALOG_FILES:,}-file PostgreSQL catalog "
        f"(load average {load()})")
    d = tempfile.mkdtemp(prefix="bench_pg-c-", dir=work)
    os.chmod(d, 0o755)
    daemon = None
    try:
        cat = new_catalog(stores.pg_db("bench_c"))

        def rule_state(rule):
            out = stores.pg.psql(f"SELECT state FROM rules WHERE id='{rule}'", db="bench_c")
            return out.strip() or None

        for rse in ("BULK", "SRC", "DST"):
            cat("add-rse", rse)
            cat("add-protocol", "--rse", rse, "--scheme", "file", "--prefix", f"{d}/{rse}")
        cat("add-dataset", "mock:huge")
        lst = os.path.join(d, "huge.txt")
        fake_list(lst, CATALOG_FILES, "h")
        t = time.perf_counter()
        cat("add-replicas", "--rse", "BULK", "--list", lst, "--dataset", "mock:huge")
        reg_s = time.perf_counter() - t
        os.unlink(lst)
        # real files on SRC for the conveyor and the reaper
        cat("add-dataset", "mock:real")
        dids = [f"mock:r{i:06d}" for i in range(REAL_FILES)]
        with open(os.path.join(d, "real.txt"), "w") as f:
            for i in range(0, len(dids), 500):
                for row in cat.json("lfn2pfn", "--rse", "SRC", *dids[i:i + 500]):
                    local = row["pfn"][len("file://localhost"):]
                    os.makedirs(os.path.dirname(local), exist_ok=True)
                    data = os.urandom(4096 + (zlib.crc32(row["did"].encode()) & 0xfff))
                    with open(local, "wb") as g:
                        g.write(data)
                    f.write(f"{row['did']} {len(data)} {zlib.adler32(data) & 0xffffffff:08x}\n")
        cat("add-replicas", "--rse", "SRC", "--list", os.path.join(d, "real.txt"),
            "--dataset", "mock:real")
        conf = os.path.join(d, "c.conf")
        with open(conf, "w") as f:
            f.write("sleep = 1\nconveyor.parallel = 16\nreaper.chunk_size = 1000\n"
                    "judge-injector.chunk_size = 1\n")
        log = open(os.path.join(d, "c.log"), "w")
        daemon = subprocess.Popen(cat.cmd("daemon", "all", "--config", conf),
                                  stdout=log, stderr=log)
        peak = {"VmHWM": 0, "VmRSS": 0}
        marks = {}

        def sample():
            for k, v in vm_status(daemon.pid).items():
                peak[k] = max(peak[k], v)

        def wait(rules, what):
            deadline = time.monotonic() + DEADLINE
            while True:
                states = [rule_state(r) for r in rules]
                for r, s in zip(rules, states):
                    if s == "O" and r not in marks:
                        marks[r] = time.perf_counter()
                if all(s == "O" for s in states):
                    return
                if any(s == "S" for s in states):
                    raise SystemExit(f"bench_pg: (c) {what}: a rule went STUCK")
                if daemon.poll() is not None:
                    raise SystemExit(f"bench_pg: (c) {what}: the daemon exited "
                                     f"{daemon.returncode}")
                if time.monotonic() > deadline:
                    raise SystemExit(f"bench_pg: (c) {what}: not done after {DEADLINE:.0f} s "
                                     f"(VmHWM so far {mib(peak['VmHWM']):.1f} MiB)")
                sample()
                time.sleep(0.5)

        t = time.perf_counter()
        huge = cat("add-rule", "mock:huge", "1", "BULK", "--asynchronous").strip()
        real = cat("add-rule", "mock:real", "1", "DST").strip()
        wait([real, huge], "rules")
        work_s = time.perf_counter() - t
        cat("delete-rule", real, "--purge-replicas")

        def dst_files():
            return sum(len(fs) for _, _, fs in os.walk(os.path.join(d, "DST")))
        deadline = time.monotonic() + DEADLINE
        while dst_files() and time.monotonic() < deadline and daemon.poll() is None:
            sample()
            time.sleep(0.5)
        left = dst_files()
        sample()
        rc = stop(daemon)
        log.close()
        if rc != 0 or left:
            raise SystemExit(f"bench_pg: (c) daemon exit {rc}, {left} files not reaped")
        say(f"(c) didfs daemon all on a PostgreSQL catalog of {CATALOG_FILES:,} files "
            f"(registered in {reg_s:.1f} s, {CATALOG_FILES / reg_s:,.0f} files/s): placed a "
            f"{CATALOG_FILES:,}-file asynchronous rule ({marks[huge] - t:.1f} s) and replicated "
            f"{REAL_FILES:,} real files ({marks[real] - t:.1f} s), then reaped them; "
            f"{work_s:.1f} s in all; peak RSS (VmHWM) {mib(peak['VmHWM']):.1f} MiB = "
            f"{peak['VmHWM'] / LIMIT:.2f} of the 64 MiB limit")
    finally:
        if daemon is not None:
            stop(daemon)
        stores.drop("bench_c")
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(d, ignore_errors=True)


# ---- (g) ----------------------------------------------------------------------------

def phase_g(pg, work, top):
    for store, where in (("SQLite", work), ("PostgreSQL", pg.uri)):
        say(f"(g) growth on {store}: 1,000,000 and {top:,} files (load average {load()})")
        t = time.perf_counter()
        p = subprocess.run([BENCH_GROWTH, "--max", str(top), where],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in p.stdout.splitlines():
            print("    " + line, flush=True)
        if p.returncode != 0:
            raise SystemExit(f"bench_pg: (g) bench_growth on {store} failed: "
                             f"{p.stderr[-2000:]}")
        say(f"(g) {store}: {time.perf_counter() - t:.0f} s")


def main():
    ap = argparse.ArgumentParser(description="PostgreSQL catalog benchmarks beside SQLite")
    ap.add_argument("--max", type=int, default=int(os.environ.get("BENCH_GROWTH_MAX",
                                                                  "10000000")),
                    help="files in the catalog at the top of the growth phase (10,000,000)")
    ap.add_argument("--phases", default=os.environ.get("BENCH_PHASES", "racg"),
                    help="phases to run: r a c g (default all)")
    args = ap.parse_args()
    for b in (DIDFS, BENCH_REGISTER, BENCH_GROWTH):
        if not os.path.exists(b):
            raise SystemExit(f"bench_pg: {b} not found: build first (DIDFS_BUILD)")
    why = available()
    if why:
        say(f"skipped: {why}")
        return 0
    say(f"didfs {DIDFS}; work in {WORK}; {os.cpu_count()} CPUs; load average {load()}")
    t = time.perf_counter()
    with PgCluster(base=WORK) as pg:
        stores = Stores(pg)
        say(f"PostgreSQL {pg.psql('SHOW server_version').strip()} on port {pg.port} "
            f"(fsync off, shared_buffers {pg.psql('SHOW shared_buffers').strip()})")
        if "r" in args.phases:
            phase_r(pg, WORK)
        if "a" in args.phases:
            phase_a(stores, WORK)
        if "c" in args.phases:
            phase_c(stores, WORK)
        if "g" in args.phases:
            phase_g(pg, WORK, args.max)
    say(f"done in {time.perf_counter() - t:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
