# pytest plugin: temporary catalogs and a way to run the `didfs` command.
#
#   def test_x(didfs):          # a fresh, bootstrapped catalog in tmp_path
#       didfs("add-scope", "user.alice")
#       out = didfs.json("list-scopes")
#       err = didfs.fails("add-scope", "bad!", cls="InvalidObject")
#
# The build directory is $DIDFS_BUILD (default: build/ at the repo root).
#
# The store: $DIDFS_TEST_STORE=sqlite (default) or postgresql.  With
# postgresql, a catalog the tests name by a path ending in ".db" is a
# database of its own in a throwaway PostgreSQL 15 cluster (one per test
# process, tests/env/pgfixture.py, stopped at exit whatever happens), and
# Didfs.catalog is its URI: everything a test hands `--catalog` (the CLI,
# daemons, mounts, servers) runs on PostgreSQL.  Tests that are about the
# file itself (permissions, damage, SQLite's own behaviour) carry
# @pytest.mark.sqlite_only("why") and are skipped there.  Didfs.sql() and
# Didfs.dump() read the tables on either store.
import atexit
import hashlib
import json
import os
import subprocess

import pytest

STORE = os.environ.get("DIDFS_TEST_STORE", "sqlite")
if STORE not in ("sqlite", "postgresql"):
    raise RuntimeError(f"DIDFS_TEST_STORE={STORE!r}: sqlite or postgresql")
_pg = None
_pg_dbs = {}


def pg_cluster_of_process():
    """The test process's PostgreSQL cluster (started on first use)."""
    global _pg
    if _pg is None:
        import pgfixture
        why = pgfixture.available()
        if why:
            pytest.fail(f"DIDFS_TEST_STORE=postgresql but {why}")
        _pg = pgfixture.PgCluster(max_connections=300).start()
        atexit.register(_pg.stop)
    return _pg


def store_uri(catalog):
    """The catalog URI the tests use for a catalog named by path."""
    c = str(catalog)
    if STORE != "postgresql" or "://" in c or c.startswith("sqlite:") or not c.endswith(".db"):
        return c
    key = os.path.abspath(c)
    if key not in _pg_dbs:
        pg = pg_cluster_of_process()
        name = "c_" + hashlib.sha1(key.encode()).hexdigest()[:24]
        pg.psql(f"CREATE DATABASE {name} OWNER didfs")
        _pg_dbs[key] = pg.uri_for(name)
    return _pg_dbs[key]


def is_pg(catalog):
    return str(catalog).startswith("postgresql://")


class _PgCursor:
    def __init__(self, cur):
        self.cur = cur

    @staticmethod
    def _row(r):
        return tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)

    def fetchone(self):
        r = self.cur.fetchone() if self.cur.description else None
        return self._row(r) if r is not None else None

    def fetchall(self):
        return [self._row(r) for r in self.cur.fetchall()] if self.cur.description else []

    def __iter__(self):
        return iter(self.fetchall())


