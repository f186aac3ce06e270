#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench_engine - the rule engine and the replication service, measured
against a peer or a limit in the same run.

  (a) a rule on a dataset of BENCH_RULE_FILES (100,000) files registered with
      `add-replicas --list`: wall time of `didfs add-rule` (locks, replicas,
      requests), locks per second, and its peak RSS; the ratio is against the
      bulk registration of the same files in the same catalog (`add-replicas
      --list`, rows per second), and the RSS against 64 MiB.
  (b) replicating BENCH_XFER_FILES (1,000) files of BENCH_XFER_SIZE (1 MiB)
      between two real XRootD servers with `didfs daemon` (streamed through
      the conveyor, conveyor.parallel BENCH_PARALLEL) against `xrdcp` run once
      per file between the same servers; then BENCH_TPC_FILES (100) files
      with third-party copy against `xrdcp --tpc only` per file; then a
      dataset of BENCH_SMALL_FILES (300) files of BENCH_SMALL_SIZE (256 KiB)
      replicated twice by the default configuration (files below
      conveyor.stream_below streamed, the rest third-party copied) and with
      TPC only (conveyor.stream_below = 0): both times and their ratio.
  (d) the measurement behind conveyor.stream_below: for each size of
      BENCH_CROSS_SIZES (256K,4M,16M,64M,256M,512M,1G), BENCH_CROSS_FILES (2)
      files copied one at a time (one worker) by the conveyor streamed and by
      TPC between the same two XRootD servers; per-file time of each path
      (the worker's own time, from the daemon's log) and the smallest size
      at which TPC is faster.
  (c) peak RSS (VmHWM) of `didfs daemon all` while it works on a catalog of
      BENCH_CATALOG_FILES (1,000,000) files: an asynchronous rule over all of
      them (the injector places 1M locks; the replicas are there already) and
      a rule on BENCH_REAL_FILES (10,000) real files copied between two
      file:// RSEs, then the same rule deleted with --purge-replicas (the
      reaper deletes them); printed against the 64 MiB limit.

Each phase prints one "bench_engine:" line with its figures.  Sizes are
overridable by the environment variables above; BENCH_PHASES (default
"abcd") selects phases; BENCH_DIR the work directory (default /tmp).  (b)
and (d) need root (the XRootD servers run as the xrootd user) and is skipped
otherwise.  The binary is $DIDFS_BUILD/tools/didfs.

Run small:  BENCH_RULE_FILES=10000 BENCH_XFER_FILES=100 BENCH_CATALOG_FILES=100000 \\
            BENCH_REAL_FILES=1000 tests/bench/bench_engine.py
