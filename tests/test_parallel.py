"""Batch jobs over files with dask: local threads and a distributed client."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import sciSR
from sciSR.cli import main
from sciSR.data import sample_path
from sciSR.parallel import downscale_files, output_path

SAMPLES = ["cmip5_tas_mpi-esm-lr_2005.nc", "etopo5_alps.tif", "mni152_t1_slab.nii.gz"]


def test_output_names_keep_multi_part_extensions(tmp_path) -> None:
    assert output_path("a/t1.nii.gz", tmp_path, 2).name == "t1_x2.nii.gz"
    assert output_path("dem.tif", tmp_path, 4, ".zarr").name == "dem_x4.zarr"


def test_local_batch_matches_single_calls(tmp_path) -> None:
    paths = [sample_path(n) for n in SAMPLES]
    results = downscale_files(paths, tmp_path, "bicubic", 2)
    assert [r.ok for r in results] == [True] * 3
    for p, r in zip(paths, results):
        single = sciSR.downscale(p, model="bicubic", scale=2)
        batch = sciSR.open(r.output)
        floats = [v for v in single.data_vars if single[v].dtype.kind == "f"]
        assert floats
        for v in floats:
            np.testing.assert_allclose(batch[v].values, single[v].values, equal_nan=True, rtol=1e-6)


def test_distributed_client_and_failures_reported(tmp_path) -> None:
    distributed = pytest.importorskip("dask.distributed")
    bad = tmp_path / "broken.nc"
    bad.write_bytes(b"not a netcdf file")
    with distributed.Client(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
    ) as client:
        results = downscale_files(
            [sample_path(SAMPLES[0]), bad], tmp_path / "out", "bicubic", 2, client=client, raise_errors=False
        )
    assert results[0].ok and not results[1].ok and "broken.nc" in results[1].error
    assert not (tmp_path / "out" / "broken_x2.nc").exists()
    with pytest.raises(ValueError, match="1 of 2 files failed"):
        downscale_files([sample_path(SAMPLES[0]), bad], tmp_path / "out2", "bicubic", 2)


def test_cli_batch(tmp_path, capsys) -> None:
    rc = main(
        ["batch", str(sample_path(SAMPLES[0])), str(sample_path(SAMPLES[1])), "-o", str(tmp_path), "-s", "2"]
    )
    assert rc == 0
    assert (tmp_path / "cmip5_tas_mpi-esm-lr_2005_x2.nc").exists() and (
        tmp_path / "etopo5_alps_x2.tif"
    ).exists()


@pytest.mark.slow
def test_concurrent_netcdf_batches_do_not_crash(tmp_path) -> None:
    """10 local-thread batches of 4 NetCDF files (two NetCDF-3 samples, two NetCDF-4 copies).

    Runs in a subprocess: unsafe concurrent access to the netCDF-C/HDF5 libraries crashes the
    process (SIGSEGV/SIGBUS) rather than raising.
    """
    script = textwrap.dedent(
        f"""
        import shutil, warnings
        from pathlib import Path
        import xarray as xr
        from sciSR.data import sample_path
        from sciSR.parallel import downscale_files
        warnings.simplefilter("ignore")
        d = Path({str(tmp_path)!r})
        srcs = []
        for i, name in enumerate(["cmip5_tas_mpi-esm-lr_2005.nc", "coads_sst_climatology.nc"]):
            srcs.append(Path(shutil.copy(sample_path(name), d / f"c{{i}}.nc")))
            with xr.open_dataset(sample_path(name), decode_times=False) as ds:
                ds.load().to_netcdf(d / f"h{{i}}.nc", format="NETCDF4")
            srcs.append(d / f"h{{i}}.nc")
        for rep in range(10):
            results = downscale_files(srcs, d / f"out{{rep}}", "bicubic", 2)
            assert all(r.ok for r in results), results
        print("ok", len(list(d.glob("out*/*.nc"))))
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"rc {r.returncode}: {r.stderr[-3000:]}"
    assert r.stdout.split() == ["ok", "40"]


def test_job_is_checked_before_the_output_folder_is_made(tmp_path) -> None:
    from sciSR.io.safety import OutputError

    src = tmp_path / "dem.tif"
    src.write_bytes(sample_path(SAMPLES[1]).read_bytes())
    with pytest.raises(OutputError, match=r"dem\.tif is a file"):
        downscale_files([src], src / "sub", "bicubic", 2)
    with pytest.raises(ValueError, match="unknown extension"):
        downscale_files([src], tmp_path / "new", "bicubic", 2, suffix=".xyz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dem.tif"]
