# SPDX-License-Identifier: Apache-2.0
# user.rucio.error is kept per calling uid (issue 12, item 8): on an
# --allow-other mount one user neither reads nor clears another's refusal
# messages; each sees and clears only its own.
import errno
import os
import subprocess
import tempfile

P = "user.rucio."

AS_USER = r"""
import errno, json, os, sys
uid = int(sys.argv[1]); os.setgid(uid); os.setuid(uid)
out = {}
for step in sys.argv[3:]:
    p = sys.argv[2]
    try:
        if step == "set":
            os.setxattr(p, "user.rucio.rule", b"1 XRD2")
            out[step] = "ok"
        elif step == "get":
            out[step] = os.getxattr(p, "user.rucio.error").decode()
        elif step == "list":
            out[step] = "user.rucio.error" in os.listxattr(p)
        elif step == "clear":
            os.removexattr(p, "user.rucio.error")
            out[step] = "ok"
    except OSError as e:
        out[step] = e.errno
print(json.dumps(out))
"""


def as_user(uid, path, *steps):
    import json
    p = subprocess.run(["/usr/bin/python3", "-c", AS_USER, str(uid), str(path), *steps],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_refusal_messages_are_per_uid(lake, mount, make_file):
    a = make_file(1000)
    lake("upload", a, "--rse", "XRD1", "--dataset", "user.root:pu")
    base = tempfile.mkdtemp(prefix="didfs-mnt-", dir="/tmp")
    os.chmod(base, 0o755)
    m = None
    try:
        m = mount(lake, allow_other=True, path=os.path.join(base, "mnt"))
        f = m.path / "user.root" / "pu" / a.name
        # root's own refusal: a bad expression
        try:
            os.setxattr(f, P + "rule", b"1 (((")
            raise AssertionError("a bad expression was accepted")
        except OSError as e:
            assert e.errno == errno.EINVAL
        mine = os.getxattr(f, P + "error").decode()
        assert mine.startswith("InvalidRSEExpression:"), mine

        # another user: refused (no credentials), sees only its own reason
        r = as_user(65534, f, "get")
        assert r["get"] == errno.ENODATA, f"another user read root's refusal: {r}"
        r = as_user(65534, f, "set")
        assert r["set"] == errno.EACCES, r
        r = as_user(65534, f, "get")
        assert r["get"].startswith("AccessDenied:"), r
        assert os.getxattr(f, P + "error").decode() == mine, "the other user's refusal replaced root's"

        # the other user cannot clear root's message, only its own
        r = as_user(65534, f, "clear", "list")
        assert r["clear"] == "ok" and r["list"] is False, r
        assert os.getxattr(f, P + "error").decode() == mine
        os.removexattr(f, P + "error")
        assert P + "error" not in os.listxattr(f)
    finally:
        if m:
            m.cleanup()
        os.rmdir(os.path.join(base, "mnt"))
        os.rmdir(base)
