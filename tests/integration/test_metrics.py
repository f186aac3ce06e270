# SPDX-License-Identifier: Apache-2.0
"""Metrics and structured logs (util/metrics.c, server/srv_metrics.c,
daemons/dmetrics.c, fs/fsmetrics.c).

The main case runs a real Prometheus (Debian's `prometheus`) on a free
loopback port with a 1 s scrape interval against `didfs serve` (https, its
own port), a `didfs daemon --metrics` and a `didfs mount --metrics` while a
rule added over REST is replicated between real XRootD servers; it then asks
Prometheus' HTTP API (/api/v1/query) for the transfer counters, the queue
gauges and the request counters and checks them against the catalog as the
CLI reports it.  Every process runs with --log-format json
($DIDFS_LOG_FORMAT): the access log and the daemon's log must parse line by
line as JSON and carry the rule's REST request id.

Without storage: /metrics' allow-list (403 outside it, 404 when off), the
exposition format as served, the X-Request-Id rules (kept when sane,
replaced otherwise), kv log lines, and a bad --log-format or --metrics.

Waits are bounded polls; nothing asserts on time.  Prometheus, the server,
the daemon and the mount are stopped whatever happens.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
import uuid

import pytest
import requests

from catfixture import Didfs
from servefixture import Served, free_port
from test_engine import Engine, wait_until

PROMETHEUS = "/usr/bin/prometheus"


class Prometheus:
    """A Prometheus server in a temporary directory, scraping `jobs`
    ({name: (address, scheme, ca_file or None)}) every second."""

    def __init__(self, tmp, jobs):
        self.dir = tmp / f"prometheus-{uuid.uuid4().hex[:6]}"
        self.dir.mkdir()
        self.port = free_port()
        cfg = ["global:", "  scrape_interval: 1s", "  scrape_timeout: 1s", "scrape_configs:"]
        for name, (addr, scheme, ca) in jobs.items():
            cfg += [f"  - job_name: {name}", f"    scheme: {scheme}",
                    "    metrics_path: /metrics"]
            if ca:
                cfg += ["    tls_config:", f"      ca_file: {ca}"]
            cfg += ["    static_configs:", f"      - targets: ['{addr}']"]
        (self.dir / "prometheus.yml").write_text("\n".join(cfg) + "\n")
        self.log = open(self.dir / "prometheus.log", "w")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, cwd=str(self.dir))
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            wait_until(self._ready, "Prometheus to be ready", timeout=120,
                       on_timeout=self.log_text)
        except BaseException:
            self.stop()
            raise

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited {self.proc.returncode}: {self.log_text()}")
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    def log_text(self):
        self.log.flush()
        return (self.dir / "prometheus.log").read_text(errors="replace")[-4000:]

    def query(self, q):
        """The result vector of an instant query."""
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, q):
        """A single number (None while the query has no result yet)."""
        res = self.query(q)
        if not res:
            return None
        assert len(res) == 1, (q, res)
        return float(res[0]["value"][1])

    def targets_up(self):
        return {r["metric"]["job"]: r["value"][1] for r in self.query("up")}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        if not self.log.closed:
            self.log.close()


def need_prometheus():
    if not os.path.exists(PROMETHEUS):
        pytest.skip("prometheus not installed (Debian package prometheus, scripts/deps-serve.txt)")


def json_lines(text, what):
    """Every line of a log parsed as JSON (a line that is not fails)."""
    out = []
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError as e:
            raise AssertionError(f"{what} line {i + 1} is not JSON ({e}): {line!r}")
        for k in ("ts", "level", "component", "msg"):
            assert k in out[-1], (what, k, line)
    return out


def test_prometheus_scrapes_replication(tmp_path, serve_pki, rses, mount, monkeypatch):
    need_prometheus()
    monkeypatch.setenv("DIDFS_LOG_FORMAT", "json")
    (tmp_path / "srv").mkdir()
    srv = Served(tmp_path / "srv", serve_pki)
    eng = prom = None
    try:
        eng = Engine(srv.didfs, rses, tmp_path)
        files = {f"mock:pm{i}": os.urandom(50000 * (i + 1)) for i in range(4)}
        eng.d("add-dataset", "mock:pmds")
        eng.register("XRD1", files, dataset="mock:pmds")
        eng.d("set-account-limit", "root", "XRD2", "-1")

        # the rule over REST, with our request id
        rid = f"metrics-test-{uuid.uuid4().hex[:12]}"
        r = srv.post("/rules/", headers={"X-Request-Id": rid},
                     json={"dids": [{"scope": "mock", "name": "pmds"}], "account": "root",
                           "copies": 1, "rse_expression": "XRD2"})
        assert r.status_code == 201, r.text
        assert r.headers["X-Request-Id"] == rid
        rule = r.json()[0]

        dport, mport = free_port(), free_port()
        dm = eng.start("all", args=["--metrics", f"127.0.0.1:{dport}"])
        m = mount(srv.didfs, extra=["--metrics", f"127.0.0.1:{mport}"])
        prom = Prometheus(tmp_path, {
            "serve": (f"127.0.0.1:{srv.port}", "https", srv.ca),
            "daemon": (f"127.0.0.1:{dport}", "http", None),
            "mount": (f"127.0.0.1:{mport}", "http", None),
        })
        eng.wait_rule(rule, "OK")

        # read every file through the mount twice: fetches, then (the
        # kernel's pages of the file dropped) hits in the block cache
        for _ in range(2):
            for did, data in files.items():
                fd = os.open(m.path / "mock" / "pmds" / did.split(":")[1], os.O_RDONLY)
                try:
                    got = b""
                    while True:
                        chunk = os.read(fd, 1 << 20)
                        if not chunk:
                            break
                        got += chunk
                    assert got == data, did
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)

        # the catalog as the CLI sees it
        done = eng.d.json("list-transfers", "--state", "DONE")
        assert len(done) == len(files), done
        live = eng.d.json("list-transfers", "--state", "QUEUED,SUBMITTED")
        done_bytes = sum(t["bytes"] for t in done)
        ok_rules = [x for x in eng.d.json("list-rules", "--account", "root") if x["state"] == "OK"]

        def settled():
            got = {
                "up": prom.targets_up(),
                "done": prom.value('sum(didfs_transfers_total{outcome="done"})'),
                "done_xrd": prom.value('sum(didfs_transfers_total{src_rse="XRD1",dst_rse="XRD2",outcome="done"})'),
                "bytes": prom.value("sum(didfs_transfer_bytes_total)"),
                "queued": prom.value("sum(didfs_requests)"),
                "rules_ok": prom.value('didfs_rules{state="OK"}'),
                "rules_repl": prom.value('didfs_rules{state="REPLICATING"}'),
                "rule_posts": prom.value('sum(didfs_http_requests_total{family="rules",method="POST",status="201"})'),
                "reads": prom.value('didfs_mount_operation_duration_seconds_count{op="read"}'),
                "hits": prom.value("didfs_mount_cache_hits_total"),
                "cache": prom.value("didfs_mount_cache_bytes"),
                "judge": prom.value("didfs_judge_pending_updates"),
                "age": prom.value('max(didfs_daemon_heartbeat_age_seconds{daemon="conveyor"})'),
                "rss": prom.value('didfs_process_resident_memory_bytes{job="daemon"}'),
            }
            settled.last = got
            return (got["up"] == {"serve": "1", "daemon": "1", "mount": "1"} and
                    got["done"] == len(done) and got["done_xrd"] == len(done) and
                    got["bytes"] == done_bytes and got["queued"] == len(live) and
                    got["rules_ok"] == len(ok_rules) and got["rules_repl"] == 0 and
                    got["rule_posts"] == 1 and got["reads"] and got["hits"] and
                    got["cache"] and got["cache"] >= sum(len(d) for d in files.values()) and
                    got["judge"] == 0 and got["age"] is not None and got["rss"])
        settled.last = None
        wait_until(settled, "Prometheus to report the replication",
                   on_timeout=lambda: f"{settled.last}\n{prom.log_text()}")
        assert settled.last["age"] < 120
        # latency histograms made it through: a bucket series per le
        buckets = prom.query('didfs_http_request_duration_seconds_bucket{family="rules",method="POST"}')
        assert {b["metric"]["le"] for b in buckets} >= {"0.005", "1", "+Inf"}
        assert prom.value('didfs_daemon_cycles_total{daemon="conveyor",outcome="ok"}') > 0
        assert prom.value('didfs_daemon_work_total{daemon="conveyor"}') >= len(done)

        # JSON logs: the request id in serve's access log and the daemon's work
        assert dm.stop() == 0
        access = json_lines(open(srv.access_log).read(), "access log")
        mine = [a for a in access if a.get("request_id") == rid]
        assert [(a["method"], a["path"], a["status"]) for a in mine] == [("POST", "/rules/", "201")]
        dlog = json_lines(dm.log_text(), "daemon log")
        carried = [x for x in dlog if x.get("request_id") == rid]
        assert len([x for x in carried if "transfer done" in x["msg"]]) == len(files), \
            dm.log_text()[-4000:]
        assert all(x["component"] == "conveyor" for x in carried)
        assert any(x["component"] == "metrics" and "serving /metrics" in x["msg"] for x in dlog)
    finally:
        if prom:
            prom.stop()
        if eng:
            eng.stop_all()
        srv.stop()


def scrape(url, **kw):
    return requests.get(url, timeout=30, **kw)


def test_serve_metrics_allow_list_and_request_ids(tmp_path, serve_pki):
    (tmp_path / "a").mkdir()
    s = Served(tmp_path / "a", serve_pki)
    try:
        # the default allow-list is loopback: we are let in, without a token
        r = s.get("/metrics", token=False)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        s.get("/ping", token=False)
        s.get("/rules/nosuchrule")
        text = s.get("/metrics", token=False).text
        for line in text.splitlines():
            assert line.startswith("# HELP didfs_") or line.startswith("# TYPE didfs_") or \
                re.fullmatch(r'didfs_[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? \S+', line), line
        assert re.search(r'^didfs_http_requests_total\{family="ping",method="GET",status="200"\} 1$',
                         text, re.M), text
        assert re.search(r'^didfs_http_requests_total\{family="rules",method="GET",status="404"\} 1$',
                         text, re.M), text
        assert re.search(r'^didfs_http_request_duration_seconds_bucket\{family="ping",method="GET",'
                         r'le="\+Inf"\} 1$', text, re.M)
        assert re.search(r"^didfs_process_threads \d+$", text, re.M)
        assert re.search(r"^didfs_process_open_fds \d+$", text, re.M)
        # an unknown path is counted as "other", not by its name
        s.get("/zzz-random-path", token=False)
        text = s.get("/metrics", token=False).text
        assert "zzz" not in text and 'family="other"' in text
        # request ids: a sane one is kept, anything else is replaced
        r = s.get("/ping", token=False, headers={"X-Request-Id": "abc-123.x_y:z"})
        assert r.headers["X-Request-Id"] == "abc-123.x_y:z"
        for bad in ("has space", "a" * 65, "quote\"", "ü"):
            r = s.get("/ping", token=False, headers={"X-Request-Id": bad.encode()})
            assert re.fullmatch(r"[0-9a-f]{32}", r.headers["X-Request-Id"]), (bad, r.headers)
        r = s.get("/ping", token=False)
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["X-Request-Id"])
        # the text access log ends with the id
        log = open(s.access_log).read()
        assert re.search(r'"GET /ping" 200 \d+ [0-9.]+ "[^"]*" abc-123\.x_y:z$', log, re.M), log
    finally:
        assert s.stop() == 0

    (tmp_path / "b").mkdir()
    s = Served(tmp_path / "b", serve_pki, extra_args=["--metrics-allow", "10.0.0.0/8,192.168.1.7"])
    try:
        r = s.get("/metrics", token=False)
        assert r.status_code == 403 and r.headers["ExceptionClass"] == "AccessDenied", r.text
        assert "metrics_allow" in r.headers["ExceptionMessage"]
        assert s.get("/ping", token=False).status_code == 200
    finally:
        assert s.stop() == 0

    (tmp_path / "c").mkdir()
    s = Served(tmp_path / "c", serve_pki, extra_args=["--metrics-allow", "off"])
    try:
        r = s.get("/metrics", token=False)
        assert r.status_code == 404, r.text
    finally:
        assert s.stop() == 0


def test_bad_options_and_kv_logs(tmp_path, serve_pki):
    d = Didfs(tmp_path / "c.db")
    d("init")
    err = d.fails("--log-format", "xml", "list-rses", status=2)
    assert "--log-format takes text, kv or json, not 'xml'" in err
    err = d.fails("daemon", "--once", "--metrics", "127.0.0.1:notaport",
                  cls="InputValidationError")
    assert "--metrics takes ADDR:PORT, not '127.0.0.1:notaport'" in err
    err = d.fails("daemon", "--once", "--metrics", "example.org:80", cls="InputValidationError")
    assert "is not an IPv4 address" in err
    (tmp_path / "s").mkdir()
    with pytest.raises(RuntimeError, match="metrics_allow takes off, any or up to"):
        Served(tmp_path / "s", serve_pki, extra_args=["--metrics-allow", "10.0.0.0/33"])
    # kv lines from a daemon run: key=value with the four fixed keys first
    p = subprocess.run([d.bin, "--catalog", d.catalog, "--log-format", "kv", "daemon", "--once",
                        "abacus"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    lines = [x for x in p.stderr.splitlines() if x]
    assert lines, p.stderr
    for x in lines:
        assert re.match(r'^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(info|warning|error|debug) '
                        r'component=\S+ msg="', x), x