"""
import json
import os
import pwd
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "env"))

BUILD = os.environ.get("DIDFS_BUILD", os.path.join(ROOT, "build"))
DIDFS = os.path.join(BUILD, "tools", "didfs")
LIMIT = 64 << 20


def parse_size(v):
    v = v.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(v[-1:], 1)
    return int(v[:-1] if v[-1:] in "KMG" else v) * mult


def size_env(name, default):
    return parse_size(os.environ.get(name, default))


RULE_FILES = int(os.environ.get("BENCH_RULE_FILES", "100000"))
XFER_FILES = int(os.environ.get("BENCH_XFER_FILES", "1000"))
XFER_SIZE = size_env("BENCH_XFER_SIZE", "1M")
TPC_FILES = int(os.environ.get("BENCH_TPC_FILES", "100"))
PARALLEL = int(os.environ.get("BENCH_PARALLEL", "16"))
CATALOG_FILES = int(os.environ.get("BENCH_CATALOG_FILES", "1000000"))
REAL_FILES = int(os.environ.get("BENCH_REAL_FILES", "10000"))
SMALL_FILES = int(os.environ.get("BENCH_SMALL_FILES", "300"))
SMALL_SIZE = size_env("BENCH_SMALL_SIZE", "256K")
CROSS_SIZES = [parse_size(v) for v in
               os.environ.get("BENCH_CROSS_SIZES", "256K,4M,16M,64M,256M,512M,1G").split(",")]
CROSS_FILES = int(os.environ.get("BENCH_CROSS_FILES", "2"))
PHASES = os.environ.get("BENCH_PHASES", "abcd")
WORK = os.environ.get("BENCH_DIR", "/tmp")
DEADLINE = float(os.environ.get("BENCH_DEADLINE", "3600"))


def say(msg):
    print(f"bench_engine: {msg}", flush=True)


def mib(b):
    return b / (1 << 20)


class Cat:
    def __init__(self, path):
        self.path = path

    def cmd(self, *args, json_out=False):
        return [DIDFS, "--catalog", self.path] + (["--json"] if json_out else []) + \
            [str(a) for a in args]

    def __call__(self, *args):
        p = subprocess.run(self.cmd(*args), capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"bench_engine: didfs {' '.join(map(str, args))} failed: "
                             f"{p.stderr.strip()[-2000:]}")
        return p.stdout

    def json(self, *args):
        p = subprocess.run(self.cmd(*args, json_out=True), capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"bench_engine: didfs --json {' '.join(map(str, args))} failed: "
                             f"{p.stderr.strip()[-2000:]}")
        return json.loads(p.stdout)

    def measured(self, *args):
        """Run one command; (seconds, peak RSS bytes) of that process alone."""
        t = time.perf_counter()
        p = subprocess.Popen(self.cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out, err = p.stdout.read(), p.stderr.read()
        if p.returncode != 0:
            raise SystemExit(f"bench_engine: didfs {' '.join(map(str, args))} failed: "
                             f"{err.decode(errors='replace')[-2000:]}")
        return dt, ru.ru_maxrss * 1024, out.decode()

    def rule_state(self, rule):
        con = sqlite3.connect(self.path, timeout=60)
        try:
            row = con.execute("SELECT state FROM rules WHERE id=?", (rule,)).fetchone()
            return row[0] if row else None
        finally:
            con.close()


def new_catalog(d, name="cat.db"):
    c = Cat(os.path.join(d, name))
    c("init")
    c("add-scope", "mock", "--account", "root")
    return c


def fake_list(path, n, prefix, start=0):
    """n fake files "mock:<prefix>NNNNNNN bytes adler32" (no data behind)."""
    with open(path, "w") as f:
        for i in range(start, start + n):
            f.write(f"mock:{prefix}{i:07d} {1000000 + i % 4096} "
                    f"{(i * 2654435761) & 0xffffffff:08x}\n")


def wait_rules(cat, rules, what, daemon=None, sampler=None):
    deadline = time.monotonic() + DEADLINE
    while True:
        states = [cat.rule_state(r) for r in rules]
        if all(s == "O" for s in states):
            return
        if any(s == "S" for s in states):
            raise SystemExit(f"bench_engine: {what}: a rule went STUCK: "
                             f"{cat('rule-info', rules[states.index('S')])}")
        if daemon is not None and daemon.poll() is not None:
            raise SystemExit(f"bench_engine: {what}: the daemon exited {daemon.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_engine: {what}: not done after {DEADLINE:.0f} s")
        if sampler:
            sampler()
        time.sleep(0.2)


def vm_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS"):
                    out[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    return out


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


# ---- (a) ----------------------------------------------------------------------------

def phase_a(work):
    d = tempfile.mkdtemp(prefix="a-", dir=work)
    try:
        cat = new_catalog(d)
        for rse in ("SRC", "DST"):
            cat("add-rse", rse)
            cat("add-protocol", "--rse", rse, "--scheme", "file", "--prefix", f"{d}/{rse}")
        cat("add-dataset", "mock:big")
        lst = os.path.join(d, "files.txt")
        fake_list(lst, RULE_FILES, "f")
        reg_s, reg_rss, _ = cat.measured("add-replicas", "--rse", "SRC", "--list", lst,
                                         "--dataset", "mock:big")
        rule_s, rule_rss, out = cat.measured("add-rule", "mock:big", "1", "DST")
        rule = out.strip()
        info = cat.json("rule-info", rule)
        locks = info["locks_replicating_cnt"] + info["locks_ok_cnt"]
        nreq = len(cat.json("list-transfers", "--rule", rule, "--state", "QUEUED"))
        if locks != RULE_FILES or nreq != RULE_FILES:
            raise SystemExit(f"bench_engine: (a) expected {RULE_FILES} locks and requests, "
                             f"got {locks} and {nreq}")
        say(f"(a) add-rule on a {RULE_FILES}-file dataset: {rule_s:.2f} s, "
            f"{locks / rule_s:,.0f} locks/s (+ as many replicas and requests); "
            f"bulk registration of the same files {RULE_FILES / reg_s:,.0f} files/s; "
            f"ratio add-rule/registration {reg_s / rule_s:.2f}; "
            f"peak RSS add-rule {mib(rule_rss):.1f} MiB = {rule_rss / LIMIT:.2f} of 64 MiB "
            f"(registration {mib(reg_rss):.1f} MiB)")
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- (b) ----------------------------------------------------------------------------

class XrdBench:
    """Two real XRootD servers (XRD1, XRD2) registered in a fresh catalog, for
    (b) and (d); files are written on XRD1's disk as the xrootd user."""

    def __init__(self, work, tag):
        import xrdrse
        self.d = tempfile.mkdtemp(prefix=f"{tag}-", dir=work)
        os.chmod(self.d, 0o755)
        self.rses = xrdrse.Rses.create(os.path.join(self.d, "rses"), 2)
        self.daemon = None
        self.rses.start()
        self.cat = new_catalog(self.d)
        for s in self.rses.servers:
            self.cat("add-rse", s.name)
            self.cat("add-protocol", "--rse", s.name, "--scheme", "root", "--hostname", s.host,
                     "--port", s.port, "--prefix", "/rucio/bench", "--read", 1, "--write", 1,
                     "--delete", 1, "--tpc-read", 1, "--tpc-write", 1)
        self.pw = pwd.getpwnam("xrootd")
        self.src = self.rses["XRD1"]

    def close(self):
        if self.daemon is not None:
            stop(self.daemon)
        self.rses.stop()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(self.d, ignore_errors=True)

    def put_files(self, names, size):
        """Random files on XRD1's disk (as the xrootd user) + a list file."""
        cat, d, src, pw = self.cat, self.d, self.src, self.pw
        lst = os.path.join(d, f"list-{names[0]}.txt")
        dids = [f"mock:{n}" for n in names]
        pfns = {}
        for i in range(0, len(dids), 500):
            for row in cat.json("lfn2pfn", "--rse", "XRD1", *dids[i:i + 500]):
                pfns[row["did"]] = row["pfn"]
        with open(lst, "w") as f:
            for did in dids:
                path = "/" + pfns[did].split("/", 3)[3].lstrip("/")
                local = src.local_path(path)
                parent = os.path.dirname(local)
                todo = []
                while not os.path.isdir(parent):
                    todo.append(parent)
                    parent = os.path.dirname(parent)
                for p in reversed(todo):
                    os.mkdir(p, 0o755)
                    os.chown(p, pw.pw_uid, pw.pw_gid)
                a = 1
                with open(local, "wb") as g:
                    left = size
                    while left > 0:
                        data = os.urandom(min(left, 16 << 20))
                        g.write(data)
                        a = zlib.adler32(data, a)
                        left -= len(data)
                os.chown(local, pw.pw_uid, pw.pw_gid)
                f.write(f"{did} {size} {a & 0xffffffff:08x}\n")
        return lst, pfns

    def xrdcp_each(self, pfns, extra):
        """xrdcp per file XRD1 -> XRD2 (into a separate directory)."""
        dst, src = self.rses["XRD2"], self.src
        t = time.perf_counter()
        for k, (did, pfn) in enumerate(pfns.items()):
            path = "/" + pfn.split("/", 3)[3].lstrip("/")
            s_url = f"root://{src.host}:{src.port}/{path}"
            d_url = f"root://{dst.host}:{dst.port}//rucio/xrdcp/{k}"
            p = subprocess.run(["xrdcp", "-f", "-s", *extra, s_url, d_url],
                               capture_output=True)
            if p.returncode != 0:
                raise SystemExit(f"bench_engine: xrdcp {s_url} failed: {p.stderr[-500:]}")
        return time.perf_counter() - t

    def replicate(self, names, size, what, settings):
        """Files of size on XRD1 in dataset mock:<what>, a rule for XRD2, a
        `didfs daemon all` with settings; (seconds from add-rule to OK,
        pfns, daemon peak RSS, daemon log text)."""
        cat, d = self.cat, self.d
        lst, pfns = self.put_files(names, size)
        ds = f"mock:{what}"
        cat("add-dataset", ds)
        cat("add-replicas", "--rse", "XRD1", "--list", lst, "--dataset", ds)
        conf = os.path.join(d, f"{what}.conf")
        lines = {"sleep": 1, "conveyor.parallel": PARALLEL, "conveyor.chunk_size": 1000,
                 "transfer.ca_path": self.rses.ca_dir, "transfer.chunk_bytes": "1M",
                 "transfer.chunks_in_flight": 4,
                 "log_level": os.environ.get("BENCH_LOG_LEVEL", "info")}
        lines.update(settings)
        with open(conf, "w") as f:
            for k, v in lines.items():
                f.write(f"{k} = {str(v).lower() if isinstance(v, bool) else v}\n")
        logpath = os.path.join(d, f"{what}.log")
        log = open(logpath, "w")
        self.daemon = subprocess.Popen([DIDFS, "--catalog", cat.path, "daemon", "all",
                                        "--config", conf], stdout=log, stderr=log)
        time.sleep(0.5)  # let the loops start: the clock measures transfers
        hwm = [0]

        def sample():
            hwm[0] = max(hwm[0], vm_status(self.daemon.pid).get("VmHWM", 0))
        t = time.perf_counter()
        rule = cat("add-rule", ds, "1", "XRD2").strip()
        wait_rules(cat, [rule], f"{what}", self.daemon, sample)
        dt = time.perf_counter() - t
        sample()
        rc = stop(self.daemon)
        self.daemon = None
        log.close()
        if rc != 0:
            raise SystemExit(f"bench_engine: {what}: the daemon exited {rc}")
        with open(logpath, errors="replace") as f:
            text = f.read()
        return dt, pfns, hwm[0], text


