# SPDX-License-Identifier: Apache-2.0
# --timeout bounds what an application waits: with the only server
# SIGSTOPped (connections accepted by the kernel, nothing ever answered) a
# read through the mount ends in EIO within --timeout plus a small margin,
# however many retries and fall-overs the data path would make, and SIGTERM
# of a mount stuck that way exits within a few seconds and leaves no mount.
import errno
import os
import signal
import subprocess
import sys
import time

TIMEOUT = 5
MARGIN = 4  # the watchdog's tick, process start-up, a loaded CI machine


def read_in_child(path, limit):
    code = ("import sys\n"
            "try:\n"
            "    f = open(sys.argv[1], 'rb')\n"
            "    while f.read(1 << 20): pass\n"
            "    print('ok')\n"
            "except OSError as e:\n"
            "    print('errno', e.errno)\n")
    return subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                            text=True)


def test_read_from_a_stopped_server_is_eio_within_the_timeout(lake, mount, make_file):
    a = make_file(16 << 20)
    lake("upload", a, "--rse", "XRD3", "--dataset", "user.root:stall")
    m = mount(lake, timeout=TIMEOUT)
    path = m.path / "user.root" / "stall" / a.name
    os.stat(path)
    srv = lake.rses["XRD3"]
    os.kill(srv.pid, signal.SIGSTOP)
    try:
        p = read_in_child(path, TIMEOUT + MARGIN)
        try:
            out, _ = p.communicate(timeout=TIMEOUT + MARGIN)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise AssertionError(f"the read did not end within --timeout {TIMEOUT} s + {MARGIN} s")
    finally:
        os.kill(srv.pid, signal.SIGCONT)
    assert out.split() == ["errno", str(errno.EIO)], out
    assert "within --timeout" in m.log_text() or "failed" in m.log_text()
    # the mount still answers
    assert os.listdir(m.path / "user.root" / "stall") == [a.name]


def test_sigterm_of_a_mount_stuck_on_storage_exits_in_seconds(lake, mount, make_file):
    a = make_file(16 << 20)
    lake("upload", a, "--rse", "XRD3", "--dataset", "user.root:term")
    m = mount(lake, timeout=30)
    path = m.path / "user.root" / "term" / a.name
    os.stat(path)
    srv = lake.rses["XRD3"]
    os.kill(srv.pid, signal.SIGSTOP)
    try:
        p = read_in_child(path, 60)
        time.sleep(2)  # the read is now waiting on the stopped server
        m.proc.send_signal(signal.SIGTERM)
        try:
            m.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("the mount did not exit within 10 s of SIGTERM")
        out, _ = p.communicate(timeout=30)
    finally:
        os.kill(srv.pid, signal.SIGCONT)
    # the reader was answered (EIO or the connection's end), not left hanging
    assert out.split()[0] == "errno", out
    assert not m.mounted()
