# SPDX-License-Identifier: Apache-2.0
"""The monitoring web UI of `didfs serve` (/ui, server/ui.c) in a real
headless Chromium (Debian's chromium + chromium-driver, python3-selenium)
against a real server over https (tests/env/servefixture.py), with a real
replication by `didfs daemon` between real XRootD storage elements
(tests/env/rsefixture.py, the Engine of test_engine.py).

Cases: every page redirects to the login without a session; a wrong
password is refused and sets no cookie; the session cookie is HttpOnly,
Secure, SameSite=Strict; the X.509 login with the test user certificate;
a non-admin account is refused (the UI is admin only); metadata
with HTML metacharacters are shown as text; a rule seen REPLICATING turns
OK in the open page without a reload, a rule to an RSE without protocols is
shown stuck with its reason, and the transfer matrix counts the files.

Screenshots go to $DIDFS_ARTIFACTS, else <build>/artifacts/webui/.  The
tests skip, naming what is missing, without chromium, chromedriver or
selenium.  Waits are bounded polls; nothing asserts on time.
"""
import os
import re
import shutil
import subprocess
import time
import urllib.parse

import pytest
import requests

from catfixture import build_dir

DEADLINE = 180.0
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PAGES = ["/ui", "/ui/rules", "/ui/rule?id=x", "/ui/stuck", "/ui/transfers", "/ui/rses",
         "/ui/daemons", "/ui/dids", "/ui/dids?scope=mock", "/ui/did?scope=mock&name=x"]


def artifacts_dir():
    d = os.environ.get("DIDFS_ARTIFACTS") or os.path.join(build_dir(), "artifacts")
    d = os.path.join(d, "webui")
    os.makedirs(d, exist_ok=True)
    return d


def wait_until(pred, what, timeout=DEADLINE, interval=0.3, on_timeout=None):
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = pred()
        except Exception:  # the page is being swapped by the refresh
            v = None
        if v:
            return v
        if time.monotonic() > deadline:
            extra = on_timeout() if on_timeout else ""
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}\n{extra}")
        time.sleep(interval)


class Browser:
    def __init__(self, tmp, name):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        self.By = By
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--ignore-certificate-errors", "--window-size=1400,1000",
                  "--no-proxy-server", f"--user-data-dir={tmp}/chromium-profile"):
            opts.add_argument(a)
        self.d = webdriver.Chrome(service=Service(CHROMEDRIVER, log_path=os.path.join(str(tmp), "chromedriver.log")),
                                  options=opts)
        self.d.set_page_load_timeout(120)
        self.name = name
        self.n = 0

    def get(self, url):
        self.d.get(url)

    def css(self, sel):
        return self.d.find_elements(self.By.CSS_SELECTOR, sel)

    def one(self, sel):
        return self.d.find_element(self.By.CSS_SELECTOR, sel)

    def shot(self, what):
        self.n += 1
        path = os.path.join(artifacts_dir(), f"{self.name}-{self.n:02d}-{what}.png")
        self.d.save_screenshot(path)
        return path

    def login(self, url, user="ddmlab", password="secret"):
        self.get(url + "/ui/rules")
        wait_until(lambda: self.css("#username"), "the login form")
        self.one("#username").send_keys(user)
        self.one("#password").send_keys(password)
        self.one("#login").click()

    def quit(self):
        self.d.quit()


@pytest.fixture
def browser(tmp_path, request):
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not found: install chromium and chromium-driver "
                    "(scripts/deps-webui.txt)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("python3-selenium is not installed (scripts/deps-webui.txt)")
    b = Browser(tmp_path, request.node.name)
    try:
        yield b
    finally:
        b.quit()


def session(served):
    s = requests.Session()
    s.verify = served.ca
    s.trust_env = False
    return s


def ui_login(served, user="ddmlab", password="secret"):
    """A requests session logged in through the form; returns (session, response)."""
    s = session(served)
    r = s.post(served.url + "/ui/login", data={"username": user, "password": password},
               allow_redirects=False)
    return s, r


# ---------------------------------------------------------------------------------------------


