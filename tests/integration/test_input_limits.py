# SPDX-License-Identifier: Apache-2.0
# Every duration and count from outside is range-checked with a clear error
# and leaves the catalog unchanged: a lifetime near INT64_MAX once wrapped to
# a past expiry (the undertaker then deleted the DID, the judge-cleaner the
# rules).  Each door: add-dataset --lifetime, set-metadata --key lifetime,
# add-rule --lifetime, update-rule --lifetime, delete-rule --delay,
# setfattr user.rucio.lifetime and a rule's lifetime= through the mount.
# Also: copies, priorities, and a busy catalog (another writer holding it
# past $DIDFS_BUSY_TIMEOUT) as a clear error from the CLI and EBUSY through
# the mount.
import errno
import os
import sqlite3

from catfixture import connect_catalog
import time

import pytest

INT64_MAX = "9223372036854775807"
TOO_BIG = ["9223372036854775807", "9223372036854775806", "9223372036854775808",
           "3155760001", "99999999999999999999999"]
NEGATIVE = ["-1", "-9223372036854775808", "-9223372036854775809"]
NOT_NUMBERS = ["", "1e9", "12s", " 5", "0x10"]
MAX = 3155760000  # 100 years


@pytest.fixture
def cat(didfs):
    didfs("add-scope", "mock", "--account", "root")
    didfs("add-rse", "R1")
    didfs("add-dataset", "mock:ds")
    return didfs


def refused(cat, *args, contains=None, cls=None):
    before = cat.dump()
    err = cat.fails(*args, cls=cls, contains=contains)
    assert cat.dump() == before, f"catalog changed by refused {args}"
    return err


def rule_id(cat):
    return cat("add-rule", "mock:ds", "1", "R1").strip()


def test_dataset_lifetime_out_of_range_refused(cat):
    for v in TOO_BIG + NEGATIVE + NOT_NUMBERS:
        refused(cat, "add-dataset", "mock:new", "--lifetime", v, cls="InputValidationError",
                contains="--lifetime takes seconds from 0 to 3155760000")


def test_set_metadata_lifetime_out_of_range_refused(cat):
    for v in TOO_BIG + NEGATIVE + NOT_NUMBERS:
        err = refused(cat, "set-metadata", "mock:ds", "--key", "lifetime", "--value", v,
                      cls="InvalidValueForKey")
        assert "from 0 to 3155760000" in err, err
    assert cat.json("get-metadata", "mock:ds")["expired_at"] is None


def test_rule_lifetime_and_delay_out_of_range_refused(cat):
    for v in TOO_BIG + NEGATIVE + NOT_NUMBERS + ["0"]:
        refused(cat, "add-rule", "mock:ds", "1", "R1", "--lifetime", v,
                cls="InputValidationError", contains="--lifetime takes seconds from 1 to 3155760000")
    rid = rule_id(cat)
    for v in TOO_BIG + NEGATIVE + NOT_NUMBERS:
        refused(cat, "update-rule", rid, "--lifetime", v, cls="InputValidationError",
                contains="from 0 to 3155760000")
        refused(cat, "delete-rule", rid, "--delay", v, cls="InputValidationError",
                contains="--delay takes seconds from 0 to 3155760000")
    assert cat.json("rule-info", rid)["expires_at"] is None


def test_longest_lifetime_is_far_future_and_survives_undertaker(cat):
    """The largest accepted lifetime expires in ~100 years, never in the past:
    the undertaker and the judge-cleaner leave the DID and its rule alone."""
    cat("add-dataset", "mock:long", "--lifetime", str(MAX))
    cat("set-metadata", "mock:ds", "--key", "lifetime", "--value", str(MAX))
    rid = cat("add-rule", "mock:ds", "1", "R1", "--lifetime", str(MAX)).strip()
    cat("update-rule", rid, "--lifetime", str(MAX))
    con = connect_catalog(cat.catalog)
    try:
        now = int(time.time())
        for (exp,) in con.execute("SELECT expired_at FROM dids WHERE name IN ('long', 'ds')"):
            assert exp > now + MAX - 3600, exp
        (exp,) = con.execute("SELECT expires_at FROM rules WHERE id=?", (rid,)).fetchone()
        assert isinstance(exp, int) and exp > now + MAX - 3600, exp
    finally:
        con.close()
    cat("daemon", "undertaker", "judge-cleaner", "--once")
    assert cat.json("get-metadata", "mock:long")["name"] == "long"
    assert cat.json("get-metadata", "mock:ds")["name"] == "ds"
    assert cat.json("rule-info", rid)["id"] == rid
    # update-rule --lifetime none clears it
    cat("update-rule", rid, "--lifetime", "none")
    assert cat.json("rule-info", rid)["expires_at"] is None


