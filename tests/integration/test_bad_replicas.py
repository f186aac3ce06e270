# SPDX-License-Identifier: Apache-2.0
"""Bad replicas (issue 14 item 5, first half): `didfs declare-bad-replicas`
and the necromancer daemon on real XRootD servers.  A replica corrupted on
storage is found by a read (`didfs download`), declared, re-copied from the
good replica by the repairer and the conveyor, the rule back to OK, and the
necromancer records it RECOVERED; a file whose only replica is declared bad
is marked LOST with Rucio's LOST message.  Bad input changes nothing."""
from catfixture import connect_catalog
import subprocess

from test_integrity import corrupt, disk_path, run_daemons_until, sha, states, two_copies


def bad_rows(lake):
    con = connect_catalog(lake.catalog)
    try:
        return con.execute("SELECT d.name, r.rse, b.state, b.reason FROM bad_replicas b"
                           " JOIN dids d ON d.id=b.did_id JOIN rses r ON r.num=b.rse_num"
                           " ORDER BY b.created_at").fetchall()
    finally:
        con.close()


def q(lake, sql, *args):
    con = connect_catalog(lake.catalog)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def rule_state(lake, rule):
    return lake.json("rule-info", rule)["state"]


def test_corrupted_replica_found_by_download_is_repaired_and_recovered(lake, make_file, tmp_path):
    a, did = two_copies(lake, make_file, "heal", size=3 << 20)
    rule = lake("add-rule", did, "1", "XRD1").strip()
    assert rule_state(lake, rule) == "OK"
    corrupt(lake, "XRD1", did, off=1 << 20)
    p = lake.run("download", did, "--rse", "XRD1", "--dir", tmp_path / "out")
    # the only allowed source is corrupted: the download fails, declares it
    assert "declared suspicious" in p.stderr, p.stderr
    assert states(lake, did)["XRD1"] == "BAD"
    assert rule_state(lake, rule) == "STUCK"
    err = run_daemons_until(lake, tmp_path, ["judge-repairer", "conveyor", "necromancer"],
                            "conveyor.retry_delay = 1\njudge-repairer.min_age = 1\n",
                            lambda: [r[2] for r in bad_rows(lake)] == ["R"], timeout=120)
    assert [r[:3] for r in bad_rows(lake)] == [(a.name, "XRD1", "R")], err[-3000:]
    assert states(lake, did) == {"XRD1": "AVAILABLE", "XRD2": "AVAILABLE"}
    assert rule_state(lake, rule) == "OK"
    with open(disk_path(lake, "XRD1", did), "rb") as f:
        assert sha(f.read()) == sha(a.read_bytes())
    assert "recovered" in err


def test_only_replica_declared_bad_is_marked_lost(lake, make_file, tmp_path):
    a = make_file(100000)
    lake("add-dataset", "user.root:lostds")
    lake("upload", a, "--rse", "XRD1", "--dataset", "user.root:lostds")
    did = f"user.root:{a.name}"
    rule = lake("add-rule", did, "1", "XRD1").strip()
    before = lake.dump()
    # bad input: no reason, no such replica, not an admin: nothing changes
    lake.fails("declare-bad-replicas", "--rse", "XRD1", did, cls="InvalidObject")
    lake.fails("declare-bad-replicas", "--rse", "XRD2", "--reason", "x", did, cls="ReplicaNotFound")
    lake.fails("declare-bad-replicas", "--rse", "XRD1", "--reason", "x", did, "user.root:nope",
               cls="DataIdentifierNotFound")
    lake("add-account", "jdoe", "--type", "USER")
    p = subprocess.run([lake.bin, "--catalog", lake.catalog, "--account", "jdoe",
                        "declare-bad-replicas", "--rse", "XRD1", "--reason", "x", did],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "AccessDenied" in p.stderr, p.stderr
    after = lake.dump()
    for t in ("bad_replicas", "replicas", "locks", "rules"):
        assert before[t] == after[t], t
    out = lake("declare-bad-replicas", "--rse", "XRD1", "--reason", "disk died", did)
    assert "Declared 1 replica(s)" in out
    assert bad_rows(lake) == [(a.name, "XRD1", "B", "disk died")]
    assert states(lake, did) == {"XRD1": "BAD"}
    assert rule_state(lake, rule) == "STUCK"
    p = lake.run("daemon", "necromancer", "--once")
    assert p.returncode == 0, p.stderr
    assert "1 lost" in p.stderr, p.stderr
    assert [r[2] for r in bad_rows(lake)] == ["L"]
    assert q(lake, "SELECT availability FROM dids WHERE name=?", a.name) == [("L",)]
    lost = q(lake, "SELECT payload FROM messages WHERE event_type='LOST'")
    assert len(lost) == 1 and '"dataset_name":"lostds"' in lost[0][0], lost
    # settled once: a second pass does nothing more
    p = lake.run("daemon", "necromancer", "--once")
    assert "settled" not in p.stderr
    assert len(q(lake, "SELECT payload FROM messages WHERE event_type='LOST'")) == 1


def test_rest_declare_bad_file_replicas_with_rucio_client(served, tmp_path):
    """POST /replicas/bad and /replicas/bad/dids as Rucio's ReplicaClient calls
    them: declared replicas turn BAD; unknown ones and PFNs come back
    undeclared ({rse: [...]}), the others are still declared."""
    import json
    import os
    import textwrap
    d = served.didfs
    d("add-rse", "MOCK1")
    d("add-scope", "user.root", "--account", "root")
    d("add-replicas", "--rse", "MOCK1", "user.root:b1", "10", "0000000b",
      "user.root:b2", "10", "0000000b", "user.root:b3", "10", "0000000b")
    os.makedirs(str(tmp_path), exist_ok=True)
    script = tmp_path / "s.py"
    script.write_text("import json\nfrom rucio.client import Client\nc = Client()\n" + textwrap.dedent("""
        r = {}
        r['a'] = c.declare_bad_file_replicas([{'scope': 'user.root', 'name': 'b1', 'rse': 'MOCK1'},
                                              {'scope': 'user.root', 'name': 'nope', 'rse': 'MOCK1'},
                                              'root://x//y/z'], 'checksum mismatch')
        r['b'] = c.declare_bad_did_replicas('MOCK1', [{'scope': 'user.root', 'name': 'b2'}], 'lost disk')
        print(json.dumps(r))
    """))
    p = served.rucio("41.0.0", tmp_path, script, prog="python3")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert list(out["a"]) == ["MOCK1", "unknown"] or set(out["a"]) == {"MOCK1", "unknown"}, out
    assert len(out["a"]["MOCK1"]) == 1 and "nope" in out["a"]["MOCK1"][0]
    assert "PFN" in out["a"]["unknown"][0]
    assert out["b"] == {}
    st = {r["name"]: r["state"] for r in d.json("list-file-replicas", "user.root:b1", "--all-states")}
    assert st == {"b1": "BAD"}, st
    st = {r["name"]: r["state"] for r in d.json("list-file-replicas", "user.root:b3", "--all-states")}
    assert st == {"b3": "AVAILABLE"}
    con = connect_catalog(served.catalog)
    rows = sorted(con.execute("SELECT d.name, b.state, b.reason FROM bad_replicas b JOIN dids d"
                              " ON d.id=b.did_id").fetchall())
    con.close()
    assert rows == [("b1", "B", "checksum mismatch"), ("b2", "B", "lost disk")]
