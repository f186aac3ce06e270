# SPDX-License-Identifier: Apache-2.0
"""Run a command with its stderr on a pseudo-terminal, for the tests of
progress lines (util/progress.h draws them only when stderr is a TTY)."""
import os
import pty
import subprocess


def run_on_pty(cmd, cwd=None):
    """Run cmd with stderr on a pseudo-terminal; return (rc, stdout, tty output)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
                         cwd=cwd)
    os.close(slave)
    chunks = []
    while True:
        try:
            b = os.read(master, 65536)
        except OSError:  # EIO: every slave end closed
            break
        if not b:
            break
        chunks.append(b)
    out = p.stdout.read()
    p.wait()
    os.close(master)
    return p.returncode, out.decode(), b"".join(chunks).decode(errors="replace")
