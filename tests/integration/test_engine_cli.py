# SPDX-License-Identifier: Apache-2.0
"""The rule commands on temporary catalogs, without storage: add-rule's
refusals (quota, write-blocked RSEs, expressions matching nothing,
duplicates, bad options) exit 1 with Rucio's exception and leave the catalog
exactly as it was; list-rules, rule-info, update-rule, delete-rule,
list-transfers, add-distance; `didfs daemon` argument and configuration
errors, and --once on an idle catalog.  The engine with real storage is
test_engine.py.
"""
import json
import os
import re
import zlib

import pytest


def adler32_hex(data):
    return "%08x" % (zlib.adler32(data) & 0xffffffff)


def unchanged(didfs, *args, cls):
    before = didfs.dump()
    err = didfs.fails(*args, cls=cls)
    assert didfs.dump() == before, f"catalog changed by a refused 'didfs {' '.join(args)}'"
    return err


@pytest.fixture
def cat(didfs):
    didfs("add-account", "alice")
    didfs("add-scope", "user.alice", "--account", "alice")
    didfs("add-scope", "mock", "--account", "root")
    for rse, tier in (("XRD1", 1), ("XRD2", 1), ("XRD3", 2)):
        didfs("add-rse", rse)
        didfs("set-rse-attribute", "--rse", rse, "--key", "tier", "--value", tier)
        didfs("add-protocol", "--rse", rse, "--scheme", "root", "--hostname", "127.0.0.1",
              "--port", "1094", "--prefix", "//rucio")
    # three files on XRD3, in a dataset each for root and alice
    for scope, owner in (("mock", didfs), ("user.alice", didfs)):
        args = ["add-replicas", "--rse", "XRD3", "--dataset", f"{scope}:ds"]
        for i in range(3):
            data = f"{scope} file {i}".encode()
            args += [f"{scope}:f{i}", len(data), adler32_hex(data)]
        didfs("add-dataset", f"{scope}:ds")
        owner(*args)
    return didfs


def test_add_rule_prints_ids_and_lists(cat):
    out = cat("add-rule", "mock:ds", "2", "tier=1", "--comment", "two copies", "--lifetime",
              "3600", "--activity", "Data Brokering")
    rule = out.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", rule)
    ids = cat.json("add-rule", "mock:f0", "mock:f1", "1", "XRD1")
    assert len(ids) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    rules = {r["id"]: r for r in cat.json("list-rules")}
    assert set(rules) == {rule, *ids}
    r = rules[rule]
    assert (r["scope"], r["name"], r["rse_expression"], r["copies"], r["state"]) == \
        ("mock", "ds", "tier=1", 2, "REPLICATING")
    assert r["locks_replicating_cnt"] == 6 and r["expires_at"]
    assert [x["id"] for x in cat.json("list-rules", "mock:ds")] == [rule]
    assert {x["id"] for x in cat.json("list-rules", "--file", "mock:f0")} == {rule, ids[0]}
    assert {x["id"] for x in cat.json("list-rules", "--account", "root")} == set(rules)
    assert cat.json("list-rules", "--account", "alice") == []
    text = cat("list-rules", "mock:ds")
    assert "REPLICATING[0/6/0]" in text and "tier=1" in text

    info = cat.json("rule-info", rule)
    assert info["comments"] == "two copies" and info["activity"] == "Data Brokering"
    assert info["grouping"] == "DATASET" and info["copies"] == 2
    assert {x["rse"]: x["replicating"] for x in info["rses"]} == {"XRD1": 3, "XRD2": 3}
    text = cat("rule-info", rule)
    assert "Locks OK/REPLICATING/STUCK:  0/6/0" in text and "Locks per RSE:" in text
    locks = cat.json("rule-info", rule, "--locks")
    assert len(locks) == 6 and {l["state"] for l in locks} == {"REPLICATING"}
    cat.fails("rule-info", "0" * 32, cls="RuleNotFound")

    transfers = cat.json("list-transfers", "--rule", rule)
    assert len(transfers) == 6 and {t["state"] for t in transfers} == {"QUEUED"}
    assert {t["dest_rse"] for t in transfers} == {"XRD1", "XRD2"}
    # the file rules on XRD1 share the dataset rule's requests (one per file and RSE)
    assert len(cat.json("list-transfers", "--state", "QUEUED,SUBMITTED")) == 6
    assert cat.json("list-transfers", "--state", "DONE") == []
    cat.fails("list-transfers", "--state", "WAITING", cls="InputValidationError")


