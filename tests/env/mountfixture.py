# SPDX-License-Identifier: Apache-2.0
"""pytest plugin: real FUSE mounts of a didfs catalog (`didfs mount`).

Fixtures:

    mount    function: mount(runner, **opts) -> Mount.  Mounts the catalog of a
             Didfs runner (the `didfs` or `lake` fixture) on a fresh directory
             under the test's tmp_path, in the foreground as a child process,
             and waits (bounded) until the kernel has the mount.  Every mount
             made is unmounted at teardown, even when the test failed:
             fusermount3 -u, then -u -z, then SIGKILL of the process.
             opts: cache_size="64M", block_size="1M", timeout=5, site="SITE2",
             account="alice", cache_dir=PATH, allow_other=True, extra=[...],
             background=True (the daemonizing path: `didfs mount` returns
             when ready; the server's pid is found from the mountpoint).

    Mount    .path (pathlib.Path of the mountpoint), .cache_dir, .log (the
             mount's log file), .proc (Popen, foreground mounts), .pid,
             .unmount(), .kill() (SIGKILL: leaves a stale mount behind),
             .remount() (same catalog, mountpoint and cache), .mounted(),
             .cache_bytes() (bytes of block data the cache's files hold
             on disk), .log_text().

Needs /dev/fuse and fusermount3 (Debian fuse3); without them the tests that
mount are skipped.
"""
import os
import pathlib
import shutil
import signal
import subprocess
import time

import pytest

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def mounted(path):
    """Is path a FUSE mount point (per /proc/self/mountinfo)?"""
    path = os.path.abspath(str(path))
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            mp = parts[4].encode().decode("unicode_escape")
            if mp == path and " - fuse" in line:
                return True
    return False