def test_pages_need_a_login(served):
    s = session(served)
    for page in PAGES:
        r = s.get(served.url + page, allow_redirects=False)
        assert r.status_code == 303, (page, r.status_code, r.text[:300])
        loc = r.headers["Location"]
        assert loc.startswith("/ui/login"), loc
        # back to the page after the login
        nxt = urllib.parse.parse_qs(urllib.parse.urlparse(loc).query).get("next", [""])[0]
        assert nxt.split("?")[0] == page.split("?")[0], (page, loc)
    # a token of the API is no session, and a made-up cookie neither
    tok = served.token()
    r = s.get(served.url + "/ui/rules", headers={"X-Rucio-Auth-Token": tok}, allow_redirects=False)
    assert r.status_code == 303
    r = s.get(served.url + "/ui/rules", cookies={"didfs_ui": "root-ddmlab-webui-" + "0" * 32},
              allow_redirects=False)
    assert r.status_code == 303
    # read-only: nothing but GET (and the login form's POST)
    s2, r = ui_login(served)
    assert r.status_code == 303
    for m in ("POST", "PUT", "DELETE"):
        r = s2.request(m, served.url + "/ui/rules", allow_redirects=False)
        assert r.status_code == 405, (m, r.status_code)
        assert r.headers["ExceptionClass"] == "MethodNotAllowed"
    # the login page itself and the static files need none
    assert s.get(served.url + "/ui/login").status_code == 200
    assert "setInterval" in s.get(served.url + "/ui/static/app.js").text
    # the login's next= never leads off /ui
    r = s.post(served.url + "/ui/login", data={"username": "ddmlab", "password": "secret",
                                               "next": "//evil.example/ui"}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/ui/rules"


def test_login_wrong_password_then_right(served, browser):
    browser.get(served.url + "/ui/transfers")
    wait_until(lambda: browser.css("#username"), "the login page")
    assert "/ui/login" in browser.d.current_url
    browser.one("#username").send_keys("ddmlab")
    browser.one("#password").send_keys("wrong")
    browser.one("#login").click()
    err = wait_until(lambda: browser.css("#login-error"), "the refusal")
    assert "Username/Password pair does not exist" in err[0].text
    assert not [c for c in browser.d.get_cookies() if c["name"] == "didfs_ui"]
    browser.shot("wrong-password")
    # then the right one: back to the page first asked for
    browser.one("#username").clear()
    browser.one("#username").send_keys("ddmlab")
    browser.one("#password").send_keys("secret")
    browser.one("#login").click()
    wait_until(lambda: browser.d.current_url.endswith("/ui/transfers"), "the transfers page")
    cookie = [c for c in browser.d.get_cookies() if c["name"] == "didfs_ui"]
    assert cookie and cookie[0]["httpOnly"] and cookie[0]["secure"], cookie
    assert cookie[0]["sameSite"] == "Strict", cookie
    assert cookie[0]["path"] == "/ui"
    assert "root" in browser.one("header .who").text
    browser.shot("logged-in")
    # log out: the pages want a login again, and the old cookie is dead
    old = cookie[0]["value"]
    browser.get(served.url + "/ui/logout")
    browser.get(served.url + "/ui/rules")
    wait_until(lambda: browser.css("#username"), "the login page after logging out")
    r = session(served).get(served.url + "/ui/rules", cookies={"didfs_ui": old}, allow_redirects=False)
    assert r.status_code == 303

    # the same check over plain HTTP: the refusal is Rucio's class, no cookie
    s, r = ui_login(served, password="nope")
    assert r.status_code == 401 and "Set-Cookie" not in r.headers
    assert "Username/Password pair does not exist" in r.text


def test_x509_login_and_non_admin_refused(served):
    from servefixture import USER_DN
    d = served.didfs
    d("add-account", "jdoe", "--type", "USER", "--email", "j@example.org")
    d("add-identity", "jdoe", "--username", "jdoe", "--password", "pw-jdoe")
    # userpass: logged in, but the UI is for admins
    s, r = ui_login(served, "jdoe", "pw-jdoe")
    assert r.status_code == 303, r.text
    r = s.get(served.url + "/ui/rules", allow_redirects=False)
    assert r.status_code == 403, r.status_code
    assert "AccessDenied" in r.text and "admin" in r.text and "jdoe" in r.text
    # and so is every other page (the catalog's overview calls refuse it too)
    for page in PAGES[1:]:
        assert s.get(served.url + page, allow_redirects=False).status_code == 403, page
    # X.509: the certificate's DN mapped to an admin account logs in
    r = served.post("/accounts/root/identities",
                    json={"identity": USER_DN, "authtype": "X509", "email": "t@example.org", "default": True})
    assert r.status_code == 201, r.text
    c = session(served)
    c.cert = (os.path.join(served.pki, "user.pem"), os.path.join(served.pki, "user.key"))
    page = c.get(served.url + "/ui/login")
    assert "log in with your certificate" in page.text and "Test User" in page.text
    r = c.get(served.url + "/ui/login/x509?next=/ui/daemons", allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/ui/daemons", (r.status_code, r.text[:500])
    assert "HttpOnly" in r.headers["Set-Cookie"] and "SameSite=Strict" in r.headers["Set-Cookie"]
    r = c.get(served.url + "/ui/daemons")
    assert r.status_code == 200 and "Daemons" in r.text
    # without a certificate there is no X.509 login
    r = session(served).get(served.url + "/ui/login/x509", allow_redirects=False)
    assert r.status_code == 401 and "Set-Cookie" not in r.headers


def test_html_metacharacters_are_escaped(served, browser):
    d = served.didfs
    evil = "<script>alert(1)</script> & \"quoted\" 'single'"
    d("add-scope", "mock", "--account", "root")
    d("add-dataset", "mock:ds_esc")
    d("set-metadata", "mock:ds_esc", "note", evil)
    browser.login(served.url)
    wait_until(lambda: browser.css("#rules"), "the rules page")
    browser.get(served.url + "/ui/dids?scope=mock")
    link = wait_until(lambda: browser.css("#dids a"), "the DID list")
    assert link[0].text == "mock:ds_esc"
    link[0].click()
    wait_until(lambda: browser.css("#did-name"), "the DID page")
    assert browser.one("#did-name").text == "mock:ds_esc"
    row = browser.css("#meta tr.meta td")
    assert row and row[0].text == evil
    # nothing of it became markup
    assert not browser.css("main script") and not browser.css("main b")
    browser.shot("escaped")
    src = browser.d.page_source
    assert "<script>alert(1)" not in src


def test_rule_replicating_to_ok_stuck_rule_and_matrix(served, rses, browser, tmp_path):
    from test_engine import Engine, files_of
    eng = Engine(served.didfs, rses, tmp_path)
    try:
        d = served.didfs
        files = files_of("w", 3, lambda i: 20000 + 1000 * i)
        d("add-dataset", "mock:webds")
        eng.register("XRD3", files, dataset="mock:webds")
        rule = d("add-rule", "mock:webds", "1", "XRD1").strip()
        # an RSE without any protocol: the transfer to it can only fail
        d("add-rse", "NOPROTO")
        lonely = {"mock:lonely": os.urandom(5000)}
        eng.register("XRD3", lonely)
        stuck = d("add-rule", "mock:lonely", "1", "NOPROTO").strip()

        browser.login(served.url)
        wait_until(lambda: browser.css("#rules"), "the rules page")
        row = wait_until(lambda: browser.css(f"tr.rule[data-id='{rule}']"), "the rule's row")
        assert row[0].get_attribute("data-state") == "REPLICATING"
        browser.get(served.url + f"/ui/rule?id={rule}")
        wait_until(lambda: browser.css("#rule"), "the rule page")
        assert browser.one("#rule").get_attribute("data-state") == "REPLICATING"
        per_rse = browser.css("#rule-rses .rse-locks")
        assert [(e.get_attribute("data-rse"), e.get_attribute("data-replicating")) for e in per_rse] == \
            [("XRD1", "3")]
        browser.shot("replicating")
        # a mark in this document: a reload would lose it
        browser.d.execute_script("window.__didfs_mark = 42;")
        dm = eng.start("all", extra={"conveyor.max_retries": 1, "conveyor.retry_delay": 0})

        def dump():
            return dm.log_text()[-4000:] + "\n" + d("list-transfers")[-2000:]

        # no reload: the page's own refresh shows the new state
        wait_until(lambda: browser.one("#rule").get_attribute("data-state") == "OK",
                   "the open rule page to show OK", on_timeout=dump)
        assert "/ui/rule?id=" in browser.d.current_url
        assert browser.d.execute_script("return window.__didfs_mark;") == 42, "the page was reloaded"
        per_rse = browser.css("#rule-rses .rse-locks")
        assert [(e.get_attribute("data-rse"), e.get_attribute("data-ok")) for e in per_rse] == \
            [("XRD1", "3")]
        browser.shot("ok")
        assert d.json("rule-info", rule)["state"] == "OK"

        # the stuck rule, with the reason
        eng.wait_rule(stuck, "STUCK", timeout=DEADLINE)
        browser.get(served.url + "/ui/stuck")
        sec = wait_until(lambda: browser.css(f"section.stuck-rule[data-id='{stuck}']"), "the stuck rule")
        text = sec[0].text
        info = d.json("rule-info", stuck)
        assert info["error"] and info["error"][:40] in text, (info["error"], text)
        reasons = [e.text for e in sec[0].find_elements(browser.By.CSS_SELECTOR, "td.reason")]
        assert len(reasons) == 1 and "NOPROTO" in sec[0].text
        assert reasons[0] and "no transfer error recorded" not in reasons[0], reasons
        browser.shot("stuck")
        browser.get(served.url + "/ui/rules?state=STUCK")
        wait_until(lambda: browser.css("#rules"), "the filtered rules")
        ids = [e.get_attribute("data-id") for e in browser.css("tr.rule")]
        assert ids == [stuck], ids

        # the matrix: 3 files XRD3 -> XRD1, their bytes; the failure towards NOPROTO
        browser.get(served.url + "/ui/transfers")
        link = wait_until(lambda: browser.css("tr.link[data-src='XRD3'][data-dst='XRD1']"), "the link row")
        assert link[0].find_element(browser.By.CSS_SELECTOR, "td.files").text == "3"
        assert link[0].find_element(browser.By.CSS_SELECTOR, "td.failures").text == "0"
        total = sum(len(v) for v in files.values())
        shown = link[0].find_elements(browser.By.CSS_SELECTOR, "td")[3].text
        assert shown == f"{total / 1024:.1f} KiB", shown
        fail = [e for e in browser.css("tr.link") if e.get_attribute("data-dst") == "NOPROTO"]
        assert fail and fail[0].find_element(browser.By.CSS_SELECTOR, "td.failures").text == "1"
        assert fail[0].find_element(browser.By.CSS_SELECTOR, "td.files").text == "0"
        browser.shot("transfers")

        # daemons alive, RSE usage, the DID browser down to the replicas
        browser.get(served.url + "/ui/daemons")
        rows = wait_until(lambda: browser.css("tr.daemon[data-alive='1']"), "live daemons")
        names = {r.get_attribute("data-executable") for r in rows}
        assert any("conveyor" in n for n in names), names
        browser.shot("daemons")
        d("set-account-limit", "root", "XRD1", "1000000")
        browser.get(served.url + "/ui/rses")
        row = wait_until(lambda: browser.css("tr.rse[data-rse='XRD1']"), "the RSE row")
        assert "root" in row[0].find_element(browser.By.CSS_SELECTOR, ".quota").text
        browser.shot("rses")
        browser.get(served.url + "/ui/dids")
        wait_until(lambda: browser.css("#scopes a"), "the scopes")
        [a for a in browser.css("#scopes a") if a.text == "mock"][0].click()
        wait_until(lambda: browser.css("#dids a"), "the scope's DIDs")
        [a for a in browser.css("#dids a") if a.text == "mock:webds"][0].click()
        content = wait_until(lambda: browser.css("#content a"), "the dataset's content")
        assert sorted(a.text for a in content) == sorted(files)
        assert rule in browser.one("#did-rules").text
        content[0].click()
        reps = wait_until(lambda: browser.css("#replicas tr.replica"), "the file's replicas")
        assert sorted(r.get_attribute("data-rse") for r in reps) == ["XRD1", "XRD3"]
        browser.shot("did")
        assert dm.stop() == 0
    finally:
        eng.stop_all()
