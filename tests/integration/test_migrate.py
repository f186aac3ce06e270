# SPDX-License-Identifier: Apache-2.0
# `didfs migrate FROM TO` and `didfs info` (issue 9): a SQLite catalog (a
# sqlite: URI, so it stays a file on either test store) moved
# into a throwaway PostgreSQL 15 cluster, and back into a new file, lists the
# same through the catalog's own commands (not SQL); a migration into a
# catalog that is not empty is refused; one that fails half-way leaves the
# target empty.
import os
import subprocess

import pytest

from catfixture import Didfs
from pgfixture import pg_cluster  # noqa: F401  (fixture)

# PostgreSQL-specific: once, in the PostgreSQL pass of scripts/test.sh
pytestmark = pytest.mark.postgresql_pass


def build(d):
    """A small catalog with a bit of everything the API can list."""
    d("add-account", "alice", "--type", "USER", "--email", "alice@example.org")
    d("set-account-attribute", "alice", "--key", "country", "--value", "nl")
    d("add-scope", "user.alice", "--account", "alice")
    d("add-scope", "km3net", "--account", "root")
    for rse, tier in (("XRD1", "1"), ("XRD2", "1"), ("XRD3", "2")):
        d("add-rse", rse)
        d("set-rse-attribute", rse, "tier", tier)
    d("add-protocol", "XRD1", "--scheme", "root", "--hostname", "xrd1.example.org",
      "--port", "1094", "--prefix", "/data")
    d("add-distance", "XRD1", "XRD2", "1")
    d("set-account-limit", "alice", "XRD2", "10G")
    d("add-container", "km3net:runs")
    d("add-dataset", "km3net:run42")
    d("attach", "km3net:runs", "km3net:run42")
    lines = "".join(f"km3net:run42/file_{i:04d}.h5 {1000 + i} {i:08x}\n" for i in range(300))
    lst = os.path.join(d.cwd, "files.txt")
    with open(lst, "w") as f:
        f.write(lines)
    d("add-replicas", "--rse", "XRD1", "--dataset", "km3net:run42", "--list", lst)
    d("set-metadata", "km3net:run42", "--key", "run_type", "--value", "physics")
    d("close", "km3net:run42")
    d("add-rule", "km3net:run42", "2", "tier=1", "--comment", "two on tier 1")


def listing(d):
    """What the catalog lists, command by command (JSON, sorted)."""
    def j(*args):
        rows = d.json(*args)
        return sorted(map(repr, rows)) if isinstance(rows, list) else repr(rows)

    rules = d.json("list-rules")
    out = {
        "accounts": j("list-accounts"),
        "account_attrs": j("list-account-attributes", "alice"),
        "scopes": j("list-scopes"),
        "rses": j("list-rses"),
        "rse_attrs": [j("list-rse-attributes", r) for r in ("XRD1", "XRD2", "XRD3")],
        "protocols": j("list-protocols", "XRD1"),
        "limits": j("get-account-limits", "alice"),
        "dids": j("list-dids", "km3net:*"),
        "content": j("list-content", "km3net:runs"),
        "files": j("list-files", "km3net:run42"),
        "replicas": j("list-file-replicas", "km3net:run42", "--all-states"),
        "meta": j("get-metadata", "km3net:run42"),
        "rules": sorted(map(repr, rules)),
        "locks": [j("rule-info", r["id"], "--locks") for r in rules],
        "transfers": j("list-transfers"),
        "usage": j("list-rse-usage"),
    }
    return out


def test_sqlite_to_postgresql_and_back_lists_the_same(tmp_path, pg_cluster):
    pg_cluster.psql("CREATE DATABASE mig1 OWNER didfs")
    pg_uri = pg_cluster.uri.rsplit("/", 1)[0] + "/mig1"
    a = Didfs(f"sqlite:{tmp_path}/a.db", cwd=str(tmp_path))
    a("init")
    build(a)
    before = listing(a)
    assert len(before["files"]) == 300 and len(before["rules"]) == 1

    p = subprocess.run([a.bin, "migrate", a.catalog, pg_uri], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert "migrated" in p.stdout and pg_cluster.password not in p.stdout + p.stderr
    assert "dids: 302 rows" in p.stderr  # two collections and 300 files

    pg = Didfs(pg_uri, cwd=str(tmp_path))
    i = pg.json("info")
    assert i["store"] == "postgresql" and i["files"] == 300 and i["rules"] == 1
    assert i["schema_version"] == a.json("info")["schema_version"]
    assert pg_cluster.password not in i["catalog"]
    assert listing(pg) == before

    # the copy is a working catalog: ids and sequences moved past the copied
    pg("add-dataset", "km3net:run43")
    pg("add-rule", "km3net:run43", "1", "XRD3")
    assert len(pg.json("list-rules")) == 2

    b = Didfs(f"sqlite:{tmp_path}/b.db", cwd=str(tmp_path))
    p = subprocess.run([a.bin, "migrate", pg_uri, b.catalog], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert listing(b) == listing(pg)
    assert b.json("info")["store"] == "sqlite"
    b("check")  # the copy keeps the catalog's invariants


def test_into_a_catalog_that_is_not_empty_is_refused(tmp_path):
    a = Didfs(f"sqlite:{tmp_path}/a.db", cwd=str(tmp_path))
    a("init")
    a("add-scope", "km3net", "--account", "root")
    b = Didfs(f"sqlite:{tmp_path}/b.db", cwd=str(tmp_path))
    b("init")
    b("add-scope", "other", "--account", "root")
    before = b.dump()
    err = a.fails("migrate", a.catalog, b.catalog, cls="DatabaseException",
                  contains="is not empty")
    assert "b.db" in err
    assert b.dump() == before


def test_failure_half_way_leaves_the_target_empty(tmp_path, pg_cluster):
    pg_cluster.psql("CREATE DATABASE mig2 OWNER didfs")
    pg_uri = pg_cluster.uri.rsplit("/", 1)[0] + "/mig2"
    a = Didfs(f"sqlite:{tmp_path}/a.db", cwd=str(tmp_path))
    a("init")
    build(a)
    # the target's schema, emptied, with a table that refuses rows: the
    # copy fails after accounts, scopes, DIDs... went in
    pg = Didfs(pg_uri, cwd=str(tmp_path))
    pg("init")
    pg_cluster.psql(
        "DO $$ DECLARE t text; BEGIN FOR t IN SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = 'public' AND table_name <> 'schema_version' LOOP"
        " EXECUTE 'TRUNCATE ' || t || ' CASCADE'; END LOOP; END $$;"
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $f$ BEGIN RAISE EXCEPTION 'no locks today'; END $f$;"
        "CREATE TRIGGER refuse BEFORE INSERT ON locks FOR EACH ROW EXECUTE FUNCTION refuse()",
        db="mig2")
    err = a.fails("migrate", a.catalog, pg_uri, cls="DatabaseException")
    assert "locks" in err and "no locks today" in err, err
    assert pg_cluster.password not in err
    counts = pg_cluster.psql("SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM dids)"
                             " + (SELECT count(*) FROM rses) + (SELECT count(*) FROM replicas)",
                             db="mig2")
    assert counts.strip() == "0"
    # the source is untouched
    assert len(a.json("list-files", "km3net:run42")) == 300
