#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench_mount - reading through `didfs mount`, against a peer or a limit
measured in the same run.

Starts real XRootD servers on loopback (tests/env/xrdrse.py), uploads files
with `didfs upload`, mounts the catalog and prints, each with its ratio:

  (a) warm sequential read: a file already read once (kernel page cache,
      kept across opens) read again through the mount, vs reading the same
      bytes from a local copy in the page cache                aim >= 0.95
      With it, the folios each page cache holds the bytes in (pagemap and
      kpageflags) and a tmpfs copy, whose page cache has 4 KiB folios as
      the FUSE file's does.
  (b) cold sequential read of BENCH_BIG_BYTES through a fresh mount and
      empty block cache (the bytes land in the cache on disk too), beside
      every single reader of the same replica in the same run: `curl` over
      https, `xrdcp` over root://, `rclone` (webdav backend: `cat`, and
      `copyto` with its parallel ranged streams), each to /dev/null, into
      a file beside the cache and into a file on tmpfs; ratio to the
      fastest, and to the fastest that lands the bytes in a file  aim >= 0.9
      With it, what bounds the mount: the same bytes read again from its
      block cache (kernel pages dropped: FUSE and the cache, no storage),
      the CPU seconds the mount, the server and each reader used, and what
      filling that many bytes of fresh page cache costs on this machine
      (every read through a filesystem pays it; a reader to /dev/null not).
  (c) first byte: open + one 4 KiB read at the middle of an uncached
      BENCH_BIG_BYTES file through a fresh mount (catalog look-up, replica
      choice, XRootD connection, the block fetch), in ms, vs one ranged
      read of 4 KiB by a fresh process: `curl -r` over https and
      `didfs-xfer pread` over root://                           (median)
  (d) random 4 KiB reads per second on cached data: through the kernel page
      cache (file read once) vs native page-cache reads of a local copy,
      and served by the daemon from the block cache (O_DIRECT, so every read
      is a FUSE round trip) vs the same native page-cache reads
  (e) the mount's peak RSS (VmHWM): reading BENCH_RSS_BYTES (8G) cold
      through one mount (files of BENCH_BIG_BYTES read over and over, the
      kernel's caches dropped before each, a block cache of half of it, so
      every pass fetches from storage again), then `ls -lR` of a dataset of
      BENCH_RSS_LS_FILES (100000) files; against the 64 MiB limit

Where the VM hands free pages back to its host (virtio-balloon free page
reporting), every cold read of (b) starts after BENCH_IDLE (8) seconds idle,
so that no reader reuses pages the one before it freed.

Sizes (env): BENCH_BIG_BYTES (1G), BENCH_WARM_BYTES (1G), BENCH_RANDOM_BYTES
(256M), BENCH_RANDOM_READS (20000), BENCH_REPEAT (3), BENCH_FIRST_BYTE_RUNS
(7).  The servers' data lives in /dev/shm when it has room (so the disk does
not hide the protocols); the block cache and xrdcp's copy go to BENCH_DEST
(default /tmp, the local disk).  BENCH_ONLY=a,c runs some parts.  The mount
uses its defaults (4 MiB blocks, 16 MiB readahead).  Must run as root.

