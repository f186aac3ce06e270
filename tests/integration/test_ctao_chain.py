# SPDX-License-Identifier: Apache-2.0
"""The CTAO chain as configuration, not code (issue 14 item 3), end to end on
three loopback XRootD RSEs: XRD3 plays SITE-ONSITE, XRD1 and XRD2 carry
type=DC.  Raw files are registered on the on-site RSE (add-replicas) in a
new dataset; one subscription asks for two copies on type=DC and holds the
on-site copy with a rule that waits for the first (release_after: Rucio's
child_rule_id of a rule move).  `didfs daemon all` (transmogrifier, judge,
conveyor, judge-cleaner, reaper) does the rest: both off-site copies are
made and verified, and only then the on-site rule goes and the reaper
deletes the on-site copies."""
import re
from catfixture import connect_catalog

from test_engine import Engine, files_of, wait_until


def rules_by_expr(catalog, dataset):
    con = connect_catalog(catalog)
    try:
        return {e: (i, s, c) for i, e, s, c in con.execute(
            "SELECT r.id, r.rse_expression, r.state, r.child_rule_id FROM rules r"
            " JOIN dids d ON d.id=r.did_id WHERE d.name=?", (dataset,))}
    finally:
        con.close()


def test_onsite_copy_released_after_both_offsite_copies_are_verified(didfs, rses, tmp_path):
    eng = Engine(didfs, rses, tmp_path)
    for r in ("XRD1", "XRD2"):
        didfs("set-rse-attribute", "--rse", r, "--key", "type", "--value", "DC")
    didfs("add-subscription", "ctao-dl0", "--filter", '{"scope": ["mock"], "pattern": "dl0_"}',
          "--rules", "2 type=DC activity=T0_Export",
          "--rules", '{"copies": 1, "rse_expression": "XRD3", "release_after": 1,'
                     ' "purge_replicas": true, "comment": "on-site until off-site is OK"}')
    # a malformed chain is refused
    didfs.fails("add-subscription", "bad", "--filter", "{}", "--rules", "1 XRD1 release_after=1",
                cls="InvalidObject")
    ds = "dl0_2026_12_02"
    files = files_of("dl0f", 8, lambda i: 20000 + 997 * i)
    didfs("add-dataset", f"mock:{ds}")
    eng.register("XRD3", files, dataset=f"mock:{ds}")
    assert len(eng.storage_files("XRD3")) == 8
    dm = eng.start("all", extra={"conveyor.tpc": False, "judge-cleaner.sleep": 1, "reaper.sleep": 1})
    try:
        wait_until(lambda: len(rules_by_expr(didfs.catalog, ds)) == 2, "the subscription's rules",
                   on_timeout=lambda: dm.log_text()[-3000:])
        rs = rules_by_expr(didfs.catalog, ds)
        dc_rule = rs["type=DC"][0]
        # the on-site rule waits for the DC rule (or is released already)
        assert rs["XRD3"][2] in (dc_rule, None)
        eng.wait_rule(dc_rule)
        wait_until(lambda: not eng.storage_files("XRD3"), "the on-site copies to be deleted",
                   timeout=180, on_timeout=lambda: dm.log_text()[-4000:])
        assert dm.stop() == 0
    finally:
        eng.stop_all()
    # both off-site copies exist and are right; the on-site replicas are gone
    eng.check_copies(files, ["XRD1", "XRD2"])
    for did in files:
        assert sorted(r["rse"] for r in eng.replicas(did)) == ["XRD1", "XRD2"]
    assert list(rules_by_expr(didfs.catalog, ds)) == ["type=DC"]
    # order: every transfer done (verified at the destination) before any on-site deletion
    log = dm.log_text().splitlines()
    done = [i for i, l in enumerate(log) if "transfer done" in l]
    gone = [i for i, l in enumerate(log) if re.search(r"XRD3: \d+ replica\(s\) deleted", l)]
    assert len(done) == 16 and gone, "\n".join(log[-40:])
    assert max(done) < min(gone), "\n".join(log[-60:])
