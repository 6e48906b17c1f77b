"""Geometry cases of the xarray path: rotated pole, index grids, periodic longitude, DataArray I/O."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import xarray as xr

import sciSR
from sciSR.api import downscale_array

from .conftest import POOL, rot2geo


def test_rotated_pole_2d_coords_recomputed_from_projection(rotated, tmp_path):
    s = 3
    out = sciSR.downscale(rotated, model="bicubic", scale=s)
    rlat, rlon = rotated.rlat.values, rotated.rlon.values
    np.testing.assert_allclose(out.rlat.values, (rlat[:, None] + (np.arange(s) - 1) * 0.44 / s).ravel())
    np.testing.assert_allclose(out.rlon.values, (rlon[:, None] + (np.arange(s) - 1) * 0.44 / s).ravel())
    lon, lat = rot2geo(*np.meshgrid(out.rlon.values, out.rlat.values), pole_lon=-162.0, pole_lat=39.25)
    np.testing.assert_allclose(out.lat.values, lat, atol=1e-8)
    np.testing.assert_allclose(out.lon.values, lon, atol=1e-8)
    assert out.tas.attrs["grid_mapping"] == "rotated_pole"
    assert out.rotated_pole.attrs == rotated.rotated_pole.attrs
    sciSR.write(out, tmp_path / "rot.nc")
    with xr.open_dataset(tmp_path / "rot.nc") as back:
        assert back.tas.attrs["grid_mapping"] == "rotated_pole"
        assert set(back.tas.coords) >= {"lat", "lon", "rlat", "rlon", "time"}
        np.testing.assert_allclose(back.lat.values, lat, atol=1e-8)


def test_2d_coords_interpolated_without_projection(rotated):
    from pyproj import CRS, Transformer
    from scipy.interpolate import RegularGridInterpolator

    ds = rotated.drop_vars("rotated_pole")
    ds["tas"].attrs.pop("grid_mapping")
    out = sciSR.downscale(ds, model="bicubic", scale=2)
    # independent: bilinear in index space at the sub-cell centres (i + 0.5)/2 - 0.5, extrapolated
    ny, nx = ds.lat.shape
    interp = RegularGridInterpolator(
        (np.arange(ny), np.arange(nx)), ds.lat.values, method="linear", bounds_error=False, fill_value=None
    )
    yy, xx = np.meshgrid(
        (np.arange(2 * ny) + 0.5) / 2 - 0.5, (np.arange(2 * nx) + 0.5) / 2 - 0.5, indexing="ij"
    )
    np.testing.assert_allclose(out.lat.values, interp(np.stack([yy, xx], axis=-1)), atol=1e-12)
    # close to, but not exactly, the projected truth (pyproj directly)
    crs = CRS.from_cf(dict(rotated.rotated_pole.attrs))
    to_geo = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    _, lat = to_geo.transform(*np.meshgrid(out.rlon.values, out.rlat.values))
    assert 0 < np.abs(out.lat.values - lat).max() < 0.01


def test_dims_without_coords():
    data = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6)
    ds = xr.Dataset({"v": (("t", "y", "x"), data)}, coords={"t": [10, 20]})
    out = sciSR.downscale(ds, model="bicubic", scale=2)
    assert out.v.dims == ("t", "y", "x") and out.v.shape == (2, 10, 12)
    assert "y" not in out.coords and "x" not in out.coords
    np.testing.assert_array_equal(out.t.values, [10, 20])
    np.testing.assert_allclose(out.v.values, downscale_array(data, "bicubic", 2), rtol=1e-6)


def test_gaussian_dataarray_takes_bounds_from_its_file(tas):
    whole = sciSR.downscale(tas, model="bicubic", scale=2)
    da = sciSR.downscale(tas.tas, model="bicubic", scale=2)
    assert "lat_bnds" not in tas.tas.coords  # the DataArray has no bounds of its own
    np.testing.assert_array_equal(da.lat.values, whole.lat.values)
    np.testing.assert_array_equal(da.values, whole.tas.values)
    # a band of rows finds its own bounds rows in the file
    band = sciSR.downscale(tas.tas.isel(lat=slice(0, 10)), model="bicubic", scale=2)
    np.testing.assert_array_equal(band.lat.values, whole.lat.values[:20])


def _gauss_midpoints(lat, s):
    """Sub-cell centres of Gaussian latitudes from numpy's Gauss-Legendre weights (independent)."""
    x, w = np.polynomial.legendre.leggauss(lat.size)
    assert np.abs(np.degrees(np.arcsin(x)) - np.sort(lat)).max() < 1e-4
    edges = np.degrees(np.arcsin(np.clip(np.concatenate([[-1.0], np.cumsum(w) - 1.0]), -1, 1)))
    sub = np.concatenate([np.linspace(a, b, s + 1)[:-1] for a, b in itertools.pairwise(edges)] + [[90.0]])
    mid = (sub[:-1] + sub[1:]) / 2
    return mid if lat[0] < lat[-1] else mid[::-1]


def test_gaussian_dataarray_without_its_file_uses_quadrature_edges(tas):
    da = tas.tas.load().copy()
    da.encoding.pop("source", None)
    for c in da.coords.values():
        c.encoding.pop("source", None)
    out = sciSR.downscale(da, model="bicubic", scale=3)
    np.testing.assert_allclose(out.lat.values, _gauss_midpoints(tas.lat.values, 3), atol=1e-9)
    # close to the result with the file's own (midpoint) bounds, which differ most at the poles
    assert np.abs(out.lat.values - sciSR.downscale(tas, model="bicubic", scale=3).lat.values).max() < 0.07