Run small:  BENCH_BIG_BYTES=256M BENCH_WARM_BYTES=256M tests/bench/bench_mount.py
"""
import mmap
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "env"))
import xrdrse  # noqa: E402

BUILD = os.environ.get("DIDFS_BUILD", os.path.join(ROOT, "build"))
DIDFS = os.path.join(BUILD, "tools", "didfs")
XFER = os.path.join(BUILD, "transfer", "didfs-xfer")


def size_env(name, default):
    v = os.environ.get(name, default).strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(v[-1:], 1)
    return int(v[:-1] if v[-1:] in "KMG" else v) * mult


BIG = size_env("BENCH_BIG_BYTES", "1G")
WARM = size_env("BENCH_WARM_BYTES", "1G")
RANDOM_BYTES = size_env("BENCH_RANDOM_BYTES", "256M")
RANDOM_READS = int(os.environ.get("BENCH_RANDOM_READS", "20000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
FB_RUNS = int(os.environ.get("BENCH_FIRST_BYTE_RUNS", "7"))
ONLY = set(os.environ.get("BENCH_ONLY", "a,b,c,d,e").split(","))
RSS_BYTES = size_env("BENCH_RSS_BYTES", "8G")
RSS_LS_FILES = int(os.environ.get("BENCH_RSS_LS_FILES", "100000"))
NAME = "bench_mount"
IDLE = None  # seconds settle() waits; set in main()


def say(msg):
    print(f"{NAME}: {msg}", flush=True)


def run(cmd, **kw):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit(f"{NAME}: {' '.join(map(str, cmd))} failed ({p.returncode}): "
                         f"{p.stderr[-2000:]}")
    return p


def shm_or_tmp(need):
    st = os.statvfs("/dev/shm") if os.path.isdir("/dev/shm") else None
    return "/dev/shm" if st and st.f_bavail * st.f_frsize > need else tempfile.gettempdir()


def make_file(path, nbytes):
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        left, i = nbytes, 0
        while left > 0:
            n = min(left, len(block))
            f.write(i.to_bytes(8, "little") + block[8:n] if n > 8 else block[:n])
            left -= n
            i += 1
    return path


_BUFS = {}


def read_all(path, bs=1 << 20, flags=0):
    """Read a whole file into one reused buffer (as dd does): no allocation
    per read in the measurement."""
    buf = _BUFS.get(bs)
    if buf is None:
        buf = _BUFS[bs] = mmap.mmap(-1, bs)
    fd = os.open(path, os.O_RDONLY | flags)
    total = 0
    try:
        while True:
            n = os.readv(fd, [buf])
            if not n:
                break
            total += n
    finally:
        os.close(fd)
    return total


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(path) and " - fuse" in line for line in f)


class Mount:
    """`didfs mount` in the foreground, unmounted by stop()."""

    def __init__(self, catalog, path, cache_dir, extra=()):
        os.makedirs(path, exist_ok=True)
        os.makedirs(cache_dir, exist_ok=True)
        self.path, self.cache_dir = path, cache_dir
        self.proc = subprocess.Popen(
            [DIDFS, "--catalog", catalog, "mount", path, "--cache-dir", cache_dir,
             "--cache-size", str(4 * max(BIG, WARM, RANDOM_BYTES)), "--foreground",
             "--log", os.path.join(cache_dir, "bench-mount.log"), *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 30
        while not mounted(path):
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"{NAME}: the mount did not come up: "
                                 f"{self.proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.02)

    def stop(self):
        subprocess.run(["fusermount3", "-u", self.path], capture_output=True)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            subprocess.run(["fusermount3", "-u", "-z", self.path], capture_output=True)
            self.proc.wait()

    def stats(self):
        out = {}
        for line in os.getxattr(self.path, "user.rucio.stats").decode().splitlines():
            k, v = line.split()
            out[k] = int(v)
        return out


class Lake:
    def __init__(self, work, nservers=1):
        self.work = work
        self.rses = xrdrse.Rses.create(os.path.join(work, "rses"), nservers)
        self.catalog = os.path.join(work, "catalog.db")
        self.n = 0

    def start(self):
        self.rses.start()
        run([DIDFS, "--catalog", self.catalog, "init"])
        self.rses.register(self.catalog, DIDFS)
        run([DIDFS, "--catalog", self.catalog, "add-scope", "user.root"])
        os.environ["X509_CERT_DIR"] = self.rses.ca_dir

    def upload(self, local, dataset="user.root:bench", rse="XRD1"):
        run([DIDFS, "--catalog", self.catalog, "upload", local, "--rse", rse, "--dataset", dataset])

    def pfn(self, name, scheme=None):
        import json
        args = [DIDFS, "--catalog", self.catalog, "--json", "list-file-replicas",
                f"user.root:{name}", "--pfns"]
        if scheme:
            args += ["--scheme", scheme]
        pfn = json.loads(run(args).stdout)[0]["pfn"]
        if pfn.startswith("root://"):  # Rucio's root://h:p/path means the absolute path
            head, _, path = pfn[7:].partition("/")
            pfn = f"root://{head}//{path.lstrip('/')}"
        return pfn

    def mount(self, extra=()):
        self.n += 1
        d = tempfile.mkdtemp(prefix="didfs-bench-mnt-", dir=DEST)
        return Mount(self.catalog, os.path.join(d, "mnt"), os.path.join(d, "cache"), extra)

    def stop(self):
        self.rses.stop()


DEST = os.environ.get("BENCH_DEST") or tempfile.gettempdir()


def folios(path, size):
    """(pages, folios) of the file's bytes in the page cache, read through
    /proc/self/pagemap and /proc/kpageflags (root): a folio is a page that
    is not the tail of a compound page.  None when the kernel hides PFNs."""
    import ctypes
    import struct
    page = os.sysconf("SC_PAGE_SIZE")
    npages = (size + page - 1) // page
    fd = os.open(path, os.O_RDONLY)
    try:
        # a private mapping is writable to Python (so its address can be
        # had) and maps the file's page-cache pages until written: it never is
        m = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
    finally:
        os.close(fd)
    anchor = ctypes.c_char.from_buffer(m)
    try:
        start = ctypes.addressof(anchor)
        for i in range(npages):
            m[i * page]  # map every page
        pages = tails = 0
        with open("/proc/self/pagemap", "rb") as pm, open("/proc/kpageflags", "rb") as kf:
            pm.seek(start // page * 8)
            ents = pm.read(npages * 8)
            for i in range(npages):
                e = struct.unpack_from("<Q", ents, i * 8)[0]
                if not (e >> 63) & 1:
                    continue
                pfn = e & ((1 << 55) - 1)
                if pfn == 0:
                    return None
                kf.seek(pfn * 8)
                pages += 1
                tails += (struct.unpack("<Q", kf.read(8))[0] >> 16) & 1  # KPF_COMPOUND_TAIL
        return (pages, pages - tails) if pages else None
    except OSError:
        return None
    finally:
        del anchor
        m.close()


def part_a(lake, src):
    f = make_file(os.path.join(src, "warm.bin"), WARM)
    lake.upload(f)
    m = lake.mount()
    try:
        p = os.path.join(m.path, "user.root", "bench", "warm.bin")
        read_all(p)  # fetch into the block cache and the page cache
        read_all(p)
        # native copies: on the local disk, and on tmpfs, whose page cache
        # is made of single 4 KiB pages as the FUSE file's is
        local = os.path.join(DEST, "didfs-bench-native-warm.bin")
        shm = os.path.join(shm_or_tmp(3 * WARM), "didfs-bench-native-warm.bin")
        shutil.copyfile(f, local)
        read_all(local)
        copies = {"mount": p, "native": local}
        if shm != local:
            shutil.copyfile(f, shm)
            read_all(shm)
            copies["tmpfs"] = shm
        best = {k: 1e9 for k in copies}
        for _ in range(REPEAT):
            for k, path in copies.items():
                best[k] = min(best[k], timed(lambda: read_all(path)))
        fol = {k: folios(path, WARM) for k, path in copies.items()}
        for path in copies.values():
            if path != p:
                os.unlink(path)
        rate = {k: WARM / v / 1e9 for k, v in best.items()}
        mo, na = rate["mount"], rate["native"]
        say(f"(a) warm sequential read of {WARM >> 20} MiB: mount {mo:.2f} GB/s, native "
            f"page cache {na:.2f} GB/s, ratio {mo / na:.2f} (aim >= 0.95)")
        if all(fol.values()):
            desc = ", ".join(f"{k} {fol[k][1]} folios of {fol[k][0] * 4 // fol[k][1]} KiB on "
                             f"average" for k in copies)
            say(f"(a) why: the kernel's page cache holds the bytes in {desc}; the FUSE file's "
                f"folio size is the kernel's choice (libfuse {fuse_version()} cannot set it; "
                f"passthrough needs libfuse >= 3.16), and copying out of many small folios "
                f"costs more per byte")
        else:
            say("(a) why: folio sizes not measured (/proc/kpageflags needs root and PFNs)")
        if "tmpfs" in rate:
            say(f"(a) against a native page cache of the same folio size (tmpfs "
                f"{rate['tmpfs']:.2f} GB/s): ratio {mo / rate['tmpfs']:.2f}")
    finally:
        m.stop()


def fuse_version():
    p = subprocess.run(["pkg-config", "--modversion", "fuse3"], capture_output=True, text=True)
    return p.stdout.strip() or "?"


def cpu_seconds(pid):
    """utime + stime of a live process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")


