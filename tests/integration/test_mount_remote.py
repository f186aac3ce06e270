# SPDX-License-Identifier: Apache-2.0
# The remote mount (issue 11): `didfs mount --server URL` against a real
# `didfs serve` over TLS on loopback, real XRootD RSEs, `didfs daemon` on the
# server's catalog, a real FUSE mount.  Listing (names with '/'), stat,
# byte-exact reads, the notebook through the remote mount, a rule set with
# setfattr carried out by the daemon (REPLICATING -> OK seen through the
# mount), the server stopped (cached paths and data still read, uncached
# ones fail fast) and back (new datasets appear after the TTL), and each
# local user acting as themselves: two users with their own X.509 proxies
# create rules as their own accounts, a user without credentials is refused
# with EACCES and nothing reaches the server.
import errno
import hashlib
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import pytest

from catfixture import didfs_bin
from servefixture import Served, _ssl

P = "user.rucio."
USERS = ("didfs-mr1", "didfs-mr2")
TTL = 2  # --dir-ttl and the catalog cache's $DIDFS_REST_TTL


class Remote:
    """What mountfixture needs of a runner: the binary and the catalog (the URL)."""

    def __init__(self, url):
        self.bin = didfs_bin()
        self.catalog = url
        self.account = None


def make_user_proxy(pki, d, cn, owner=None):
    """A user certificate signed by the test CA and an RFC 3820 proxy of it
    (chain + key in one 0600 file); returns (RFC 2253 DN, proxy path)."""
    os.makedirs(d, exist_ok=True)
    tag = cn.replace(" ", "_")
    ext = os.path.join(d, "user.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=clientAuth\n")
    pext = os.path.join(d, "proxy.ext")
    with open(pext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,"
                "keyEncipherment\nproxyCertInfo=critical,language:id-ppl-inheritAll\n")
    subj = f"/DC=org/DC=didfs/OU=Users/CN={cn}"
    _ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{tag}.key", "-out", f"{tag}.csr",
         "-subj", subj, cwd=d)
    _ssl("x509", "-req", "-in", f"{tag}.csr", "-CA", os.path.join(pki, "ca.pem"),
         "-CAkey", os.path.join(pki, "ca.key"), "-CAcreateserial", "-out", f"{tag}.pem",
         "-days", "2", "-extfile", ext, cwd=d)
    _ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{tag}.pkey", "-out", f"{tag}.pcsr",
         "-subj", subj + "/CN=424242", cwd=d)
    _ssl("x509", "-req", "-in", f"{tag}.pcsr", "-CA", f"{tag}.pem", "-CAkey", f"{tag}.key",
         "-set_serial", "424242", "-out", f"{tag}.pcrt", "-days", "1", "-extfile", pext, cwd=d)
    out = os.path.join(d, f"{tag}.proxy")
    with open(out, "w") as o:
        for part in (f"{tag}.pcrt", f"{tag}.pkey", f"{tag}.pem"):
            o.write(open(os.path.join(d, part)).read())
    os.chmod(out, 0o600)
    return f"CN={cn},OU=Users,DC=didfs,DC=org", out


def add_x509_identity(served, account, dn):
    r = served.post(f"/accounts/{account}/identities",
                    data=json.dumps({"identity": dn, "authtype": "X509",
                                     "email": f"{account}@example.org", "default": True}))
    assert r.status_code == 201, r.text


def access_lines(served, method=None):
    """Requests in serve's access log (of one method: a change is a POST,
    PUT or DELETE; the mount's poller keeps reading meanwhile)."""
    try:
        with open(served.access_log) as f:
            return sum(1 for ln in f if method is None or f'"{method}' in ln)
    except OSError:
        return 0


AS_USER = r"""
import json, os, sys
out = []
for step in sys.argv[1:]:
    op, _, rest = step.partition(":")
    try:
        if op == "set":
            path, name, value = rest.split("|")
            os.setxattr(path, name, value.encode())
            out.append("ok")
        elif op == "get":
            path, name = rest.split("|")
            out.append(os.getxattr(path, name).decode())
        elif op == "read":
            import hashlib
            with open(rest, "rb") as f:
                out.append(hashlib.md5(f.read()).hexdigest())
    except OSError as e:
        out.append(e.errno)
print(json.dumps(out))
"""


