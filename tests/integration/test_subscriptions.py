# SPDX-License-Identifier: Apache-2.0
"""Subscriptions (Rucio's transmogrifier), issue 14 item 2: a subscription
creates its rules for the new DIDs that match it, only those, once each
(also across kill -9 of the daemon), whatever door registered the DID (CLI
add-dataset, add-replicas, REST); filters and rules that do not parse are
refused with a clear error and nothing is stored; the REST endpoints answer
Rucio's own SubscriptionClient (1.31.7 and 41.0.0)."""
import json
import os
import signal
from catfixture import connect_catalog
import subprocess
import textwrap
import time

import pytest

from catfixture import didfs_bin


def rse_setup(didfs):
    for r in ("SITE-ONSITE", "DC1", "DC2"):
        didfs("add-rse", r)
    for r in ("DC1", "DC2"):
        didfs("set-rse-attribute", "--rse", r, "--key", "type", "--value", "DC")
    didfs("add-scope", "ctao")
    didfs("add-scope", "other")


def rules_of(didfs, did):
    return didfs.json("list-rules", did)


def sub_rules(catalog):
    con = connect_catalog(catalog)
    try:
        return con.execute("SELECT d.scope || ':' || d.name, r.rse_expression, r.copies, s.name"
                           " FROM rules r JOIN dids d ON d.id=r.did_id"
                           " JOIN subscriptions s ON s.id=r.subscription_id ORDER BY 1, 2").fetchall()
    finally:
        con.close()


def new_count(catalog):
    con = connect_catalog(catalog)
    try:
        return con.execute("SELECT count(*) FROM dids WHERE is_new=1").fetchone()[0]
    finally:
        con.close()


def transmogrify(didfs):
    p = didfs.run("daemon", "transmogrifier", "--once", timeout=300)
    assert p.returncode == 0, p.stderr
    assert "runtime error:" not in p.stderr and "AddressSanitizer" not in p.stderr, p.stderr
    return p.stderr


def test_subscription_rules_for_matching_dids_only(didfs):
    rse_setup(didfs)
    out = didfs("add-subscription", "ctao-dl0", "--filter",
                '{"scope": ["ctao"], "pattern": "dl0_.*", "telescope": ["LST.*", "MST"]}',
                "--rules", "2 type=DC lifetime=86400 activity=T0_Export",
                "--comments", "two off-site copies")
    sub_id = out.strip()
    assert len(sub_id) == 32
    # files too, when the filter asks for them (Rucio's transmogrifier takes
    # datasets and containers only)
    didfs("add-subscription", "raw-files", "--filter", '{"did_type": ["FILE"], "pattern": "raw_"}',
          "--rules", '{"copies": 1, "rse_expression": "DC1", "grouping": "NONE"}')
    # matching: scope ctao, name dl0_*, telescope LST1 or MST
    didfs("add-dataset", "ctao:dl0_2026_12_01")
    didfs("set-metadata", "ctao:dl0_2026_12_01", "--key", "telescope", "--value", "LST1")
    # no: other scope / other name / metadata differs / metadata missing
    didfs("add-dataset", "other:dl0_2026_12_01")
    didfs("set-metadata", "other:dl0_2026_12_01", "--key", "telescope", "--value", "LST1")
    didfs("add-dataset", "ctao:dl1_2026_12_01")
    didfs("set-metadata", "ctao:dl1_2026_12_01", "--key", "telescope", "--value", "LST1")
    didfs("add-dataset", "ctao:dl0_2026_12_02")
    didfs("set-metadata", "ctao:dl0_2026_12_02", "--key", "telescope", "--value", "SST")
    didfs("add-dataset", "ctao:dl0_2026_12_03")
    # a dataset with files registered by add-replicas (the files do not match
    # ctao-dl0: no did_type FILE; raw-files wants raw_*)
    didfs("add-dataset", "ctao:dl0_2026_12_04")
    didfs("add-replicas", "--rse", "SITE-ONSITE", "--dataset", "ctao:dl0_2026_12_04",
          "ctao:evt_1", "100", "0000000a", "ctao:raw_1", "100", "0000000b")
    didfs("set-metadata", "ctao:dl0_2026_12_04", "--key", "telescope", "--value", "MST")
    # hidden DIDs never match
    didfs("add-dataset", "ctao:dl0_hidden")
    didfs("set-metadata", "ctao:dl0_hidden", "--key", "telescope", "--value", "MST")
    didfs("set-metadata", "ctao:dl0_hidden", "--key", "hidden", "--value", "true")
    assert new_count(didfs.catalog) >= 8
    log = transmogrify(didfs)
    assert "matches subscription ctao-dl0" in log
    got = sub_rules(didfs.catalog)
    assert got == [
        ("ctao:dl0_2026_12_01", "type=DC", 2, "ctao-dl0"),
        ("ctao:dl0_2026_12_04", "type=DC", 2, "ctao-dl0"),
        ("ctao:raw_1", "DC1", 1, "raw-files"),
    ], got
    con = connect_catalog(didfs.catalog)
    acct, act, exp, cmt = con.execute(
        "SELECT r.account, r.activity, r.expires_at, r.comments FROM rules r JOIN dids d"
        " ON d.id=r.did_id WHERE d.name='dl0_2026_12_01'").fetchone()
    con.close()
    assert acct == "root" and act == "T0_Export" and exp > time.time() and cmt == "ctao-dl0"
    assert new_count(didfs.catalog) == 0
    # once per DID: a second pass creates nothing
    transmogrify(didfs)
    assert sub_rules(didfs.catalog) == got
    # the subscription saw work
    s = didfs.json("list-subscriptions", "ctao-dl0")[0]
    assert s["id"] == sub_id and s["state"] == "ACTIVE" and s["last_processed"]