def child_cpu():
    r = os.times()
    return r.children_user + r.children_system


def rclone_env(hurl, ca):
    """An rclone webdav remote named XRD for the server of hurl, and the path."""
    head, _, path = hurl[len("https://"):].partition("/")
    env = dict(os.environ, RCLONE_CONFIG_XRD_TYPE="webdav",
               RCLONE_CONFIG_XRD_URL=f"https://{head}", RCLONE_CONFIG_XRD_VENDOR="other",
               RCLONE_CA_CERT=ca, RCLONE_CONFIG="/dev/null")
    return env, "XRD:/" + path


def part_b(lake, src):
    f = make_file(os.path.join(src, "big.bin"), BIG)
    lake.upload(f)
    rurl, hurl = lake.pfn("big.bin", "root"), lake.pfn("big.bin", "https")
    ca = lake.rses.ca_file
    server_pid = lake.rses.servers[0].pid
    fdst = os.path.join(DEST, "didfs-bench-reader.bin")
    # a copy on tmpfs lands the bytes in the page cache as a read through the
    # mount must (the FUSE file's pages), without the disk
    fshm = os.path.join(shm_or_tmp(3 * BIG), "didfs-bench-reader.bin")
    outs = {"/dev/null": "to /dev/null", fdst: "to a file"}
    if fshm != fdst:
        outs[fshm] = "to tmpfs"
    xrdcp = shutil.which("xrdcp") or "/usr/bin/xrdcp"
    rclone = shutil.which("rclone")
    renv, rpath = rclone_env(hurl, ca)
    # every single reader of the same replica, to /dev/null and into a file
    # beside the block cache (the mount lands the bytes in its cache too)
    readers = {
        "curl https": lambda out: ["curl", "-s", "-f", "--cacert", ca, "-o", out, hurl],
        "xrdcp root": lambda out: [xrdcp, "-f", "-s", rurl, out],
    }
    if rclone:
        # cat streams one GET; copyto a file uses rclone's parallel ranged
        # streams (--multi-thread-streams 4 above 250M)
        readers["rclone webdav"] = lambda out: (
            [rclone, "cat", rpath] if out == "/dev/null" else [rclone, "copyto", rpath, out])
    best, cpu = {}, {}

    def keep(key, t, c):
        if t < best.get(key, 1e9):
            best[key], cpu[key] = t, c

    for _ in range(REPEAT):
        m = lake.mount()
        try:
            p = os.path.join(m.path, "user.root", "bench", "big.bin")
            os.stat(p)
            settle()
            c0, s0 = cpu_seconds(m.proc.pid), cpu_seconds(server_pid)
            t = timed(lambda: read_all(p))
            keep("mount", t, (cpu_seconds(m.proc.pid) - c0, cpu_seconds(server_pid) - s0))
            st = m.stats()
            # the ceiling of the mount's own path without storage: the same
            # bytes again from its block cache, the kernel's pages dropped
            with open("/proc/sys/vm/drop_caches", "w") as fh:
                fh.write("1\n")
            c0 = cpu_seconds(m.proc.pid)
            t = timed(lambda: read_all(p))
            keep("from block cache", t, (cpu_seconds(m.proc.pid) - c0, 0))
        finally:
            m.stop()
            shutil.rmtree(os.path.dirname(m.path), ignore_errors=True)
        for name, cmd in readers.items():
            for out, label in outs.items():
                settle()
                c0, s0 = child_cpu(), cpu_seconds(server_pid)
                t = timed(lambda: subprocess.run([str(c) for c in cmd(out)], env=renv,
                                                 stdout=subprocess.DEVNULL, check=True))
                if out != "/dev/null":
                    if os.path.getsize(out) != BIG:
                        raise SystemExit(f"{NAME}: {name} wrote {os.path.getsize(out)} bytes")
                    os.unlink(out)
                keep(f"{name} {label}", t, (child_cpu() - c0, cpu_seconds(server_pid) - s0))
    # what a reader's page cache costs to fill here: fresh pages after the
    # machine idled (a VM with free page reporting has handed them back to
    # its host, which faults them in again) and the same pages reused at once
    fill_idle = fill_seconds(fshm, idle=8)
    fill_again = fill_seconds(fshm, idle=0)
    rate = {k: BIG / v / 1e6 for k, v in best.items()}
    own = ("mount", "from block cache")
    fastest = max((k for k in rate if k not in own), key=rate.get)
    landing = max((k for k in rate if k not in own and not k.endswith("/dev/null")),
                  key=rate.get)
    say(f"(b) cold sequential read of {BIG >> 20} MiB through a fresh mount (block cache in "
        f"{DEST}; {st['fetches']} fetches, {st['prefetches']} prefetched) beside every single "
        f"reader of the same replica, best of {REPEAT}:")
    for k in sorted(rate, key=rate.get, reverse=True):
        c = cpu[k]
        say(f"      {k:<26} {rate[k]:6.0f} MB/s  ratio mount/this {rate['mount'] / rate[k]:.2f}"
            f"  (CPU s: reader {c[0]:.2f}, XRootD server {c[1]:.2f})")
    if not rclone:
        say("      rclone: not installed (Debian rclone), not measured")
    ncpu = os.cpu_count()
    mc, sc = cpu["mount"]
    say(f"(b) mount / fastest single reader ({fastest}): {rate['mount'] / rate[fastest]:.2f} "
        f"(aim >= 0.9); why not higher: the mount's own ceiling without storage (its block "
        f"cache through FUSE) is {rate['from block cache']:.0f} MB/s, and its cold read took "
        f"{mc:.2f} CPU s in the mount + {sc:.2f} in the server over {best['mount']:.2f} s on "
        f"{ncpu} CPUs ({(mc + sc) / best['mount'] / ncpu:.0%} of the machine) vs "
        f"{sum(cpu[fastest]):.2f} CPU s for {fastest}: each byte is received, verified, "
        f"written to the cache and copied to the reader through /dev/fuse")
    rep = reporting()
    say(f"(b) a read through any filesystem lands the bytes in the reader's page cache, which "
        f"a reader to /dev/null never does: filling {BIG >> 20} MiB of fresh page cache alone "
        f"(one process writing to tmpfs) takes {fill_idle:.2f} s of CPU after the machine idled "
        f"8 s and {fill_again:.2f} s with pages freed just before{' (' + rep + ')' if rep else ''}"
        f"; {fastest} took {best[fastest]:.2f} s, the mount {best['mount']:.2f} s")
    say(f"(b) mount / fastest single reader that lands the bytes in a file ({landing}): "
        f"{rate['mount'] / rate[landing]:.2f} (aim >= 0.9)")


