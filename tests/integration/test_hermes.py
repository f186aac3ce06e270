# SPDX-License-Identifier: Apache-2.0
"""Notifications (Rucio's hermes), issue 14 item 4: every event of a
replication (CREATE_DTS, transfer-submitted/-done, RULE_OK) is written in
the catalog's outbox in the same transaction as its change and delivered at
least once to a real RabbitMQ (Debian's rabbitmq-server, STOMP plugin) and
to an HTTP webhook, with the broker stopped and restarted in the middle:
none lost (duplicates only as at-least-once allows: distinct ids counted),
each as counted in the catalog; the outbox is empty once both sinks have
everything.  Also: a sink that is down keeps the messages (nothing deleted
before every sink has them)."""
import http.server
import json
import os
from catfixture import connect_catalog
import threading
import time

import pytest

import rabbitmq
from test_engine import Engine, files_of, wait_until

DEST = "/queue/rucio.events"


class Hook(threading.Thread):
    """An HTTP webhook recording the messages POSTed to it (a JSON list)."""

    def __init__(self, port=0):
        super().__init__(daemon=True)
        got, lock = [], threading.Lock()
        self.got, self.lock = got, lock

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    got.extend(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/events"

    def run(self):
        self.httpd.serve_forever(poll_interval=0.2)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def messages(self):
        with self.lock:
            return list(self.got)


@pytest.fixture
def broker(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the RabbitMQ fixture runs the broker as root (own RABBITMQ_* dirs)")
    if not rabbitmq.available():
        pytest.fail("rabbitmq-server not found: install it (scripts/install-deps.sh)")
    b = rabbitmq.RabbitMQ(tmp_path / "rabbitmq")
    try:
        b.start()
        yield b
    finally:
        b.close()


def outbox(catalog):
    con = connect_catalog(catalog)
    try:
        return con.execute("SELECT count(*) FROM messages").fetchone()[0]
    finally:
        con.close()


def done_requests(catalog, rule):
    con = connect_catalog(catalog)
    try:
        return {r[0] for r in con.execute("SELECT id FROM requests_history WHERE rule_id=? AND state='D'",
                                          (rule,))}
    finally:
        con.close()


def by_event(msgs):
    """{event_type: {id: payload}} from (id, event_type, payload) triples."""
    out = {}
    for i, ev, p in msgs:
        out.setdefault(ev, {})[i] = p
    return out


def test_replication_events_reach_rabbitmq_and_webhook_across_broker_restart(didfs, rses, tmp_path,
                                                                              broker):
    eng = Engine(didfs, rses, tmp_path)
    hook = Hook()
    hook.start()
    sub = rabbitmq.Subscriber(broker.stomp_port, DEST)
    sub.start()
    try:
        assert sub.connected.wait(30), "the test subscriber could not subscribe"
        n = 30
        files = files_of("h", n, lambda i: 1000 + i)
        eng.d("add-dataset", "mock:hds")
        eng.register("XRD3", files, dataset="mock:hds")
        rule = eng.d("add-rule", "mock:hds", "1", "XRD1", "--notify", "Y").strip()
        dm = eng.start("all", extra={
            "hermes.stomp_host": "127.0.0.1", "hermes.stomp_port": broker.stomp_port,
            "hermes.stomp_user": "guest", "hermes.stomp_password": "guest",
            "hermes.stomp_destination": DEST, "hermes.webhooks": hook.url,
            "hermes.max_delay": 2, "hermes.chunk_size": 7, "hermes.sleep": 1,
            "conveyor.chunk_size": 5})
        wait_until(lambda: len(sub.messages()) >= 1, "the first event at the broker",
                   on_timeout=lambda: dm.log_text()[-3000:])
        broker.stop()                       # the broker goes away mid-run
        time.sleep(4)
        broker.start()                      # and comes back with its data
        eng.wait_rule(rule)
        wait_until(lambda: outbox(eng.d.catalog) == 0, "the outbox to drain",
                   timeout=180, on_timeout=lambda: dm.log_text()[-4000:])
        assert "stomp" in dm.log_text() and "retry in" in dm.log_text(), dm.log_text()[-3000:]
        wait_until(lambda: len({h["didfs-message-id"] for h, _ in sub.messages()}) >=
                   len({m["id"] for m in hook.messages()}), "the subscriber to catch up",
                   timeout=60)
        assert dm.stop() == 0
    finally:
        sub.stop()
        hook.stop()
        eng.stop_all()
    at_broker = []
    for h, body in sub.messages():
        b = json.loads(body)
        assert h["event_type"] == b["event_type"] and b["created_at"]
        at_broker.append((int(h["didfs-message-id"]), b["event_type"], json.dumps(b["payload"])))
    at_hook = [(m["id"], m["event_type"], json.dumps(m["payload"])) for m in hook.messages()]
    # the same messages at both sinks, none lost (ids are distinct per event)
    assert set(at_broker) == set(at_hook)
    ev = by_event(set(at_broker))
    # as counted in the catalog: one transfer-done per DONE request of the rule
    done = done_requests(eng.d.catalog, rule)
    assert len(done) == n
    got_done = {json.loads(p)["request-id"] for p in ev["transfer-done"].values()}
    assert got_done == done
    assert len(ev["transfer-done"]) == n
    assert {json.loads(p)["request-id"] for p in ev["transfer-submitted"].values()} >= done
    assert [json.loads(p) for p in ev["RULE_OK".lower()].values()] == [
        {"scope": "mock", "name": "hds", "rule_id": rule}]
    assert [json.loads(p)["name"] for p in ev["create_dts"].values()] == ["hds"]
    p = json.loads(next(iter(ev["transfer-done"].values())))
    for k in ("request-id", "scope", "name", "src-rse", "dst-rse", "file-size", "bytes",
              "checksum-adler", "activity", "tool-id", "account", "duration", "transferred_at"):
        assert k in p, (k, p)
    assert p["dst-rse"] == "XRD1" and p["src-rse"] == "XRD3"


def test_messages_kept_until_every_sink_has_them(didfs, tmp_path):
    """A webhook that is down: the messages the other sink has stay in the
    outbox, and are delivered (and only then deleted) once it is back."""
    good = Hook()
    good.start()
    port = rabbitmq.free_port()
    dead_url = f"http://127.0.0.1:{port}/events"
    try:
        didfs("add-scope", "ev")
        for i in range(5):
            didfs("add-dataset", f"ev:ds{i}")
        cfg = tmp_path / "h.cfg"
        cfg.write_text(f"hermes.webhooks = {good.url} {dead_url}\nhermes.max_delay = 1\n")
        p = didfs.run("daemon", "hermes", "--once", "--config", str(cfg))
        assert p.returncode == 0, p.stderr
        assert "retry in" in p.stderr
        assert sorted(m["payload"]["name"] for m in good.messages()) == [f"ds{i}" for i in range(5)]
        assert outbox(didfs.catalog) == 5          # kept: the second sink has none
        back = Hook(port)                          # the second sink comes back
        back.start()
        try:
            p = didfs.run("daemon", "hermes", "--once", "--config", str(cfg))
            assert p.returncode == 0, p.stderr
            assert sorted(m["payload"]["name"] for m in back.messages()) == [f"ds{i}" for i in range(5)]
            assert outbox(didfs.catalog) == 0
            assert len(good.messages()) == 5       # the first sink did not get them twice
        finally:
            back.stop()
    finally:
        good.stop()