def test_update_and_delete_subscription(didfs, tmp_path):
    rse_setup(didfs)
    didfs("add-subscription", "s", "--filter", '{"scope": ["ctao"]}', "--rules", "1 DC1")
    didfs("update-subscription", "s", "--rules", "1 DC2", "--comments", "now DC2")
    s = didfs.json("list-subscriptions", "s")[0]
    assert s["state"] == "UPDATED" and "DC2" in s["replication_rules"]
    didfs("add-dataset", "ctao:a")
    transmogrify(didfs)
    assert [x[1] for x in sub_rules(didfs.catalog)] == ["DC2"]
    didfs("delete-subscription", "s")
    s = didfs.json("list-subscriptions", "s")[0]
    assert s["state"] == "INACTIVE" and s["expired_at"]
    didfs("add-dataset", "ctao:b")
    transmogrify(didfs)
    assert [x[0] for x in sub_rules(didfs.catalog)] == ["ctao:a"]
    # unknown subscription, non-admin
    didfs.fails("update-subscription", "nope", "--comments", "x", cls="SubscriptionNotFound")
    didfs("add-account", "jdoe", "--type", "USER")
    p = subprocess.run([didfs_bin(), "--catalog", didfs.catalog, "--account", "jdoe",
                        "add-subscription", "j", "--filter", "{}", "--rules", "1 DC1"],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "AccessDenied" in p.stderr, p.stderr


@pytest.mark.parametrize("filt,rules,cls,words", [
    ('{"scope": ["ctao"]', "1 DC1", "InvalidObject", "not valid JSON"),
    ('["ctao"]', "1 DC1", "InvalidObject", "JSON object"),
    ('{"pattern": "(("}', "1 DC1", "InvalidObject", "'pattern'"),
    ('{"scope": "ctao", "did_type": "TAPE"}', "1 DC1", "InvalidObject", "did_type"),
    ('{"scope": []}', "1 DC1", "InvalidObject", "empty list"),
    ('{"scope": [1]}', "1 DC1", "InvalidObject", "'scope'"),
    ('{"split_rule": true}', "1 DC1", "InvalidObject", "split"),
    ('{}', "two DC1", "InvalidObject", "copies"),
    ('{}', "1", "InvalidObject", "COPIES RSE_EXPRESSION"),
    ('{}', "1 DC1&", "InvalidRSEExpression", "RSE Expression"),
    ('{}', "1 DC1 lifetime=-5", "InvalidObject", "lifetime"),
    ('{}', "1 DC1 colour=blue", "InvalidObject", "unknown key 'colour'"),
    ('{}', '{"copies": 99, "rse_expression": "DC1"}', "InvalidObject", "copies"),
    ('{}', '[{"rse_expression": "DC1"}]', "InvalidObject", "no 'copies'"),
    ('{}', '{"copies": 1, "rse_expression": "DC1", "grouping": "SOME"}', "InvalidObject", "grouping"),
])
def test_bad_filters_and_rules_refused(didfs, filt, rules, cls, words):
    rse_setup(didfs)
    err = didfs.fails("add-subscription", "bad", "--filter", filt, "--rules", rules, cls=cls)
    assert words in err, err
    assert didfs.json("list-subscriptions") == []
    # and an update with the same leaves the stored subscription as it was
    didfs("add-subscription", "good", "--filter", '{"scope": ["ctao"]}', "--rules", "1 DC1")
    before = didfs.json("list-subscriptions", "good")
    didfs.fails("update-subscription", "good", "--filter", filt, "--rules", rules, cls=cls)
    assert didfs.json("list-subscriptions", "good") == before


def test_rules_once_per_did_across_kills(didfs, tmp_path):
    """kill -9 of the transmogrifier while it works through 400 new
    datasets, restarted each time: every dataset gets its rules exactly once."""
    rse_setup(didfs)
    didfs("add-subscription", "all-ctao", "--filter", '{"scope": ["ctao"]}',
          "--rules", "1 DC1", "--rules", "1 DC2 grouping=NONE")
    lst = tmp_path / "files.txt"
    n = 400
    # datasets through add-replicas --dataset is one per call; use attach-free add-dataset in bulk
    for i in range(0, n, 100):
        subprocess.run(["sh", "-c", " && ".join(
            f"{didfs_bin()} --catalog {didfs.catalog} add-dataset ctao:ds_{j:04d} >/dev/null"
            for j in range(i, i + 100))], check=True)
    cfg = tmp_path / "d.cfg"
    cfg.write_text("transmogrifier.chunk_size = 7\n")
    kills = 0
    for delay in (1.0, 1.5, 2.0):
        p = subprocess.Popen([didfs_bin(), "--catalog", didfs.catalog, "daemon", "transmogrifier",
                              "--config", str(cfg), "--sleep", "1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        kills += 1
        if new_count(didfs.catalog) == 0:
            break
    assert kills >= 1
    transmogrify(didfs)
    assert new_count(didfs.catalog) == 0
    got = sub_rules(didfs.catalog)
    assert len(got) == 2 * n, len(got)
    assert len(set(got)) == 2 * n
    con = connect_catalog(didfs.catalog)
    per = con.execute("SELECT count(*) FROM rules GROUP BY did_id").fetchall()
    con.close()
    assert set(per) == {(2,)}


# ---- REST, with Rucio's own clients ----

VERSIONS = ["1.31.7", "41.0.0"]


def py(served, v, d, code):
    os.makedirs(str(d), exist_ok=True)
    script = os.path.join(str(d), "script.py")
    with open(script, "w") as f:
        f.write("import json, sys\nfrom rucio.client import Client\nc = Client()\n" +
                textwrap.dedent(code))
    p = served.rucio(v, d, script, prog="python3")
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("v", VERSIONS)
def test_rest_subscriptions_with_rucio_client(served, tmp_path, v):
    d = served.didfs
    rse_setup(d)
    out = py(served, v, tmp_path, """
        r = {}
        sid = c.add_subscription(name='dl0', account='root',
                                 filter_={'scope': ['ctao'], 'pattern': 'dl0_.*'},
                                 replication_rules=[{'copies': 2, 'rse_expression': 'type=DC',
                                                     'lifetime': 3600, 'activity': 'T0'}],
                                 comments='CTAO DL0', lifetime=False, retroactive=False,
                                 dry_run=False)
        r['id'] = sid
        subs = list(c.list_subscriptions(name='dl0', account='root'))
        r['listed'] = [(s['name'], s['account'], json.loads(s['filter']), json.loads(s['replication_rules'])) for s in subs]
        r['state'] = str(subs[0]['state'])
        r['by_account'] = [s['name'] for s in c.list_subscriptions(account='root')]
        r['by_name'] = [s['name'] for s in c.list_subscriptions(name='dl0')]
        try:
            c.add_subscription(name='dl0', account='root', filter_={}, replication_rules=[{'copies': 1, 'rse_expression': 'DC1'}],
                               comments='', lifetime=False, retroactive=False, dry_run=False)
        except Exception as e:
            r['dup'] = type(e).__name__
        try:
            c.add_subscription(name='bad', account='root', filter_={'pattern': '(('},
                               replication_rules=[{'copies': 1, 'rse_expression': 'DC1'}],
                               comments='', lifetime=False, retroactive=False, dry_run=False)
        except Exception as e:
            r['bad'] = (type(e).__name__, str(e))
        c.add_dataset('ctao', 'dl0_run1')
        c.add_dataset('ctao', 'dl1_run1')
        print(json.dumps(r))
    """)
    assert len(out["id"]) == 32
    assert out["listed"] == [["dl0", "root", {"scope": ["ctao"], "pattern": "dl0_.*"},
                              [{"copies": 2, "rse_expression": "type=DC", "lifetime": 3600,
                                "activity": "T0"}]]]
    assert "ACTIVE" in out["state"]
    assert out["by_account"] == ["dl0"] and out["by_name"] == ["dl0"]
    assert out["dup"] == "SubscriptionDuplicate"
    assert out["bad"][0] == "InvalidObject" and "pattern" in out["bad"][1]
    # DIDs from the REST door are new too
    p = d.run("daemon", "transmogrifier", "--once")
    assert p.returncode == 0, p.stderr
    assert [x[0] for x in sub_rules(served.catalog)] == ["ctao:dl0_run1"]
    # by id, raw REST
    r = served.get(f"/subscriptions/id/{out['id']}")
    assert r.status_code == 200 and r.json()["name"] == "dl0"
    assert served.get("/subscriptions/id/00000000000000000000000000000000").status_code == 404
    out2 = py(served, v, tmp_path / "b", """
        r = {}
        r['rules'] = [(x['name'], x['rse_expression'], x['subscription_id']) for x in c.list_subscription_rules('root', 'dl0')]
        c.update_subscription(name='dl0', account='root', replication_rules=[{'copies': 1, 'rse_expression': 'DC1'}])
        s = list(c.list_subscriptions(name='dl0', account='root'))[0]
        r['updated'] = (str(s['state']), json.loads(s['replication_rules']))
        try:
            c.update_subscription(name='nope', account='root', comments='x')
        except Exception as e:
            r['missing'] = type(e).__name__
        try:  # 41.0.0 turns the 404 into [], 1.31.7 raises it
            r['none'] = list(c.list_subscriptions(name='nope', account='root'))
        except Exception as e:
            r['none'] = type(e).__name__
        print(json.dumps(r))
    """)
    assert out2["rules"] == [["dl0_run1", "type=DC", out["id"]]]
    assert "UPDATED" in out2["updated"][0] and out2["updated"][1] == [{"copies": 1, "rse_expression": "DC1"}]
    assert out2["missing"] == "SubscriptionNotFound"
    assert out2["none"] == ([] if v == "41.0.0" else "SubscriptionNotFound")
    if v == "41.0.0":
        out3 = py(served, v, tmp_path / "c", """
            c.deactivate_subscription('dl0', account='root')
            print(json.dumps(str(list(c.list_subscriptions(name='dl0', account='root'))[0]['state'])))
        """)
        assert "INACTIVE" in out3
    # raw REST errors: a filter that is not an object, no options
    r = served.post("/subscriptions/root/x", data=json.dumps({"options": {"filter": "scope=ctao",
                                                                           "replication_rules": []}}))
    assert r.status_code == 400 and r.headers["ExceptionClass"] == "InvalidObject"
    r = served.post("/subscriptions/root/x", data=json.dumps({"filter": {}}))
    assert r.status_code == 400
