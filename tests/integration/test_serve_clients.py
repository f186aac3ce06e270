# SPDX-License-Identifier: Apache-2.0
"""Rucio's real clients (1.31.7 and 41.0.0, ../shared/peers/rucio-clients)
against `didfs serve` over https with a verified test CA: the `rucio`
command for whoami/ping, the Python API (rucio.client.Client, the same in
both versions) for the catalog calls."""
import json
import os
import re
import textwrap

import pytest

VERSIONS = ["1.31.7", "41.0.0"]


def no_insecure(p):
    assert "InsecureRequestWarning" not in p.stderr, p.stderr


def py(served, v, d, code, cfg=None):
    """Run code with `c = Client()`; it prints one JSON value as its last line."""
    os.makedirs(str(d), exist_ok=True)
    script = os.path.join(str(d), "script.py")
    with open(script, "w") as f:
        f.write("import json, sys\nfrom rucio.client import Client\nc = Client()\n" +
                textwrap.dedent(code))
    p = served.rucio(v, d, script, prog="python3", cfg=cfg)
    no_insecure(p)
    return json.loads(p.stdout.strip().splitlines()[-1])


def setup_rse(served):
    d = served.didfs
    d("add-rse", "MOCK1")
    d("add-protocol", "--rse", "MOCK1", "--scheme", "root", "--hostname", "127.0.0.1",
      "--port", "1094", "--prefix", "/rucio")
    d("set-account-limit", "root", "MOCK1", "1000000")


@pytest.mark.parametrize("v", VERSIONS)
def test_whoami_ping(served, tmp_path, v):
    p = served.rucio(v, tmp_path, "whoami")
    no_insecure(p)
    assert "root" in p.stdout and "SERVICE" in p.stdout
    p = served.rucio(v, tmp_path, "ping")
    assert "1.31.7" in p.stdout


@pytest.mark.parametrize("v", VERSIONS)
def test_catalog_calls(served, tmp_path, v):
    setup_rse(served)
    served.didfs("add-scope", "user.root", "--account", "root")
    served.didfs("add-replicas", "--rse", "MOCK1", "user.root:f1", "10", "0000000b")
    out = py(served, v, tmp_path, """
        r = {}
        c.add_scope('root', 'user.root') if 'user.root' not in c.list_scopes() else None
        r['scopes'] = c.list_scopes()
        c.add_dataset('user.root', 'ds1')
        c.attach_dids('user.root', 'ds1', [{'scope': 'user.root', 'name': 'f1'}])
        r['files'] = [f['name'] for f in c.list_files('user.root', 'ds1')]
        r['content'] = [(f['name'], f['type']) for f in c.list_content('user.root', 'ds1')]
        r['dids'] = sorted(c.list_dids('user.root', {'name': '*'}, did_type='all'))
        r['dids_long'] = [str(x['did_type']) for x in c.list_dids('user.root', [{'name': 'ds*'}], did_type='dataset', long=True)]
        r['rses'] = [x['rse'] for x in c.list_rses('MOCK1')]
        r['all_rses'] = [x['rse'] for x in c.list_rses()]
        reps = list(c.list_replicas([{'scope': 'user.root', 'name': 'ds1'}], schemes=['root']))
        r['pfns'] = [p for x in reps for p in x['pfns']]
        c.set_metadata('user.root', 'ds1', 'project', 'demo')
        r['meta'] = c.get_metadata('user.root', 'ds1')['project']
        c.close('user.root', 'ds1')
        r['open'] = c.get_did('user.root', 'ds1')['open']
        rid = c.add_replication_rule([{'scope': 'user.root', 'name': 'ds1'}], 1, 'MOCK1')[0]
        r['rule'] = c.get_replication_rule(rid)['rse_expression']
        r['rules'] = [x['id'] for x in c.list_replication_rules({'scope': 'user.root', 'name': 'ds1'})] == [rid]
        c.delete_replication_rule(rid)
        r['limits'] = c.get_local_account_limits('root')
        r['usage'] = [u['rse'] for u in c.get_local_account_usage('root')]
        print(json.dumps(r, default=str))
    """)
    assert out["scopes"] == ["user.root"]
    assert out["files"] == ["f1"]
    assert out["content"] == [["f1", "FILE"]]
    assert out["dids"] == ["ds1", "f1"]
    assert out["dids_long"] == (["DIDType.DATASET"] if v == "1.31.7" else ["DATASET"])
    assert out["rses"] == ["MOCK1"] and out["all_rses"] == ["MOCK1"]
    want = served.didfs("lfn2pfn", "--rse", "MOCK1", "user.root:f1").split()[-1]
    # root:// PFNs carry the absolute path as Rucio lists them (root://host:port//path)
    assert out["pfns"] == [want.replace("root://127.0.0.1:1094/", "root://127.0.0.1:1094//")]
    assert out["meta"] == "demo"
    assert out["open"] is False
    assert out["rule"] == "MOCK1" and out["rules"] is True
    assert out["limits"] == {"MOCK1": 1000000}
    assert "MOCK1" in out["usage"]