def run_as(pw, *steps, env=None):
    e = {"PATH": "/usr/bin:/bin", "HOME": "/"}
    e.update(env or {})
    p = subprocess.run(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                        "--clear-groups", "--", "/usr/bin/python3", "-c", AS_USER, *steps],
                       capture_output=True, text=True, timeout=120, env=e)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def wait_for(what, fn, timeout=120, every=0.5):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not reached in {timeout} s (last: {last!r})")


@pytest.fixture
def remote(tmp_path, serve_pki, rses, monkeypatch):
    """didfs serve on the RSEs' catalog, a rucio.cfg for the mount (userpass
    root), the serve CA trusted next to the storage CA."""
    probe = subprocess.run([didfs_bin(), "--catalog", "https://127.0.0.1:1", "list-scopes"],
                           capture_output=True, text=True, timeout=60)
    if "has no Rucio REST catalog client" in probe.stderr:
        pytest.skip("this build has no REST catalog backend (catalog/rest/, branch restcat)")
    os.makedirs(tmp_path / "srv", exist_ok=True)
    s = Served(tmp_path / "srv", serve_pki)
    try:
        rses.register(s.catalog, s.didfs.bin)
        s.didfs("add-scope", "user.root", "--account", "root")
        for r in ("XRD1", "XRD2", "XRD3"):
            s.didfs("set-account-limit", "root", r, "-1")
        s.trust_at(rses)
        monkeypatch.setenv("X509_CERT_DIR", str(rses.ca_dir))
        monkeypatch.setenv("RUCIO_CONFIG", s.rucio_cfg(tmp_path / "cfg"))
        monkeypatch.setenv("DIDFS_REST_TTL", str(TTL))
        monkeypatch.delenv("RUCIO_HOME", raising=False)
        yield s
    finally:
        s.stop()


def md5(p):
    return hashlib.md5(open(p, "rb").read()).hexdigest()


def upload_with_slash_name(served, rses, tmp_path, make_file, dataset):
    """plain.dat uploaded to XRD1, and the same bytes registered under the
    Rucio name run/2026/a.dat (copied to its deterministic path on the
    RSE, then add-replicas --list):
    {name: local file}."""
    d = served.didfs
    f = make_file(300_000, name="plain.dat")
    d("upload", f, "--rse", "XRD1", "--dataset", dataset)
    meta = d.json("get-metadata", "user.root:plain.dat")
    pfn = d("lfn2pfn", "--rse", "XRD1", "user.root:run/2026/a.dat", "--scheme", "root").split()[-1]
    path = "/" + pfn.split("://", 1)[1].split("/", 1)[1]
    disk = rses["XRD1"].local_path(path)
    os.makedirs(os.path.dirname(disk), exist_ok=True)
    shutil.copy(f, disk)
    lst = tmp_path / "slash.list"
    lst.write_text(f"user.root:run/2026/a.dat {f.stat().st_size} {meta['adler32']} {meta['md5']}\n")
    d("add-replicas", "--rse", "XRD1", "--list", lst, "--dataset", dataset)
    return {"plain.dat": f, "run/2026/a.dat": f}