class _PgConnection:
    """The part of sqlite3's connection the tests use, over psycopg2
    (autocommit; `?` placeholders)."""

    def __init__(self, uri):
        import psycopg2
        self.con = psycopg2.connect(uri)
        self.con.autocommit = True

    def execute(self, q, args=()):
        cur = self.con.cursor()
        cur.execute(q.replace("%", "%%").replace("?", "%s"), tuple(args))
        return _PgCursor(cur)

    def commit(self):
        pass

    def close(self):
        self.con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def connect_catalog(catalog, **kw):
    """A connection to a catalog's tables on either store (sqlite3's, or
    the same calls over psycopg2 for a postgresql:// URI)."""
    if is_pg(catalog):
        return _PgConnection(str(catalog))
    import sqlite3
    c = str(catalog)
    return sqlite3.connect(c[len("sqlite:"):] if c.startswith("sqlite:") else c, **kw)


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only(reason): the test is about the SQLite"
                            " file itself; skipped when DIDFS_TEST_STORE=postgresql")
    config.addinivalue_line("markers", "postgresql_pass: the test starts its own PostgreSQL"
                            " and runs in the DIDFS_TEST_STORE=postgresql pass only (once)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        m = item.get_closest_marker("sqlite_only")
        if m and STORE == "postgresql":
            why = m.args[0] if m.args else "about the SQLite file"
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {why}"))
        if item.get_closest_marker("postgresql_pass") and STORE != "postgresql":
            item.add_marker(pytest.mark.skip(
                reason="runs in the PostgreSQL pass (DIDFS_TEST_STORE=postgresql)"))

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def build_dir():
    return os.environ.get("DIDFS_BUILD", os.path.join(ROOT, "build"))


def didfs_bin():
    path = os.path.join(build_dir(), "tools", "didfs")
    if not os.path.exists(path):
        pytest.fail(f"didfs binary not found at {path}: build first (DIDFS_BUILD)")
    return path


class Didfs:
    """Runs didfs against one catalog file as one account."""

    def __init__(self, catalog, account=None, cwd=None):
        self.catalog = store_uri(catalog)
        self.is_pg = is_pg(self.catalog)
        self.account = account
        self.cwd = cwd
        self.bin = didfs_bin()

    def run(self, *args, input=None, check=False, timeout=600):
        cmd = [self.bin, "--catalog", self.catalog]
        if self.account:
            cmd += ["--account", self.account]
        cmd += [str(a) for a in args]
        return subprocess.run(cmd, input=input, capture_output=True, text=True,
                              timeout=timeout, cwd=self.cwd)

    def __call__(self, *args, **kw):
        p = self.run(*args, **kw)
        if p.returncode != 0:
            raise AssertionError(f"didfs {' '.join(map(str, args))} exited {p.returncode}\n"
                                 f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p.stdout

    def json(self, *args, **kw):
        return json.loads(self._json_run(list(args), **kw).stdout)

    def _json_run(self, args, **kw):
        cmd = [self.bin, "--catalog", self.catalog, "--json"]
        if self.account:
            cmd += ["--account", self.account]
        cmd += [str(a) for a in args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
        if p.returncode != 0:
            raise AssertionError(f"didfs --json {' '.join(map(str, args))} exited "
                                 f"{p.returncode}\nstderr: {p.stderr}")
        return p

    def fails(self, *args, cls=None, contains=None, status=1, **kw):
        """Run a command that must fail; return stderr.  cls: Rucio exception name."""
        p = self.run(*args, **kw)
        assert p.returncode == status, (f"expected exit {status}, got {p.returncode}\n"
                                        f"stdout: {p.stdout}\nstderr: {p.stderr}")
        if cls:
            assert f"didfs: {cls}:" in p.stderr, p.stderr
        if contains:
            assert contains in p.stderr, p.stderr
        return p.stderr

    def as_account(self, account):
        return Didfs(self.catalog, account, self.cwd)

    def connect(self):
        """A DB-API connection to the catalog's store (sqlite3 or psycopg2)."""
        if self.is_pg:
            import psycopg2
            con = psycopg2.connect(self.catalog)
            con.autocommit = True
            return con
        import sqlite3
        c = self.catalog
        return sqlite3.connect(c[len("sqlite:"):] if c.startswith("sqlite:") else c)

    def sql(self, q, *args):
        """Run one statement (`?` placeholders) on either store; the rows."""
        con = self.connect()
        try:
            if self.is_pg:
                cur = con.cursor()
                cur.execute(q.replace("%", "%%").replace("?", "%s"), args)
                rows = cur.fetchall() if cur.description else []
            else:
                cur = con.execute(q, args)
                rows = cur.fetchall()
                con.commit()
            return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                    for r in rows]
        finally:
            con.close()

    def dump(self):
        """Every row of every table (usage-delta queues by their net sums):
        to prove a failed command changed nothing."""
        con = self.connect()
        try:
            # sqlite_sequence is SQLite's id allocator, not catalog data: DID ids
            # are never reused, so an undone upload may leave it one further on
            # (PostgreSQL's sequences are not tables)
            if self.is_pg:
                tables = [r[0] for r in self.sql(
                    "SELECT table_name FROM information_schema.tables WHERE"
                    " table_schema = current_schema() AND table_type = 'BASE TABLE'"
                    " ORDER BY table_name")]
            else:
                tables = [r[0] for r in con.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'"
                    " AND name != 'sqlite_sequence' ORDER BY name")]
            out = {}
            for t in tables:
                if t == "updated_rse_counters":
                    # a queue of usage deltas: what counts is their net sum
                    q = ("SELECT rse_num, sum(files), sum(bytes) FROM updated_rse_counters"
                         " GROUP BY rse_num HAVING sum(files)!=0 OR sum(bytes)!=0")
                elif t == "updated_account_counters":
                    q = ("SELECT account, rse_num, sum(files), sum(bytes) FROM"
                         " updated_account_counters GROUP BY account, rse_num"
                         " HAVING sum(files)!=0 OR sum(bytes)!=0")
                else:
                    q = f"SELECT * FROM {t}"
                out[t] = sorted(map(repr, self.sql(q)))
            return out
        finally:
            con.close()


@pytest.fixture
def didfs(tmp_path):
    d = Didfs(tmp_path / "catalog.db", cwd=str(tmp_path))
    d("init")
    return d


@pytest.fixture
def lake(tmp_path, request):
    """A fresh catalog with the session's XRootD servers (the `rses`
    fixture) registered as RSEs XRD1..XRD3 (tier 1, 1, 2), the scope
    user.root, and the CA in $X509_CERT_DIR for https.  Returns the Didfs
    runner with .rses set."""
    rses = request.getfixturevalue("rses")
    d = Didfs(tmp_path / "catalog.db", cwd=str(tmp_path))
    rses.register(d.catalog, d.bin)
    d("add-scope", "user.root")
    os.environ["X509_CERT_DIR"] = rses.ca_dir
    d.rses = rses
    return d
