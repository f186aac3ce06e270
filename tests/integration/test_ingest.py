# SPDX-License-Identifier: Apache-2.0
# Watch-folder ingest (`didfs ingest`, daemons/ingest.c): files dropped with
# trigger files into an interface directory of a real XRootD RSE's storage
# are verified, described and registered exactly once, even with the
# ingest service SIGKILLed twice on the way; bad checksums, malformed
# triggers, lone triggers, crashing and hanging extractors are set aside
# into .failed/ with a .reason and never registered; FITS headers and HDF5
# root attributes become metadata; inotify takes files as they come.
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import time
import uuid
import zlib

import pytest

from catfixture import connect_catalog, is_pg


def adler(data):
    return "%08x" % (zlib.adler32(data) & 0xFFFFFFFF)


def write_config(path, **kv):
    lines = []
    for k, v in kv.items():
        for x in (v if isinstance(v, list) else [v]):
            lines.append(f"{k} = {x}")
    path.write_text("\n".join(lines) + "\n")
    return path


def drop(dirpath, name, data, trigger=None):
    """A data file, then its trigger (as an acquisition system writes them)."""
    p = dirpath / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    if trigger is not None:
        (dirpath / (name + ".trigger")).write_text(trigger)
    return p


def catalog_rows(catalog, sql, *args):
    con = (connect_catalog(catalog) if is_pg(catalog)
           else sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=60))
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def wait_for(cond, timeout=300, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def local_rse(didfs, tmp_path, name="ONSITE"):
    """A non-deterministic file:// RSE whose storage is tmp_path/name."""
    root = tmp_path / name
    root.mkdir()
    didfs("add-rse", name, "--non-deterministic")
    didfs("add-protocol", "--rse", name, "--scheme", "file", "--prefix", str(root))
    return root


@pytest.fixture
def ing(didfs):
    didfs("add-scope", "ctao", "--account", "root")
    return didfs


def run_once(didfs, config, **kw):
    p = didfs.run("--json", "ingest", "--config", str(config), "--once", **kw)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout), p.stderr


# ---------------------------------------------------------------------------
# 1,000 files on a real XRootD RSE, the service killed twice on the way

