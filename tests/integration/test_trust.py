# Who may act as whom in the embedded mode (issue 12, item 6): the OS user
# who owns the catalog file, and root, may act as any account; any other OS
# user acts only as the accounts mapped to it (a LOCAL identity), else reads
# only.  Before, anyone who could write the file acted as root.
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

from catfixture import Didfs, didfs_bin

USERS = ("didfs-t1", "didfs-t2")
# the embedded trust model: the owner of the catalog file (PostgreSQL's
# server authenticates its clients itself: store_pg.c)
pytestmark = pytest.mark.sqlite_only("who may act as whom follows the catalog file's owner")


@pytest.fixture(scope="module")
def users():
    if os.geteuid() != 0:
        pytest.skip("needs root to create OS users")
    for u in USERS:
        try:
            pwd.getpwnam(u)
        except KeyError:
            subprocess.run(["useradd", "-M", "-s", "/bin/false", u], check=True)
    return USERS


@pytest.fixture
def shared(users):
    """A catalog owned by root in a directory every user can write, the
    file itself writable by all: only the trust model stands between the
    other users and root's account."""
    d = tempfile.mkdtemp(prefix="didfs-trust-", dir="/tmp")
    os.chmod(d, 0o1777)
    cat = Didfs(os.path.join(d, "catalog.db"))
    cat("init", "--root-password", "pw")
    cat("add-account", "alice")
    cat("add-scope", "user.alice", "--account", "alice")
    cat("add-scope", "mock")
    cat("add-dataset", "mock:ds")
    os.chmod(cat.catalog, 0o666)
    yield cat
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def user_binary():
    """A copy of didfs that the unprivileged users can run wherever the build
    tree is (it links only system libraries)."""
    global EX
    d = tempfile.mkdtemp(prefix="didfs-bin-", dir="/tmp")
    os.chmod(d, 0o755)
    EX = os.path.join(d, "didfs")
    shutil.copy2(didfs_bin(), EX)
    os.chmod(EX, 0o755)
    yield EX
    shutil.rmtree(d, ignore_errors=True)


EX = None


def as_user(user, cat, *args):
    return subprocess.run(["runuser", "-u", user, "--", EX, "--catalog", cat.catalog,
                           *map(str, args)], capture_output=True, text=True, timeout=60)


def unchanged(cat, user, *args, contains):
    before = cat.dump()
    p = as_user(user, cat, *args)
    assert p.returncode == 1, (args, p.stdout, p.stderr)
    assert "didfs: AccessDenied:" in p.stderr and contains in p.stderr, p.stderr
    assert cat.dump() == before, f"catalog changed by a refused {args}"
    return p.stderr


def test_other_user_cannot_act_as_root(shared):
    u = USERS[0]
    unchanged(shared, u, "--account", "root", "add-scope", "evil",
              contains=f"OS user {u}")
    unchanged(shared, u, "--account", "root", "set-account-attribute", u, "--key", "admin",
              "--value", "true", contains="may only read")
    # without --account: the default issuer is no way around it
    unchanged(shared, u, "add-scope", "evil", contains="may only read")


def test_unmapped_user_reads(shared):
    p = as_user(USERS[0], shared, "--json", "list-scopes")
    assert p.returncode == 0, p.stderr
    assert "user.alice" in p.stdout and "mock" in p.stdout


def test_mapped_user_acts_only_as_its_account(shared):
    u = USERS[0]
    shared("add-identity", "alice", "--type", "local", "--identity", u)
    p = as_user(u, shared, "whoami")
    assert p.returncode == 0 and "alice" in p.stdout, p.stdout + p.stderr
    p = as_user(u, shared, "add-dataset", "user.alice:mine")
    assert p.returncode == 0, p.stderr
    assert any(d["did"] == "user.alice:mine" for d in shared.json("list-dids", "user.alice:*"))
    unchanged(shared, u, "--account", "root", "add-scope", "evil",
              contains="may not act as account root")
    # acting as alice still gets alice's permissions only
    before = shared.dump()
    p = as_user(u, shared, "add-dataset", "mock:notyours")
    assert p.returncode == 1 and "AccessDenied" in p.stderr, p.stderr
    assert shared.dump() == before
    # another OS user is not alice
    unchanged(shared, USERS[1], "--account", "alice", "add-dataset", "user.alice:x",
              contains=f"OS user {USERS[1]}")


def test_mapping_needs_admin(shared):
    shared("add-identity", "alice", "--type", "local", "--identity", USERS[0])
    before = shared.dump()
    p = as_user(USERS[0], shared, "add-identity", "root", "--type", "local",
                "--identity", USERS[0])
    assert p.returncode == 1 and "AccessDenied" in p.stderr, p.stderr
    assert shared.dump() == before


def test_owner_acts_as_anyone(shared):
    u = USERS[1]
    os.chown(shared.catalog, pwd.getpwnam(u).pw_uid, -1)
    p = as_user(u, shared, "--account", "root", "add-scope", "owners")
    assert p.returncode == 0, p.stderr
    assert any(s["scope"] == "owners" for s in shared.json("list-scopes"))


def test_readonly_catalog_lists(users):
    d = tempfile.mkdtemp(prefix="didfs-ro-", dir="/tmp")
    try:
        cat = Didfs(os.path.join(d, "catalog.db"))
        cat("init", "--root-password", "pw")
        cat("add-scope", "mock")
        os.chmod(cat.catalog, 0o644)
        os.chmod(d, 0o755)  # no -wal/-shm can be made here by another user
        p = as_user(users[0], cat, "list-scopes")
        assert p.returncode == 0, p.stderr
        assert "mock" in p.stdout
        assert "readonly database" not in p.stderr
        p = as_user(users[0], cat, "check")
        assert p.returncode == 0, p.stdout + p.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)
