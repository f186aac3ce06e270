# The didfs command on temporary catalogs: accounts, scopes, RSEs and
# expressions, DIDs and Rucio's attach rules, metadata, bulk replica
# registration, limits and usage.  Every refused command must name Rucio's
# exception, exit 1 and leave the catalog exactly as it was.
import hashlib
import json
import os
import zlib

import pytest


def adler32_hex(data):
    return "%08x" % (zlib.adler32(data) & 0xffffffff)


def unchanged(didfs, *args, cls):
    before = didfs.dump()
    didfs.fails(*args, cls=cls)
    assert didfs.dump() == before, f"catalog changed by a refused 'didfs {' '.join(args)}'"


@pytest.fixture
def cat(didfs):
    didfs("add-account", "alice", "--email", "alice@example.org")
    didfs("add-scope", "user.alice", "--account", "alice")
    didfs("add-scope", "mock", "--account", "root")
    for rse, tier, site in (("XRD1", 1, "CERN"), ("XRD2", 1, "IN2P3"), ("XRD3", 2, "CERN")):
        didfs("add-rse", rse)
        didfs("set-rse-attribute", "--rse", rse, "--key", "tier", "--value", tier)
        didfs("set-rse-attribute", "--rse", rse, "--key", "site", "--value", site)
        didfs("add-protocol", "--rse", rse, "--scheme", "root", "--hostname", "127.0.0.1",
              "--port", "1094", "--prefix", "//rucio")
    return didfs


def test_init_twice_is_refused(didfs):
    didfs.fails("init", cls="Duplicate")


@pytest.mark.sqlite_only("a missing file (PostgreSQL's: test_catalog_uri's unreachable server)")
def test_missing_catalog_is_a_clear_error(tmp_path):
    from catfixture import Didfs
    err = Didfs(tmp_path / "nope.db").fails("list-scopes")
    assert "nope.db" in err and "didfs init" in err


@pytest.mark.sqlite_only("an SQLite file that is not a catalog")
def test_not_a_catalog(tmp_path):
    import sqlite3
    from catfixture import Didfs
    con = sqlite3.connect(tmp_path / "other.db")
    con.execute("CREATE TABLE t(x)")
    con.commit()
    con.close()
    Didfs(tmp_path / "other.db").fails("list-scopes", contains="not a didfs catalog")


def test_whoami_and_accounts(didfs):
    assert didfs.json("whoami")["account"] == "root"
    didfs("add-account", "bob", "--type", "GROUP")
    accounts = {a["account"]: a["type"] for a in didfs.json("list-accounts")}
    assert accounts == {"root": "SERVICE", "bob": "GROUP"}
    unchanged(didfs, "add-account", "bob", cls="Duplicate")
    unchanged(didfs, "add-account", "Bob", cls="InvalidObject")
    unchanged(didfs, "add-account", "x" * 26, cls="InvalidObject")
    didfs.fails("add-account", "carol", "--type", "ROBOT", cls="InvalidAccountType")


def test_admin_attribute_and_permissions(cat):
    alice = cat.as_account("alice")
    unchanged(alice, "add-scope", "user.bob", cls="AccessDenied")
    unchanged(alice, "add-rse", "XRD9", cls="AccessDenied")
    # alice owns user.alice and may create datasets there, not in mock
    alice("add-dataset", "user.alice:mine")
    unchanged(alice, "add-dataset", "mock:theirs", cls="AccessDenied")
    cat("set-account-attribute", "alice", "--key", "admin", "--value", "true")
    assert {"key": "admin", "value": "true"} in cat.json("list-account-attributes", "alice")
    alice("add-dataset", "mock:theirs")
    cat.fails("--account", "nobody", "whoami", cls="AccountNotFound")


