# SPDX-License-Identifier: Apache-2.0
"""Rucio's wire formats, from the transcripts of a real Rucio 1.31.7 server
(../shared/reference/rucio-rest-transcripts): exact Content-Type values,
status codes, the error contract (headers + JSON body), Python-spaced JSON,
date formats, streams."""
import json
import re

DATE = re.compile(r"^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d UTC$")


def err(r, status, cls, msg=None):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["ExceptionClass"] == cls
    body = r.json()
    assert body["ExceptionClass"] == cls
    assert r.text == json.dumps(body)  # Python separators
    if msg is not None:
        assert body["ExceptionMessage"] == msg
        hdr = msg.replace("\n", " ")
        assert r.headers["ExceptionMessage"] == hdr[:125] + ("..." if len(hdr) > 125 else "")


def seed(served):
    d = served.didfs
    d("add-scope", "lab", "--account", "root")
    d("add-rse", "XRD1")
    d("add-protocol", "--rse", "XRD1", "--scheme", "root", "--hostname", "127.0.0.1", "--port", "20171",
      "--prefix", "//rucio")
    d("set-rse-attribute", "--rse", "XRD1", "--key", "tier", "--value", "1")
    d("set-account-limit", "root", "XRD1", "-1")


def test_ping_auth_whoami(served):
    r = served.get("/ping", token=None)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert r.text == '{"version":"1.31.7"}\n'
    r = served.session.get(served.url + "/auth/userpass",
                           headers={"X-Rucio-Username": "ddmlab", "X-Rucio-Password": "secret",
                                    "X-Rucio-AppID": "lab"})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/octet-stream"
    assert re.match(r"^root-ddmlab-lab-[0-9a-f]{32}$", r.headers["X-Rucio-Auth-Token"])
    assert DATE.match(r.headers["X-Rucio-Auth-Token-Expires"])
    assert r.headers["X-Rucio-Auth-Account"] == "root" and r.text == ""
    err(served.get("/accounts/whoami", token=None), 401, "CannotAuthenticate",
        "Cannot authenticate with given credentials")
    err(served.get("/accounts/whoami", token="invalid-token-123"), 401, "CannotAuthenticate")
    r = served.get("/accounts/whoami", allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "root"
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    r = served.get("/accounts/root")
    a = r.json()
    assert r.headers["Content-Type"] == "application/json"
    assert list(a) == ["account", "account_type", "status", "email", "deleted_at", "updated_at",
                       "suspended_at", "created_at"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$", a["created_at"])


def test_scope_dataset_errors(served):
    r = served.post("/accounts/root/scopes/lab1")
    assert r.status_code == 201 and r.text == "Created"
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    err(served.post("/accounts/root/scopes/lab1"), 409, "Duplicate")
    r = served.post("/dids/lab1/ds1", data='{"type": "DATASET", "lifetime": null}')
    assert r.status_code == 201
    err(served.post("/dids/lab1/ds1", data='{"type": "DATASET"}'), 409, "DataIdentifierAlreadyExists")
    r = served.get("/dids/lab1/ds1")
    assert r.text.startswith('{"scope": "lab1", "name": "ds1", "type": "DATASET", "account": "root", "open": true')
    err(served.get("/dids/lab1/nonexistent"), 404, "DataIdentifierNotFound",
        "Data identifier 'lab1:nonexistent' not found")
    err(served.get("/dids/noscope/whatever"), 404, "DataIdentifierNotFound",
        "Data identifier 'noscope:whatever' not found")
    err(served.get("/no/such/endpoint"), 404, "UnsupportedOperation")


def test_replicas_streams_and_metalink(served):
    seed(served)
    files = [{"scope": "lab", "name": f"f{i}", "bytes": 100 + i, "adler32": "0cc737eb"} for i in range(3)]
    r = served.post("/replicas", data=json.dumps({"rse": "XRD1", "files": [
        {"scope": "lab", "name": "bad name!", "bytes": 1, "adler32": "deadbeef"}]}))
    # Rucio answers a name outside its pattern with 500 InvalidObject (T-14a); didfs's
    # pattern also admits '/' (catalog/store.c cat_validate_name)
    err(r, 500, "InvalidObject")
    served.post("/dids/lab/ds", data='{"type": "DATASET"}')
    r = served.post("/dids/lab/ds/dids", data=json.dumps({"dids": files, "rse": "XRD1"}))
    assert r.status_code == 201, r.text
    err(served.post("/dids/lab/ds/dids", data='{"dids": [{"scope": "lab", "name": "nope"}]}'),
        404, "DataIdentifierNotFound")
    r = served.get("/dids/lab/ds/files")
    assert r.headers["Content-Type"] == "application/x-json-stream"
    lines = r.text.splitlines()
    assert lines[0] == '{"scope": "lab", "name": "f0", "bytes": 100, "adler32": "0cc737eb", "guid": null, "events": null}'
    r = served.post("/replicas/list", data='{"dids": [{"scope": "lab", "name": "ds"}], "schemes": ["root"]}')
    assert r.headers["Content-Type"] == "application/x-json-stream"
    rows = [json.loads(x) for x in r.text.splitlines()]
    assert [x["name"] for x in rows] == ["f0", "f1", "f2"]
    assert list(rows[0]) == ["scope", "name", "bytes", "md5", "adler32", "pfns", "rses", "states"]
    assert rows[0]["states"] == {"XRD1": "AVAILABLE"}
    pfn = list(rows[0]["pfns"])[0]
    assert rows[0]["rses"] == {"XRD1": [pfn]} and pfn.startswith("root://127.0.0.1:20171/")
    r = served.post("/replicas/list", headers={"Accept": "application/metalink4+xml"},
                    data='{"dids": [{"scope": "lab", "name": "ds"}], "resolve_parents": true}')
    assert r.headers["Content-Type"] == "application/metalink4+xml"
    assert r.text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<metalink xmlns="urn:ietf:params:xml:ns:metalink">\n <file name="f0">\n  <parents>\n   <did>lab:ds</did>')
    assert r.text.endswith("</metalink>\n") and r.text.count("<file ") == 3
    r = served.get("/dids/lab/dids/search?type=all&long=True&filters=%5B%7B%27name%27%3A+%27f1%27%7D%5D")
    assert r.text == '{"scope": "lab", "name": "f1", "did_type": "DIDType.FILE", "bytes": 101, "length": null}\n'
    r = served.get("/dids/lab/dids/search?type=dataset&long=1", headers={"User-Agent": "rucio-clients/41.0.0"})
    assert json.loads(r.text)["did_type"] == "DATASET"
    err(served.get("/dids/lab/dids/search?filters=%5B%7B%27name%27"), 400, "ValueError")


def test_rses_rules_usage(served):
    seed(served)
    r = served.get("/rses/?expression=tier%3D1")
    assert r.headers["Content-Type"] == "application/x-json-stream" and r.text == '{"rse": "XRD1"}\n'
    err(served.get("/rses/?expression=tier%3D1%7C"), 400, "InvalidRSEExpression")
    s = served.get("/rses/XRD1").json()
    assert s["protocols"][0]["domains"]["wan"]["read"] == 1 and s["availability_write"] is True
    assert served.get("/rses/XRD1/attr/").json() == {"XRD1": True, "tier": "1"}
    served.post("/dids/lab/ds", data='{"type": "DATASET"}')
    err(served.post("/rules/", data='{"dids": [{"scope": "lab", "name": "ds"}], "copies": 1, "rse_expression": "XRD1"}'),
        400, "KeyError", "'account' not defined")
    err(served.post("/rules/", data='{"dids": [{"scope": "lab", "name": "ds"}], "account": "root", "copies": 1, "rse_expression": "tier=1|"}'),
        409, "InvalidRSEExpression")
    r = served.post("/rules/", data='{"dids": [{"scope": "lab", "name": "ds"}], "account": null, "copies": 1, "rse_expression": "XRD1"}')
    assert r.status_code == 201 and re.match(r'^\["[0-9a-f]{32}"\]$', r.text)
    rid = json.loads(r.text)[0]
    err(served.post("/rules/", data='{"dids": [{"scope": "lab", "name": "ds"}], "account": "root", "copies": 1, "rse_expression": "XRD1"}'),
        409, "DuplicateRule")
    rule = served.get(f"/rules/{rid}").json()
    assert rule["id"] == rid and DATE.match(rule["created_at"]) and rule["grouping"] == "DATASET"
    err(served.get("/rules/" + "0" * 32), 404, "RuleNotFound",
        "No rule with the id 00000000000000000000000000000000 found")
    r = served.get(f"/rules/{rid}/locks")
    assert r.headers["Content-Type"] == "application/x-json-stream"
    rows = [json.loads(x) for x in r.text.splitlines()]
    assert all(list(x) == ["scope", "name", "rse_id", "rse", "state", "rule_id"] for x in rows)  # T-36
    assert all(re.match(r"^[0-9a-f]{32}$", x["rse_id"]) and x["rule_id"] == rid for x in rows)
    # Rucio's dataset locks (one per rule, dataset and RSE), by DID and by RSE
    r2 = served.get("/locks/lab/ds?did_type=dataset")
    assert r2.headers["Content-Type"] == "application/x-json-stream"
    lk = [json.loads(x) for x in r2.text.splitlines()]
    assert len(lk) == 1 and list(lk[0]) == ["rse_id", "scope", "name", "rule_id", "account", "state",
                                            "length", "bytes", "accessed_at", "rse"]
    assert (lk[0]["scope"], lk[0]["name"], lk[0]["rule_id"], lk[0]["rse"], lk[0]["account"]) == \
        ("lab", "ds", rid, "XRD1", "root")
    assert lk[0]["state"] in ("OK", "REPLICATING", "STUCK")
    assert served.get("/locks/XRD1?did_type=dataset").text == r2.text
    assert served.get("/locks/lab/nosuch?did_type=dataset").text == ""
    r3 = served.post("/locks/bulk_locks_for_dids", data='{"dids": [{"scope": "lab", "name": "ds"}]}')
    assert r3.status_code == 200 and r3.text == r2.text
    r3 = served.get("/locks/XRD1")  # Rucio's plain-text 500 (locks.py)
    assert (r3.status_code, r3.text) == (500, "Wrong did_type specified")
    r3 = served.post("/locks/bulk_locks_for_dids", data='{}')
    assert (r3.status_code, r3.text) == (400, 'Can not find the list of DIDs in the data. Use "dids" keyword.')
    err(served.get("/locks/NOSUCH?did_type=dataset"), 404, "RSENotFound")
    r = served.req("DELETE", f"/rules/{rid}", data='{"purge_replicas": false}')
    assert r.status_code == 200 and r.text == ""
    r = served.get("/accounts/root/usage/local")
    assert r.headers["Content-Type"] == "application/x-json-stream"
    u = r.text.splitlines()[0]
    assert u.startswith('{"rse_id": ') and '"bytes_limit": Infinity, "bytes_remaining": Infinity}' in u
    r = served.post("/traces/", token=None, data="{}")
    assert r.status_code == 201


def test_replicas_sorted_by_client_site(served):
    d = served.didfs
    d("add-scope", "lab", "--account", "root")
    for rse, site in (("AAA", "SITE1"), ("BBB", "SITE2")):
        d("add-rse", rse)
        d("set-rse-attribute", "--rse", rse, "--key", "site", "--value", site)
        d("add-protocol", "--rse", rse, "--scheme", "root", "--hostname", rse.lower(), "--port", "1094",
          "--prefix", "/rucio")
        d("add-replicas", "--rse", rse, "lab:f", "5", "00000001")
    for site, first in ((None, "AAA"), ("SITE2", "BBB"), ("SITE1", "AAA")):
        body = {"dids": [{"scope": "lab", "name": "f"}], "schemes": ["root"]}
        if site:
            body["client_location"] = {"site": site}
        row = json.loads(served.post("/replicas/list", data=json.dumps(body)).text)
        best = min(row["pfns"].items(), key=lambda kv: kv[1]["priority"])
        assert best[1]["rse"] == first, (site, row["pfns"])


NAME_PAT = "'^[A-Za-z0-9][A-Za-z0-9\\\\.\\\\-\\\\_]{1,250}$'"


def name_msg(schema, spath, ipath, value):
    """jsonschema's text as Rucio's validate_schema wraps it (T-14a)."""
    return (f"Problem validating {schema} : {value!r} does not match {NAME_PAT}\n\n"
            f"Failed validating 'pattern' in schema{spath}:\n"
            f"    {{'description': 'Data Identifier name',\n     'pattern': {NAME_PAT},\n"
            f"     'type': 'string'}}\n\nOn instance{ipath}:\n    {value!r}")


def test_names_with_slash_refused_as_rucio(served):
    """Rucio's generic NAME schema forbids '/': each door answers InvalidObject
    with jsonschema's text and Rucio's status, and writes nothing."""
    from test_serve_batch import snapshot
    seed(served)
    assert served.post("/dids/lab/ds", data=json.dumps({"type": "DATASET"})).status_code == 201
    before = snapshot(served.catalog)
    # T-14a, byte for byte (its message with this request's names)
    files = [{"scope": "lab", "name": "f1.1795447507", "bytes": 123, "adler32": "0cc737eb"},
             {"scope": "lab", "name": "sub/dir/f2.1795447507", "bytes": 456, "adler32": "deadbeef",
              "md5": "d41d8cd98f00b204e9800998ecf8427e"}]
    r = served.post("/replicas", data=json.dumps({"rse": "XRD1", "files": files, "ignore_availability": True}))
    err(r, 500, "InvalidObject", name_msg("dids", "['items']['properties']['name']", "[1]['name']",
                                          "sub/dir/f2.1795447507"))
    assert r.headers["ExceptionMessage"] == (
        "Problem validating dids : 'sub/dir/f2.1795447507' does not match "
        "'^[A-Za-z0-9][A-Za-z0-9\\\\.\\\\-\\\\_]{1,250}$'  Failed validatin...")
    err(served.post("/dids/lab/a%2Fb", data=json.dumps({"type": "DATASET"})), 400, "InvalidObject",
        name_msg("name", "", "", "a/b"))
    err(served.post("/dids", data=json.dumps([{"scope": "lab", "name": "ok1", "type": "DATASET"},
                                              {"scope": "lab", "name": "x/y", "type": "DATASET"}])),
        500, "InvalidObject", name_msg("dids", "['items']['properties']['name']", "[1]['name']", "x/y"))
    err(served.post("/dids/lab/ds/dids", data=json.dumps({
        "rse": "XRD1", "dids": [{"scope": "lab", "name": "d/f", "bytes": 1, "adler32": "00000001"}]})),
        500, "InvalidObject",
        name_msg("attachment", "['properties']['dids']['items']['properties']['name']",
                 "['dids'][0]['name']", "d/f"))
    err(served.post("/dids/attachments", data=json.dumps({"attachments": [
        {"scope": "lab", "name": "ds", "dids": [{"scope": "lab", "name": "ok"}, {"scope": "lab", "name": "../x"}]}]})),
        500, "InvalidObject",
        name_msg("attachments", "['items']['properties']['dids']['items']['properties']['name']",
                 "[0]['dids'][1]['name']", "../x"))
    assert snapshot(served.catalog) == before


def test_identities_of_account(served):
    r = served.get("/accounts/root/identities")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/x-json-stream"
    assert [json.loads(x) for x in r.text.splitlines()] == [
        {"type": "USERPASS", "identity": "ddmlab", "email": "root@localhost"}]
    assert r.text.startswith('{"type": "USERPASS", "identity": "ddmlab", ')
    served.didfs("add-account", "jdoe", "--type", "USER", "--email", "jdoe@example.org")
    assert served.post("/accounts/jdoe/identities", data=json.dumps({
        "identity": "CN=John Doe,DC=org", "authtype": "X509", "email": "jdoe@example.org",
        "default": True})).status_code == 201
    r = served.get("/accounts/jdoe/identities")
    assert [json.loads(x) for x in r.text.splitlines()] == [
        {"type": "X509", "identity": "CN=John Doe,DC=org", "email": "jdoe@example.org"}]
    err(served.get("/accounts/nobody/identities"), 404, "AccountNotFound")


def test_bulk_registration_shapes(served):
    """POST /dids/<s>/<ds>/dids with `rse` (Rucio's bulk registration, read in
    one pass) and the same files in other JSON spellings (escapes, extra
    keys, another key order) register the same; bad ones get Rucio's errors
    and change nothing."""
    from test_serve_batch import snapshot
    seed(served)
    for ds in ("fa", "fb"):
        assert served.post(f"/dids/lab/{ds}", data='{"type": "DATASET"}').status_code == 201
    fast = json.dumps({"dids": [{"scope": "lab", "name": f"a{i}", "bytes": i, "adler32": "%08x" % (i + 1)}
                                for i in range(5)], "rse": "XRD1"})
    slow = ('{"rse": "XRD1", "account": null, "dids": [' + ", ".join(
        '{"adler32": "%08x", "bytes": %d, "name": "b\\u0030%d", "scope": "lab", "meta": {}}' % (i + 1, i, i)
        for i in range(5)) + ']}')
    assert served.post("/dids/lab/fa/dids", data=fast).status_code == 201
    assert served.post("/dids/lab/fb/dids", data=slow).status_code == 201
    a = [(f["bytes"], f["adler32"]) for f in served.didfs.json("list-files", "lab:fa")]
    b = [(f["bytes"], f["adler32"]) for f in served.didfs.json("list-files", "lab:fb")]
    assert len(a) == 5 and sorted(a) == sorted(b)
    assert {json.loads(x)["name"] for x in served.get("/dids/lab/fb/files").iter_lines()} == {f"b0{i}" for i in range(5)}
    before = snapshot(served.catalog)
    err(served.post("/dids/lab/fa/dids", data=fast.replace('"XRD1"', '"NOSUCH"')), 404, "RSENotFound")
    err(served.post("/dids/lab/fa/dids", data=fast.replace('"bytes": 3', '"bytes": 4')), 409,
        "FileConsistencyMismatch")
    err(served.post("/dids/lab/fa/dids", data=fast.replace('"bytes": 3', '"bytes": -3')), 400, "TypeError")
    err(served.post("/dids/lab/fa/dids", data=fast[:-3]), 400, "ValueError")
    assert snapshot(served.catalog) == before