def settle():
    """Before each cold read: where the VM hands free pages back to its host,
    wait until it has, so that every reader starts as a read of new data on
    a quiet machine does (and none reuses the pages the one before freed)."""
    if IDLE:
        time.sleep(IDLE)


def fill_seconds(path, idle):
    """Seconds to write BIG bytes into a new file at path from a hot buffer,
    after idle seconds: what allocating and filling fresh page-cache pages
    costs here."""
    buf = os.urandom(1 << 20)
    time.sleep(idle)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        t = time.perf_counter()
        for _ in range(BIG >> 20):
            os.write(fd, buf)
        return time.perf_counter() - t
    finally:
        os.close(fd)
        os.unlink(path)


def reporting():
    """A note when the VM hands freed pages back to its host (virtio-balloon
    free page reporting): every page the kernel takes anew then faults in
    from the host, which a page-cache fill pays for."""
    import glob
    for f in glob.glob("/sys/bus/virtio/drivers/virtio_balloon/virtio*/features"):
        try:
            with open(f) as fh:
                bits = fh.read().strip()
        except OSError:
            continue
        if len(bits) > 5 and bits[5] == "1":  # VIRTIO_BALLOON_F_REPORTING
            return ("this VM reports free pages to its host: pages left free for a few "
                    "seconds fault in from the host when used again")
    return ""


