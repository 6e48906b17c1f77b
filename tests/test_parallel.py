"""Batch jobs over files with dask: local threads and a distributed client."""

from __future__ import annotations

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
