# SPDX-License-Identifier: Apache-2.0
"""Upload and download through Rucio's real clients against `didfs serve`,
with real XRootD storage elements (tests/env/rsefixture.py): `rucio upload`
to XRD1 (root:// with xrdcp), `rucio download` by DID and by dataset
(metalink, checksums verified by the client), a rule added through the
REST API carried out by `didfs daemon` on the same catalog."""
import json
import os
import subprocess

import pytest

VERSIONS = ["1.31.7", "41.0.0"]


def register(served, rses):
    rses.register(served.catalog, served.didfs.bin)
    served.didfs("add-scope", "user.root", "--account", "root")
    for s in ("XRD1", "XRD2", "XRD3"):
        served.didfs("set-account-limit", "root", s, "-1")


@pytest.mark.parametrize("v", VERSIONS)
def test_upload_download(served, rses, make_file, tmp_path, v):
    register(served, rses)
    f = make_file(200000, name=f"obs_{v.replace('.', '_')}.dat")
    ds = f"user.root:ds_{v.replace('.', '_')}"
    served.rucio(v, tmp_path, "upload", "--rse", "XRD1", "--scope", "user.root", str(f), ds)
    # registered once, AVAILABLE, in the dataset
    reps = served.didfs.json("list-file-replicas", f"user.root:{f.name}")
    assert [r["rse"] for r in reps] == ["XRD1"] and reps[0]["state"] == "AVAILABLE"
    files = served.didfs.json("list-files", ds)
    assert len(files) == 1 and f.name in json.dumps(files[0])
    # download by DID and by dataset; the client checks adler32
    out = tmp_path / "dl"
    served.rucio(v, tmp_path, "download", "--dir", str(out), f"user.root:{f.name}")
    got = list(out.rglob(f.name))
    assert got and got[0].read_bytes() == f.read_bytes()
    out2 = tmp_path / "dl2"
    served.rucio(v, tmp_path, "download", "--dir", str(out2), ds)
    got = list(out2.rglob(f.name))
    assert got and got[0].read_bytes() == f.read_bytes()


def test_rule_through_rest_done_by_daemon(served, rses, make_file, tmp_path):
    register(served, rses)
    f = make_file(50000, name="rulefile.dat")
    served.rucio("41.0.0", tmp_path, "upload", "--rse", "XRD1", "--scope", "user.root", str(f),
                 "user.root:rds")
    from test_serve_clients import py
    rid = py(served, "1.31.7", tmp_path / "c", """
        print(json.dumps(c.add_replication_rule([{'scope': 'user.root', 'name': 'rds'}], 1, 'XRD2')[0]))
    """)
    d = served.didfs
    for _ in range(5):
        d("daemon", "all", "--once", timeout=300)
        state = py(served, "1.31.7", tmp_path / "c", f"print(json.dumps(c.get_replication_rule('{rid}')['state']))")
        if state == "OK":
            break
    assert state == "OK"
    p = served.rucio("1.31.7", tmp_path, "rule-info", rid)
    assert "OK" in p.stdout
    p = served.rucio("1.31.7", tmp_path, "list-rules", "user.root:rds")
    assert rid in p.stdout and "OK" in p.stdout

