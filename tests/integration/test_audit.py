# SPDX-License-Identifier: Apache-2.0
# The auditor (`didfs audit`, tools/cli_audit.c): a real XRootD RSE's storage
# compared with the catalog finds exactly the dark file and the lost file
# planted on it (fresh upload leftovers ignored, old ones reported), from a
# walk of the local view and from a storage dump; --declare-bad marks the
# lost replica BAD with a SUSPICIOUS declaration; a non-deterministic RSE
# (watch-folder ingest's) is audited by its stored paths.
import hashlib
import json
import os
import sqlite3
import time
import zlib

import pytest


def layout(root, scope, name):
    """Rucio's hash lfn2pfn: user.X and group.X scopes become user/X."""
    h = hashlib.md5(f"{scope}:{name}".encode()).hexdigest()
    d = scope.replace(".", "/") if scope.startswith(("user.", "group.")) else scope
    return os.path.join(root, d, h[:2], h[2:4], name)


def put(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def audit(didfs, *args):
    p = didfs.run("--json", "audit", *args)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_audit_dark_and_lost(lake, tmp_path):
    didfs = lake
    srv = didfs.rses["XRD1"]
    root = srv.local_path("/rucio")
    scope = "user.root"
    names = [f"audit_{i}.dat" for i in range(20)]
    walkdir = tmp_path / "walk"
    for n in names:
        put(layout(str(walkdir), "user.root", n), os.urandom(300))
    didfs("add-dataset", "user.root:audited")
    didfs("add-replicas", "--rse", "XRD1", "--walk", walkdir, "--dataset", "user.root:audited")
    # the walked tree is XRD1's storage: copy it in place
    for n in names:
        src = layout(str(walkdir), "user.root", n)
        put(layout(root, "user.root", n), open(src, "rb").read())
    # the server's storage may hold other tests' files: audit those names only
    # through a clean baseline first
    base = audit(didfs, "--rse", "XRD1", "--dir", root, "--grace", "0")
    base_dark = set(base["dark"])
    assert base["lost_count"] == 0, base

    lost = names[3]
    os.unlink(layout(root, scope, lost))
    dark = "user/root/ab/cd/dark_file.dat"
    put(os.path.join(root, dark), b"nobody registered me")
    long_ago = time.time() - 7200
    os.utime(os.path.join(root, dark), (long_ago, long_ago))  # older than --grace
    old_upload = f"user/root/{names[5]}.rucio.upload"
    put(os.path.join(root, old_upload), b"half an upload")
    os.utime(os.path.join(root, old_upload), (long_ago, long_ago))
    fresh_upload = f"user/root/{names[6]}.rucio.upload"
    put(os.path.join(root, fresh_upload), b"an upload in flight")

    out = audit(didfs, "--rse", "XRD1", "--dir", root)
    assert set(out["dark"]) - base_dark == {dark, old_upload}
    lost_path = os.path.relpath(layout(root, scope, lost), root)
    assert out["lost"] == [{"scope": scope, "name": lost, "path": lost_path}]
    assert out["lost_count"] == 1
    # the text form names both
    text = didfs("audit", "--rse", "XRD1", "--dir", root)
    assert f"DARK {dark}" in text and f"LOST {scope}:{lost} {lost_path}" in text

    # from a storage dump instead of a walk (no times: every path counts)
    listing = tmp_path / "dump.txt"
    with open(listing, "w") as f:
        f.write("# a storage dump\n")
        for dirpath, _, files in os.walk(root):
            for fn in files:
                f.write("/" + os.path.relpath(os.path.join(dirpath, fn), root) + "\n")
    out = audit(didfs, "--rse", "XRD1", "--list", listing)
    assert set(out["dark"]) - base_dark == {dark, old_upload, fresh_upload}
    assert [x["name"] for x in out["lost"]] == [lost]

    # declared bad: the replica BAD, one SUSPICIOUS declaration, not lost twice
    out = audit(didfs, "--rse", "XRD1", "--dir", root, "--declare-bad")
    assert out["declared_bad"] == 1
    reps = didfs.json("list-file-replicas", f"{scope}:{lost}", "--all-states")
    assert [r.get("state") for r in reps if r.get("rse") == "XRD1"] == ["BAD"], reps
    con = sqlite3.connect(didfs.catalog)
    try:
        n = con.execute("SELECT count(*) FROM bad_replicas b JOIN dids d ON d.id=b.did_id"
                        " WHERE d.name=? AND b.state='S'", (lost,)).fetchone()[0]
    finally:
        con.close()
    assert n == 1
    out = audit(didfs, "--rse", "XRD1", "--dir", root)
    assert out["lost_count"] == 0  # a BAD replica is the repairer's now

    # bad input
    didfs.fails("audit", "--rse", "NOPE", "--dir", root, cls="RSENotFound")
    didfs.fails("audit", "--rse", "XRD1", "--dir", tmp_path / "nowhere",
                cls="InputValidationError", contains="is not a directory")
    didfs.fails("audit", "--rse", "XRD1", status=2)
    os.unlink(os.path.join(root, dark))
    os.unlink(os.path.join(root, old_upload))
    os.unlink(os.path.join(root, fresh_upload))


def test_audit_non_deterministic_rse(didfs, tmp_path):
    """Watch-folder ingest's RSE: replicas at their stored paths."""
    didfs("add-scope", "ctao", "--account", "root")
    root = tmp_path / "ONSITE"
    (root / "in").mkdir(parents=True)
    didfs("add-rse", "ONSITE", "--non-deterministic")
    didfs("add-protocol", "--rse", "ONSITE", "--scheme", "file", "--prefix", str(root))
    for i in range(5):
        d = os.urandom(50)
        (root / "in" / f"f{i}.dat").write_bytes(d)
        (root / "in" / f"f{i}.dat.trigger").write_text("adler32=%08x\n" % (zlib.adler32(d) & 0xFFFFFFFF))
    (root / "in" / "bad.dat").write_bytes(b"x")
    (root / "in" / "bad.dat.trigger").write_text("adler32=00000000\n")
    cfg = tmp_path / "i.conf"
    cfg.write_text(f"rse = ONSITE\nroot = {root}\ndir = in\nscope = ctao\n")
    didfs("ingest", "--config", cfg, "--once")
    (root / "in" / "f2.dat").unlink()
    out = audit(didfs, "--rse", "ONSITE", "--dir", root, "--grace", "0")
    # the set-aside file and its reason are on storage, unregistered: dark
    assert sorted(out["dark"]) == ["in/.failed/bad.dat", "in/.failed/bad.dat.reason",
                                   "in/.failed/bad.dat.trigger"]
    assert [x["name"] for x in out["lost"]] == ["in/f2.dat"]
