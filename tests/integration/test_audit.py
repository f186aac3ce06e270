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
import shutil
from catfixture import connect_catalog
import time
import uuid
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


def chown_tree(root, owner):
    """What the test planted belongs to the server's user, as its uploads do."""
    for d, dirs, files in os.walk(root):
        for x in dirs + files:
            os.chown(os.path.join(d, x), *owner)


def audit(didfs, *args):
    p = didfs.run("--json", "audit", *args)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_audit_dark_and_lost(lake, tmp_path):
    didfs = lake
    srv = didfs.rses["XRD1"]
    # an RSE of its own on XRD1, under a private prefix: what the test plants
    # never meets the session server's other RSEs
    prefix = f"/audit-{uuid.uuid4().hex[:12]}"
    root = srv.local_path(prefix)
    st = os.stat(srv.data_dir)
    os.makedirs(root)
    os.chown(root, st.st_uid, st.st_gid)
    try:
        audit_dark_and_lost(didfs, srv, prefix, root, (st.st_uid, st.st_gid), tmp_path)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def audit_dark_and_lost(didfs, srv, prefix, root, owner, tmp_path):
    didfs("add-rse", "AUDITED")
    didfs("add-protocol", "--rse", "AUDITED", "--scheme", "root", "--hostname", srv.host,
          "--port", srv.port, "--prefix", prefix, "--read", 1, "--write", 1, "--delete", 1)
    scope = "user.root"
    names = [f"audit_{i}.dat" for i in range(20)]
    walkdir = tmp_path / "walk"
    for n in names:
        put(layout(str(walkdir), "user.root", n), os.urandom(300))
    didfs("add-dataset", "user.root:audited")
    didfs("add-replicas", "--rse", "AUDITED", "--walk", walkdir, "--dataset", "user.root:audited")
    # the walked tree is the RSE's storage: copy it in place
    for n in names:
        src = layout(str(walkdir), "user.root", n)
        put(layout(root, "user.root", n), open(src, "rb").read())
    chown_tree(root, owner)
    base = audit(didfs, "--rse", "AUDITED", "--dir", root, "--grace", "0")
    assert base["dark_count"] == 0 and base["lost_count"] == 0, base
    assert base["catalog_replicas"] == 20 and base["storage_files"] == 20
    base_dark = set()

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
    chown_tree(root, owner)

    out = audit(didfs, "--rse", "AUDITED", "--dir", root)
    assert set(out["dark"]) - base_dark == {dark, old_upload}
    lost_path = os.path.relpath(layout(root, scope, lost), root)
    assert out["lost"] == [{"scope": scope, "name": lost, "path": lost_path}]
    assert out["lost_count"] == 1
    # the text form names both
    text = didfs("audit", "--rse", "AUDITED", "--dir", root)
    assert f"DARK {dark}" in text and f"LOST {scope}:{lost} {lost_path}" in text

    # from a storage dump instead of a walk (no times: every path counts)
    listing = tmp_path / "dump.txt"
    with open(listing, "w") as f:
        f.write("# a storage dump\n")
        for dirpath, _, files in os.walk(root):
            for fn in files:
                f.write("/" + os.path.relpath(os.path.join(dirpath, fn), root) + "\n")
    out = audit(didfs, "--rse", "AUDITED", "--list", listing)
    assert set(out["dark"]) - base_dark == {dark, old_upload, fresh_upload}
    assert [x["name"] for x in out["lost"]] == [lost]

    # declared bad: the replica BAD, one SUSPICIOUS declaration, not lost twice
    out = audit(didfs, "--rse", "AUDITED", "--dir", root, "--declare-bad")
    assert out["declared_bad"] == 1
    reps = didfs.json("list-file-replicas", f"{scope}:{lost}", "--all-states")
    assert [r.get("state") for r in reps if r.get("rse") == "AUDITED"] == ["BAD"], reps
    con = connect_catalog(didfs.catalog)
    try:
        n = con.execute("SELECT count(*) FROM bad_replicas b JOIN dids d ON d.id=b.did_id"
                        " WHERE d.name=? AND b.state='S'", (lost,)).fetchone()[0]
    finally:
        con.close()
    assert n == 1
    out = audit(didfs, "--rse", "AUDITED", "--dir", root)
    assert out["lost_count"] == 0  # a BAD replica is the repairer's now

    # bad input
    didfs.fails("audit", "--rse", "NOPE", "--dir", root, cls="RSENotFound")
    didfs.fails("audit", "--rse", "AUDITED", "--dir", tmp_path / "nowhere",
                cls="InputValidationError", contains="is not a directory")
    didfs.fails("audit", "--rse", "AUDITED", status=2)


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
