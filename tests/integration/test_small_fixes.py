# SPDX-License-Identifier: Apache-2.0
# Small input fixes of issue 12 item 11: a walk with --scope summarises other
# scopes' files and dark data instead of printing a line per file;
# `list-rses ''` lists every RSE (Rucio treats the empty expression as none);
# the parenthesis error carries Rucio's exact text.
import hashlib

import pytest


@pytest.fixture
def cat(didfs):
    didfs("add-scope", "mock", "--account", "root")
    didfs("add-scope", "other", "--account", "root")
    didfs("add-rse", "R1")
    didfs("add-rse", "R2")
    return didfs


def put(root, scope, name, data=b"x"):
    h = hashlib.md5(f"{scope}:{name}".encode()).hexdigest()
    p = root / scope / h[:2] / h[2:4] / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def test_walk_with_scope_summarises_other_scopes_and_dark_data(cat, tmp_path):
    root = tmp_path / "storage"
    for i in range(2):
        put(root, "mock", f"m{i}.dat")
    for i in range(400):
        put(root, "other", f"o{i}.dat")
    for i in range(10):
        (root / "mock" / f"dark{i}.txt").write_text("dark")
    p = cat.run("--json", "add-replicas", "--rse", "R1", "--walk", root, "--scope", "mock")
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) <= 6, p.stderr
    assert "didfs: ignored 400 file(s) of scopes other than --scope mock" in lines
    assert sum("dark" in ln for ln in lines) == 3
    assert "didfs: skipped 7 more file(s): does not follow the RSE's path layout" in lines
    assert "o1.dat" not in p.stderr


def test_list_rses_empty_expression_lists_all(cat):
    names = sorted(r["rse"] for r in cat.json("list-rses", ""))
    assert names == sorted(r["rse"] for r in cat.json("list-rses")) == ["R1", "R2"]


def test_parenthesis_error_is_rucios_text(cat):
    for expr in ("(R1", "R1)", ")R1(", "(R1|R2"):
        cat.fails("list-rses", expr, cls="InvalidRSEExpression",
                  contains="Problem with parantheses.")
