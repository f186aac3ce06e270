# SPDX-License-Identifier: Apache-2.0
"""A throwaway RabbitMQ broker with its STOMP plugin, on free loopback ports,
for the hermes tests (Debian's rabbitmq-server), and a small STOMP 1.2
subscriber over a raw socket.

    b = RabbitMQ(workdir); b.start()      # node, STOMP, distribution and epmd ports free
    b.stop(); b.start()                   # a broker restart: same data (durable queues,
                                          # persistent messages survive)
    b.close()                             # stop it and its epmd, whatever happens
    sub = Subscriber(b.stomp_port, "/queue/rucio.events"); sub.start() ... sub.stop()
    sub.got   # [(headers dict, body str)], reconnecting across broker restarts

Its own RABBITMQ_* directories (mnesia, logs, config, enabled plugins) live in
workdir; ERL_EPMD_PORT is private, so the epmd it starts is its own and is
killed by close().  Needs root or the rabbitmq user (the Erlang cookie goes
to $HOME, set to workdir).
"""
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available():
    return os.path.exists(SERVER) and shutil.which("epmd") is not None


class RabbitMQ:
    def __init__(self, workdir):
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.node_port, self.stomp_port = free_port(), free_port()
        self.dist_port, self.epmd_port = free_port(), free_port()
        self.proc = None
        self.log = os.path.join(self.dir, "rabbitmq.out")
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write(f"listeners.tcp.default = 127.0.0.1:{self.node_port}\n"
                    f"stomp.listeners.tcp.1 = 127.0.0.1:{self.stomp_port}\n"
                    "loopback_users = none\n"
                    "stomp.default_user = guest\nstomp.default_pass = guest\n")
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[rabbitmq_stomp].\n")

    def env(self):
        e = dict(os.environ)
        d = self.dir
        e.update({
            "RABBITMQ_NODENAME": f"didfs{self.node_port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.node_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CONFIG_FILE": os.path.join(d, "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(d, "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": os.path.join(d, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(d, "log"),
            "RABBITMQ_PID_FILE": os.path.join(d, "rabbitmq.pid"),
            "RABBITMQ_CONF_ENV_FILE": os.path.join(d, "no-env-file"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(d, "advanced.config"),
            "HOME": d,
        })
        e.pop("RABBITMQ_ALLOW_INPUT", None)
        return e

    def start(self, timeout=120):
        self.proc = subprocess.Popen([SERVER], env=self.env(), stdin=subprocess.DEVNULL,
                                     stdout=open(self.log, "a"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("rabbitmq-server exited: " + open(self.log).read()[-3000:])
            try:
                with socket.create_connection(("127.0.0.1", self.stomp_port), timeout=2) as s:
                    s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\0")
                    s.settimeout(5)
                    if s.recv(4096).startswith(b"CONNECTED"):
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError("RabbitMQ's STOMP port did not answer: " + open(self.log).read()[-3000:])

    def stop(self, timeout=60):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.proc = None

    def close(self):
        try:
            self.stop()
        finally:
            subprocess.run(["epmd", "-kill"], env=self.env(), capture_output=True, timeout=30)


def _frames(buf):
    """Split complete frames off buf: ([(command, headers, body)], rest)."""
    out = []
    while True:
        buf = buf.lstrip(b"\r\n")
        end = buf.find(b"\0")
        if end < 0:
            return out, buf
        frame, buf = buf[:end], buf[end + 1:]
        head, _, body = frame.partition(b"\n\n")
        lines = head.decode().split("\n")
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            v = v.replace("\\c", ":").replace("\\n", "\n").replace("\\r", "\r").replace("\\\\", "\\")
            hdrs.setdefault(k, v)
        out.append((lines[0], hdrs, body.decode()))


class Subscriber(threading.Thread):
    """SUBSCRIBE with client-individual acks; each MESSAGE is recorded, then
    acknowledged; reconnects while the broker is away."""

    def __init__(self, port, destination):
        super().__init__(daemon=True)
        self.port, self.dest = port, destination
        self.got = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.reconnects = 0

    def run(self):
        while not self.stopping.is_set():
            try:
                self._session()
            except OSError:
                pass
            self.connected.clear()
            if not self.stopping.is_set():
                self.reconnects += 1
                time.sleep(0.5)

    def _session(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n"
                      b"heart-beat:0,0\n\n\0")
            buf = b""
            s.settimeout(1)
            subscribed = False
            while not self.stopping.is_set():
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    return
                buf += data
                frames, buf = _frames(buf)
                for cmd, hdrs, body in frames:
                    if cmd == "CONNECTED" and not subscribed:
                        s.sendall(f"SUBSCRIBE\nid:0\ndestination:{self.dest}\nack:client-individual\n"
                                  f"prefetch-count:500\n\n\0".encode())
                        subscribed = True
                        self.connected.set()
                    elif cmd == "MESSAGE":
                        with self.lock:
                            self.got.append((hdrs, body))
                        s.sendall(f"ACK\nid:{hdrs.get('ack', '')}\n\n\0".encode())
                    elif cmd == "ERROR":
                        return

    def stop(self):
        self.stopping.set()
        self.join(timeout=10)

    def messages(self):
        with self.lock:
            return list(self.got)