def test_ingest_1000_files_killed_twice(rses, ing, tmp_path):
    srv = rses.servers[0]
    # the interface directory is part of XRD1's storage: a non-deterministic
    # RSE on the same server under a private prefix (removed afterwards, so
    # the session server's other RSEs never see it)
    prefix = f"/ingest-{uuid.uuid4().hex[:12]}"
    root = srv.local_path(prefix)
    os.makedirs(root)
    try:
        ingest_1000_files_killed_twice(ing, srv, prefix, root, tmp_path)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def ingest_1000_files_killed_twice(didfs, srv, prefix, root, tmp_path):
    didfs("add-rse", "ONSITE", "--non-deterministic")
    didfs("add-protocol", "--rse", "ONSITE", "--scheme", "root", "--hostname", srv.host,
          "--port", srv.port, "--prefix", prefix, "--read", 1, "--write", 1,
          "--delete", 1)
    didfs("add-rse", "DC1")
    didfs("set-rse-attribute", "--rse", "DC1", "--key", "type", "--value", "DC")
    didfs("add-protocol", "--rse", "DC1", "--scheme", "file", "--prefix", str(tmp_path / "dc1"))
    inbox = os.path.join(root, "daq")
    extractor = tmp_path / "extract.sh"
    extractor.write_text("#!/bin/sh\nsleep 0.01\necho \"source=daq\"\necho \"bytes_on_disk=$(stat -c %s \"$1\")\"\n")
    extractor.chmod(0o755)
    cfg = write_config(tmp_path / "ingest.conf", rse="ONSITE", root=root, dir="daq",
                       scope="ctao", dataset="dl0_run{run}", rule="1 type=DC",
                       extractor="command", extractor_command=f"{extractor} {{}}",
                       batch=25, rescan=2, missing_grace=3600)
    from pathlib import Path
    inbox = Path(inbox)
    want = {}
    bad = set()
    for i in range(1000):
        data = os.urandom(200 + i)
        name = f"night1/obs_{i:04d}.dat"
        a = adler(data)
        if i % 100 == 7:
            a = "%08x" % ((int(a, 16) + 1) & 0xFFFFFFFF)  # a corrupted copy
            bad.add(name)
        else:
            want[name] = (len(data), adler(data), str(i % 3))
        trig = (f"adler32={a}\nbytes={len(data)}\nrun={i % 3}\n" if i % 2 else
                json.dumps({"adler32": a, "md5": hashlib.md5(data).hexdigest(),
                            "meta": {"run": i % 3}}))
        drop(inbox, name, data, trig)

    def triggers_left():
        return sum(1 for _ in (inbox / "night1").glob("*.trigger"))

    log = open(tmp_path / "ingest.log", "w")
    cmd = [didfs.bin, "--catalog", didfs.catalog, "ingest", "--config", str(cfg)]
    kills = 0
    try:
        for threshold in (850, 500):
            p = subprocess.Popen(cmd, stdout=log, stderr=log)
            wait_for(lambda: triggers_left() <= threshold or p.poll() is not None,
                     what=f"ingest down to {threshold} triggers")
            assert p.poll() is None, "the ingest service ended by itself"
            left = triggers_left()
            p.send_signal(signal.SIGKILL)
            p.wait()
            kills += 1
            assert left > 0, "the kill came after everything was done"
        p = subprocess.Popen(cmd, stdout=log, stderr=log)
        wait_for(lambda: triggers_left() == 0, what="every trigger acknowledged")
        # let a rescan run over the finished directory: nothing new
        time.sleep(3)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=120) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        log.close()
    assert kills == 2

    # every good file registered exactly once, with its metadata
    rows = catalog_rows(didfs.catalog,
                        "SELECT d.name, d.bytes, d.adler32, rp.path, rp.state FROM dids d"
                        " JOIN replicas rp ON rp.did_id=d.id JOIN rses r ON r.num=rp.rse_num"
                        " WHERE r.rse='ONSITE' AND d.did_type='F'")
    names = [r[0] for r in rows]
    assert len(names) == len(set(names))
    got = {r[0]: r for r in rows}
    assert set(got) == {f"daq/{n}" for n in want}
    for n, (size, a, run) in want.items():
        r = got[f"daq/{n}"]
        assert (r[1], r[2], r[4]) == (size, a, "A")
        assert r[3].lstrip("/") == f"daq/{n}"
    meta = catalog_rows(didfs.catalog,
                        "SELECT d.name, m.key, m.value FROM did_meta m JOIN dids d ON"
                        " d.id=m.did_id WHERE d.did_type='F'")
    per = {}
    for n, k, v in meta:
        per.setdefault(n, {})[k] = v
    for n, (size, a, run) in want.items():
        assert per[f"daq/{n}"] == {"run": run, "source": "daq", "bytes_on_disk": str(size)}
    # attached once each to its run's dataset, each dataset with exactly one rule
    content = catalog_rows(didfs.catalog,
                           "SELECT p.name, count(*), count(DISTINCT c.child_id) FROM contents c"
                           " JOIN dids p ON p.id=c.parent_id GROUP BY p.name")
    by_ds = {n: (total, distinct) for n, total, distinct in content}
    for run in "012":
        n = sum(1 for v in want.values() if v[2] == run)
        assert by_ds[f"dl0_run{run}"] == (n, n)
    rules = catalog_rows(didfs.catalog,
                         "SELECT d.name, count(*) FROM rules r JOIN dids d ON d.id=r.did_id"
                         " GROUP BY d.name")
    assert dict(rules) == {"dl0_run0": 1, "dl0_run1": 1, "dl0_run2": 1}
    # bad checksums set aside with their reason, never registered
    for n in bad:
        reason = (inbox / ".failed" / (n + ".reason")).read_text()
        assert "FileConsistencyMismatch: adler32" in reason, reason
        assert (inbox / ".failed" / n).exists()
        assert (inbox / ".failed" / (n + ".trigger")).exists()
        assert not (inbox / n).exists()
    assert not catalog_rows(didfs.catalog, "SELECT 1 FROM dids WHERE name LIKE '%.failed%'")
    # the catalog is consistent, and a replica is readable through XRootD
    didfs("check")
    name = sorted(want)[1]
    dl = tmp_path / "dl"
    didfs("download", f"ctao:daq/{name}", "--dir", str(dl), "--rse", "ONSITE")
    files = [p for p in dl.rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].read_bytes() == (inbox / name).read_bytes()


