# SPDX-License-Identifier: Apache-2.0
# Extended attributes of `didfs mount`: catalog metadata to read
# (user.rucio.*, eos.url.xroot), rules / metadata / lifetimes to write, every
# refused write with its errno and the reason in user.rucio.error (and the
# catalog unchanged), the security/ACL probes of `ls -l`, and a rule created
# with setfattr that the replication daemons carry out while
# user.rucio.state goes REPLICATING then OK.
import errno
import os
import subprocess
import tempfile
import time
import uuid

import pytest

P = "user.rucio."


def get(path, name):
    return os.getxattr(path, name).decode()


def refused(path, name, value, err_no, cls=None, remove=False):
    with pytest.raises(OSError) as e:
        if remove:
            os.removexattr(path, name)
        else:
            os.setxattr(path, name, value.encode() if isinstance(value, str) else value)
    assert e.value.errno == err_no, (name, value, e.value)
    if cls:
        assert get(path, P + "error").startswith(cls + ":"), get(path, P + "error")


def test_read_attributes(lake, mount, make_file):
    a, b = make_file(3000), make_file(5000)
    out = lake.json("upload", a, b, "--rse", "XRD1", "--dataset", "user.root:ds")
    lake("set-metadata", f"user.root:{a.name}", "--key", "campaign", "--value", "run3")
    m = mount(lake)
    ds = m.path / "user.root" / "ds"
    f = ds / a.name
    info = {o["did"]: o for o in out}[f"user.root:{a.name}"]
    assert get(f, P + "did") == f"user.root:{a.name}"
    assert get(f, P + "type") == "FILE"
    assert get(f, P + "bytes") == "3000"
    assert get(f, P + "adler32") == info["adler32"]
    assert get(f, P + "md5") == info["md5"]
    assert get(f, P + "replicas") == f"XRD1 AVAILABLE {info['pfn']}\n"
    rules = get(f, P + "rules").splitlines()
    assert len(rules) == 1 and rules[0].split()[1:] == ["OK", "1", "XRD1"]
    assert get(f, P + "state") == "OK"
    assert get(f, P + "meta.campaign") == "run3"
    assert get(f, P + "cache") == "0"
    assert get(f, "eos.url.xroot").startswith(f"root://127.0.0.1:{lake.rses['XRD1'].port}/")
    assert get(f, "eos.url.xroot").endswith("/" + a.name)
    assert f.read_bytes() == a.read_bytes()
    assert get(f, P + "cache") == "3000"
    names = os.listxattr(f)
    for n in ("did", "type", "bytes", "adler32", "md5", "replicas", "rules", "state", "cache",
              "meta.campaign"):
        assert P + n in names, n
    assert "eos.url.xroot" in names
    assert not [n for n in names if n.startswith(("security.", "system."))]
    for n in names:
        os.getxattr(f, n)  # every listed name reads
    with pytest.raises(OSError) as e:
        os.getxattr(f, P + "meta.nothing")
    assert e.value.errno == errno.ENODATA
    with pytest.raises(OSError) as e:
        os.getxattr(f, P + "error")
    assert e.value.errno == errno.ENODATA
    # the probes of ls -l: answered without support
    for probe in ("security.selinux", "system.posix_acl_access", "system.posix_acl_default"):
        with pytest.raises(OSError) as e:
            os.getxattr(f, probe)
        assert e.value.errno == errno.EOPNOTSUPP
    # a dataset
    assert get(ds, P + "type") == "DATASET"
    assert get(ds, P + "bytes") == "8000"
    assert get(ds, P + "replicas") == "XRD1 AVAILABLE 2/2 8000\n"
    assert get(ds, P + "state") == "OK"
    assert get(ds, P + "cache") == "3000"
    assert get(ds, P + "rules").split()[1:] == ["OK", "1", "XRD1"]
    with pytest.raises(OSError) as e:
        os.getxattr(ds, P + "adler32")
    assert e.value.errno == errno.ENODATA
    # the root: cache counters
    assert int(get(m.path, P + "cache")) == 3000
    stats = dict(line.split() for line in get(m.path, P + "stats").splitlines())
    assert int(stats["bytes_cached"]) == 3000 and "hits" in stats
    # a file nobody can read
    lake("update-rse", "--rse", "XRD1", "--setting", "availability_read", "--value", "false")
    m2 = mount(lake)
    assert get(m2.path / "user.root" / "ds" / b.name, P + "state") == "NOT_AVAILABLE"
    assert get(m2.path / "user.root" / "ds", P + "state") == "NOT_AVAILABLE"


