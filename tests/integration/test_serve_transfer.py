# SPDX-License-Identifier: Apache-2.0
"""Upload and download through Rucio's real clients against `didfs serve`,
with real XRootD storage elements (tests/env/rsefixture.py): `rucio upload`
to XRD1 (root:// with xrdcp), `rucio download` by DID and by dataset
(metalink, checksums verified by the client), a rule added through the
REST API carried out by `didfs daemon` on the same catalog; and the same
upload/download over https to XrdHttp (Rucio's webdav protocol with the
user's RFC 3820 proxy, which the storage verifies against the serve CA)."""
import json
import os
import pathlib
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



@pytest.mark.parametrize("v", VERSIONS)
def test_upload_download_https(served, rses, make_file, tmp_path, v):
    """`rucio upload --protocol https` writes through XrdHttp (Rucio's webdav
    protocol, the user's RFC 3820 proxy as the client certificate, trusted by
    the storage through the serve CA) and registers the file once, AVAILABLE;
    `rucio download --protocol https` reads it back, checksum verified."""
    register(served, rses)
    served.trust_at(rses)
    env = {"X509_USER_PROXY": os.path.join(served.pki, "proxy.pem")}
    f = make_file(150000, name=f"web_{v.replace('.', '_')}.dat")
    ds = f"user.root:wds_{v.replace('.', '_')}"
    p = served.rucio(v, tmp_path, "upload", "--rse", "XRD2", "--protocol", "https",
                     "--scope", "user.root", str(f), ds, env_extra=env)
    reps = served.didfs.json("list-file-replicas", f"user.root:{f.name}")
    assert [r["rse"] for r in reps] == ["XRD2"] and reps[0]["state"] == "AVAILABLE"
    assert f"Successfully uploaded file {f.name}" in p.stderr
    # the bytes are on XRD2's disk
    on_disk = list(pathlib.Path(rses["XRD2"].data_dir).rglob(f.name))
    assert len(on_disk) == 1 and on_disk[0].read_bytes() == f.read_bytes()
    files = served.didfs.json("list-files", ds)
    assert [x for x in files if f.name in json.dumps(x)]
    out = tmp_path / "dlw"
    served.rucio(v, tmp_path, "download", "--protocol", "https", "--dir", str(out),
                 f"user.root:{f.name}", env_extra=env)
    got = list(out.rglob(f.name))
    assert got and got[0].read_bytes() == f.read_bytes()
