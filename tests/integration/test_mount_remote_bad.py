# SPDX-License-Identifier: Apache-2.0
"""A remote mount (`didfs mount --server URL`, issue 11) in front of servers
that misbehave: garbage instead of JSON, a stream cut off mid-line, HTTP
500, a server that stalls mid-stream.  Through the mount, a listing fails
with an error (EIO, ENOTCONN) within the timeout and a margin, never hangs,
the mount stays alive and answers the next request, and the log names what
was wrong.  The servers are test_rest_catalog.py's BadServer (TLS on
loopback, a real userpass login first)."""
import errno
import os
import threading
import time

import pytest

from test_mount_remote import Remote
from test_rest_catalog import BadServer

TIMEOUT = 3  # the mount's --timeout
MARGIN = 25  # what a failed listing may take beyond it (not a timing test: a hang bound)


def listdir_bounded(path, bound):
    """os.listdir in a thread: (result or OSError, seconds); None if it is
    still blocked after bound seconds (a hang)."""
    out = {}

    def run():
        t0 = time.monotonic()
        try:
            out["r"] = os.listdir(path)
        except OSError as e:
            out["r"] = e
        out["t"] = time.monotonic() - t0
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(bound)
    return (out["r"], out["t"]) if "r" in out else None


@pytest.mark.parametrize("mode,why", [
    ("garbage", "not JSON"),
    ("garbage-stream", "line 2"),
    ("truncated", "cut off"),
    ("500", "HTTP 500"),
    ("stall", "stalled"),
])
def test_bad_server_through_the_mount(mode, why, tmp_path, serve_pki, mount, monkeypatch):
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    b = BadServer(serve_pki, mode)
    try:
        cfg = tmp_path / "rucio.cfg"
        cfg.write_text(f"[client]\nrucio_host = {b.url}\nauth_type = userpass\nusername = u\n"
                       f"password = p\nca_cert = {os.path.join(serve_pki, 'ca.pem')}\n"
                       "account = root\n")
        monkeypatch.setenv("RUCIO_CONFIG", str(cfg))
        monkeypatch.delenv("RUCIO_HOME", raising=False)
        monkeypatch.setenv("DIDFS_REST_CACHE", str(tmp_path / "rest-cache.db"))
        m = mount(Remote(b.url), timeout=TIMEOUT)
        # the scopes (/) for the modes that answer lists of scopes; a
        # dataset's content for the streamed ones
        target = m.path if mode in ("garbage", "garbage-stream", "500") else m.path / "s" / "ds"
        got = listdir_bounded(target, TIMEOUT + MARGIN)
        assert got is not None, f"listing through the mount hung ({mode})"
        r, took = got
        if mode == "garbage-stream":
            # the first line is a good scope: the listing may show it, or fail
            assert isinstance(r, OSError) or r == ["user.root"], r
        else:
            assert isinstance(r, OSError), f"{mode}: listed {r!r}"
            assert r.errno in (errno.EIO, errno.ENOTCONN, errno.ENOENT, errno.ETIMEDOUT), r
        # the mount is alive and answers the next request (the root's stat)
        assert m.mounted() and m.proc.poll() is None
        again = listdir_bounded(m.path, TIMEOUT + MARGIN)
        assert again is not None, "the mount stopped answering after a bad server"
        os.stat(m.path)
        if mode != "garbage-stream":
            # a stall is named as such, or (the stalled call past its timeout)
            # as the server's being unreachable
            log = m.log_text()
            assert why in log or (mode == "stall" and "unreachable" in log), log[-3000:]
        print(f"{mode}: {type(r).__name__} {getattr(r, 'errno', '')} after {took:.1f} s")
    finally:
        b.stop()
