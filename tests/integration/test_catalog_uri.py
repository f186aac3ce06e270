# SPDX-License-Identifier: Apache-2.0
"""One catalog URI everywhere (issue 9, item 1): `--catalog` and
$DIDFS_CATALOG take a file path, `sqlite:PATH` or `postgresql://...`; the
CLI, the mount and the daemon open whichever they are given, and a
PostgreSQL server that cannot be reached is a clear error naming the URI
(without its password), never a file called "postgresql:...".
"""
import os
import subprocess
import time

import pytest

from catfixture import Didfs, didfs_bin
from pgfixture import pg_cluster  # noqa: F401  (fixture)

PG_URI = "postgresql://alice:s3cret@127.0.0.1:1/didfs"


def env_with(**kw):
    env = dict(os.environ)
    env.update(kw)
    return env


@pytest.mark.sqlite_only("about SQLite paths and sqlite: URIs")
def test_cli_takes_path_and_sqlite_uri(tmp_path):
    # created through a relative sqlite: URI ...
    rel = Didfs("sqlite:cat.db", cwd=str(tmp_path))
    out = rel("init")
    assert (tmp_path / "cat.db").is_file()
    assert not any(p.name.startswith("sqlite") for p in tmp_path.iterdir())
    rel("add-scope", "mock")
    # ... the same catalog through its path, an absolute sqlite: URI and
    # $DIDFS_CATALOG in either form
    by_path = Didfs(tmp_path / "cat.db")
    by_abs = Didfs(f"sqlite:{tmp_path / 'cat.db'}")
    assert [s["scope"] for s in by_path.json("list-scopes")] == ["mock"]
    by_abs("add-scope", "user.bob")
    scopes = {s["scope"] for s in by_path.json("list-scopes")}
    assert scopes == {"mock", "user.bob"}
    for value in (str(tmp_path / "cat.db"), "sqlite:" + str(tmp_path / "cat.db")):
        p = subprocess.run([didfs_bin(), "--json", "list-scopes"], capture_output=True, text=True,
                           env=env_with(DIDFS_CATALOG=value), cwd="/", timeout=60)
        assert p.returncode == 0, p.stderr
        assert "user.bob" in p.stdout
    # a path with a colon that is no scheme is still a path
    odd = Didfs("odd:name.db", cwd=str(tmp_path))
    odd("init")
    assert (tmp_path / "odd:name.db").is_file()
    # sqlite: with nothing after it names no file
    Didfs("sqlite:", cwd=str(tmp_path)).fails("whoami", cls="InputValidationError",
                                              contains="names no file")


@pytest.mark.parametrize("uri", [PG_URI, "postgres://127.0.0.1:1/didfs"])
def test_unreachable_postgresql_is_a_clear_error(tmp_path, uri):
    d = Didfs(uri, cwd=str(tmp_path))
    shown = uri.replace(":s3cret@", ":***@")
    for args in (("init",), ("whoami",), ("list-scopes",), ("daemon", "all", "--once")):
        err = d.fails(*args, cls="DatabaseException")
        assert f"cannot connect to the catalog '{shown}'" in err, err
        assert "s3cret" not in err, err
    # $DIDFS_CATALOG too
    p = subprocess.run([didfs_bin(), "whoami"], capture_output=True, text=True,
                       env=env_with(DIDFS_CATALOG=uri), cwd=str(tmp_path), timeout=60)
    assert p.returncode == 1 and "cannot connect to the catalog" in p.stderr, p.stderr
    # nothing was created that looks like a file named after the URI
    assert list(tmp_path.iterdir()) == []