def test_remote_mount_reads_writes_and_survives_the_server(remote, rses, mount, make_file, tmp_path):
    served = remote
    d = served.didfs
    ds = "user.root:rmt"
    files = upload_with_slash_name(served, rses, tmp_path, make_file, ds)
    m = mount(Remote(served.url), timeout=5, dir_ttl=TTL)
    try:
        root = m.path / "user.root"
        assert "rmt" in os.listdir(root)
        dsp = root / "rmt"
        assert sorted(os.listdir(dsp)) == ["plain.dat", "run"]
        assert os.listdir(dsp / "run" / "2026") == ["a.dat"]
        for nm, f in files.items():
            st = os.stat(dsp / nm)
            assert st.st_size == f.stat().st_size
            assert md5(dsp / nm) == md5(f), nm
        assert os.getxattr(dsp / "plain.dat", P + "did").decode() == "user.root:plain.dat"

        # a rule through the mount, carried out by the daemon on the server
        os.setxattr(dsp, P + "rule", b"1 XRD2")
        rules = d.json("list-rules", ds)
        mine = [r for r in rules if r["rse_expression"] == "XRD2"]
        assert len(mine) == 1 and mine[0]["account"] == "root", rules
        # no daemon runs yet: the rule waits
        seen = os.getxattr(dsp, P + "state").decode()
        assert seen == "REPLICATING", seen
        daemon = subprocess.Popen([d.bin, "--catalog", served.catalog, "daemon", "all"],
                                  stdout=open(tmp_path / "daemon.log", "w"), stderr=subprocess.STDOUT)
        try:
            wait_for("OK through the mount",
                     lambda: os.getxattr(dsp, P + "state").decode() == "OK", timeout=300)
        finally:
            daemon.terminate()
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()

        # the server goes away: what the mount has seen stays readable
        # (seen afresh here: the rule's write dropped the dataset's cached
        # listing, as a change does)
        assert sorted(os.listdir(dsp)) == ["plain.dat", "run"]
        stats = os.getxattr(m.path, P + "stats").decode()
        assert "catalog_server " + served.url in stats, stats
        cache = dict(ln.split(" ", 1) for ln in
                     os.getxattr(m.path, P + "cache").decode().splitlines()[1:])
        assert int(cache["catalog_entries"]) >= 4 and cache["catalog_reachable"] == "1", cache
        served.stop()
        for nm, f in files.items():
            assert os.stat(dsp / nm).st_size == f.stat().st_size
            assert md5(dsp / nm) == md5(f), nm
        assert sorted(os.listdir(dsp)) == ["plain.dat", "run"]
        t0 = time.time()
        with pytest.raises(OSError) as ei:
            os.stat(root / "never-looked-up")
        took = time.time() - t0
        assert ei.value.errno in (errno.ENOTCONN, errno.EIO), ei.value
        assert took < 60, f"an uncached lookup waited {took:.1f} s with the server down"
        with pytest.raises(OSError) as ei:
            os.listdir(m.path / "user.root" / "other-never-seen")
        assert ei.value.errno in (errno.ENOTCONN, errno.EIO), ei.value

        # a change with the server down: ENOTCONN, the reason kept
        with pytest.raises(OSError) as ei:
            os.setxattr(dsp, P + "rule", b"1 XRD3")
        assert ei.value.errno == errno.ENOTCONN, ei.value
        assert os.getxattr(dsp, P + "error").decode().startswith("ServerUnreachable:")
        cache = dict(ln.split(" ", 1) for ln in
                     os.getxattr(m.path, P + "cache").decode().splitlines()[1:])
        assert cache["catalog_reachable"] == "0", cache

        # back: a new dataset appears after the TTL
        served.restart()
        served.didfs("add-dataset", "user.root:later")
        def later_seen():
            try:
                return "later" in os.listdir(root)
            except OSError as e:  # within the client's back-off: still "unreachable"
                assert e.errno == errno.ENOTCONN, e
                return False
        wait_for("the new dataset through the mount", later_seen, timeout=120)
        assert os.getxattr(root / "later", P + "type").decode() == "DATASET"
        assert m.mounted()
    finally:
        m.cleanup()


@pytest.fixture(scope="module")
def users():
    if os.geteuid() != 0:
        pytest.skip("needs root to create OS users")
    out = {}
    for u in USERS:
        try:
            pwd.getpwnam(u)
        except KeyError:
            subprocess.run(["useradd", "-M", "-s", "/bin/false", u], check=True)
        out[u] = pwd.getpwnam(u)
    return out