def test_scopes(cat):
    scopes = {s["scope"]: s["account"] for s in cat.json("list-scopes")}
    assert scopes == {"user.alice": "alice", "mock": "root"}
    assert [s["scope"] for s in cat.json("list-scopes", "--account", "alice")] == ["user.alice"]
    unchanged(cat, "add-scope", "mock", cls="Duplicate")
    unchanged(cat, "add-scope", "bad scope!", cls="InvalidObject")
    unchanged(cat, "add-scope", "s" * 26, cls="InvalidObject")
    unchanged(cat, "add-scope", "ok", "--account", "ghost", cls="AccountNotFound")


def test_rses_and_attributes(cat):
    attrs = {a["key"]: a["value"] for a in cat.json("list-rse-attributes", "XRD1")}
    assert attrs == {"XRD1": "true", "tier": "1", "site": "CERN"}
    unchanged(cat, "add-rse", "XRD1", cls="Duplicate")
    unchanged(cat, "add-rse", "xrd4", cls="InvalidObject")
    unchanged(cat, "add-rse", "XRD_", cls="InvalidObject")
    unchanged(cat, "set-rse-attribute", "--rse", "NOPE", "--key", "a", "--value", "b",
              cls="RSENotFound")
    cat("update-rse", "--rse", "XRD3", "--setting", "availability_write", "--value", "false")
    rses = {r["rse"]: r for r in cat.json("list-rses")}
    assert rses["XRD3"]["availability_write"] is False and rses["XRD1"]["availability_write"] is True
    unchanged(cat, "update-rse", "--rse", "XRD3", "--setting", "colour", "--value", "red",
              cls="InputValidationError")


@pytest.mark.parametrize("expr,expected", [
    ("XRD1", {"XRD1"}),
    ("tier=1", {"XRD1", "XRD2"}),
    ("site=CERN&tier=2", {"XRD3"}),
    ("tier=1\\XRD2", {"XRD1"}),
    ("*\\site=CERN", {"XRD2"}),
    ("(tier=1|tier=2)&site=CERN", {"XRD1", "XRD3"}),
    ("XRD1|XRD2\\site=IN2P3", {"XRD1"}),  # left to right: (XRD1|XRD2)\IN2P3
    ("tier<2", {"XRD1", "XRD2"}),
    ("tier>1", {"XRD3"}),
    ("rse_type=DISK", {"XRD1", "XRD2", "XRD3"}),
])
def test_rse_expressions(cat, expr, expected):
    assert {r["rse"] for r in cat.json("list-rses", expr)} == expected


def test_empty_expression_lists_every_rse(cat):
    # Rucio's client and server take the empty expression as none: all RSEs
    assert {r["rse"] for r in cat.json("list-rses", "--rses", "")} == {"XRD1", "XRD2", "XRD3"}


@pytest.mark.parametrize("expr,msg", [
    ("tier=3", "empty set"),
    ("(XRD1", "Problem with parantheses."),  # Rucio's own spelling
    ("XRD1)", "Problem with parantheses."),
    ("XRD1||XRD2", "syntax"),
    ("XRD1 & XRD2", "syntax"),
])
def test_bad_rse_expressions(cat, expr, msg):
    err = cat.fails("list-rses", "--rses", expr, cls="InvalidRSEExpression")
    assert msg in err


def test_lfn2pfn_matches_rucio(cat):
    pfns = {r["did"]: r["pfn"] for r in cat.json("lfn2pfn", "--rse", "XRD1", "mock:file1",
                                                   "user.jdoe:test.root")}
    # Rucio's documented hash-layout examples
    assert pfns["mock:file1"] == "root://127.0.0.1:1094//rucio/mock/3c/26/file1"
    assert pfns["user.jdoe:test.root"] == "root://127.0.0.1:1094//rucio/user/jdoe/29/97/test.root"
    cat("set-rse-attribute", "--rse", "XRD2", "--key", "lfn2pfn_algorithm", "--value", "identity")
    pfn = cat.json("lfn2pfn", "--rse", "XRD2", "user.jdoe:a/b.root")[0]["pfn"]
    assert pfn == "root://127.0.0.1:1094//rucio/user/jdoe/a/b.root"
    cat("add-protocol", "--rse", "XRD3", "--scheme", "file", "--prefix", "/data/rse3")
    pfn = cat.json("lfn2pfn", "--rse", "XRD3", "--scheme", "file", "mock:file1")[0]["pfn"]
    assert pfn == "file://localhost/data/rse3/mock/3c/26/file1"
    cat.fails("lfn2pfn", "--rse", "XRD3", "--scheme", "https", "mock:file1",
              cls="RSEProtocolNotSupported")