def part_c(lake, src):
    if not os.path.exists(os.path.join(src, "big.bin")):
        f = make_file(os.path.join(src, "big.bin"), BIG)
        lake.upload(f)
    mid = (BIG // 2) & ~4095
    rurl, hurl = lake.pfn("big.bin", "root"), lake.pfn("big.bin", "https")
    ca = lake.rses.ca_file
    mount_ms, curl_ms, xfer_ms, expect = [], [], [], None
    for _ in range(FB_RUNS):
        m = lake.mount()
        try:
            p = os.path.join(m.path, "user.root", "bench", "big.bin")
            t = time.perf_counter()
            fd = os.open(p, os.O_RDONLY)
            b = os.pread(fd, 4096, mid)
            os.close(fd)
            mount_ms.append((time.perf_counter() - t) * 1000)
        finally:
            m.stop()
            shutil.rmtree(os.path.dirname(m.path), ignore_errors=True)
        t = time.perf_counter()
        c = subprocess.run(["curl", "-s", "-f", "--cacert", ca, "-r", f"{mid}-{mid + 4095}", hurl],
                           capture_output=True, check=True).stdout
        curl_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        x = subprocess.run([XFER, "pread", rurl, str(mid), "4096"], capture_output=True,
                           check=True).stdout
        xfer_ms.append((time.perf_counter() - t) * 1000)
        expect = expect or b
        assert b == expect == c == x and len(b) == 4096
    mo, cu, xf = (statistics.median(v) for v in (mount_ms, curl_ms, xfer_ms))
    say(f"(c) first byte, 4 KiB at the middle of an uncached {BIG >> 20} MiB file (median of "
        f"{FB_RUNS}): mount {mo:.1f} ms (open + read, fresh mount), curl -r over https "
        f"{cu:.1f} ms, didfs-xfer pread over root:// {xf:.1f} ms; ratio to the faster "
        f"{mo / min(cu, xf):.2f}")


def random_reads(path, size, n, direct=False):
    rnd = random.Random(7)
    offs = [rnd.randrange(0, size // 4096) * 4096 for _ in range(n)]
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECT if direct else 0))
    buf = mmap.mmap(-1, 4096)
    try:
        t = time.perf_counter()
        for off in offs:
            os.preadv(fd, [buf], off)
        return n / (time.perf_counter() - t)
    finally:
        os.close(fd)
        buf.close()


def part_d(lake, src):
    f = make_file(os.path.join(src, "random.bin"), RANDOM_BYTES)
    lake.upload(f)
    local = os.path.join(DEST, "didfs-bench-native-random.bin")
    shutil.copyfile(f, local)
    read_all(local)
    m = lake.mount()
    try:
        p = os.path.join(m.path, "user.root", "bench", "random.bin")
        read_all(p)  # into the block cache and the page cache
        best = {k: 0 for k in ("mount", "native", "mount_direct")}
        for _ in range(REPEAT):
            best["mount"] = max(best["mount"], random_reads(p, RANDOM_BYTES, RANDOM_READS))
            best["native"] = max(best["native"], random_reads(local, RANDOM_BYTES, RANDOM_READS))
            best["mount_direct"] = max(best["mount_direct"],
                                       random_reads(p, RANDOM_BYTES, RANDOM_READS, True))
    finally:
        m.stop()
        os.unlink(local)
    say(f"(d) random 4 KiB reads of a cached {RANDOM_BYTES >> 20} MiB file: through the page "
        f"cache mount {best['mount']:.0f}/s vs native {best['native']:.0f}/s, ratio "
        f"{best['mount'] / best['native']:.2f}; served by the daemon from the block cache "
        f"(O_DIRECT: every read a FUSE round trip) {best['mount_direct']:.0f}/s, ratio to native "
        f"page cache {best['mount_direct'] / best['native']:.2f}")


def vm_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0]) * 1024
    return out