DONE_RE = re.compile(r"-> XRD2 mock:(\S+) .* in ([0-9.]+) s \(([a-z ]+)\) transfer done")


def done_modes(text):
    """{name: (worker seconds, mode)} of a daemon log's 'transfer done' lines."""
    return {m.group(1): (float(m.group(2)), m.group(3)) for m in DONE_RE.finditer(text)}


def xrd_ready(what):
    if os.geteuid() != 0 or not shutil.which("xrootd"):
        say(f"{what} skipped: needs root and xrootd (the servers run as the xrootd user)")
        return False
    if not shutil.which("xrdcp"):
        say(f"{what} skipped: xrdcp not found")
        return False
    return True


def phase_b(work):
    if not xrd_ready("(b)"):
        return
    xb = XrdBench(work, "b")
    try:
        n = XFER_FILES
        conv_s, pfns, hwm, _ = xb.replicate([f"x{i:06d}" for i in range(n)], XFER_SIZE,
                                            "streamed", {"conveyor.tpc": False})
        xrd_s = xb.xrdcp_each(pfns, [])
        say(f"(b) {n} files of {mib(XFER_SIZE):g} MiB XRD1 -> XRD2: didfs daemon (streamed, "
            f"{PARALLEL} in flight, adler32 verified at the destination) "
            f"{n / conv_s:.1f} files/s ({n * XFER_SIZE / conv_s / 1e6:.0f} MB/s); "
            f"xrdcp per file {n / xrd_s:.1f} files/s; ratio {xrd_s / conv_s:.2f}; "
            f"daemon peak RSS {mib(hwm):.1f} MiB")
        if TPC_FILES > 0:
            n = TPC_FILES
            conv_s, pfns, hwm, _ = xb.replicate([f"t{i:06d}" for i in range(n)], XFER_SIZE,
                                                "tpc", {"conveyor.stream_below": 0})
            xrd_s = xb.xrdcp_each(pfns, ["--tpc", "only"])
            say(f"(b) {n} files of {mib(XFER_SIZE):g} MiB by third-party copy: didfs daemon "
                f"{n / conv_s:.1f} files/s; xrdcp --tpc only per file {n / xrd_s:.1f} files/s; "
                f"ratio {xrd_s / conv_s:.2f}; daemon peak RSS {mib(hwm):.1f} MiB")
        if SMALL_FILES > 0:
            n = SMALL_FILES
            thr_s, _, _, thr_log = xb.replicate([f"s{i:06d}" for i in range(n)], SMALL_SIZE,
                                                "small-default", {})
            tpc_s, _, _, tpc_log = xb.replicate([f"u{i:06d}" for i in range(n)], SMALL_SIZE,
                                                "small-tpc-only", {"conveyor.stream_below": 0})
            streamed = sum(1 for _, m in done_modes(thr_log).values() if m == "streamed")
            tpcd = sum(1 for _, m in done_modes(tpc_log).values() if m == "tpc")
            say(f"(b) a dataset of {n} files of {SMALL_SIZE >> 10} KiB XRD1 -> XRD2: default "
                f"configuration ({streamed} streamed below conveyor.stream_below) {thr_s:.1f} s; "
                f"TPC only (conveyor.stream_below = 0, {tpcd} third-party copies, "
                f"conveyor.tpc_parallel default) {tpc_s:.1f} s; ratio TPC-only/default "
                f"{tpc_s / thr_s:.1f}")
    finally:
        xb.close()