def test_wrong_password_and_uninitialised_database_are_clear(tmp_path, pg_cluster):
    """A real server: a wrong password is CannotAuthenticate naming the URI
    (password hidden); a database without the schema says to run init;
    init then info report the store and its schema version."""
    bad = pg_cluster.bad_password_uri
    d = Didfs(bad, cwd=str(tmp_path))
    for args in (("whoami",), ("init",), ("daemon", "all", "--once")):
        err = d.fails(*args, cls="CannotAuthenticate")
        assert "didfs:***@127.0.0.1" in err and pg_cluster.password not in err, err
    uri = pg_cluster.create_db("fresh_uri")
    d = Didfs(uri, cwd=str(tmp_path))
    err = d.fails("list-scopes", cls="DatabaseException", contains="not an initialised catalog")
    assert "didfs init" in err and pg_cluster.password not in err
    d("init")
    info = d.json("info")
    assert info["store"] == "postgresql" and info["schema_version"] > 0
    assert info["accounts"] == 1 and pg_cluster.password not in info["catalog"]


def test_unknown_scheme_is_refused(tmp_path):
    err = Didfs("ftp://host/cat", cwd=str(tmp_path)).fails("init", cls="InputValidationError")
    assert "unknown catalog URI scheme 'ftp'" in err
    assert list(tmp_path.iterdir()) == []


def test_mount_of_unreachable_postgresql_fails_clearly(tmp_path):
    mp = tmp_path / "mnt"
    mp.mkdir()
    p = subprocess.run([didfs_bin(), "--catalog", PG_URI, "mount", str(mp), "--foreground",
                        "--cache-dir", str(tmp_path / "cache")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "cannot connect to the catalog" in p.stderr and "s3cret" not in p.stderr, p.stderr


@pytest.mark.sqlite_only("about a relative sqlite: URI")
def test_mount_by_relative_sqlite_uri(tmp_path, mount, monkeypatch):
    """The mount daemonizes (and leaves the working directory); its threads
    reopen the catalog where the catalog says it is."""
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    monkeypatch.chdir(tmp_path)
    d = Didfs("sqlite:cat.db")
    d("init")
    d("add-scope", "mock")
    d("add-dataset", "mock:ds1")
    m = mount(d, background=True)
    assert sorted(os.listdir(m.path / "mock")) == ["ds1"]
    # a change made through the plain path shows through the mount
    Didfs(tmp_path / "cat.db")("add-dataset", "mock:ds2")
    deadline = time.time() + 30
    while time.time() < deadline and "ds2" not in os.listdir(m.path / "mock"):
        time.sleep(0.2)
    assert sorted(os.listdir(m.path / "mock")) == ["ds1", "ds2"]


@pytest.mark.sqlite_only("about a relative sqlite: URI")
def test_daemon_replicates_through_sqlite_uri(tmp_path):
    """`didfs daemon` with a relative sqlite: URI: its threads open the
    catalog by its location and a rule between two file:// RSEs is done."""
    d = Didfs("sqlite:cat.db", cwd=str(tmp_path))
    d("init")
    d("add-scope", "mock")
    for rse in ("SRC", "DST"):
        (tmp_path / rse).mkdir()
        d("add-rse", rse)
        d("add-protocol", "--rse", rse, "--scheme", "file", "--prefix", tmp_path / rse)
    payload = tmp_path / "f1"
    payload.write_bytes(os.urandom(70000))
    d("upload", payload, "--rse", "SRC", "--scope", "mock")
    d("add-rule", "mock:f1", "1", "DST")
    deadline = time.time() + 120
    state = None
    while time.time() < deadline:
        p = d.run("daemon", "judge-evaluator", "conveyor", "--once", timeout=120)
        assert p.returncode == 0, p.stderr
        rules = Didfs(tmp_path / "cat.db").json("list-rules", "mock:f1")
        state = rules[0]["state"]
        if state == "OK":
            break
        time.sleep(0.5)
    assert state == "OK"
    with open(payload, "rb") as f:
        want = f.read()
    pfn = Didfs(tmp_path / "cat.db").json("lfn2pfn", "--rse", "DST", "--scheme", "file",
                                         "mock:f1")[0]["pfn"]
    with open(pfn[len("file://localhost"):], "rb") as f:
        assert f.read() == want