# ---------------------------------------------------------------------------
# FITS headers and HDF5 root attributes

def fits_file(path, cards):
    """A minimal FITS file: primary header of 80-character cards in
    2880-byte blocks, no data."""
    def card(k, v):
        if isinstance(v, str):
            v = "'" + v.replace("'", "''").ljust(8) + "'"
        elif isinstance(v, bool):
            v = "T" if v else "F"
        return f"{k:<8}= {str(v):>20}".ljust(80)
    text = card("SIMPLE", True) + card("BITPIX", 8) + card("NAXIS", 0)
    for k, v in cards:
        text += card(k, v)
    text += "COMMENT   made by test_ingest".ljust(80) + "END".ljust(80)
    text = text.ljust((len(text) + 2879) // 2880 * 2880)
    path.write_bytes(text.encode("ascii"))


def test_ingest_fits_and_hdf5_metadata(ing, tmp_path):
    h5py = pytest.importorskip("h5py")
    didfs = ing
    root = local_rse(didfs, tmp_path)
    (root / "fits").mkdir()
    (root / "hdf5").mkdir()
    fits_file(root / "fits" / "lst1.fits", [("OBJECT", "Crab Nebula"), ("EXPTIME", 30),
                                            ("DATE-OBS", "2026-11-30"), ("OBS_ID", 4711)])
    (root / "fits" / "lst1.fits.trigger").write_text("")
    (root / "fits" / "notfits.fits").write_bytes(b"not a FITS file at all" * 10)
    (root / "fits" / "notfits.fits.trigger").write_text("")
    with h5py.File(root / "hdf5" / "run.h5", "w") as f:
        f.attrs["run_number"] = 123
        f.attrs["telescope"] = "MST-7"
        f.attrs["zenith"] = 20.5
        f.attrs["fixed"] = b"abc"
        f.attrs["vector"] = [1, 2, 3]  # not a scalar: not metadata
        f.create_dataset("events", data=list(range(10)))
    (root / "hdf5" / "run.h5.trigger").write_text("site=north\n")
    (root / "hdf5" / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    (root / "hdf5" / "broken.h5.trigger").write_text("")

    cfg = write_config(tmp_path / "fits.conf", rse="ONSITE", root=root, dir="fits",
                       scope="ctao", extractor="fits", dataset="obs_{OBS_ID}")
    out, err = run_once(didfs, cfg)
    assert out["registered"] == 1 and out["failed"] == 1, (out, err)
    m = didfs.json("get-metadata", "ctao:fits/lst1.fits")
    assert m["OBJECT"] == "Crab Nebula"
    assert m["EXPTIME"] == "30"
    assert m["DATE-OBS"] == "2026-11-30"
    assert "COMMENT" not in m and "SIMPLE" in m
    assert [d["did"] for d in didfs.json("list-content", "ctao:obs_4711")] == ["ctao:fits/lst1.fits"]
    reason = (root / "fits" / ".failed" / "notfits.fits.reason").read_text()
    assert "FITS extractor" in reason, reason

    cfg = write_config(tmp_path / "h5.conf", rse="ONSITE", root=root, dir="hdf5",
                       scope="ctao", extractor="hdf5")
    out, err = run_once(didfs, cfg)
    assert out["registered"] == 1 and out["failed"] == 1, (out, err)
    m = didfs.json("get-metadata", "ctao:hdf5/run.h5")
    assert m["run_number"] == "123"
    assert m["telescope"] == "MST-7"
    assert float(m["zenith"]) == 20.5
    assert m["fixed"] == "abc"
    assert m["site"] == "north"   # the trigger's keys join the extractor's
    assert "vector" not in m
    reason = (root / "hdf5" / ".failed" / "broken.h5.reason").read_text()
    assert "HDF5 extractor" in reason, reason
    didfs.fails("get-metadata", "ctao:hdf5/broken.h5", cls="DataIdentifierNotFound")


# ---------------------------------------------------------------------------
# bad input: clear reasons, nothing registered half-way

def test_ingest_bad_input(ing, tmp_path):
    didfs = ing
    root = local_rse(didfs, tmp_path)
    inbox = root / "in"
    inbox.mkdir()
    good = os.urandom(500)
    drop(inbox, "good.dat", good, f"adler32={adler(good)}\nrun=1\n")
    drop(inbox, "kv.dat", b"x" * 10, "adler32 0a0b0c0d\n")
    drop(inbox, "json.dat", b"x" * 10, '{"adler32": "0a0b0c0d", ')
    drop(inbox, "badsum.dat", b"x" * 10, "md5=not-an-md5\n")
    drop(inbox, "size.dat", b"x" * 10, "bytes=11\n")
    drop(inbox, "badkey.dat", b"x" * 10, "bad key=1\n")
    (inbox / "lonely.dat.trigger").write_text("bytes=3\n")
    cfg = write_config(tmp_path / "a.conf", rse="ONSITE", root=root, dir="in", scope="ctao",
                       dataset="ds_run{run}", missing_grace=3600)
    out, err = run_once(didfs, cfg)
    assert out["registered"] == 1 and out["failed"] == 5 and out["waiting"] == 1, (out, err)
    reasons = {p.name[:-len(".reason")]: p.read_text() for p in (inbox / ".failed").glob("*.reason")}
    assert "malformed trigger file: trigger line:1: not a key=value line" in reasons["kv.dat"]
    assert "malformed trigger file: trigger JSON" in reasons["json.dat"]
    assert "bad md5" in reasons["badsum.dat"]
    assert "FileConsistencyMismatch: 10 bytes, the trigger says 11" in reasons["size.dat"]
    assert "InvalidMetadata" in reasons["badkey.dat"]
    assert "lonely.dat" not in reasons  # still within missing_grace
    # a lone trigger past its grace is set aside too
    cfg2 = write_config(tmp_path / "b.conf", rse="ONSITE", root=root, dir="in", scope="ctao",
                        dataset="ds_run{run}", missing_grace=0)
    out, err = run_once(didfs, cfg2)
    assert out["failed"] == 1 and out["registered"] == 0, (out, err)
    r = (inbox / ".failed" / "lonely.dat.reason").read_text()
    assert "trigger file without its data file" in r and "lonely.dat" in r
    assert (inbox / ".failed" / "lonely.dat.trigger").exists()
    # a symbolic link is never taken (it could name any file)
    (tmp_path / "secret").write_text("not for the catalog")
    os.symlink(tmp_path / "secret", inbox / "link.dat")
    (inbox / "link.dat.trigger").write_text("")
    # a second failure of the same name keeps the first one's files
    drop(inbox, "kv.dat", b"again", "adler32 again\n")
    out, err = run_once(didfs, cfg2)
    assert out["failed"] == 2 and out["registered"] == 0, (out, err)
    assert "not a regular file" in (inbox / ".failed" / "link.dat.reason").read_text()
    assert (inbox / "link.dat").is_symlink()
    assert (inbox / ".failed" / "kv.dat").read_bytes() == b"x" * 10
    assert (inbox / ".failed" / "kv.dat.1").read_bytes() == b"again"
    assert "not a key=value line" in (inbox / ".failed" / "kv.dat.1.reason").read_text()
    assert (inbox / ".failed" / "kv.dat.1.trigger").exists()
    # the only change to the catalog: the good file, its dataset and metadata
    names = [d["did"] for d in didfs.json("list-dids", "ctao:*", "--type", "all")]
    assert sorted(names) == ["ctao:ds_run1", "ctao:in/good.dat"]
    assert didfs.json("get-metadata", "ctao:in/good.dat")["run"] == "1"

    # extractors that crash, fail, print garbage or hang (killed after the timeout)
    didfs2_root = root / "ex"
    didfs2_root.mkdir()
    scripts = {
        "crash": "#!/bin/sh\nkill -SEGV $$\n",
        "fail": "#!/bin/sh\necho 'cannot parse header' >&2\nexit 2\n",
        "garbage": "#!/bin/sh\necho 'this is not key value'\n",
        "hang": "#!/bin/sh\nsleep 300\n",
    }
    for what, text in scripts.items():
        s = tmp_path / f"{what}.sh"
        s.write_text(text)
        s.chmod(0o755)
        d = didfs2_root / what
        d.mkdir()
        drop(d, "f.dat", b"y" * 20, f"adler32={adler(b'y' * 20)}\n")
        cfg = write_config(tmp_path / f"{what}.conf", rse="ONSITE", root=root, dir=f"ex/{what}",
                           scope="ctao", extractor="command", extractor_command=str(s),
                           extractor_timeout=2)
        t0 = time.time()
        out, err = run_once(didfs, cfg)
        assert out["failed"] == 1 and out["registered"] == 0, (what, out, err)
        if what == "hang":
            assert time.time() - t0 < 200, "the hanging extractor was not killed"
        reason = (d / ".failed" / "f.dat.reason").read_text()
        expect = {"crash": "died of signal 11", "fail": "exit status 2: cannot parse header",
                  "garbage": "not a key=value line", "hang": "did not finish within 2 s: killed"}
        assert expect[what] in reason, (what, reason)
        didfs.fails("get-metadata", f"ctao:ex/{what}/f.dat", cls="DataIdentifierNotFound")

    # a configuration the service cannot use: clear errors, nothing done
    bad = write_config(tmp_path / "bad.conf", rse="ONSITE", root=root, scope="ctao", colour="blue")
    didfs.fails("ingest", "--config", bad, "--once", cls="InputValidationError",
                contains="bad.conf:4: unknown key 'colour'")
    didfs("add-rse", "DET")
    det = write_config(tmp_path / "det.conf", rse="DET", root=root, scope="ctao")
    didfs.fails("ingest", "--config", det, "--once", contains="is deterministic")
    outside = write_config(tmp_path / "out.conf", rse="ONSITE", root=root, scope="ctao",
                           dir="/etc")
    didfs.fails("ingest", "--config", outside, "--once", contains="is not under root")
    # a rule that cannot be placed leaves the files where they are, to retry
    dd = root / "norule"
    dd.mkdir()
    drop(dd, "f.dat", b"z" * 5, "")
    cfg = write_config(tmp_path / "nr.conf", rse="ONSITE", root=root, dir="norule",
                       scope="ctao", dataset="ds_norule", rule="1 type=NOWHERE")
    p = didfs.run("ingest", "--config", cfg, "--once")
    assert p.returncode == 1 and "not registered" in p.stderr, p.stderr
    assert (dd / "f.dat.trigger").exists() and not (dd / ".failed").exists()
    didfs.fails("get-metadata", "ctao:ds_norule", cls="DataIdentifierNotFound")


# ---------------------------------------------------------------------------
# watching: inotify takes files as they come; quiet-time mode; seen twice

def test_ingest_watch_and_quiet_mode(ing, tmp_path):
    didfs = ing
    root = local_rse(didfs, tmp_path)
    inbox = root / "in"
    inbox.mkdir()
    cfg = write_config(tmp_path / "w.conf", rse="ONSITE", root=root, dir="in", scope="ctao",
                       rescan=3600, dataset="live")
    log = open(tmp_path / "w.log", "w")
    p = subprocess.Popen([didfs.bin, "--catalog", didfs.catalog, "ingest", "--config", str(cfg)],
                         stdout=log, stderr=log)
    try:
        time.sleep(1)
        for i in range(5):
            data = os.urandom(100)
            drop(inbox / "sub", f"f{i}.dat", data, f"adler32={adler(data)}\n")
        # no rescan for an hour: only inotify can have seen them (and the new subdirectory)
        wait_for(lambda: not list((inbox / "sub").glob("*.trigger")), timeout=120,
                 what="inotify ingest")
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        log.close()
    assert len(didfs.json("list-content", "ctao:live")) == 5
    # seen twice (a trigger dropped again for a registered file): registered once
    data = (inbox / "sub" / "f0.dat").read_bytes()
    (inbox / "sub" / "f0.dat.trigger").write_text(f"adler32={adler(data)}\n")
    out, _ = run_once(didfs, cfg)
    assert out["already_registered"] == 1 and out["registered"] == 0
    assert not (inbox / "sub" / "f0.dat.trigger").exists()
    # ... unless it says the file is another one: set aside
    (inbox / "sub" / "f1.dat.trigger").write_text("adler32=00000001\n")
    out, _ = run_once(didfs, cfg)
    assert out["failed"] == 1
    assert "FileConsistencyMismatch" in (inbox / ".failed" / "sub" / "f1.dat.reason").read_text()
    assert (inbox / "sub" / "f1.dat").exists()  # the registered file stays where it is
    assert len(didfs.json("list-content", "ctao:live")) == 5

    # no trigger: a file is taken once quiet for quiet_time seconds
    q = root / "quiet"
    q.mkdir()
    (q / "old.dat").write_bytes(b"old" * 10)
    os.utime(q / "old.dat", (time.time() - 100, time.time() - 100))
    (q / "new.dat").write_bytes(b"new" * 10)
    qcfg = write_config(tmp_path / "q.conf", rse="ONSITE", root=root, dir="quiet", scope="ctao",
                        trigger_suffix="none", quiet_time=50, md5="true")
    out, _ = run_once(didfs, qcfg)
    assert out["registered"] == 1 and out["waiting"] == 1, out
    d = didfs.json("get-metadata", "ctao:quiet/old.dat")
    assert d["md5"] == hashlib.md5(b"old" * 10).hexdigest()
    out, _ = run_once(didfs, qcfg)
    assert out["registered"] == 0 and out["already_registered"] == 1


def test_ingest_names_and_patterns(ing, tmp_path):
    """name = basename; {dir} and {date} (the file's mtime, UTC) in the pattern;
    a pattern naming another scope; a dataset name Rucio refuses sets the file
    aside."""
    didfs = ing
    didfs("add-scope", "raw", "--account", "root")
    root = local_rse(didfs, tmp_path)
    inbox = root / "in"
    p = drop(inbox / "lst1" / "night", "a.dat", b"a" * 10, "")
    t = 1764547200  # 2025-12-01 00:00:00 UTC
    os.utime(p, (t, t))
    cfg = write_config(tmp_path / "n.conf", rse="ONSITE", root=root, dir="in", scope="ctao",
                       name="basename", dataset="raw:{dir}_{date}")
    out, err = run_once(didfs, cfg)
    assert out["registered"] == 1, (out, err)
    content = didfs.json("list-content", "raw:in.lst1.night_20251201")
    assert [c["did"] for c in content] == ["ctao:a.dat"]
    reps = didfs.json("list-file-replicas", "ctao:a.dat", "--pfns")
    assert any(str(inbox / "lst1" / "night" / "a.dat") in json.dumps(r) for r in reps), reps
    drop(inbox, "b.dat", b"b" * 10, "run=bad name!\n")
    cfg = write_config(tmp_path / "m.conf", rse="ONSITE", root=root, dir="in", scope="ctao",
                       dataset="ds_{run}")
    out, err = run_once(didfs, cfg)
    assert out["failed"] == 1 and out["registered"] == 0, (out, err)
    assert "dataset name" in (inbox / ".failed" / "b.dat.reason").read_text()
