# SPDX-License-Identifier: Apache-2.0
"""The conveyor streams small files and third-party copies big ones
(conveyor.stream_below), with TPCs in their own lane of workers
(conveyor.tpc_parallel, conveyor.tpc_per_rse), against real XRootD servers.

Which path a file took is read twice: from the daemon's "transfer done ...
(streamed|tpc)" line and from the source server's log, where every XRootD
third-party copy shows as a login of the destination's copy program (user
"xrootd"), which a streamed copy never makes.  Every request is done once
and every copy is verified (bytes on disk, the server's adler32, one
AVAILABLE catalog row).  The Engine helper is test_engine.py's.
"""
import os
import re
import subprocess

from test_engine import Engine, files_of

import pytest

SRC, DST = "XRD3", "XRD2"


@pytest.fixture
def eng(didfs, rses, tmp_path):
    e = Engine(didfs, rses, tmp_path)
    try:
        yield e
    finally:
        e.stop_all()


def log_size(server):
    try:
        return os.path.getsize(server.log)
    except OSError:
        return 0


def tpc_logins_since(server, offset):
    """Logins of XRootD's TPC copy program (user xrootd) in server's log
    after offset: one per third-party copy that read from it."""
    with open(server.log, errors="replace") as f:
        f.seek(offset)
        text = f.read()
    return set(re.findall(r"XrootdXeq: (xrootd\.\d+):\d+@\S+ pvt IP\S* login", text))


def modes(dm):
    """{name: mode} of the daemon's 'transfer done' lines; a name done twice fails."""
    out = {}
    for m in re.finditer(r"-> %s mock:(\S+) .* \(([a-z ]+)\) transfer done, request" % DST,
                         dm.log_text()):
        assert m.group(1) not in out, f"{m.group(1)} transferred twice"
        out[m.group(1)] = m.group(2)
    return out


def replicate(eng, files, extra):
    eng.d("add-dataset", "mock:ds")
    eng.register(SRC, files, dataset="mock:ds")
    before = log_size(eng.rses[SRC])
    rule = eng.d("add-rule", "mock:ds", "1", DST).strip()
    dm = eng.start("all", extra=extra)
    eng.wait_rule(rule)
    assert dm.stop() == 0
    eng.check_copies(files, [DST])
    reqs = eng.d.json("list-transfers", "--rule", rule)
    assert len(reqs) == len(files) and all(r["state"] == "DONE" for r in reqs), reqs
    # every request done exactly once
    done = dm.done_requests()
    assert sorted(done) == sorted(set(done)) and len(done) == len(files), done
    return dm, tpc_logins_since(eng.rses[SRC], before)


def test_small_files_streamed_big_files_third_party_copied(eng):
    """stream_below 1 MiB: 12 files of 256 KiB are streamed, 3 of 2 MiB go by
    TPC (with 2 TPC workers, 1 per destination: the lane limit holds them to
    one at a time and all still finish)."""
    small = files_of("small", 12, lambda i: 256 << 10)
    big = files_of("big", 3, lambda i: (2 << 20) + i)
    dm, logins = replicate(eng, {**small, **big},
                           {"conveyor.stream_below": "1M", "conveyor.tpc_parallel": 2,
                            "conveyor.tpc_per_rse": 1, "conveyor.parallel": 4})
    got = modes(dm)
    for did in small:
        assert got[did.split(":", 1)[1]] == "streamed", got
    for did in big:
        assert got[did.split(":", 1)[1]] == "tpc", got
    assert len(logins) == len(big), (logins, dm.log_text()[-3000:])


def test_default_streams_small_files(eng):
    """The default configuration streams a dataset of 256 KiB files: no
    third-party copy reaches the source server."""
    files = files_of("d", 10, lambda i: 256 << 10)
    dm, logins = replicate(eng, files, {})
    assert set(modes(dm).values()) == {"streamed"}
    assert not logins, logins


def test_stream_below_zero_is_tpc_only(eng):
    """conveyor.stream_below = 0: every file by TPC, even tiny ones."""
    files = files_of("z", 4, lambda i: 1000 + i)
    dm, logins = replicate(eng, files, {"conveyor.stream_below": 0})
    assert set(modes(dm).values()) == {"tpc"}
    assert len(logins) == len(files), logins


@pytest.mark.parametrize("line,msg", [
    ("conveyor.stream_below = -1", "conveyor.stream_below takes a size from 0 to 1T"),
    ("conveyor.stream_below = 2T", "conveyor.stream_below takes a size from 0 to 1T"),
    ("conveyor.tpc_parallel = 0", "conveyor.tpc_parallel takes an integer from 1 to 256"),
    ("conveyor.tpc_per_rse = 1000", "conveyor.tpc_per_rse takes an integer from 1 to 256"),
])
def test_bad_settings_refused(didfs, tmp_path, line, msg):
    conf = tmp_path / "bad.conf"
    conf.write_text(line + "\n")
    p = subprocess.run([didfs.bin, "--catalog", didfs.catalog, "daemon", "conveyor", "--once",
                        "--config", str(conf)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "InputValidationError" in p.stderr and msg in p.stderr, p.stderr