def part_e(lake, src):
    nfiles = max(1, min(4, RSS_BYTES // BIG))
    names = [f"rss{i}.bin" for i in range(nfiles)]
    for n in names:
        f = make_file(os.path.join(src, n), BIG)
        lake.upload(f, dataset="user.root:rss")
        os.unlink(f)
    d = [DIDFS, "--catalog", lake.catalog]
    run(d + ["add-rse", "RSSLS"])
    run(d + ["add-protocol", "--rse", "RSSLS", "--scheme", "root", "--hostname", "127.0.0.1",
             "--port", "1", "--prefix", "/rucio"])
    run(d + ["add-dataset", "user.root:rssls"])
    lst = os.path.join(src, "rssls.txt")
    with open(lst, "w") as f:
        for i in range(RSS_LS_FILES):
            f.write(f"user.root:rssls_{i:07d}.root {1000 + i} {(i + 1) & 0xffffffff:08x}\n")
    run(d + ["add-replicas", "--rse", "RSSLS", "--list", lst, "--dataset", "user.root:rssls"])
    os.unlink(lst)
    m = lake.mount(["--cache-size", str(max(BIG, RSS_BYTES // 2))])
    try:
        pid = m.proc.pid
        start = vm_status(pid)["VmRSS"]
        read = 0
        while read < RSS_BYTES:
            for n in names:
                with open("/proc/sys/vm/drop_caches", "w") as f:
                    f.write("3\n")
                read_all(os.path.join(m.path, "user.root", "rss", n))
                read += BIG
                if read >= RSS_BYTES:
                    break
        after_read = vm_status(pid)["VmHWM"]
        subprocess.run(["ls", "-lR", os.path.join(m.path, "user.root", "rssls")], check=True,
                       stdout=subprocess.DEVNULL)
        after_ls = vm_status(pid)["VmHWM"]
    finally:
        m.stop()
        shutil.rmtree(os.path.dirname(m.path), ignore_errors=True)
    lim = 64 << 20
    say(f"(e) mount peak RSS: {start / 2**20:.1f} MiB at start, {after_read / 2**20:.1f} MiB "
        f"after reading {read >> 30} GiB cold = {after_read / lim:.2f} of 64 MiB; "
        f"{after_ls / 2**20:.1f} MiB after also ls -lR of {RSS_LS_FILES} files = "
        f"{after_ls / lim:.2f} of 64 MiB")


def main():
    if os.geteuid() != 0:
        raise SystemExit(f"{NAME}: must run as root (xrootd -R xrootd, FUSE)")
    if not os.path.exists(DIDFS):
        raise SystemExit(f"{NAME}: {DIDFS} not found: build first (DIDFS_BUILD)")
    need = 3 * (BIG + WARM + RANDOM_BYTES)
    work = tempfile.mkdtemp(prefix="didfs-bench-mount-", dir=shm_or_tmp(need))
    os.chmod(work, 0o755)
    src = os.path.join(work, "src")
    os.makedirs(src)
    lake = Lake(work)
    global IDLE
    IDLE = float(os.environ.get("BENCH_IDLE", "8" if reporting() else "0"))
    try:
        lake.start()
        say(f"XRootD data in {work}; block cache and xrdcp copies in {DEST}; best of {REPEAT}")
        if IDLE:
            say(f"this VM reports free pages to its host: each cold read in (b) starts after "
                f"{IDLE:g} s idle (BENCH_IDLE), as a read of new data on a quiet machine does")
        for part, fn in (("a", part_a), ("b", part_b), ("c", part_c), ("d", part_d),
                         ("e", part_e)):
            if part in ONLY:
                fn(lake, src)
    finally:
        lake.stop()
        shutil.rmtree(work, ignore_errors=True)
        for d in os.listdir(DEST):
            if d.startswith("didfs-bench-mnt-"):
                shutil.rmtree(os.path.join(DEST, d), ignore_errors=True)


if __name__ == "__main__":
    main()
