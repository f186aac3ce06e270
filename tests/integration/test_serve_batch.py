# SPDX-License-Identifier: Apache-2.0
"""Every REST request that changes the catalog is one transaction: a request
whose last item fails answers Rucio's error and leaves every table of the
catalog exactly as it was (DID add with meta and rules, bulk DID add, bulk
attachments, multi-file replica state updates and deletions, rules on
several DIDs, metadata of several keys); the same request without the bad
item succeeds whole."""
import json
import sqlite3

from catfixture import Didfs, is_pg

from test_serve_format import err, seed


def snapshot(path):
    """Every row of every table, in rowid order (on PostgreSQL: sorted)."""
    if is_pg(path):
        return Didfs(path).dump()
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [t for (t,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {t: con.execute(f'SELECT * FROM "{t}"').fetchall() for t in tables}
    finally:
        con.close()


def files(names, state=None):
    out = []
    for n in names:
        f = {"scope": "lab", "name": n, "bytes": 10, "adler32": "0badcafe"}
        if state:
            f["state"] = state
        out.append(f)
    return out


def prepare(served):
    seed(served)
    r = served.post("/replicas", data=json.dumps({"rse": "XRD1", "files": files(["f1", "f2"], "C")}))
    assert r.status_code == 201, r.text
    served.didfs("add-rse", "XRD2")
    served.didfs("set-account-limit", "root", "XRD2", "-1")
    r = served.post("/replicas", data=json.dumps({"rse": "XRD2", "files": files(["f3"], "C")}))
    assert r.status_code == 201, r.text
    for ds in ("ds1", "ds2"):
        assert served.post(f"/dids/lab/{ds}", data=json.dumps({"type": "DATASET"})).status_code == 201


def test_failed_requests_leave_catalog_unchanged(served):
    prepare(served)
    before = snapshot(served.catalog)

    # DID with meta and a rule that cannot be satisfied: nothing of it stays
    err(served.post("/dids/lab/ds3", data=json.dumps({
        "type": "DATASET", "meta": {"project": "p1", "run": 7},
        "rules": [{"account": "root", "copies": 3, "rse_expression": "XRD1"}]})),
        409, "InsufficientTargetRSEs")
    # bulk add whose last DID exists already
    err(served.post("/dids", data=json.dumps([
        {"scope": "lab", "name": "n1", "type": "DATASET"},
        {"scope": "lab", "name": "n2", "type": "CONTAINER"},
        {"scope": "lab", "name": "ds1", "type": "DATASET"}])), 409, "DataIdentifierAlreadyExists")
    # bulk attachments whose last child is unknown
    err(served.post("/dids/attachments", data=json.dumps({"attachments": [
        {"scope": "lab", "name": "ds1", "dids": [{"scope": "lab", "name": "f1"}]},
        {"scope": "lab", "name": "ds2", "dids": [{"scope": "lab", "name": "f2"},
                                                 {"scope": "lab", "name": "nosuch"}]}]})),
        404, "DataIdentifierNotFound")
    # state updates whose last file has no replica there (f3 is on XRD2 only)
    err(served.req("PUT", "/replicas", data=json.dumps({
        "rse": "XRD1", "files": files(["f1", "f2", "f3"], "A")})), 404, "ReplicaNotFound")
    # deletions whose last file has no replica there
    err(served.req("DELETE", "/replicas", data=json.dumps({
        "rse": "XRD1", "files": files(["f1", "f3"])})), 404, "ReplicaNotFound")
    # a rule on two DIDs, the second unknown
    err(served.post("/rules/", data=json.dumps({
        "dids": [{"scope": "lab", "name": "ds1"}, {"scope": "lab", "name": "nosuch"}],
        "account": "root", "copies": 1, "rse_expression": "XRD1"})), 404, "DataIdentifierNotFound")
    # metadata of several keys, the last one refused
    err(served.post("/dids/lab/ds1/meta", data=json.dumps({
        "meta": {"project": "p1", "lifetime": "soon"}})), 400, "InvalidValueForKey")
    after = snapshot(served.catalog)
    for t in before:
        assert before[t] == after[t], f"table {t} changed by a failed request"
    assert served.alive()


def test_same_requests_succeed_whole(served):
    prepare(served)
    r = served.post("/dids/lab/ds3", data=json.dumps({
        "type": "DATASET", "meta": {"project": "p1"},
        "rules": [{"account": "root", "copies": 1, "rse_expression": "XRD1"}]}))
    assert r.status_code == 201, r.text
    m = served.get("/dids/lab/ds3/meta").json()
    assert m["project"] == "p1"
    assert len(list(served.get("/dids/lab/ds3/rules").iter_lines())) == 1
    r = served.post("/dids", data=json.dumps([
        {"scope": "lab", "name": "n1", "type": "DATASET"},
        {"scope": "lab", "name": "n2", "type": "CONTAINER"}]))
    assert r.status_code == 201, r.text
    assert served.get("/dids/lab/n2").json()["type"] == "CONTAINER"
    r = served.post("/dids/attachments", data=json.dumps({"attachments": [
        {"scope": "lab", "name": "ds1", "dids": [{"scope": "lab", "name": "f1"}]},
        {"scope": "lab", "name": "ds2", "dids": [{"scope": "lab", "name": "f2"}]}]}))
    assert r.status_code == 201, r.text
    assert [json.loads(x)["name"] for x in served.get("/dids/lab/ds2/dids").iter_lines()] == ["f2"]
    r = served.req("PUT", "/replicas", data=json.dumps({"rse": "XRD1", "files": files(["f1", "f2"], "A")}))
    assert r.status_code == 200, r.text
    reps = served.didfs.json("list-file-replicas", "lab:ds2")
    assert [x["state"] for x in reps] == ["AVAILABLE"]