def test_add_rule_options(cat):
    rule = cat("add-rule", "mock:ds", "1", "XRD1", "--grouping", "NONE", "--notify", "C",
               "--purge-replicas", "--ignore-availability", "--source-replica-expression",
               "XRD3", "--priority", "4").strip()
    info = cat.json("rule-info", rule)
    assert (info["grouping"], info["notification"], info["purge_replicas"],
            info["ignore_availability"], info["source_replica_expression"], info["priority"]) \
        == ("NONE", "CLOSE", True, True, "XRD3", 4)
    rule = cat("add-rule", "mock:f2", "1", "XRD2", "--asynchronous").strip()
    assert cat.json("rule-info", rule)["state"] == "INJECT"
    for bad in (["--grouping", "SOME"], ["--notify", "X"], ["--lifetime", "-5"],
                ["--priority", "9"]):
        unchanged(cat, "add-rule", "mock:ds", "1", "XRD2", *bad, cls="InputValidationError")
    unchanged(cat, "add-rule", "mock:ds", "two", "XRD2", cls="InputValidationError")
    assert cat.run("add-rule", "mock:ds", "1").returncode == 2  # usage


def test_add_rule_refusals_leave_catalog_unchanged(cat):
    alice = cat.as_account("alice")
    # no limit at all for alice: Rucio's "no quota means unusable"
    unchanged(alice, "add-rule", "user.alice:ds", "1", "XRD1", cls="InsufficientAccountLimit")
    # a limit too small for the dataset
    cat("set-account-limit", "alice", "XRD1", "10")
    unchanged(alice, "add-rule", "user.alice:ds", "1", "XRD1", cls="InsufficientAccountLimit")
    cat("set-account-limit", "alice", "XRD1", "1M")
    alice("add-rule", "user.alice:ds", "1", "XRD1")
    # the same rule again
    unchanged(alice, "add-rule", "user.alice:ds", "1", "XRD1", cls="DuplicateRule")
    # an RSE closed for writing
    cat("update-rse", "--rse", "XRD2", "--setting", "availability_write", "--value", "false")
    before = cat.dump()
    p = cat.run("add-rule", "mock:ds", "1", "XRD2")
    assert p.returncode == 1
    assert re.search(r"didfs: (RSEWriteBlocked|InsufficientTargetRSEs): ", p.stderr), p.stderr
    assert cat.dump() == before
    unchanged(cat, "add-rule", "mock:ds", "2", "tier=1", cls="InsufficientTargetRSEs")
    # expressions matching nothing, or not expressions at all
    unchanged(cat, "add-rule", "mock:ds", "1", "tier=9", cls="InvalidRSEExpression")
    unchanged(cat, "add-rule", "mock:ds", "1", "NOSUCH", cls="InvalidRSEExpression")
    unchanged(cat, "add-rule", "mock:ds", "1", "(XRD1", cls="InvalidRSEExpression")
    # more copies than RSEs, no copies, a missing DID, a bad weight
    unchanged(cat, "add-rule", "mock:ds", "4", "tier=1|tier=2", cls="InsufficientTargetRSEs")
    unchanged(cat, "add-rule", "mock:ds", "0", "XRD1", cls="InvalidValueForKey")
    unchanged(cat, "add-rule", "mock:nope", "1", "XRD1", cls="DataIdentifierNotFound")
    # weights: RSEs without the attribute are no candidates (Rucio), a
    # value that is no number is refused
    unchanged(cat, "add-rule", "mock:ds", "1", "XRD1", "--weight", "nosuchattr",
              cls="InsufficientTargetRSEs")
    cat("set-rse-attribute", "--rse", "XRD1", "--key", "fairshare", "--value", "lots")
    unchanged(cat, "add-rule", "mock:ds", "1", "XRD1", "--weight", "fairshare",
              cls="InvalidRuleWeight")


