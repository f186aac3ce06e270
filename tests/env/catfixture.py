# pytest plugin: temporary catalogs and a way to run the `didfs` command.
#
#   def test_x(didfs):          # a fresh, bootstrapped catalog in tmp_path
#       didfs("add-scope", "user.alice")
#       out = didfs.json("list-scopes")
#       err = didfs.fails("add-scope", "bad!", cls="InvalidObject")
#
# The build directory is $DIDFS_BUILD (default: build/ at the repo root).
import json
import os
import subprocess

import pytest

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
        self.catalog = str(catalog)
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

    def dump(self):
        """Every row of every table (usage-delta queues by their net sums):
        to prove a failed command changed nothing."""
        import sqlite3
        con = sqlite3.connect(self.catalog)
        try:
            # sqlite_sequence is SQLite's id allocator, not catalog data: DID ids
            # are never reused, so an undone upload may leave it one further on
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
                out[t] = sorted(map(repr, con.execute(q)))
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
