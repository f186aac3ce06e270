# `didfs check` and damaged catalogs (issue 12, item 9): SQLite's integrity
# check plus the catalog's own invariants; a damaged file is reported clearly
# by every command and nothing more is written to it.
import hashlib
import json
import os
import random
from catfixture import connect_catalog
import zlib

import pytest


def adler32_hex(b):
    return "%08x" % (zlib.adler32(b) & 0xffffffff)


@pytest.fixture
def cat(didfs):
    didfs("add-scope", "mock")
    for rse in ("XRD1", "XRD2"):
        didfs("add-rse", rse)
        didfs("add-protocol", "--rse", rse, "--scheme", "root", "--hostname", "127.0.0.1",
              "--port", "1094", "--prefix", "//rucio")
    didfs("add-dataset", "mock:ds")
    args = ["add-replicas", "--rse", "XRD1", "--dataset", "mock:ds"]
    for i in range(3):
        data = f"file {i}".encode()
        args += [f"mock:f{i}", len(data), adler32_hex(data)]
    didfs(*args)
    didfs.rule = didfs("add-rule", "mock:ds", "1", "XRD1").strip()
    return didfs


def check(didfs):
    p = didfs.run("--json", "check")
    return p.returncode, json.loads(p.stdout) if p.stdout.strip() else []


def sql(didfs, q, *args):
    con = connect_catalog(didfs.catalog)
    try:
        con.execute(q, args)
        con.commit()
    finally:
        con.close()


def test_a_consistent_catalog_passes(cat):
    p = cat.run("check")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 problems found" in p.stdout


def test_planted_lock_count_is_found(cat):
    sql(cat, "UPDATE replicas SET lock_cnt=lock_cnt+4 WHERE did_id=(SELECT id FROM dids"
             " WHERE name='f1')")
    rc, rows = check(cat)
    assert rc == 1
    texts = [r["problem"] for r in rows]
    assert any("mock:f1" in t and "lock_cnt" in t for t in texts), texts
    assert all(r["kind"] == "invariant" for r in rows)


def test_planted_rule_counters_and_state_are_found(cat):
    sql(cat, "UPDATE rules SET locks_ok_cnt=0, locks_stuck_cnt=3 WHERE id=?", cat.rule)
    sql(cat, "UPDATE rules SET state='S' WHERE id=?", cat.rule)
    rc, rows = check(cat)
    texts = [r["problem"] for r in rows]
    assert rc == 1
    assert any(cat.rule in t and "counts ok/replicating/stuck 0/0/3" in t for t in texts), texts
    assert any(cat.rule in t and "is STUCK" in t for t in texts), texts


def test_planted_usage_and_orphan_request_are_found(cat):
    cat("list-rse-usage")  # nothing folded yet: pending deltas count too
    sql(cat, "INSERT INTO updated_rse_counters(rse_num, files, bytes)"
             " SELECT num, 1, 1000 FROM rses WHERE rse='XRD2'")
    sql(cat, "INSERT INTO requests(id, did_id, dest_rse_num, rule_id, state, created_at,"
             " updated_at) SELECT 'deadbeef', id, (SELECT num FROM rses WHERE rse='XRD2'),"
             " 'nosuchrule', 'Q', 0, 0 FROM dids WHERE name='f0'")
    rc, rows = check(cat)
    texts = [r["problem"] for r in rows]
    assert rc == 1
    assert any("RSE XRD2 usage says 1 files" in t for t in texts), texts
    assert any("request deadbeef" in t and "does not exist" in t for t in texts), texts


def test_table_output_names_each_problem(cat):
    sql(cat, "UPDATE replicas SET lock_cnt=7")
    p = cat.run("check")
    assert p.returncode == 1
    assert "lock_cnt 7" in p.stdout and "problems found" in p.stderr


def big_catalog(didfs, tmp_path, n=4000):
    didfs("add-scope", "mock")
    didfs("add-rse", "XRD1")
    didfs("add-protocol", "--rse", "XRD1", "--scheme", "root", "--hostname", "127.0.0.1",
          "--port", "1094", "--prefix", "//rucio")
    didfs("add-dataset", "mock:ds")
    lst = tmp_path / "files.txt"
    with open(lst, "w") as f:
        for i in range(n):
            f.write(f"mock:file_{i:06d}_{'x' * 60} {i + 1} {adler32_hex(str(i).encode())}\n")
    didfs("add-replicas", "--rse", "XRD1", "--list", lst, "--dataset", "mock:ds")
    # fold the WAL into the main file, so the damage below hits live pages
    sql(didfs, "PRAGMA wal_checkpoint(TRUNCATE)")


def damage(path, start_frac, end_frac, seed=12):
    size = os.path.getsize(path)
    rng = random.Random(seed)
    with open(path, "r+b") as f:
        f.seek(int(size * start_frac) // 4096 * 4096)
        f.write(bytes(rng.getrandbits(8) for _ in range(int(size * (end_frac - start_frac)))))


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.mark.sqlite_only("damages the catalog file's pages")
def test_random_bytes_mid_file_are_found_and_nothing_is_written(didfs, tmp_path):
    big_catalog(didfs, tmp_path)
    damage(didfs.catalog, 0.3, 0.7)
    before = sha(didfs.catalog)

    rc, rows = check(didfs)
    assert rc == 1 and any(r["kind"] == "integrity" for r in rows), rows

    p = didfs.run("list-dids", "mock:*")
    assert p.returncode == 1, "a listing over damaged pages exited 0"
    assert "DatabaseException" in p.stderr and "damaged" in p.stderr, p.stderr
    assert didfs.catalog in p.stderr

    p = didfs.run("daemon", "all", "--once")
    assert p.returncode != 0, "the daemon ran its cycles on a damaged catalog"
    assert "damaged" in p.stderr, p.stderr
    assert sha(didfs.catalog) == before, "something was written to the damaged catalog"


@pytest.mark.sqlite_only("damages the catalog file's header")
def test_a_damaged_header_is_named(didfs, tmp_path):
    big_catalog(didfs, tmp_path, n=100)
    with open(didfs.catalog, "r+b") as f:
        f.write(b"\xff" * 100)
    for args in (("list-scopes",), ("add-scope", "other"), ("check",)):
        p = didfs.run(*args)
        assert p.returncode == 1, args
        assert "DatabaseException" in p.stderr, (args, p.stderr)
