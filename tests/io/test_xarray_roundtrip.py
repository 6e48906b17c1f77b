"""Open → downscale(bicubic) → write → reopen for NetCDF and Zarr on the shipped samples (DESIGN §4, §6)."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import xarray as xr

import sciSR
from sciSR.api import downscale_array

FORMATS = [".nc", ".zarr"]


def _reopen(path):
    ds = sciSR.open(path)
    return ds.load() if path.suffix == ".zarr" else ds


@pytest.mark.parametrize("ext", FORMATS)
def test_roundtrip_cmip5_sample(tas, tas_path, tmp_path, ext):
    s = 2
    out_path = tmp_path / f"tas_x2{ext}"
    result = sciSR.downscale(tas_path, model="bicubic", scale=s, out=out_path)
    back = _reopen(out_path)
    try:
        assert back.tas.shape == (3, 96 * s, 192 * s)
        assert back.tas.dtype == np.float32
        # 1-D coords: the DESIGN §4 formula on lon (regular); Gaussian lat split within its bounds,
        # every sub-cell centre in the middle of its new bounds (pole rows included)
        lon = tas.lon.values
        np.testing.assert_allclose(back.lon.values, (lon[:, None] + (np.arange(s) - 0.5) * 1.875 / s).ravel())
        np.testing.assert_allclose(back.lat.values, back.lat_bnds.values.mean(axis=1), atol=1e-12)
        mid = tas.lat_bnds.values.mean(axis=1)
        np.testing.assert_allclose(back.lat.values.reshape(-1, s).mean(axis=1), mid, atol=1e-12)
        for name in ("lat_bnds", "lon_bnds"):
            old, new = tas[name].values, back[name].values
            assert new[0, 0] == old[0, 0] and new[-1, 1] == old[-1, 1]  # extent unchanged
            np.testing.assert_array_equal(new[1:, 0], new[:-1, 1])
        # non-spatial dims, their coords and bounds untouched
        np.testing.assert_array_equal(back.time.values, tas.time.values)
        np.testing.assert_array_equal(back.time_bnds.values, tas.time_bnds.values)
        assert back.time.encoding["calendar"] == "proleptic_gregorian"
        # attrs kept, one history line appended, provenance recorded
        for k, v in tas.attrs.items():
            if k not in ("history", "scisr_format"):
                assert back.attrs[k] == v
        old_hist = tas.attrs["history"].rstrip("\n").split("\n")
        new_hist = back.attrs["history"].split("\n")
        assert new_hist[:-1] == old_hist and "sciSR" in new_hist[-1] and "bicubic" in new_hist[-1]
        for k, v in tas.tas.attrs.items():
            assert back.tas.attrs[k] == v
        assert back.tas.attrs["scisr_model"] == "bicubic" and int(back.tas.attrs["scisr_scale"]) == s
        assert back.tas.attrs["scisr_norm"] == "none"
        # values: interior equals the array path (the seam columns are checked in the periodic test)
        arr = downscale_array(tas.tas.values, "bicubic", s)
        np.testing.assert_allclose(back.tas.values[..., 8:-8], arr[..., 8:-8], rtol=1e-6)
        xr.testing.assert_allclose(result.tas.load(), back.tas)
    finally:
        back.close()


def test_netcdf_encoding_is_fresh(tas_path, tmp_path):
    out_path = tmp_path / "o.nc"
    sciSR.downscale(tas_path, model="bicubic", scale=2, out=out_path)
    with netCDF4.Dataset(out_path) as nc:
        v = nc["tas"]
        assert v.dtype == np.float32
        assert np.isnan(v.getncattr("_FillValue"))  # source had 1e20
        assert "scale_factor" not in v.ncattrs() and "add_offset" not in v.ncattrs()
        assert "_FillValue" not in nc["lat"].ncattrs()
        assert "scisr_format" not in nc.ncattrs()


@pytest.mark.parametrize("ext", FORMATS)
def test_nan_mask_exactly_carried(sst, tmp_path, ext):
    s = 3
    out = sciSR.downscale(sst, model="bicubic", scale=s)
    sciSR.write(out, tmp_path / f"sst{ext}")
    back = _reopen(tmp_path / f"sst{ext}")
    try:
        valid = np.isfinite(sst.SST.values)
        assert 0.3 < valid.mean() < 0.9  # real land mask
        expected = np.repeat(np.repeat(valid, s, axis=1), s, axis=2)
        np.testing.assert_array_equal(np.isfinite(back.SST.values), expected)
        np.testing.assert_array_equal(back.TIME.values, sst.TIME.values)
        assert back.TIME.attrs["units"] == "hour since 0000-01-01 00:00:00"
        assert back.COADSX.values[0] == pytest.approx(21.0 - 2.0 / 3)
    finally:
        back.close()


def test_zarr_chunks_hold_whole_spatial_slices(tas, tmp_path):
    out = sciSR.downscale(tas, model="bicubic", scale=2)
    sciSR.write(out, tmp_path / "o.zarr")
    back = sciSR.open(tmp_path / "o.zarr")
    assert back.tas.encoding["chunks"][1:] == (192, 384)
    assert back.tas.dims == ("time", "lat", "lon")


@pytest.mark.parametrize("ext", FORMATS)
@pytest.mark.parametrize(("dtype", "expected"), [(None, np.float32), ("float64", np.float64)])
def test_dtype_as_asked(tas, tmp_path, dtype, expected, ext):
    out = sciSR.downscale(tas.isel(time=[0]), model="bicubic", scale=2, dtype=dtype)
    assert out.tas.dtype == expected
    sciSR.write(out, tmp_path / f"o{ext}")
    back = sciSR.open(tmp_path / f"o{ext}")
    assert back.tas.dtype == expected


def test_float16_netcdf_refused_zarr_ok(tas, tmp_path):
    out = sciSR.downscale(tas.isel(time=[0]), model="bicubic", scale=2, dtype=np.float16)
    assert out.tas.dtype == np.float16
    with pytest.raises(ValueError, match=r"NetCDF cannot store float16"):
        sciSR.write(out, tmp_path / "o.nc")
    assert list(tmp_path.iterdir()) == []
    sciSR.write(out, tmp_path / "o.zarr")
    assert sciSR.open(tmp_path / "o.zarr").tas.dtype == np.float16


def test_source_dtype_rounds_and_clips(tmp_path):
    data = np.array([[0, 100, 32767], [5, 7, 9]], dtype=np.int16)
    ds = xr.Dataset({"v": (("y", "x"), data)}, coords={"y": [0.0, 1.0], "x": [0.0, 1.0, 2.0]})
    out = sciSR.downscale(ds, model="bicubic", scale=2, dtype="source")
    assert out.v.dtype == np.int16
    ref = downscale_array(data.astype(np.float32), "bicubic", 2)
    np.testing.assert_array_equal(out.v.values, np.clip(np.rint(ref), -32768, 32767).astype(np.int16))
    sciSR.write(out, tmp_path / "i.nc")
    with xr.open_dataset(tmp_path / "i.nc") as back:
        assert back.v.dtype == np.int16


def test_descending_latitude(tas):
    asc = tas.isel(time=[0])
    desc = asc.isel(lat=slice(None, None, -1))
    out_a = sciSR.downscale(asc, model="bicubic", scale=2)
    out_d = sciSR.downscale(desc, model="bicubic", scale=2)
    assert np.all(np.diff(out_d.lat.values) < 0)  # never sorted or flipped
    np.testing.assert_allclose(out_d.lat.values, out_a.lat.values[::-1])
    assert out_d.lat_bnds.values[0].max() == desc.lat_bnds.values[0].max()
    assert out_d.lat_bnds.values[-1].min() == desc.lat_bnds.values[-1].min()
    np.testing.assert_allclose(out_d.tas.values, out_a.tas.values[:, ::-1], rtol=1e-6)


def test_bounds_variable_split_in_dataset():
    lat = np.array([10.0, 20.0, 30.0])
    ds = xr.Dataset(
        {
            "v": (("lat", "lon"), np.arange(12.0).reshape(3, 4)),
            "lat_bnds": (("lat", "bnds"), np.stack([lat - 5, lat + 5], axis=1)),
        },
        coords={"lat": ("lat", lat, {"bounds": "lat_bnds"}), "lon": np.arange(4.0)},
    )
    out = sciSR.downscale(ds, model="bicubic", scale=2)
    assert set(out.data_vars) == {"v", "lat_bnds"}
    np.testing.assert_array_equal(
        out.lat_bnds.values, [[5, 10], [10, 15], [15, 20], [20, 25], [25, 30], [30, 35]]
    )
    np.testing.assert_array_equal(out.lat.values, [7.5, 12.5, 17.5, 22.5, 27.5, 32.5])