def _pids_serving(path):
    """Pids of `didfs ... mount PATH` processes."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if b"mount" in args and str(path).encode() in args:
            out.append(int(pid))
    return out


class Mount:
    def __init__(self, runner, path, cache_dir, log, opts):
        self.runner = runner
        self.path = pathlib.Path(path)
        self.cache_dir = pathlib.Path(cache_dir)
        self.log = pathlib.Path(log)
        self.opts = opts
        self.proc = None
        self.pid = None

    def args(self):
        o = self.opts
        a = [self.runner.bin, "--catalog", self.runner.catalog]
        account = o.get("account", self.runner.account)
        if account:
            a += ["--account", account]
        a += ["mount", str(self.path), "--cache-dir", str(self.cache_dir),
              "--log", str(self.log), "--cache-size", str(o.get("cache_size", "1G")),
              "--timeout", str(o.get("timeout", 10))]
        for key, flag in (("block_size", "--block-size"), ("site", "--site"),
                          ("threads", "--threads"), ("io_threads", "--io-threads"),
                          ("read_ahead", "--read-ahead"), ("dir_ttl", "--dir-ttl")):
            if o.get(key) is not None:
                a += [flag, str(o[key])]
        if o.get("allow_other"):
            a.append("--allow-other")
        if o.get("debug"):
            a.append("--debug")
        a += list(o.get("extra", []))
        if not o.get("background"):
            a.append("--foreground")
        return a

    def start(self):
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError:  # a stale mount is there: `didfs mount` cleans it up
            pass
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if self.opts.get("background"):
            p = subprocess.run(self.args(), capture_output=True, text=True, timeout=READY_TIMEOUT)
            if p.returncode != 0:
                raise AssertionError(f"didfs mount exited {p.returncode}: {p.stderr}")
            assert mounted(self.path), "didfs mount returned 0 but nothing is mounted"
            pids = _pids_serving(self.path)
            self.pid = pids[0] if pids else None
            return self
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        deadline = time.time() + READY_TIMEOUT
        while time.time() < deadline:
            if mounted(self.path):
                return self
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise AssertionError(f"didfs mount exited {self.proc.returncode} before "
                                     f"mounting:\n{err}\n{self.log_text()}")
            time.sleep(0.05)
        raise AssertionError(f"{self.path} not mounted after {READY_TIMEOUT} s\n{self.log_text()}")

    def mounted(self):
        return mounted(self.path)

    def _wait_exit(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc is not None:
                if self.proc.poll() is not None:
                    return True
            elif not self.pid or not os.path.exists(f"/proc/{self.pid}") or \
                    open(f"/proc/{self.pid}/stat").read().split()[2] == "Z":
                return True
            time.sleep(0.05)
        return False

    def unmount(self):
        """Unmount and wait for the server to exit (bounded); returns its exit code
        (foreground mounts) or None."""
        if self.mounted():
            p = subprocess.run(["fusermount3", "-u", str(self.path)], capture_output=True)
            if p.returncode != 0:
                subprocess.run(["fusermount3", "-u", "-z", str(self.path)], capture_output=True)
        if not self._wait_exit(STOP_TIMEOUT):
            self.kill()
            if self.mounted():
                subprocess.run(["fusermount3", "-u", "-z", str(self.path)], capture_output=True)
            raise AssertionError(f"the mount process of {self.path} did not exit after unmount\n"
                                 f"{self.log_text()}")
        err = ""
        if self.proc is not None:
            _, err = self.proc.communicate()
            # a clean exit: no crash, no sanitizer report (ASan/UBSan builds)
            assert self.proc.returncode == 0, (f"the mount process exited "
                                               f"{self.proc.returncode}:\n{err[-4000:]}")
        for text in (err, self.log_text()):
            assert "runtime error:" not in text and "Sanitizer" not in text, text[-4000:]
        return self.proc.returncode if self.proc is not None else None

    def kill(self):
        """SIGKILL the server: the kernel keeps a dead mount (ENOTCONN or
        ECONNABORTED)."""
        pid = self.proc.pid if self.proc is not None else self.pid
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            self.proc.wait(timeout=STOP_TIMEOUT)
        else:
            self._wait_exit(STOP_TIMEOUT)

    def remount(self, **changes):
        if self.mounted() or (self.proc is not None and self.proc.poll() is None):
            self.unmount()
        self.opts.update(changes)
        self.proc = None
        self.pid = None
        return self.start()

    def cache_bytes(self):
        """Bytes of block data the cache holds on disk: the data ranges of its
        sparse .data files (SEEK_DATA/SEEK_HOLE; st_blocks would also count
        the filesystem's own extent blocks)."""
        total = 0
        for dirpath, _, files in os.walk(self.cache_dir):
            for f in files:
                if not f.endswith(".data"):
                    continue
                try:
                    fd = os.open(os.path.join(dirpath, f), os.O_RDONLY)
                except FileNotFoundError:
                    continue
                try:
                    end, off = os.fstat(fd).st_size, 0
                    while off < end:
                        try:
                            start = os.lseek(fd, off, os.SEEK_DATA)
                        except OSError:  # ENXIO: no data after off
                            break
                        off = os.lseek(fd, start, os.SEEK_HOLE)
                        total += off - start
                finally:
                    os.close(fd)
        return total

    def log_text(self):
        try:
            return self.log.read_text()
        except OSError:
            return ""

    def cleanup(self):
        try:
            if self.mounted() or (self.proc is not None and self.proc.poll() is None):
                self.unmount()
        except Exception:
            self.kill()
        finally:
            if self.mounted():
                subprocess.run(["fusermount3", "-u", "-z", str(self.path)], capture_output=True)


@pytest.fixture
def mount(tmp_path):
    if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"):
        pytest.skip("FUSE is not available (/dev/fuse, fusermount3)")
    made = []
    counter = [0]

    def make(runner, **opts):
        counter[0] += 1
        base = tmp_path / f"mount{counter[0]}"
        path = opts.pop("path", base / "mnt")
        cache_dir = opts.pop("cache_dir", base / "cache")
        base.mkdir(parents=True, exist_ok=True)
        m = Mount(runner, path, cache_dir, base / "mount.log", opts)
        made.append(m)
        return m.start()

    try:
        yield make
    finally:
        for m in reversed(made):
            m.cleanup()
