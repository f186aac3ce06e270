# SPDX-License-Identifier: Apache-2.0
"""Authentication and Rucio's generic permission policy of `didfs serve`:
userpass tokens (reuse, expiry, /auth/validate), X.509 certificates and RFC
3820 proxies through the TLS session, a USER account refused where Rucio
refuses it."""
import os
import subprocess
import time

import pytest
import requests

from servefixture import USER_DN, Served
from test_serve_clients import py


def test_token_reuse_validate_and_unknown(served):
    tok = served.token()
    r = served.get("/accounts/whoami", token=tok, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "root"
    r = served.get("/auth/validate", token=tok)
    assert r.status_code == 200 and r.text.startswith("{'account': 'root', 'identity': 'ddmlab'")
    r = served.get("/accounts/whoami", token=tok + "x")
    assert r.status_code == 401 and r.headers["ExceptionClass"] == "CannotAuthenticate"
    r = served.session.get(served.url + "/auth/userpass",
                           headers={"X-Rucio-Username": "ddmlab", "X-Rucio-Password": "wrong"})
    assert r.status_code == 401 and r.json()["ExceptionClass"] == "IdentityNotFound"
    r = served.session.get(served.url + "/auth/userpass",
                           headers={"X-Rucio-Username": "ddmlab", "X-Rucio-Password": "secret",
                                    "X-Rucio-Account": "nobody"})
    assert r.status_code == 401
    assert r.json()["ExceptionMessage"] == "Cannot authenticate to account nobody with given credentials"


def test_token_expiry(tmp_path, serve_pki):
    s = Served(tmp_path, serve_pki, extra_args=["--token-lifetime", "1"])
    try:
        tok = s.token()
        assert s.get("/accounts/root", token=tok).status_code == 200
        time.sleep(2.1)
        r = s.get("/accounts/root", token=tok)
        assert r.status_code == 401 and r.json()["ExceptionClass"] == "CannotAuthenticate"
        # Rucio's client re-authenticates on the 401 and goes on
        out = py(s, "41.0.0", tmp_path / "c", "print(json.dumps(c.whoami()['account']))")
        assert out == "root"
    finally:
        s.stop()


def _add_x509(served, dn):
    served.didfs("add-account", "tuser", "--type", "USER")
    tok = served.token()
    r = served.post("/accounts/tuser/identities", token=tok,
                    data='{"identity": "%s", "authtype": "X509", "email": "t@example.org", "default": true}' % dn)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("v", ["1.31.7", "41.0.0"])
def test_x509_certificate_and_proxy(served, tmp_path, v):
    _add_x509(served, USER_DN)
    for auth in ("x509", "x509_proxy"):
        cfg = served.rucio_cfg(tmp_path / auth, auth_type=auth, account="tuser")
        p = served.rucio(v, tmp_path / auth, "whoami", cfg=cfg)
        assert "tuser" in p.stdout and "USER" in p.stdout, p.stdout
    # a proxy on /auth/x509 is refused; no certificate at all is "Cannot get DN"
    pki = served.pki
    r = requests.get(served.url + "/auth/x509", verify=served.ca,
                     cert=(os.path.join(pki, "proxy.pem"), os.path.join(pki, "proxy.pem")))
    assert r.status_code == 401
    r = requests.get(served.url + "/auth/x509", verify=served.ca)
    assert r.status_code == 401 and r.json()["ExceptionMessage"].startswith("Cannot get DN")


def test_x509_legacy_dn_format(tmp_path, serve_pki):
    s = Served(tmp_path, serve_pki, legacy_dn=True)
    try:
        _add_x509(s, "/DC=org/DC=didfs/OU=Users/CN=Test User")
        r = requests.get(s.url + "/auth/x509_proxy", verify=s.ca,
                         cert=(os.path.join(serve_pki, "proxy.pem"), os.path.join(serve_pki, "proxy.pem")))
        assert r.status_code == 200, r.text
        assert r.headers["X-Rucio-Auth-Token"].startswith("tuser-/DC=org/DC=didfs/OU=Users/CN=Test User-")
    finally:
        s.stop()


def test_user_account_policy(served, tmp_path):
    d = served.didfs
    d("add-account", "jdoe", "--type", "USER")
    d("add-identity", "jdoe", "--username", "jdoe", "--password", "jdoepw")
    d("add-scope", "user.jdoe", "--account", "jdoe")
    d("add-scope", "lab", "--account", "root")
    d("add-rse", "MOCK1")
    d("set-account-limit", "jdoe", "MOCK1", "-1")
    d("add-dataset", "lab:rootds")
    rootrule = d("add-rule", "lab:rootds", "1", "MOCK1").split()[-1]
    before = d("list-dids", "lab:*")
    jt = served.token("jdoe", "jdoepw")
    r = served.post("/rses/JDOE_RSE", token=jt, data="{}")
    assert r.status_code == 401 and r.json() == {"ExceptionClass": "AccessDenied",
                                                 "ExceptionMessage": "Account jdoe can not add RSE"}
    r = served.post("/dids/lab/jdoe.ds", token=jt, data='{"type": "DATASET"}')
    assert r.status_code == 401 and r.json()["ExceptionClass"] == "AccessDenied"
    r = served.req("DELETE", f"/rules/{rootrule}", token=jt, data='{"purge_replicas": false}')
    assert r.status_code == 401 and r.json()["ExceptionClass"] == "AccessDenied"
    r = served.post("/rules/", token=jt, data='{"dids": [{"scope": "lab", "name": "rootds"}], '
                    '"account": "root", "copies": 1, "rse_expression": "MOCK1"}')
    assert r.status_code == 401 and r.json()["ExceptionClass"] == "AccessDenied"
    assert d("list-dids", "lab:*") == before
    assert rootrule in d("list-rules", "lab:rootds")
    # in its own scope it may
    r = served.post("/dids/user.jdoe/mine", token=jt, data='{"type": "DATASET"}')
    assert r.status_code == 201, r.text
