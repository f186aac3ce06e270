# didfs init never creates a known default password (issue 12, item 7):
# root's userpass identity gets the password given with --root-password, or a
# generated one that is printed once, or written to a 0600 file.
import hashlib
import json
import os
import stat

from catfixture import Didfs
from catfixture import connect_catalog


def root_identity(catalog):
    con = connect_catalog(str(catalog))
    try:
        return con.execute("SELECT identity, password, salt FROM identities"
                           " WHERE identity_type='USERPASS'").fetchall()
    finally:
        con.close()


def matches(row, password):
    _, digest, salt = row
    if isinstance(salt, bytes):  # a BLOB column: the salt's hex text as bytes
        salt = salt.decode()
    return hashlib.sha256((salt + password).encode()).hexdigest() == digest


def test_init_generates_a_password_printed_once(tmp_path):
    a = Didfs(tmp_path / "a.db")
    b = Didfs(tmp_path / "b.db")
    out_a = json.loads(a("--json", "init"))
    out_b = json.loads(b("--json", "init"))
    pa, pb = out_a["password"], out_b["password"]
    assert len(pa) == 24 and pa != pb
    [row] = root_identity(a.catalog)
    assert row[0] == "ddmlab"
    assert matches(row, pa)
    assert not matches(row, "secret"), "the old fixed default password still works"


def test_init_table_output_shows_the_generated_password(tmp_path):
    d = Didfs(tmp_path / "c.db")
    out = d("init")
    line = [l for l in out.splitlines() if "Generated password" in l]
    assert line, out
    pw = line[0].rsplit(" ", 1)[1]
    assert matches(root_identity(d.catalog)[0], pw)


def test_init_with_given_password(tmp_path):
    d = Didfs(tmp_path / "c.db")
    out = d("init", "--root-username", "admin", "--root-password", "s3cr3t-of-mine")
    assert "s3cr3t-of-mine" not in out, "a given password is never echoed"
    [row] = root_identity(d.catalog)
    assert row[0] == "admin" and matches(row, "s3cr3t-of-mine")


def test_init_password_file_is_0600_and_not_printed(tmp_path):
    d = Didfs(tmp_path / "c.db")
    pwfile = tmp_path / "root.pw"
    out = d("init", "--root-password-file", pwfile)
    pw = pwfile.read_text().strip()
    assert stat.S_IMODE(os.stat(pwfile).st_mode) == 0o600
    assert pw not in out
    assert matches(root_identity(d.catalog)[0], pw)


def test_init_password_file_never_overwritten(tmp_path):
    pwfile = tmp_path / "root.pw"
    pwfile.write_text("keep me\n")
    d = Didfs(tmp_path / "c.db")
    d.fails("init", "--root-password-file", pwfile, cls="InputValidationError",
            contains="never overwritten")
    assert pwfile.read_text() == "keep me\n"


def test_init_refuses_empty_or_conflicting_passwords(tmp_path):
    d = Didfs(tmp_path / "c.db")
    d.fails("init", "--root-password", "", cls="InputValidationError")
    d.fails("init", "--root-password", "x", "--root-password-file", tmp_path / "f",
            cls="InputValidationError", contains="exclude each other")
    assert not os.path.exists(d.catalog), "a refused init created the catalog"