def test_protocol_priorities(cat):
    cat.fails("add-protocol", "--rse", "XRD1", "--scheme", "https", "--read", "-5",
              cls="RSEProtocolPriorityError")
    cat("add-protocol", "--rse", "XRD1", "--scheme", "https", "--hostname", "127.0.0.1",
        "--port", "1095", "--read", "0", "--write", "-1")
    unchanged(cat, "add-protocol", "--rse", "XRD1", "--scheme", "https", "--hostname",
              "127.0.0.1", "--port", "1095", cls="Duplicate")
    protos = {p["scheme"]: p for p in cat.json("list-protocols", "XRD1")}
    assert protos["https"]["read_wan"] == 0 and protos["https"]["write_wan"] == -1
    # https is preferred for reading (0 < 1), root remains the only writer
    assert cat.json("lfn2pfn", "--rse", "XRD1", "mock:f")[0]["pfn"].startswith("root://")


def register(cat, *files, rse="XRD1", dataset=None):
    args = ["add-replicas", "--rse", rse]
    if dataset:
        args += ["--dataset", dataset]
    for did, data in files:
        args += [did, len(data), adler32_hex(data)]
    return cat(*args)


def test_datasets_containers_and_attach_rules(cat):
    cat("add-dataset", "mock:ds1")
    cat("add-dataset", "mock:ds2")
    cat("add-container", "mock:cont")
    unchanged(cat, "add-dataset", "mock:ds1", cls="DataIdentifierAlreadyExists")
    unchanged(cat, "add-dataset", "nosuch:ds", cls="ScopeNotFound")
    unchanged(cat, "add-dataset", "mock:.hidden", cls="InvalidObject")
    register(cat, ("mock:f1", b"one"), ("mock:f2", b"two"), dataset="mock:ds1")
    register(cat, ("mock:f3", b"three"))
    cat("attach", "mock:ds2", "mock:f3")
    cat("attach", "mock:cont", "mock:ds1", "mock:ds2")
    # what may not be attached to what
    unchanged(cat, "attach", "mock:ds1", "mock:ds2", cls="UnsupportedOperation")
    unchanged(cat, "attach", "mock:cont", "mock:f1", cls="UnsupportedOperation")
    unchanged(cat, "attach", "mock:f1", "mock:f2", cls="UnsupportedOperation")
    unchanged(cat, "attach", "mock:ds2", "mock:f3", cls="FileAlreadyExists")
    unchanged(cat, "attach", "mock:cont", "mock:ds1", cls="DuplicateContent")
    unchanged(cat, "attach", "mock:ds2", "mock:ghost", cls="DataIdentifierNotFound")
    # one bad child among good ones: nothing is attached
    unchanged(cat, "attach", "mock:ds2", "mock:f1", "mock:ghost", cls="DataIdentifierNotFound")
    # no cycles
    cat("add-container", "mock:top")
    cat("attach", "mock:top", "mock:cont")
    unchanged(cat, "attach", "mock:cont", "mock:top", cls="UnsupportedOperation")
    unchanged(cat, "attach", "mock:cont", "mock:cont", cls="UnsupportedOperation")
    # listings
    assert [d["did"] for d in cat.json("list-content", "mock:cont")] == ["mock:ds1", "mock:ds2"]
    files = sorted(f["did"] for f in cat.json("list-files", "mock:top"))
    assert files == ["mock:f1", "mock:f2", "mock:f3"]
    assert [p["did"] for p in cat.json("list-parent-dids", "mock:ds1")] == ["mock:cont"]
    out = cat("list-files", "mock:ds1")
    assert "Total files : 2" in out
    # close: no more attachments; reopening needs an admin
    cat("close", "mock:ds2")
    register(cat, ("mock:f4", b"four"))
    unchanged(cat, "attach", "mock:ds2", "mock:f4", cls="UnsupportedOperation")
    unchanged(cat, "close", "mock:ds2", cls="UnsupportedOperation")
    meta = cat.json("get-metadata", "mock:ds2")
    assert meta["is_open"] is False and meta["length"] == 1 and meta["bytes"] == 5
    cat("reopen", "mock:ds2")
    cat("attach", "mock:ds2", "mock:f4")
    # detach
    cat("detach", "mock:ds2", "mock:f4")
    unchanged(cat, "detach", "mock:ds2", "mock:f4", cls="DataIdentifierNotFound")


