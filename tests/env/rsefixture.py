# SPDX-License-Identifier: Apache-2.0
"""pytest plugin: real XRootD storage elements on loopback (see xrdrse.py).

Fixtures:

    rses         session: three servers XRD1..XRD3 started in a fresh directory
                 under /tmp; always stopped at the end (try/finally and atexit).
                 rses.servers[i] has .name, .port (root_port == https_port),
                 .root_url(path) -> root://127.0.0.1:P//path,
                 .https_url(path) -> https://127.0.0.1:P/path, .davs_url(path),
                 .data_dir, .local_path(path), .stop(), .start() (same port, same
                 data: an outage and a restart), .kill() (SIGKILL), .alive().
                 rses.ca_dir / rses.ca_file (test CA), rses.state_file (rses.json),
                 rses.workdir, rses["XRD2"].
                 A server a test left stopped is started again after that test.
    make_file    function: make_file(nbytes, name=None) -> pathlib.Path of a
                 new file of random bytes in the test's tmp_path.

Set DIDFS_KEEP_RSES=1 to keep the work directory (logs, data) after the run.
Needs root (xrootd -R xrootd) and Debian's xrootd-server; without root the
tests that use `rses` are skipped.
"""
import atexit
import os
import shutil
import tempfile

import pytest

import xrdrse

_active = []


def _cleanup():
    while _active:
        r = _active.pop()
        try:
            r.stop()
        except Exception as e:  # keep stopping the others
            xrdrse.log(f"stopping {r.workdir}: {e}")
        if not os.environ.get("DIDFS_KEEP_RSES"):
            shutil.rmtree(r.workdir, ignore_errors=True)


atexit.register(_cleanup)


@pytest.fixture(scope="session")
def rses():
    if os.geteuid() != 0:
        pytest.skip("the XRootD fixture needs root (xrootd -R xrootd)")
    if not shutil.which("xrootd") and not os.path.exists("/usr/bin/xrootd"):
        pytest.fail("xrootd not found: install xrootd-server (scripts/install-deps.sh)")
    workdir = tempfile.mkdtemp(prefix="didfs-rses-", dir="/tmp")
    os.chmod(workdir, 0o755)
    r = xrdrse.Rses.create(workdir, 3)
    _active.append(r)
    try:
        r.start()
        yield r
    finally:
        if r in _active:
            _active.remove(r)
        try:
            r.stop()
        finally:
            if os.environ.get("DIDFS_KEEP_RSES"):
                xrdrse.log(f"kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(autouse=True)
def _rses_restart(request):
    """After a test that used `rses`, bring back any server it left down."""
    yield
    if "rses" not in request.fixturenames or os.geteuid() != 0:
        return
    try:
        r = request.getfixturevalue("rses")
    except (pytest.skip.Exception, pytest.fail.Exception):
        return
    for s in r.servers:
        if not s.alive():
            s.start()
    r.save()


@pytest.fixture
def make_file(tmp_path):
    counter = [0]

    def make(nbytes, name=None):
        counter[0] += 1
        p = tmp_path / (name or f"random-{counter[0]}-{nbytes}.bin")
        with open(p, "wb") as f:
            left = nbytes
            while left > 0:
                n = min(left, 1 << 20)
                f.write(os.urandom(n))
                left -= n
        return p

    return make