def test_pool_gaussian_file_without_bounds(tmp_path):
    path = POOL / "climate" / "rectilinear_grid_3D.nc"
    if not path.exists():
        pytest.skip("training pool not fetched (tools/fetch-training-pool.sh)")
    ds = sciSR.open(path).isel(lev=[0, 5])
    assert "lat_bnds" not in ds.variables and ds.lat.values[0] > ds.lat.values[-1]
    out = sciSR.downscale(ds, model="bicubic", scale=2, variables="t")
    np.testing.assert_allclose(out.lat.values, _gauss_midpoints(ds.lat.values, 2), atol=1e-9)
    assert out.lat.attrs["bounds"] == "lat_bnds" and out.lat_bnds.shape == (192, 2)
    sciSR.write(out, tmp_path / "t_x2.nc")
    again = sciSR.downscale(tmp_path / "t_x2.nc", model="bicubic", scale=2)  # refined grid keeps its edges
    assert again.t.shape == (1, 2, 384, 768)
    np.testing.assert_allclose(again.lat.values, again.lat_bnds.values.mean(axis=1), atol=1e-9)


def test_index_grid_with_other_names_needs_spatial_dims():
    ds = xr.Dataset({"v": (("t", "r", "c2"), np.zeros((2, 4, 4)))})
    with pytest.raises(ValueError, match=r"no spatial dims found in 'v'.*spatial_dims=\('r', 'c2'\)"):
        sciSR.downscale(ds, model="bicubic", scale=2)
    out = sciSR.downscale(ds, model="bicubic", scale=2, spatial_dims=("r", "c2"))
    assert out.v.shape == (2, 8, 8)


def test_periodic_global_grid_has_no_seam(tas):
    s, pad = 2, 4
    x = tas.tas.isel(time=0).values
    out = sciSR.downscale(tas.isel(time=[0]), model="bicubic", scale=s).tas.values[0]
    wrapped = np.concatenate([x[:, -pad:], x, x[:, :pad]], axis=1)
    ref = downscale_array(wrapped, "bicubic", s)[:, pad * s : -pad * s]
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-4)
    # without wrapping the edge columns differ (the test can fail)
    plain = sciSR.downscale(tas.isel(time=[0]), model="bicubic", scale=s, periodic=False).tas.values[0]
    assert np.abs(plain[:, :2] - ref[:, :2]).max() > 1e-2


def test_dataarray_in_dataarray_out(sst):
    da = sst.SST.isel(TIME=slice(0, 2))
    out = sciSR.downscale(da, model="bicubic", scale=2)
    assert isinstance(out, xr.DataArray)
    assert out.name == "SST" and out.dims == da.dims and out.shape == (2, 180, 360)
    assert out.attrs["units"] == "Deg C" and out.attrs["scisr_scale"] == 2
    assert out.attrs["history"].split("\n")[0] == "From coads_climatology"
    assert out.attrs["history"].split("\n")[-1].endswith("variables=[SST]")
    np.testing.assert_array_equal(out.TIME.values, da.TIME.values)
    unnamed = sciSR.downscale(da.rename(None), model="bicubic", scale=2)
    assert unnamed.name is None


def test_loop_dims_and_transposed_layout(tas):
    ds = tas.isel(time=[0, 1]).transpose("lon", "time", "lat", ...)
    out = sciSR.downscale(ds, model="bicubic", scale=2)
    assert out.tas.dims == ("lon", "time", "lat")
    ref = sciSR.downscale(tas.isel(time=[0, 1]), model="bicubic", scale=2)
    np.testing.assert_allclose(out.tas.transpose("time", "lat", "lon").values, ref.tas.values, rtol=1e-6)


def test_attrs_invalidated_by_refinement_are_dropped():
    ds = xr.Dataset(
        {
            "v": (
                ("lat", "lon"),
                np.ones((3, 4)),
                {
                    "units": "m",
                    "actual_range": [1, 1],
                    "valid_min": 0,
                    "resolution": "1 deg",
                    "long_name": "v",
                },
            )
        },
        coords={"lat": [0.0, 1.0, 2.0], "lon": [0.0, 1.0, 2.0, 3.0]},
        attrs={"geospatial_lat_resolution": "1 degree", "title": "t", "Conventions": "CF-1.8"},
    )
    out = sciSR.downscale(ds, model="bicubic", scale=2)
    assert out.v.attrs["units"] == "m" and out.v.attrs["long_name"] == "v"
    assert not {"actual_range", "valid_min", "resolution"} & set(out.v.attrs)
    assert "geospatial_lat_resolution" not in out.attrs and out.attrs["title"] == "t"
    assert out.attrs["history"].count("\n") == 0 and "sciSR" in out.attrs["history"]


def test_variables_selection_copies_non_spatial_and_drops_unselected(tas):
    ds = tas.isel(time=[0]).assign(tas2=tas.tas.isel(time=[0]) * 2, scalar=xr.DataArray(3.0))
    with pytest.warns(UserWarning, match=r"dropped.*tas2"):
        out = sciSR.downscale(ds, model="bicubic", scale=2, variables="tas")
    assert "tas2" not in out and float(out.scalar) == 3.0 and "time_bnds" in out