def test_list_dids_wildcards(cat):
    for n in ("run1.raw", "run1.reco", "run2.raw"):
        cat("add-dataset", f"mock:{n}")
    cat("add-container", "mock:runs")
    register(cat, ("mock:run1.file", b"x"))
    assert {d["did"] for d in cat.json("list-dids", "mock:run1*")} == {"mock:run1.raw", "mock:run1.reco"}
    assert {d["did"] for d in cat.json("list-dids", "mock:*.raw")} == {"mock:run1.raw", "mock:run2.raw"}
    assert {d["did"] for d in cat.json("list-dids", "mock:run*", "--type", "container")} == {"mock:runs"}
    assert {d["did"] for d in cat.json("list-dids", "mock:run1*", "--filter", "type=all")} == \
        {"mock:run1.raw", "mock:run1.reco", "mock:run1.file"}
    assert cat.json("list-dids", "mock:zzz*") == []
    cat.fails("list-dids", "nosuch:*", cls="ScopeNotFound")
    cat.fails("list-dids", "mock:*", "--type", "banana", cls="UnsupportedDIDType")


def test_metadata_and_lifetime(cat):
    cat("add-dataset", "mock:ds", "--lifetime", "3600")
    meta = cat.json("get-metadata", "mock:ds")
    assert meta["expired_at"] is not None and meta["did_type"] == "DATASET"
    cat("set-metadata", "mock:ds", "--key", "run_number", "--value", "42")
    cat("set-metadata", "--did", "mock:ds", "--key", "detector", "--value", "ORCA")
    meta = cat.json("get-metadata", "mock:ds")
    assert meta["run_number"] == "42" and meta["detector"] == "ORCA"
    cat("set-metadata", "mock:ds", "--key", "lifetime", "--value", "0")
    assert cat.json("get-metadata", "mock:ds")["expired_at"] is None
    unchanged(cat, "set-metadata", "mock:ds", "--key", "bytes", "--value", "1", cls="UnsupportedKeyType")
    unchanged(cat, "set-metadata", "mock:ds", "--key", "bad key", "--value", "1", cls="InvalidMetadata")
    unchanged(cat, "set-metadata", "mock:ds", "--key", "lifetime", "--value", "soon",
              cls="InvalidValueForKey")
    unchanged(cat, "set-metadata", "mock:nope", "--key", "a", "--value", "1",
              cls="DataIdentifierNotFound")
    cat("delete-metadata", "mock:ds", "--key", "detector")
    assert "detector" not in cat.json("get-metadata", "mock:ds")
    unchanged(cat, "delete-metadata", "mock:ds", "--key", "detector", cls="KeyNotFound")


