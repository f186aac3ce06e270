# SPDX-License-Identifier: Apache-2.0
# Metadata keys and values are valid UTF-8 or refused (InputValidationError)
# in the catalog, so every door refuses them alike: binary bytes set through
# setfattr once made `--json get-metadata` print invalid UTF-8.
import errno
import json
import os
import subprocess

import pytest

BAD = [b"\xff\xfe", b"caf\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"ok\x80ok"]


@pytest.fixture
def cat(didfs):
    didfs("add-scope", "mock", "--account", "root")
    didfs("add-dataset", "mock:ds")
    return didfs


def get_metadata_json(cat):
    p = subprocess.run([cat.bin, "--catalog", cat.catalog, "--json", "get-metadata", "mock:ds"],
                       capture_output=True)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.decode("utf-8"))  # strict: invalid UTF-8 raises


def test_cli_refuses_invalid_utf8_values_and_keys(cat):
    before = cat.dump()
    for v in BAD:
        p = subprocess.run([cat.bin, "--catalog", cat.catalog, "set-metadata", "mock:ds",
                            "--key", "k", "--value", v], capture_output=True)
        assert p.returncode == 1, p
        assert b"didfs: InputValidationError: metadata value for 'k' is not valid UTF-8" in p.stderr
        p = subprocess.run([cat.bin, "--catalog", cat.catalog, "set-metadata", "mock:ds",
                            "--key", b"k" + v, "--value", "x"], capture_output=True)
        assert p.returncode == 1 and b"InputValidationError" in p.stderr, p
        # the error message itself stays valid UTF-8
        p.stderr.decode("utf-8")
    assert cat.dump() == before
    cat("set-metadata", "mock:ds", "--key", "k", "--value", "caf\u00e9 \u20ac \U0001f600")
    assert get_metadata_json(cat)["k"] == "caf\u00e9 \u20ac \U0001f600"


def test_setfattr_refuses_invalid_utf8_values(cat, mount):
    m = mount(cat)
    ds = m.path / "mock" / "ds"
    before = cat.dump()
    for v in BAD:
        with pytest.raises(OSError) as e:
            os.setxattr(ds, "user.rucio.meta.k", v)
        assert e.value.errno == errno.EINVAL, e.value
        assert "not valid UTF-8" in os.getxattr(ds, "user.rucio.error").decode()
    assert cat.dump() == before
    os.setxattr(ds, "user.rucio.meta.k", "\u00e9t\u00e9".encode())
    assert get_metadata_json(cat)["k"] == "\u00e9t\u00e9"