@pytest.mark.parametrize("v", VERSIONS)
def test_errors_become_rucio_exceptions(served, tmp_path, v):
    out = py(served, v, tmp_path, """
        from rucio.common import exception as E
        r = {}
        for name, f in [('did', lambda: c.get_did('nosuch', 'x')),
                        ('expr', lambda: list(c.list_rses('tier=1|'))),
                        ('rule', lambda: c.get_replication_rule('0' * 32))]:
            try:
                f()
                r[name] = 'no error'
            except E.RucioException as e:
                r[name] = type(e).__name__
        print(json.dumps(r))
    """)
    assert out == {"did": "DataIdentifierNotFound", "expr": "InvalidRSEExpression",
                   "rule": "RuleNotFound"}


def test_cli_list_dids_filters_and_rules(served, tmp_path):
    """The 1.31.7 `rucio` command's list-dids with --filter, add-rule, rule-info, delete-rule."""
    setup_rse(served)
    d = served.didfs
    d("add-scope", "user.root", "--account", "root")
    d("add-dataset", "user.root:big")
    d("add-dataset", "user.root:small")
    d("add-replicas", "--rse", "MOCK1", "--dataset", "user.root:big", "user.root:a", "10", "0000000b",
      "user.root:b", "20", "0000000c")
    v = "1.31.7"
    out = served.rucio(v, tmp_path, "list-dids", "user.root:*", "--filter", "type=dataset").stdout
    assert "user.root:big" in out and "user.root:small" in out and "user.root:a " not in out
    out = served.rucio(v, tmp_path, "list-dids", "user.root:*", "--filter", "type=file,bytes>15").stdout
    assert "user.root:b" in out and "user.root:a " not in out
    rid = served.rucio(v, tmp_path, "add-rule", "user.root:big", "1", "MOCK1").stdout.split()[-1]
    assert len(rid) == 32
    out = served.rucio(v, tmp_path, "rule-info", rid).stdout
    assert "MOCK1" in out and "big" in out and rid in out
    served.rucio(v, tmp_path, "delete-rule", rid)
    assert rid not in d("list-rules", "user.root:big")
    out = served.rucio(v, tmp_path, "list-account-limits", "root").stdout
    assert "MOCK1" in out
    out = served.rucio(v, tmp_path, "list-account-usage", "root").stdout
    assert "MOCK1" in out


@pytest.mark.parametrize("v", VERSIONS)
def test_locks_and_identities(served, tmp_path, v):
    """LockClient (dataset locks by RSE, by DID, bulk through a container),
    AccountClient.list_identities and the rules associated with a file (its
    locks') of the real clients."""
    setup_rse(served)
    served.didfs("add-scope", "user.root", "--account", "root")
    served.didfs("add-replicas", "--rse", "MOCK1", "user.root:lf1", "10", "0000000b")
    out = py(served, v, tmp_path, """
        c.add_dataset('user.root', 'lds')
        c.attach_dids('user.root', 'lds', [{'scope': 'user.root', 'name': 'lf1'}])
        c.add_container('user.root', 'lcont')
        c.attach_dids('user.root', 'lcont', [{'scope': 'user.root', 'name': 'lds'}])
        rid = c.add_replication_rule([{'scope': 'user.root', 'name': 'lds'}], 1, 'MOCK1')[0]
        k = lambda l: (l['scope'], l['name'], l['rse'], l['rule_id'], l['account'])
        print(json.dumps({'rid': rid,
                          'by_rse': [k(l) for l in c.get_dataset_locks_by_rse('MOCK1')],
                          'by_did': [k(l) for l in c.get_dataset_locks('user.root', 'lds')],
                          'bulk': [k(l) for l in c.get_locks_for_dids([{'scope': 'user.root', 'name': 'lcont'}])],
                          'ids': [(i['type'], i['identity']) for i in c.list_identities('root')],
                          'assoc': [x['id'] for x in c.list_associated_rules_for_file('user.root', 'lf1')]}))
    """)
    want = [["user.root", "lds", "MOCK1", out["rid"], "root"]]
    assert out["by_rse"] == want and out["by_did"] == want and out["bulk"] == want
    assert out["ids"] == [["USERPASS", "ddmlab"]]
    assert out["assoc"] == [out["rid"]]


