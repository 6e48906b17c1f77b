"""Write failures stated plainly (full disk), no library chatter on stderr, and Zarr stores that
xarray reads back without warnings."""

from __future__ import annotations

import errno
import json
import os
import warnings
from collections import namedtuple

import numpy as np
import pytest
import xarray as xr

import sciSR
import sciSR.io.write_errors as we
from sciSR.data import sample_path
from sciSR.io.write_errors import disk_full_as_oserror, quiet_libtiff

Usage = namedtuple("Usage", "total used free")


@pytest.fixture
def full_disk(monkeypatch):
    monkeypatch.setattr(we.shutil, "disk_usage", lambda p: Usage(1 << 30, 1 << 30, 4096))


def test_library_error_on_a_full_disk_becomes_enospc(full_disk, tmp_path):
    with pytest.raises(OSError) as err, disk_full_as_oserror(tmp_path / "o.nc"):
        raise RuntimeError("NetCDF: HDF error")
    assert err.value.errno == errno.ENOSPC and isinstance(err.value.__cause__, RuntimeError)


def test_library_error_with_space_left_is_kept(monkeypatch, tmp_path):
    monkeypatch.setattr(we.shutil, "disk_usage", lambda p: Usage(1 << 40, 0, 1 << 40))
    with pytest.raises(RuntimeError, match="NetCDF: HDF error"), disk_full_as_oserror(tmp_path / "o.nc"):
        raise RuntimeError("NetCDF: HDF error")


def test_netcdf_disk_full_names_the_output_once(full_disk, monkeypatch, tmp_path):
    def failing(self, path, *a, **kw):
        with open(path, "wb") as f:
            f.write(b"\x89HDF\r\n\x1a\npartial")
        raise RuntimeError("NetCDF: HDF error")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", failing)
    out = tmp_path / "tas_x2.nc"
    with pytest.raises(OSError) as err:
        sciSR.downscale(sample_path("cmip5_tas_mpi-esm-lr_2005.nc"), model="bicubic", scale=2, out=out)
    msg = str(err.value)
    assert str(out) in msg and "no space left" in msg.lower() and "HDF error" not in msg
    assert list(tmp_path.iterdir()) == []


def test_geotiff_disk_full_without_libtiff_lines(full_disk, monkeypatch, tmp_path, capfd):
    import rasterio.errors

    import sciSR.io.geotiff as gt

    def failing(bands, path, compress, blocksize):
        path.write_bytes(b"II*\0partial")
        os.write(2, b"_tiffWriteProc: No space left on device.\n_tiffSeekProc: No space left on device.\n")
        raise rasterio.errors.RasterioIOError("Write failed. See previous exception for details.")

    monkeypatch.setattr(gt, "_write_gtiff", failing)
    out = tmp_path / "dem_x2.tif"
    with pytest.raises(OSError) as err:
        sciSR.downscale(sample_path("etopo5_alps.tif"), model="bicubic", scale=2, out=out)
    assert str(out) in str(err.value) and "no space left" in str(err.value).lower()
    assert "_tiff" not in capfd.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_quiet_libtiff_keeps_other_stderr(capfd):
    with quiet_libtiff():
        os.write(2, b"_tiffWriteProc: No space left on device.\nsomething else\n")
        with quiet_libtiff():  # nested use shares the redirection
            os.write(2, b"TIFFAppendToStrip: Write error at scanline 256\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "something else\nafter\n"


def test_zarr_consolidated_and_silent(tmp_path):
    out = sciSR.downscale(sciSR.open(sample_path("cmip5_tas_mpi-esm-lr_2005.nc")), model="bicubic", scale=2)
    path = tmp_path / "tas.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sciSR.write(out, path)
        back = xr.open_zarr(path)  # plain xarray, default consolidated=None: no fallback warning
        np.testing.assert_array_equal(back.tas.values, out.tas.values)
    meta = json.loads((path / "zarr.json").read_text())
    assert set(meta["consolidated_metadata"]["metadata"]) >= {"tas", "lat", "lon", "time"}