def test_add_replicas_errors_leave_catalog_unchanged(cat):
    cat("add-dataset", "mock:ds")
    register(cat, ("mock:f1", b"payload"), dataset="mock:ds")
    # same file registered with another checksum
    unchanged(cat, "add-replicas", "--rse", "XRD2", "mock:f1", 7, "deadbeef",
              cls="FileConsistencyMismatch")
    unchanged(cat, "add-replicas", "--rse", "XRD2", "mock:f1", 8, adler32_hex(b"payload"),
              cls="FileConsistencyMismatch")
    unchanged(cat, "add-replicas", "--rse", "XRD2", "mock:g", 1, "xyz", cls="InvalidObject")
    unchanged(cat, "add-replicas", "--rse", "NOPE", "mock:g", 1, "00000001", cls="RSENotFound")
    unchanged(cat, "add-replicas", "--rse", "XRD2", "ghost:g", 1, "00000001", cls="ScopeNotFound")
    unchanged(cat, "add-replicas", "--rse", "XRD2", "--dataset", "mock:nods", "mock:g", 1,
              "00000001", cls="DataIdentifierNotFound")
    # a good row followed by a bad one: neither is registered
    unchanged(cat, "add-replicas", "--rse", "XRD2", "mock:good", 1, "00000001",
              "mock:f1", 1, "00000001", cls="FileConsistencyMismatch")
    cat("update-rse", "--rse", "XRD3", "--setting", "availability_write", "--value", "false")
    unchanged(cat, "add-replicas", "--rse", "XRD3", "mock:g", 1, "00000001",
              cls="ResourceTemporaryUnavailable")
    # the same replica again is skipped, a second RSE adds a replica
    register(cat, ("mock:f1", b"payload"))
    register(cat, ("mock:f1", b"payload"), rse="XRD2")
    reps = cat.json("list-file-replicas", "mock:ds")
    assert sorted(r["rse"] for r in reps) == ["XRD1", "XRD2"]
    assert all(r["adler32"] == adler32_hex(b"payload") and r["bytes"] == 7 for r in reps)
    assert reps[0]["pfn"].endswith("/mock/" + hashlib.md5(b"mock:f1").hexdigest()[:2] + "/" +
                                   hashlib.md5(b"mock:f1").hexdigest()[2:4] + "/f1")
    assert [r["rse"] for r in cat.json("list-file-replicas", "mock:ds", "--rses", "tier=1\\XRD1")] == ["XRD2"]


def test_add_replicas_from_list_file(cat, tmp_path):
    cat("add-dataset", "mock:bulk")
    lines = ["# scope:name bytes adler32 [md5]"]
    for i in range(500):
        data = f"file {i}".encode()
        lines.append(f"mock:f{i:04d} {len(data)} {adler32_hex(data)} {hashlib.md5(data).hexdigest()}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    out = cat.json("add-replicas", "--rse", "XRD1", "--list", tmp_path / "list.txt",
                   "--dataset", "mock:bulk")
    assert out["files"] == 500 and out["new_replicas"] == 500
    files = cat.json("list-files", "mock:bulk")
    assert len(files) == 500 and files[0]["did"] == "mock:f0000"
    # a malformed line aborts the whole list, naming the line
    (tmp_path / "bad.txt").write_text("mock:x1 1 00000001\nmock:x2 notanumber 00000001\n")
    before = cat.dump()
    err = cat.fails("add-replicas", "--rse", "XRD1", "--list", tmp_path / "bad.txt")
    assert "bad.txt:2" in err
    assert cat.dump() == before


