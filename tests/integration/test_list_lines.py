# SPDX-License-Identifier: Apache-2.0
# `add-replicas --list`: LF, CRLF and CR-only line ends all register every
# record (a CR-only file once registered 1 of 2 records and exited 0); a line
# that does not parse is an error naming its line number, and nothing at all
# is registered (one transaction, after every line parsed).
import pytest


@pytest.fixture
def cat(didfs):
    didfs("add-scope", "mock", "--account", "root")
    didfs("add-rse", "R1")
    return didfs


def records(n, prefix="f"):
    return [f"mock:{prefix}{i}.dat {100 + i} {i + 1:08x}" for i in range(n)]


def names(cat):
    return sorted(d["did"].split(":", 1)[1] for d in cat.json("list-dids", "mock:*", "--filter", "type=FILE"))


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_every_line_end_registers_every_record(cat, tmp_path, eol):
    lines = records(3) + ["# a comment", "", "mock:last.dat 7 00000007 # trailing comment"]
    f = tmp_path / "list.txt"
    f.write_bytes(eol.join(lines).encode())  # no terminator after the last line
    out = cat.json("add-replicas", "--rse", "R1", "--list", f)
    assert out["files"] == 4 and out["new_replicas"] == 4
    assert names(cat) == ["f0.dat", "f1.dat", "f2.dat", "last.dat"]
    meta = cat.json("get-metadata", "mock:f2.dat")
    assert (meta["bytes"], meta["adler32"]) == (102, "00000003")


def test_mixed_line_ends_and_stdin(cat):
    data = "mock:a 1 00000001\r\nmock:b 2 00000002\rmock:c 3 00000003\n"
    out = cat.json("add-replicas", "--rse", "R1", "--list", "-", input=data)
    assert out["files"] == 3
    assert names(cat) == ["a", "b", "c"]


@pytest.mark.parametrize("bad,why", [
    ("mock:x 10 zz", "invalid adler32"),
    ("mock:x ten 0000000a", "bytes must be a number"),
    ("mock:x 9223372036854775808 0000000a", "bytes must be a number"),
    ("mock:x 10", "expected 'scope:name bytes adler32 [md5] [pfn]'"),
    ("mock:x 10 0000000a 0123 file://h/p extra", "expected 'scope:name"),
    ("nocolon 10 0000000a", ""),
    ("mock:x 10 0000000a notanmd5", "invalid md5"),
    ("mock:x 10 0000000a\x01", "control character 0x01"),
    ("mock:x 10 0000000a\x00", "control character 0x00"),
], ids=["adler", "bytes", "bytes-range", "few", "many", "did", "md5", "ctrl", "nul"])
@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_bad_line_names_its_number_and_registers_nothing(cat, tmp_path, bad, why, eol):
    lines = records(2) + ["# comment", bad] + records(2, "g")
    f = tmp_path / "list.txt"
    f.write_bytes((eol.join(lines) + eol).encode())
    before = cat.dump()
    err = cat.fails("add-replicas", "--rse", "R1", "--list", f)
    assert f"list.txt:4: {why}" in err, err
    assert cat.dump() == before


def test_catalog_refusal_names_the_line_and_registers_nothing(cat, tmp_path):
    """A line that parses but that the catalog refuses (a scope that does
    not exist) fails the whole list in its one transaction."""
    f = tmp_path / "list.txt"
    f.write_text("\n".join(records(3) + ["nosuchscope:x 1 00000001"]) + "\n")
    before = cat.dump()
    err = cat.fails("add-replicas", "--rse", "R1", "--list", f)
    assert "line 4" in err, err
    assert cat.dump() == before