# ---- (d) ----------------------------------------------------------------------------

def phase_d(work):
    """Per-file time streamed vs TPC by size, one file at a time."""
    if not xrd_ready("(d)"):
        return
    xb = XrdBench(work, "d")
    one = {"conveyor.parallel": 1, "conveyor.tpc_parallel": 1, "conveyor.chunk_size": 1}
    try:
        rows = []
        for size in CROSS_SIZES:
            tag = f"{size >> 10}k"
            names = [f"c{tag}s{i}" for i in range(CROSS_FILES)]
            _, _, _, log_s = xb.replicate(names, size, f"cross-{tag}-streamed",
                                          dict(one, **{"conveyor.tpc": False}))
            names_t = [f"c{tag}t{i}" for i in range(CROSS_FILES)]
            _, _, _, log_t = xb.replicate(names_t, size, f"cross-{tag}-tpc",
                                          dict(one, **{"conveyor.stream_below": 0}))
            ms, mt = done_modes(log_s), done_modes(log_t)
            if any(m != "streamed" for _, m in ms.values()) or \
                    any(m != "tpc" for _, m in mt.values()):
                raise SystemExit(f"bench_engine: (d) {tag}: unexpected modes {ms} {mt}")
            st = sum(v for v, _ in ms.values()) / len(ms)
            tt = sum(v for v, _ in mt.values()) / len(mt)
            rows.append((size, st, tt))
            say(f"(d) {mib(size):g} MiB per file: streamed {st:.3f} s, TPC {tt:.3f} s, "
                f"ratio TPC/streamed {tt / max(st, 1e-3):.1f}")
        cross = next((size for size, st, tt in rows if tt <= st), None)
        say("(d) conveyor.stream_below measured: " +
            (f"TPC is faster from {mib(cross):g} MiB on" if cross else
             f"streaming was faster at every size up to {mib(rows[-1][0]):g} MiB"))
    finally:
        xb.close()


