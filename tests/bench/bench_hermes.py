#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench_hermes - events/s the hermes daemon delivers to a real RabbitMQ
(Debian's rabbitmq-server, STOMP plugin; tests/env/rabbitmq.py starts a
throwaway node on free loopback ports), against a limit measured in the same
run: a minimal Python publisher sending the same bodies over one raw STOMP
connection with a receipt per frame, in batches of the same size (no
catalog, no bookkeeping).

BENCH_EVENTS (20000) rows are put in a fresh catalog's outbox (the messages
table, as the catalog's changes write it), `didfs daemon hermes` runs until
the outbox is empty (every message acknowledged by the broker and deleted),
and the rate is events / elapsed.  A subscriber drains the queue afterwards
and checks every id arrived.  Must run as root.  BENCH_CHUNK (500) is
hermes.chunk_size and the peer's batch.
"""
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "env"))
import rabbitmq  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("DIDFS_BUILD", os.path.join(ROOT, "build"))
DIDFS = os.path.join(BUILD, "tools", "didfs")
N = int(os.environ.get("BENCH_EVENTS", "20000"))
CHUNK = int(os.environ.get("BENCH_CHUNK", "500"))


def payload(i):
    return json.dumps({"request-id": "%032x" % i, "scope": "bench", "name": "f%06d" % i,
                       "dst-rse": "XRD1", "src-rse": "XRD3", "file-size": 1000 + i,
                       "activity": "default", "tool-id": "rucio-conveyor"})


def peer_rate(port, dest):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\0")
    buf = b""
    while b"\0" not in buf:
        buf += s.recv(65536)
    t0 = time.monotonic()
    seq = 0
    for base in range(0, N, CHUNK):
        out = []
        for i in range(base, min(N, base + CHUNK)):
            seq += 1
            body = ('{"event_type": "transfer-done", "payload": %s, "created_at": "x"}' % payload(i)).encode()
            out.append(b"SEND\ndestination:%s\nreceipt:r%d\ncontent-length:%d\npersistent:true\n\n%s\0"
                       % (dest.encode(), seq, len(body), body))
        s.sendall(b"".join(out))
        want, buf = len(out), b""
        while want:
            buf += s.recv(65536)
            while b"\0" in buf:
                frame, _, buf = buf.partition(b"\0")
                if frame.lstrip(b"\r\n").startswith(b"RECEIPT"):
                    want -= 1
    dt = time.monotonic() - t0
    s.close()
    return N / dt


def drain(port, dest, expect):
    sub = rabbitmq.Subscriber(port, dest)
    sub.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ids = {h.get("didfs-message-id") for h, _ in sub.messages()}
        ids.discard(None)
        if len(ids) >= expect:
            break
        time.sleep(0.5)
    sub.stop()
    return len(ids)


def main():
    if os.geteuid() != 0:
        sys.exit("bench_hermes: run as root (the broker runs with its own directories)")
    work = tempfile.mkdtemp(prefix="bench-hermes-")
    b = rabbitmq.RabbitMQ(os.path.join(work, "rabbitmq"))
    d = None
    try:
        b.start()
        peer = peer_rate(b.stomp_port, "/queue/bench.peer")
        cat = os.path.join(work, "c.db")
        subprocess.run([DIDFS, "--catalog", cat, "init", "--root-password", "x"], check=True,
                       capture_output=True)
        con = sqlite3.connect(cat)
        con.executemany("INSERT INTO messages(event_type, payload, created_at) VALUES (?,?,?)",
                        (("transfer-done", payload(i), int(time.time())) for i in range(N)))
        con.commit()
        con.close()
        cfg = os.path.join(work, "h.cfg")
        with open(cfg, "w") as f:
            f.write(f"hermes.stomp_host = 127.0.0.1\nhermes.stomp_port = {b.stomp_port}\n"
                    f"hermes.stomp_user = guest\nhermes.stomp_password = guest\n"
                    f"hermes.stomp_destination = /queue/bench.hermes\nhermes.chunk_size = {CHUNK}\n"
                    f"log_level = warning\n")
        t0 = time.monotonic()
        d = subprocess.Popen([DIDFS, "--catalog", cat, "daemon", "hermes", "--config", cfg],
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "d.log"), "w"))
        while True:
            con = sqlite3.connect(cat)
            left = con.execute("SELECT count(*) FROM messages").fetchone()[0]
            con.close()
            if left == 0:
                break
            if d.poll() is not None:
                sys.exit("hermes exited: " + open(os.path.join(work, "d.log")).read()[-2000:])
            time.sleep(0.05)
        dt = time.monotonic() - t0
        d.send_signal(signal.SIGTERM)
        d.wait(timeout=60)
        d = None
        rate = N / dt
        got = drain(b.stomp_port, "/queue/bench.hermes", N)
        print(f"bench_hermes: {N} events, chunk {CHUNK}")
        print(f"  hermes -> RabbitMQ (catalog outbox, receipts, bookkeeping): {rate:9.0f} events/s"
              f" ({dt:.2f} s, daemon start included)")
        print(f"  raw STOMP publisher, same bodies and receipts (limit):     {peer:9.0f} events/s")
        print(f"  ratio hermes/limit: {rate / peer:.2f}; distinct ids at the broker: {got}/{N}")
    finally:
        if d and d.poll() is None:
            d.kill()
        b.close()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