def test_writes_and_every_refusal(lake, mount, make_file):
    a = make_file(1000)
    lake("upload", a, "--rse", "XRD1", "--dataset", "user.root:w")
    m = mount(lake)
    ds = m.path / "user.root" / "w"
    f = ds / a.name
    # a rule, shown at once
    os.setxattr(f, P + "rule", b"1 XRD2 lifetime=3600 activity=Express comment=\"two words\"")
    rules = [r.split() for r in get(f, P + "rules").splitlines()]
    new = [r for r in rules if r[3] == "XRD2"]
    assert len(new) == 1 and new[0][1] in ("REPLICATING", "OK") and new[0][2] == "1"
    rid = new[0][0]
    ours = lake.json("rule-info", rid)
    ours = ours[0] if isinstance(ours, list) else ours
    assert ours["activity"] == "Express" and ours["comments"] == "two words"
    assert P + "rule." + rid in os.listxattr(f)  # a rule on the file itself
    os.setxattr(ds, P + "rule", b"1 XRD3 grouping=NONE")
    drules = get(ds, P + "rules")
    did = [r.split()[0] for r in drules.splitlines() if r.split()[3] == "XRD3"][0]
    assert P + "rule." + did in os.listxattr(ds) and P + "rule." + did not in os.listxattr(f)
    assert get(ds, P + "rule." + did).split()[1:] == ["1", "XRD3"]
    assert get(f, P + "state") == "REPLICATING"  # no daemon runs here

    before = lake.dump()
    # syntax and expressions: EINVAL
    for value, cls in (("", "InputValidationError"), ("1", "InputValidationError"),
                       ("x XRD2", "InvalidValueForKey"), ("0 XRD2", "InvalidValueForKey"),
                       ("1 XRD2 bogus=1", "InputValidationError"),
                       ("1 XRD2 lifetime=abc", "InvalidValueForKey"),
                       ("1 XRD2 grouping=SOME", "InvalidValueForKey"),
                       ("1 XRD2 locked=maybe", "InvalidValueForKey"),
                       ("1 XRD2 comment=\"open", "InputValidationError"),
                       ("1 NOSUCH", "InvalidRSEExpression"),
                       ("1 tier=9", "InvalidRSEExpression"),
                       ("1 XRD3 source_replica_expression=(XRD1", "InvalidSourceReplicaExpression")):
        refused(f, P + "rule", value, errno.EINVAL, cls)
    # not enough RSEs (or none with the weight attribute): ENOSPC
    refused(f, P + "rule", "4 XRD1|XRD2|XRD3", errno.ENOSPC, "InsufficientTargetRSEs")
    refused(f, P + "rule", "1 XRD3 weight=nosuchattr", errno.ENOSPC, "InsufficientTargetRSEs")
    # the same rule again: EEXIST
    refused(f, P + "rule", "1 XRD2", errno.EEXIST, "DuplicateRule")
    # read-only attributes: EPERM; other namespaces: EOPNOTSUPP
    refused(f, P + "bytes", "1", errno.EPERM, "UnsupportedOperation")
    refused(f, P + "did", None, errno.EPERM, remove=True)
    refused(f, P + "rule." + rid, "1 XRD3", errno.EPERM)
    refused(f, "user.other", "x", errno.EOPNOTSUPP)
    refused(f, "security.selinux", "x", errno.EOPNOTSUPP)
    refused(m.path / "user.root", P + "rule", "1 XRD2", errno.EPERM, "UnsupportedOperation")
    # metadata: bad keys
    refused(f, P + "meta.bad!key", "1", errno.EINVAL, "InvalidMetadata")
    refused(f, P + "meta.bytes", "1", errno.EPERM, "UnsupportedKeyType")
    refused(f, P + "meta.absent", None, errno.ENODATA, remove=True)
    # lifetimes: numbers only
    refused(f, P + "lifetime", "-5", errno.EINVAL, "InvalidValueForKey")
    refused(f, P + "lifetime", "soon", errno.EINVAL)
    # rules that are not there, or not here
    refused(f, P + "rule." + uuid.uuid4().hex, None, errno.ENODATA, "RuleNotFound", remove=True)
    refused(f, P + "rule." + did, None, errno.ENODATA, remove=True)  # on the dataset
    assert lake.dump() == before, "a refused write changed the catalog"

    # the error stays readable until a write succeeds or it is removed
    assert get(f, P + "error").startswith("RuleNotFound:")
    os.removexattr(f, P + "error")
    assert P + "error" not in os.listxattr(f)
    # metadata and lifetime
    os.setxattr(f, P + "meta.quality", b"good")
    assert get(f, P + "meta.quality") == "good"
    assert P + "meta.quality" in os.listxattr(f)
    os.removexattr(f, P + "meta.quality")
    assert P + "meta.quality" not in os.listxattr(f)
    os.setxattr(ds, P + "lifetime", b"3600")
    assert 3500 < int(get(ds, P + "lifetime")) <= 3600
    os.setxattr(ds, P + "lifetime", b"none")
    assert P + "lifetime" not in os.listxattr(ds)
    os.setxattr(ds, P + "lifetime", b"7200")
    os.removexattr(ds, P + "lifetime")
    assert P + "lifetime" not in os.listxattr(ds)
    # deleting rules through removexattr; a locked one refuses
    os.removexattr(ds, P + "rule." + did)
    assert did not in get(ds, P + "rules")
    os.setxattr(ds, P + "rule", b"1 XRD2 locked=true")
    locked = [r.split()[0] for r in get(ds, P + "rules").splitlines() if r.split()[3] == "XRD2"][0]
    refused(ds, P + "rule." + locked, None, errno.EPERM, "UnsupportedOperation", remove=True)
    assert P + "error" in os.listxattr(ds)
    os.setxattr(ds, P + "meta.ok", b"1")  # a success clears the error
    assert P + "error" not in os.listxattr(ds)