# ---- (c) ----------------------------------------------------------------------------

def phase_c(work):
    d = tempfile.mkdtemp(prefix="c-", dir=work)
    daemon = None
    try:
        cat = new_catalog(d)
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
                    data = os.urandom(4096 + (hash(row["did"]) & 0xfff))
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
        daemon = subprocess.Popen([DIDFS, "--catalog", cat.path, "daemon", "all",
                                   "--config", conf], stdout=log, stderr=log)
        peak = {"VmHWM": 0, "VmRSS": 0}

        def sample():
            for k, v in vm_status(daemon.pid).items():
                peak[k] = max(peak[k], v)
        t = time.perf_counter()
        huge = cat("add-rule", "mock:huge", "1", "BULK", "--asynchronous").strip()
        real = cat("add-rule", "mock:real", "1", "DST").strip()
        wait_rules(cat, [real, huge], "(c)", daemon, sample)
        work_s = time.perf_counter() - t
        # and the reaper: the copies on DST go
        cat("delete-rule", real, "--purge-replicas")

        def dst_files():
            return sum(len(fs) for _, _, fs in os.walk(os.path.join(d, "DST")))
        deadline = time.monotonic() + DEADLINE
        while dst_files() and time.monotonic() < deadline and daemon.poll() is None:
            sample()
            time.sleep(0.2)
        left = dst_files()
        sample()
        rc = stop(daemon)
        log.close()
        if rc != 0 or left:
            raise SystemExit(f"bench_engine: (c) daemon exit {rc}, {left} files not reaped")
        say(f"(c) didfs daemon all on a catalog of {CATALOG_FILES:,} files (registered in "
            f"{reg_s:.1f} s): placed a {CATALOG_FILES:,}-file asynchronous rule and replicated "
            f"then reaped {REAL_FILES:,} real files in {work_s:.1f} s; peak RSS (VmHWM) "
            f"{mib(peak['VmHWM']):.1f} MiB = {peak['VmHWM'] / LIMIT:.2f} of the 64 MiB limit")
    finally:
        if daemon is not None:
            stop(daemon)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(d, ignore_errors=True)


def main():
    if not os.path.exists(DIDFS):
        raise SystemExit(f"bench_engine: {DIDFS} not found: build first (DIDFS_BUILD)")
    say(f"didfs {DIDFS}; work in {WORK}")
    if "a" in PHASES:
        phase_a(WORK)
    if "b" in PHASES:
        phase_b(WORK)
    if "c" in PHASES:
        phase_c(WORK)
    if "d" in PHASES:
        phase_d(WORK)


if __name__ == "__main__":
    main()