def write_hash_layout(root, scope, name, data):
    h = hashlib.md5(f"{scope}:{name}".encode()).hexdigest()
    sp = scope.replace(".", "/") if scope.startswith(("user", "group")) else scope
    path = root / sp / h[:2] / h[2:4] / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_add_replicas_walks_deterministic_layout(cat, tmp_path):
    root = tmp_path / "storage"
    expected = {}
    for scope, name in (("mock", "a.h5"), ("mock", "sub/dir/b.csv"), ("user.alice", "c.root")):
        data = os.urandom(1000 + len(name))
        write_hash_layout(root, scope, name, data)
        expected[f"{scope}:{name}"] = (len(data), adler32_hex(data), hashlib.md5(data).hexdigest())
    # dark data and an unfinished upload are reported and skipped
    (root / "mock" / "stray.txt").write_text("not in the layout")
    (root / "mock" / "aa").mkdir(parents=True, exist_ok=True)
    (root / "mock" / "aa" / "bb").mkdir(exist_ok=True)
    (root / "mock" / "aa" / "bb" / "wrong-hash").write_text("x")
    write_hash_layout(root, "mock", "d.rucio.upload", b"partial")
    cat("add-dataset", "mock:walked")
    before = cat.dump()
    cat.fails("add-replicas", "--rse", "XRD1", "--walk", root, "--strict")
    assert cat.dump() == before
    p = cat.run("--json", "add-replicas", "--rse", "XRD1", "--walk", root, "--md5")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["files"] == 3 and out["skipped"] == 3
    assert "stray.txt" in p.stderr and "wrong-hash" in p.stderr
    for did, (size, adler, md5) in expected.items():
        meta = cat.json("get-metadata", did)
        assert (meta["bytes"], meta["adler32"], meta["md5"]) == (size, adler, md5)
    # walking again registers nothing new and changes nothing
    assert cat.json("add-replicas", "--rse", "XRD1", "--walk", root)["new_replicas"] == 0


def test_add_replicas_walks_non_deterministic_rse(cat, tmp_path):
    cat("add-rse", "TAPE1", "--non-deterministic")
    cat("add-protocol", "--rse", "TAPE1", "--scheme", "file", "--prefix", "/archive")
    root = tmp_path / "archive"
    (root / "2026" / "11").mkdir(parents=True)
    (root / "2026" / "11" / "obs_001.fits").write_bytes(b"F" * 2880)
    cat.fails("add-replicas", "--rse", "TAPE1", "--walk", root, "--strict")
    cat("add-dataset", "mock:obs")
    out = cat.json("add-replicas", "--rse", "TAPE1", "--walk", root, "--scope", "mock",
                   "--dataset", "mock:obs")
    assert out["files"] == 1
    rep = cat.json("list-file-replicas", "mock:obs")[0]
    assert rep["name"] == "2026/11/obs_001.fits"
    assert rep["pfn"] == "file://localhost/archive/2026/11/obs_001.fits"
    # a non-deterministic RSE needs a PFN for every replica
    unchanged(cat, "add-replicas", "--rse", "TAPE1", "mock:nopfn", 1, "00000001", cls="InvalidPath")


def test_limits_and_usage(cat):
    cat("set-account-limit", "alice", "XRD1", "10G")
    cat("set-account-limit", "alice", "XRD2", "infinity")
    limits = {l["rse"]: l["bytes"] for l in cat.json("get-account-limits", "alice")}
    assert limits == {"XRD1": 10 * 2**30, "XRD2": -1}
    usage = {u["rse"]: u for u in cat.json("list-account-usage", "alice")}
    assert usage["XRD1"]["bytes_limit"] == 10 * 2**30 and usage["XRD1"]["bytes"] == 0
    unchanged(cat, "set-account-limit", "alice", "NOPE", "1", cls="RSENotFound")
    unchanged(cat, "set-account-limit", "ghost", "XRD1", "1", cls="AccountNotFound")
    cat.fails("set-account-limit", "alice", "XRD1", "lots", cls="InputValidationError")
    cat.as_account("alice").fails("set-account-limit", "alice", "XRD1", "1", cls="AccessDenied")
    register(cat, ("mock:u1", b"a" * 100), ("mock:u2", b"b" * 50))
    usage = {u["rse"]: u for u in cat.json("list-rse-usage", "XRD1")}
    assert usage["XRD1"]["files"] == 2 and usage["XRD1"]["used"] == 150


def test_table_output_is_readable(cat):
    out = cat("list-rses")
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["RSE", "RSE_TYPE"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert [l.split()[0] for l in lines[2:]] == ["XRD1", "XRD2", "XRD3"]