def setup_users(served, users, tmp_path, make_file):
    """Accounts mruser1/2 with identities for the DNs of two local users'
    own proxies, placed at /tmp/x509up_u<uid> (owned by them, 0600); a
    dataset to set rules on.  Returns (file, proxies)."""
    d = served.didfs
    f = make_file(40_000)
    d("upload", f, "--rse", "XRD1", "--dataset", "user.root:shared")
    placed = []
    for i, u in enumerate(USERS):
        acc = f"mruser{i + 1}"
        d("add-account", acc, "--type", "USER")
        for r in ("XRD1", "XRD2", "XRD3"):
            d("set-account-limit", acc, r, "-1")
        dn, proxy = make_user_proxy(served.pki, str(tmp_path / f"pki-{u}"), f"Mount User{i + 1}")
        add_x509_identity(served, acc, dn)
        dst = f"/tmp/x509up_u{users[u].pw_uid}"
        shutil.copy(proxy, dst)
        os.chown(dst, users[u].pw_uid, users[u].pw_gid)
        os.chmod(dst, 0o600)
        placed.append(dst)
    return f, placed


def rules_of(d, did):
    return sorted((r["account"], r["rse_expression"]) for r in d.json("list-rules", did))


def test_remote_users_act_as_themselves(remote, mount, make_file, tmp_path, users):
    """Two local users, each mapped to its account and holding its own
    proxy, create rules as those accounts, authenticated by the server with
    their own proxies (not the mount's userpass login); a user with neither
    credentials nor a map entry is refused and nothing reaches the server."""
    served = remote
    d = served.didfs
    f, placed = setup_users(served, users, tmp_path, make_file)
    base = tempfile.mkdtemp(prefix="didfs-mr-", dir="/tmp")
    os.chmod(base, 0o755)
    umap = os.path.join(base, "uidmap")
    with open(umap, "w") as out:
        out.write(f"{USERS[0]} mruser1\n{users[USERS[1]].pw_uid} mruser2\n")
    m = None
    try:
        m = mount(Remote(served.url), timeout=5, dir_ttl=TTL, allow_other=True,
                  path=os.path.join(base, "mnt"), extra=["--uid-map", umap])
        dsp = m.path / "user.root" / "shared"
        os.listdir(dsp)
        x509_before = access_lines(served, "GET /auth/x509_proxy")
        r1 = run_as(users[USERS[0]], f"set:{dsp}|{P}rule|1 XRD2")
        r2 = run_as(users[USERS[1]], f"set:{dsp}|{P}rule|1 XRD3")
        assert r1 == ["ok"] and r2 == ["ok"], (r1, r2, m.log_text()[-3000:])
        got = rules_of(d, "user.root:shared")
        assert ("mruser1", "XRD2") in got and ("mruser2", "XRD3") in got, got
        # each logged in with its own proxy
        assert access_lines(served, "GET /auth/x509_proxy") - x509_before >= 2, served.tail()
        # ... through the mount's private copies (0600 in a 0700 directory)
        creds = m.cache_dir / "creds"
        assert os.stat(creds).st_mode & 0o777 == 0o700
        copies = sorted(os.listdir(creds))
        assert copies == sorted(f"proxy_u{users[u].pw_uid}" for u in USERS), copies
        assert all(os.stat(creds / c).st_mode & 0o777 == 0o600 for c in copies)

        # no credentials, no map entry: EACCES, and nothing reaches the server
        before = d.dump()
        changes = [access_lines(served, x) for x in ("POST ", "PUT ", "DELETE ")]
        nobody = pwd.getpwuid(65534)
        r = run_as(nobody, f"set:{dsp}|{P}rule|1 XRD1", f"get:{dsp}|{P}error")
        assert r[0] == errno.EACCES, r
        assert r[1].startswith("AccessDenied: uid 65534 may not change the catalog"), r
        assert "no credentials of its own were found" in r[1], r
        assert d.dump() == before
        assert [access_lines(served, x) for x in ("POST ", "PUT ", "DELETE ")] == changes, \
            "a refused change reached the server"
        assert run_as(nobody, f"read:{dsp / f.name}") == [md5(f)], "reads stay open to every user"
        m.unmount()
        assert os.listdir(creds) == [], "copies of users' proxies outlived the mount"
    finally:
        if m:
            m.cleanup()
        for p in placed:
            if os.path.exists(p):
                os.unlink(p)
        shutil.rmtree(base, ignore_errors=True)