def test_state_stuck_when_no_source_is_allowed(lake, mount, make_file):
    a = make_file(1000)
    lake("upload", a, "--rse", "XRD1", "--dataset", "user.root:st")
    m = mount(lake)
    f = m.path / "user.root" / "st" / a.name
    # only XRD3 may serve as source, and it has no copy: the lock is stuck at once
    os.setxattr(f, P + "rule", b"1 XRD2 source_replica_expression=XRD3")
    assert get(f, P + "state") == "STUCK"
    assert any(r.split()[1] == "STUCK" for r in get(f, P + "rules").splitlines())
    # the data itself is still readable from XRD1
    assert f.read_bytes() == a.read_bytes()


def test_quota_and_permission_refusals(lake, mount, make_file):
    a = make_file(1000)
    lake("upload", a, "--rse", "XRD1", "--dataset", "user.root:q")
    rid = lake.json("list-rules", "user.root:q")[0]["id"]
    lake("add-account", "alice")
    # a mount acting as alice, who has no quota anywhere
    m = mount(lake, account="alice")
    f = m.path / "user.root" / "q" / a.name
    refused(f, P + "rule", "1 XRD2", errno.EDQUOT, "InsufficientAccountLimit")
    # ... and cannot delete root's rule
    assert get(m.path / "user.root" / "q", P + "rules").split()[0] == rid
    refused(m.path / "user.root" / "q", P + "rule." + rid, None, errno.EACCES,
            "AccessDenied", remove=True)
    # another local user may read but not write
    base = tempfile.mkdtemp(prefix="didfs-mnt-", dir="/tmp")
    os.chmod(base, 0o755)
    try:
        m2 = mount(lake, allow_other=True, path=os.path.join(base, "mnt"))
        f2 = m2.path / "user.root" / "q" / a.name
        code = ("import os, sys\n"
                "os.setgid(65534); os.setuid(65534)\n"
                "p = sys.argv[1]\n"
                "assert open(p, 'rb').read(10)\n"
                "try:\n"
                "    os.setxattr(p, 'user.rucio.rule', b'1 XRD2')\n"
                "    print('set')\n"
                "except OSError as e:\n"
                "    print(e.errno)\n")
        p = subprocess.run(["/usr/bin/python3", "-c", code, str(f2)], capture_output=True,
                           text=True, timeout=60)
        assert p.stdout.strip() == str(errno.EACCES), p.stderr
        # the reason is that user's (test_mount_error_per_uid.py), not root's
        assert P + "error" not in os.listxattr(f2)
    finally:
        m2.cleanup()
        os.rmdir(os.path.join(base, "mnt"))
        os.rmdir(base)