def test_copies_and_priority_ranges(cat):
    for v in ["0", "-1", "-1000000", "17"]:
        # "--": a negative count is a value, not an option; a number that is
        # no copy count is refused with Rucio's class
        refused(cat, "add-rule", "--", "mock:ds", v, "R1", cls="InvalidValueForKey",
                contains="copies must")
    for v in [INT64_MAX, "two", ""]:
        refused(cat, "add-rule", "--", "mock:ds", v, "R1", cls="InputValidationError",
                contains="COPIES takes an integer from 1 to 16")
    for v in ["0", "6", "-1", INT64_MAX]:
        refused(cat, "add-rule", "mock:ds", "1", "R1", "--priority", v,
                cls="InputValidationError", contains="--priority takes an integer from 1 to 5")
    rid = rule_id(cat)
    for v in ["6", "-1", INT64_MAX, "x"]:
        refused(cat, "update-rule", rid, "--priority", v, cls="InputValidationError",
                contains="priority must be 0..5")


def mounted_ds(cat, mount):
    m = mount(cat)
    return m, m.path / "mock" / "ds"


def xattr_refused(cat, path, name, value, err_no, contains):
    before = cat.dump()
    with pytest.raises(OSError) as e:
        os.setxattr(path, name, value.encode())
    assert e.value.errno == err_no, (name, value, e.value)
    why = os.getxattr(path, "user.rucio.error").decode()
    assert contains in why, why
    assert cat.dump() == before


def test_setfattr_lifetime_and_rule_lifetime_out_of_range(cat, mount):
    m, ds = mounted_ds(cat, mount)
    for v in TOO_BIG + NEGATIVE + ["1e9", "12s"]:
        xattr_refused(cat, ds, "user.rucio.lifetime", v, errno.EINVAL,
                      "from 0 to 3155760000")
        xattr_refused(cat, ds, "user.rucio.rule", f"1 R1 lifetime={v}", errno.EINVAL,
                      "rule option 'lifetime'")
    # the longest accepted one works and reads back as ~100 years left
    os.setxattr(ds, "user.rucio.lifetime", str(MAX).encode())
    left = int(os.getxattr(ds, "user.rucio.lifetime").decode())
    assert MAX - 3600 < left <= MAX


def hold_write_lock(cat):
    con = sqlite3.connect(cat.catalog, timeout=30, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    return con


@pytest.mark.sqlite_only("holds SQLite's write lock")
def test_busy_catalog_is_a_clear_error(cat, monkeypatch):
    monkeypatch.setenv("DIDFS_BUSY_TIMEOUT", "1")
    con = hold_write_lock(cat)
    try:
        err = cat.fails("set-metadata", "mock:ds", "--key", "k", "--value", "v",
                        cls="DatabaseException")
        assert "the catalog is busy" in err and "DIDFS_BUSY_TIMEOUT" in err, err
    finally:
        con.rollback()
        con.close()
    cat("set-metadata", "mock:ds", "--key", "k", "--value", "v")


@pytest.mark.sqlite_only("holds SQLite's write lock")
def test_busy_timeout_flag_overrides_the_environment(cat, monkeypatch):
    """--busy-timeout bounds the wait whatever $DIDFS_BUSY_TIMEOUT says: with
    the environment at an hour, the flag's 1 s ends the wait (the run's own
    timeout fails the test otherwise); a bad value is refused by name."""
    monkeypatch.setenv("DIDFS_BUSY_TIMEOUT", "3600")
    con = hold_write_lock(cat)
    try:
        err = cat.fails("--busy-timeout", "1", "set-metadata", "mock:ds", "--key", "k",
                        "--value", "v", cls="DatabaseException", timeout=120)
        assert "more than 1 s" in err and "--busy-timeout" in err, err
    finally:
        con.rollback()
        con.close()
    for bad in ("-1", "3601", "1e3", "x", ""):
        cat.fails("--busy-timeout", bad, "whoami", cls="InputValidationError",
                  contains=f"--busy-timeout takes seconds from 0 to 3600, not '{bad}'")


@pytest.mark.sqlite_only("holds SQLite's write lock")
def test_busy_catalog_through_the_mount_is_ebusy(cat, mount, monkeypatch):
    monkeypatch.setenv("DIDFS_BUSY_TIMEOUT", "1")
    m, ds = mounted_ds(cat, mount)
    os.listdir(ds)
    con = hold_write_lock(cat)
    try:
        with pytest.raises(OSError) as e:
            os.setxattr(ds, "user.rucio.meta.k", b"v")
        assert e.value.errno == errno.EBUSY, e.value
    finally:
        con.rollback()
        con.close()
    assert "catalog is busy" in os.getxattr(ds, "user.rucio.error").decode()
    os.setxattr(ds, "user.rucio.meta.k", b"v")
    assert cat.json("get-metadata", "mock:ds")["k"] == "v"
