# SPDX-License-Identifier: Apache-2.0
# The user story of DESIGN.md: a Jupyter notebook opens an HDF5 file with
# h5py and a CSV file with pandas straight from the mount and checks their
# contents; executed for real with `jupyter nbconvert --execute`.
import json
import os
import shutil
import subprocess

import pytest

h5py = pytest.importorskip("h5py")
np = pytest.importorskip("numpy")
pytest.importorskip("pandas")


def notebook(cells):
    return {
        "cells": [{"cell_type": "code", "execution_count": None, "metadata": {},
                   "outputs": [], "source": src} for src in cells],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                    "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


def test_notebook_reads_hdf5_and_csv_from_the_mount(lake, mount, tmp_path):
    nbconvert = shutil.which("jupyter-nbconvert", path="/usr/bin:" + os.environ.get("PATH", ""))
    if not nbconvert:
        pytest.skip("jupyter-nbconvert is not installed (scripts/deps-fs.txt)")
    src = tmp_path / "src"
    src.mkdir()
    h5 = src / "obs_001.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("events/energy", data=np.arange(200000, dtype="f8") * 0.5,
                         chunks=(4096,), compression="gzip")
        f.create_dataset("events/id", data=np.arange(200000, dtype="i8"))
        f.attrs["telescope"] = "CTA-N"
    csv = src / "runs.csv"
    csv.write_text("run,start,events\n" + "".join(f"{i},{1700000000 + i},{i * 7}\n"
                                                  for i in range(1000)))
    lake("upload", h5, csv, "--rse", "XRD1", "--dataset", "user.root:dl0_2026_11")
    m = mount(lake)
    ds = m.path / "user.root" / "dl0_2026_11"
    nb = tmp_path / "analysis.ipynb"
    nb.write_text(json.dumps(notebook([
        f"import h5py, pandas as pd, numpy as np\nDS = {str(ds)!r}",
        "with h5py.File(DS + '/obs_001.h5', 'r') as f:\n"
        "    e = f['events/energy'][:]\n"
        "    ids = f['events/id'][1000:1010]\n"
        "    tel = f.attrs['telescope']\n"
        "assert e.shape == (200000,) and e[199999] == 199999 * 0.5 and e.sum() == 0.5 * 199999 * 200000 / 2\n"
        "assert list(ids) == list(range(1000, 1010)) and tel == 'CTA-N'",
        "df = pd.read_csv(DS + '/runs.csv')\n"
        "assert len(df) == 1000 and df.events.sum() == 7 * 999 * 1000 // 2\n"
        "assert df.loc[df.run == 500, 'start'].item() == 1700000500\n"
        "print('checked', len(df), 'runs and', e.size, 'events')",
        "import os\n"
        "print(os.getxattr(DS + '/obs_001.h5', 'user.rucio.state').decode())",
    ])))
    out = tmp_path / "executed.ipynb"
    env = dict(os.environ, PATH="/usr/bin:/bin:" + os.environ.get("PATH", ""))
    p = subprocess.run([nbconvert, "--to", "notebook", "--execute", str(nb), "--output",
                        str(out), "--ExecutePreprocessor.timeout=300"],
                       capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr[-4000:]
    done = json.loads(out.read_text())
    text = ""
    for c in done["cells"]:
        for o in c.get("outputs", []):
            t = o.get("text", "")
            text += "".join(t) if isinstance(t, list) else t
    assert "checked 1000 runs and 200000 events" in text and "OK" in text
    # the mount did the reading
    assert int(os.getxattr(ds / "obs_001.h5", "user.rucio.cache")) > 0