def write_config(tmp, rses):
    path = tmp / "daemon.conf"
    path.write_text("\n".join([
        "sleep = 1", "heartbeat.interval = 1", "heartbeat.timeout = 10",
        f"transfer.ca_path = {rses.ca_dir}", "transfer.timeout = 30",
        "transfer.connect_timeout = 5", "transfer.stall_timeout = 15",
        "transfer.tpc_timeout = 120", "judge-repairer.min_age = 3600"]) + "\n")
    return path


def test_rule_by_setfattr_is_carried_out_by_the_daemons(lake, mount, make_file, tmp_path):
    a, b = make_file(2 << 20), make_file(3 << 20)
    lake("upload", a, b, "--rse", "XRD1", "--dataset", "user.root:rep")
    m = mount(lake)
    ds = m.path / "user.root" / "rep"
    p = subprocess.run(["setfattr", "-n", P + "rule", "-v", "1 XRD2", str(ds)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert get(ds, P + "state") == "REPLICATING"
    assert get(ds / a.name, P + "state") == "REPLICATING"
    seen = {"REPLICATING"}
    log = open(tmp_path / "daemon.log", "w")
    dm = subprocess.Popen([lake.bin, "--catalog", lake.catalog, "daemon", "all", "--config",
                           str(write_config(tmp_path, lake.rses))],
                          stdout=log, stderr=subprocess.STDOUT, cwd=str(tmp_path))
    try:
        deadline = time.time() + 300
        state = None
        while time.time() < deadline:
            state = subprocess.run(["getfattr", "--only-values", "-n", P + "state", str(ds)],
                                   capture_output=True, text=True).stdout
            seen.add(state)
            if state == "OK":
                break
            time.sleep(0.5)
        assert state == "OK", (state, (tmp_path / "daemon.log").read_text()[-3000:])
    finally:
        dm.terminate()
        try:
            dm.wait(timeout=60)
        except subprocess.TimeoutExpired:
            dm.kill()
            dm.wait()
        log.close()
    assert seen <= {"REPLICATING", "OK"}, seen
    for f in (a, b):
        assert get(ds / f.name, P + "state") == "OK"
        reps = get(ds / f.name, P + "replicas")
        assert any(line.startswith("XRD2 AVAILABLE ") for line in reps.splitlines()), reps
    assert "XRD2 AVAILABLE 2/2" in get(ds, P + "replicas")
    rules = [r.split() for r in get(ds, P + "rules").splitlines()]
    assert ["OK", "1", "XRD2"] in [r[1:] for r in rules]
    # the new copy serves reads once the first one is gone
    lake.rses["XRD1"].stop()
    m.cache_dir = m.cache_dir.parent / "cache2"  # nothing cached: the bytes come from XRD2
    m.remount()
    assert (m.path / "user.root" / "rep" / b.name).read_bytes() == b.read_bytes()