def test_update_and_delete_rule(cat):
    rule = cat("add-rule", "mock:ds", "1", "XRD1").strip()
    cat("update-rule", rule, "--comment", "hello", "--activity", "Express", "--priority", "5")
    info = cat.json("rule-info", rule)
    assert (info["comments"], info["activity"], info["priority"]) == ("hello", "Express", 5)
    cat("update-rule", rule, "--lifetime", "7200")
    assert cat.json("rule-info", rule)["expires_at"]
    cat("update-rule", rule, "--locked", "true")
    assert cat.json("rule-info", rule)["locked"] is True
    unchanged(cat, "delete-rule", rule, cls="UnsupportedOperation")
    cat.fails("update-rule", rule, "--locked", "maybe", cls="InputValidationError")
    assert cat.run("update-rule", rule).returncode == 2  # nothing to update
    cat("update-rule", rule, "--locked", "false")
    # alice may not touch root's rule
    unchanged(cat.as_account("alice"), "delete-rule", rule, cls="AccessDenied")
    cat("delete-rule", rule)
    assert cat.json("list-rules") == []
    assert cat.json("list-transfers") == [] or all(
        t["state"] not in ("QUEUED", "SUBMITTED") for t in cat.json("list-transfers"))
    cat.fails("delete-rule", rule, cls="RuleNotFound")
    # expire later: the judge-cleaner's job
    rule = cat("add-rule", "mock:ds", "1", "XRD1").strip()
    out = cat("delete-rule", rule, "--delay", "3600")
    assert "judge-cleaner" in out
    assert cat.json("rule-info", rule)["expires_at"]


def test_add_distance(cat):
    cat("add-distance", "XRD3", "XRD1", "2")
    cat("add-distance", "XRD3", "XRD2", "--distance", "4")
    unchanged(cat, "add-distance", "XRD3", "NOPE", "1", cls="RSENotFound")
    cat.fails("add-distance", "XRD3", "XRD1", "far", cls="InputValidationError")


def test_daemon_arguments_and_once(cat, tmp_path):
    cat.fails("daemon", "nosuch", cls="InputValidationError", contains="unknown daemon 'nosuch'")
    cat.fails("daemon", "--threads", "0", cls="InputValidationError")
    cat.fails("daemon", "--log-level", "loud", cls="InputValidationError")
    err = cat.fails("daemon", "--config", str(tmp_path / "missing.conf"))
    assert "missing.conf" in err
    bad = tmp_path / "bad.conf"
    bad.write_text("sleep = 1\n[conveyor]\nparallel = lots\n")
    err = cat.fails("daemon", "--config", str(bad), "--once")
    assert "bad.conf:3" in err and "conveyor.parallel" in err
    from catfixture import Didfs
    Didfs(tmp_path / "none.db").fails("daemon", "--once", contains="didfs init")
    # every daemon once on an idle catalog: nothing to do, nothing fails
    p = cat.run("daemon", "all", "--once", "--log-level", "debug", timeout=120)
    assert p.returncode == 0, p.stderr
    assert "daemon: stopped" in p.stderr
    p = cat.run("daemon", "judge-evaluator", "abacus", "--once", "--threads", "2", timeout=120)
    assert p.returncode == 0 and "(2 threads each)" in p.stderr, p.stderr