@pytest.mark.parametrize("v", VERSIONS)
def test_list_dids_filters_metadata(served, tmp_path, v):
    """Rucio's `filters` with metadata set through the client: equality,
    numeric comparisons, wildcards, != (a DID without the key never
    matches), ';' OR and ',' AND from the `rucio list-dids --filter` string,
    created_before/created_after, DID columns."""
    setup_rse(served)
    d = served.didfs
    d("add-scope", "user.root", "--account", "root")
    out = py(served, v, tmp_path, """
        from rucio.common.utils import parse_did_filter_from_string_fe as fe
        for n in ('d1', 'd2', 'd3'):
            c.add_dataset('user.root', n)
        c.set_metadata('user.root', 'd1', 'project', 'alpha')
        c.set_metadata('user.root', 'd1', 'run', '5')
        c.set_metadata('user.root', 'd2', 'project', 'beta')
        c.set_metadata('user.root', 'd2', 'run', '12')
        def q(s):
            filters, t = fe(s, '*')
            return sorted(c.list_dids('user.root', filters, did_type='dataset'))
        print(json.dumps({s: q(s) for s in [
            'project=alpha', 'run>6', 'run<=5', 'project=al*', 'project=alpha;project=beta',
            'project=beta,run<10', 'project=beta,run>=12', 'project!=alpha', '4<run<13',
            'created_after=2000-01-01T00:00:00.000Z', 'created_before=2000-01-01T00:00:00.000Z',
            'length=0', 'name=d*,project=beta', 'nokey=x']}))
    """)
    assert out == {
        "project=alpha": ["d1"], "run>6": ["d2"], "run<=5": ["d1"], "project=al*": ["d1"],
        "project=alpha;project=beta": ["d1", "d2"], "project=beta,run<10": [],
        "project=beta,run>=12": ["d2"], "project!=alpha": ["d2"], "4<run<13": ["d1", "d2"],
        "created_after=2000-01-01T00:00:00.000Z": ["d1", "d2", "d3"],
        "created_before=2000-01-01T00:00:00.000Z": [], "length=0": ["d1", "d2", "d3"],
        "name=d*,project=beta": ["d2"], "nokey=x": []}
    if v == "1.31.7":  # the command line sends the same
        p = served.rucio(v, tmp_path, "list-dids", "user.root:*", "--filter", "run>6;project=alpha")
        assert "user.root:d2" in p.stdout and "user.root:d1" in p.stdout and "user.root:d3" not in p.stdout


@pytest.mark.parametrize("v", VERSIONS)
def test_replica_sorting_by_client_location(served, tmp_path, v):
    """list_replicas sorts by the client's location: its site's RSE first in
    the lan domain; sort=geoip by distance from the client's coordinates to
    the RSEs' (an RSE without coordinates last); the metalink the same."""
    d = served.didfs
    d("add-scope", "user.root", "--account", "root")
    for rse, site, lat, lon in (("GVA", "CERN", "46.23", "6.05"), ("ROM", "INFN", "41.90", "12.50"),
                                ("NYC", "BNL", "40.87", "-72.88"), ("NOWHERE", "X", None, None)):
        d("add-rse", rse)
        d("set-rse-attribute", "--rse", rse, "--key", "site", "--value", site)
        if lat:
            d("update-rse", "--rse", rse, "--setting", "latitude", "--value", lat)
            d("update-rse", "--rse", rse, "--setting", "longitude", "--value", lon)
        d("add-protocol", "--rse", rse, "--scheme", "root", "--hostname", rse.lower() + ".example.org",
          "--port", "1094", "--prefix", "/rucio")
        d("add-replicas", "--rse", rse, "user.root:sorted.dat", "10", "0000000b")
    out = py(served, v, tmp_path, """
        dids = [{'scope': 'user.root', 'name': 'sorted.dat'}]
        def order(**kw):
            r = list(c.list_replicas(dids, schemes=['root'], **kw))[0]
            pf = sorted(r['pfns'].items(), key=lambda x: x[1]['priority'])
            return [(p[1]['rse'], p[1]['domain'], p[1]['priority']) for p in pf]
        res = {'site': order(client_location={'site': 'BNL'}),
               'rome': order(client_location={'latitude': 41.8, 'longitude': 12.4}, sort='geoip'),
               'ny': order(client_location={'site': 'INFN', 'latitude': 40.7, 'longitude': -74.0}, sort='geoip'),
               'closeness': order(client_location={'site': 'INFN'}, sort='closeness')}
        ml = c.list_replicas(dids, schemes=['root'], metalink=True, client_location={'site': 'CERN'})
        res['metalink'] = ml if isinstance(ml, str) else ''.join(ml)
        print(json.dumps(res))
    """)
    assert out["site"][0] == ["NYC", "lan", 1] and [x[1] for x in out["site"][1:]] == ["wan"] * 3
    assert [x[0] for x in out["rome"]] == ["ROM", "GVA", "NYC", "NOWHERE"]
    assert [x[0] for x in out["ny"]] == ["NYC", "GVA", "ROM", "NOWHERE"]
    assert [x[2] for x in out["ny"]] == [1, 2, 3, 4]
    assert out["closeness"][0][:2] == ["ROM", "lan"]
    urls = re.findall(r'<url location="([A-Z]+)" domain="([a-z]+)" priority="(\d)"', out["metalink"])
    assert urls[0] == ("GVA", "lan", "1") and [u[1] for u in urls[1:]] == ["wan"] * 3
