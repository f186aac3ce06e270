# SPDX-License-Identifier: Apache-2.0
# `didfs upload` and `didfs download` draw a progress line (files, bytes,
# rate) on stderr when it is a terminal, as xrdcp and rclone do, and print
# nothing of it when stderr is a pipe (issue 12, item 4).  Real file://
# storage, a real SQLite catalog; the terminal is a pseudo-terminal.
import os

from ptyrun import run_on_pty


def test_upload_and_download_show_progress_on_a_terminal_only(didfs, tmp_path):
    store = tmp_path / "store"
    didfs("add-scope", "mock", "--account", "root")
    didfs("add-rse", "R")
    didfs("add-protocol", "--rse", "R", "--scheme", "file", "--prefix", store)
    files = []
    for i in range(3):
        f = tmp_path / f"p{i}.dat"
        f.write_bytes(os.urandom(1 << 20))
        files.append(str(f))
    base = [didfs.bin, "--catalog", didfs.catalog]
    rc, out, tty = run_on_pty(base + ["upload", "--rse", "R", "--scope", "mock",
                                      "--dataset", "mock:pds", *files])
    assert rc == 0, tty
    assert "upload: 3/3 files, 3.0 MiB/3.0 MiB" in tty, tty
    assert "\r" in tty and "/s" in tty, tty
    dest = tmp_path / "dl"
    rc, out, tty = run_on_pty(base + ["download", "--dir", str(dest), "mock:pds"])
    assert rc == 0, tty
    assert "download: 3/3 files, 3.0 MiB/3.0 MiB" in tty, tty
    for f in files:
        got = (dest / "mock" / os.path.basename(f)).read_bytes()
        assert got == open(f, "rb").read()
    # on a pipe: no progress at all
    dest2 = tmp_path / "dl2"
    p = didfs.run("download", "--dir", dest2, "mock:pds")
    assert p.returncode == 0 and "download:" not in p.stderr and "\r" not in p.stderr, p.stderr
    more = tmp_path / "p9.dat"
    more.write_bytes(b"x" * 1000)
    p = didfs.run("upload", "--rse", "R", "--scope", "mock", more)
    assert p.returncode == 0 and "upload:" not in p.stderr and "\r" not in p.stderr, p.stderr
