"""Concurrent NetCDF access from threads (``scisr batch``, dask): no crash, no corrupted data.

netCDF-C/HDF5 crash the whole process when two threads enter them at once, so each check runs in
a child process: a segfault or abort shows as a failed test with its return code instead of
killing the test session. Before every sciSR netCDF access shared one lock, these runs crashed
(SIGSEGV / "double free") or hung in most attempts.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import threading

from sciSR.io.locks import NETCDF_LOCK, get_lock

_SCRIPT = textwrap.dedent(
    """
    import shutil, sys, warnings
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path
    import numpy as np
    import sciSR
    from sciSR.data import sample_path
    from sciSR.parallel import downscale_files

    warnings.simplefilter("ignore")
    tmp = Path(sys.argv[1])
    srcs = []
    for i in range(4):
        p = tmp / f"in{i}.nc"
        shutil.copy(sample_path("cmip5_tas_mpi-esm-lr_2005.nc"), p)
        srcs.append(p)
    expected = float(sciSR.open(srcs[0]).tas.values.astype("float64").sum())

    def job(i):
        ds = sciSR.open(srcs[i % 4])
        total = float(ds.tas.values.astype("float64").sum())
        out = tmp / f"o{i}.nc"
        sciSR.write(ds, out)
        back = sciSR.open(out)
        again = float(back.tas.values.astype("float64").sum())
        back.close()
        ds.close()
        assert total == expected == again, (total, again)

    with ThreadPoolExecutor(4) as ex:
        list(ex.map(job, range(int(sys.argv[2]))))
    for rep in range(3):  # the reported case: scisr batch / downscale_files over several NetCDF files
        res = downscale_files(srcs, tmp / f"batch{rep}", model="bicubic", scale=2)
        assert all(r.ok for r in res), res
    print("ok")
    """
)


def test_threads_reading_and_writing_netcdf_never_crash(tmp_path):
    res = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path), "64"], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), (res.returncode, res.stderr[-3000:])


def test_netcdf_lock_is_reentrant_process_wide_and_picklable():
    assert get_lock(NETCDF_LOCK.name)._lock is NETCDF_LOCK._lock
    back = pickle.loads(pickle.dumps(NETCDF_LOCK))
    assert back._lock is NETCDF_LOCK._lock  # unpickled in the same process: the same lock
    with NETCDF_LOCK, NETCDF_LOCK:  # reentrant: xarray takes it again inside sciSR's sections
        seen = []
        t = threading.Thread(target=lambda: seen.append(NETCDF_LOCK.locked()))
        t.start()
        t.join()
        assert seen == [True]  # held: another thread has to wait
    assert not NETCDF_LOCK.locked()