def test_remote_user_with_own_proxy_and_no_map_entry(remote, mount, make_file, tmp_path, users):
    """A user not in the map but with its own proxy acts as its identity's
    default account."""
    served = remote
    d = served.didfs
    f, placed = setup_users(served, users, tmp_path, make_file)
    base = tempfile.mkdtemp(prefix="didfs-mr-", dir="/tmp")
    os.chmod(base, 0o755)
    m = None
    try:
        m = mount(Remote(served.url), timeout=5, dir_ttl=TTL, allow_other=True,
                  path=os.path.join(base, "mnt"))
        dsp = m.path / "user.root" / "shared"
        os.listdir(dsp)
        r1 = run_as(users[USERS[0]], f"set:{dsp}|{P}rule|1 XRD2", f"get:{dsp}|{P}error")
        assert r1[0] == "ok", r1
        assert ("mruser1", "XRD2") in rules_of(d, "user.root:shared")
    finally:
        if m:
            m.cleanup()
        for p in placed:
            if os.path.exists(p):
                os.unlink(p)
        shutil.rmtree(base, ignore_errors=True)


def test_notebook_through_the_remote_mount(remote, mount, tmp_path):
    """The DESIGN.md user story over the network: h5py and pandas read
    straight from a --server mount in a notebook executed by nbconvert."""
    h5py = pytest.importorskip("h5py")
    np = pytest.importorskip("numpy")
    pytest.importorskip("pandas")
    from test_mount_notebook import notebook
    nbconvert = shutil.which("jupyter-nbconvert", path="/usr/bin:" + os.environ.get("PATH", ""))
    if not nbconvert:
        pytest.skip("jupyter-nbconvert is not installed (scripts/deps-fs.txt)")
    served = remote
    src = tmp_path / "src"
    src.mkdir()
    h5 = src / "obs_r01.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("events/energy", data=np.arange(100000, dtype="f8") * 0.25,
                         chunks=(4096,), compression="gzip")
        f.attrs["telescope"] = "CTA-S"
    csv = src / "runs.csv"
    csv.write_text("run,events\n" + "".join(f"{i},{i * 3}\n" for i in range(500)))
    served.didfs("upload", h5, csv, "--rse", "XRD1", "--dataset", "user.root:nb_remote")
    m = mount(Remote(served.url), timeout=10, dir_ttl=TTL)
    ds = m.path / "user.root" / "nb_remote"
    nb = tmp_path / "remote.ipynb"
    nb.write_text(json.dumps(notebook([
        f"import h5py, pandas as pd, numpy as np\nDS = {str(ds)!r}",
        "with h5py.File(DS + '/obs_r01.h5', 'r') as f:\n"
        "    e = f['events/energy'][:]\n"
        "    tel = f.attrs['telescope']\n"
        "assert e.shape == (100000,) and e[99999] == 99999 * 0.25 and tel == 'CTA-S'",
        "df = pd.read_csv(DS + '/runs.csv')\n"
        "assert len(df) == 500 and df.events.sum() == 3 * 499 * 500 // 2\n"
        "print('remote checked', len(df), 'runs and', e.size, 'events')",
    ])))
    out = tmp_path / "remote-executed.ipynb"
    env = dict(os.environ, PATH="/usr/bin:/bin:" + os.environ.get("PATH", ""))
    p = subprocess.run([nbconvert, "--to", "notebook", "--execute", str(nb), "--output", str(out),
                        "--ExecutePreprocessor.timeout=300"],
                       capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr[-4000:]
    text = ""
    for c in json.loads(out.read_text())["cells"]:
        for o in c.get("outputs", []):
            t = o.get("text", "")
            text += "".join(t) if isinstance(t, list) else t
    assert "remote checked 500 runs and 100000 events" in text, text
    assert int(os.getxattr(ds / "obs_r01.h5", P + "cache")) > 0
