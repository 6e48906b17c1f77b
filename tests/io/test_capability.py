"""Output formats refuse what they cannot store before any data are read or any model runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import sciSR
from sciSR.data import sample_path
from sciSR.models import get_entry

TAS = sample_path("cmip5_tas_mpi-esm-lr_2005.nc")
DEM = sample_path("etopo5_alps.tif")
MRI = sample_path("mni152_t1_slab.nii.gz")
PHOTO = sample_path("ladybird_crop.png")


@pytest.fixture
def counted():
    """A tiny learned model that records every forward call."""
    torch.manual_seed(0)
    model = sciSR.create_model("srcnn", scale=2, in_channels=1, pretrained=False, **get_entry("srcnn").tiny)
    calls: list[int] = []
    model.register_forward_hook(lambda *a: calls.append(1))
    return model, calls


@pytest.mark.parametrize(
    ("src", "out", "opts", "match"),
    [
        (TAS, "o.nc", {"dtype": "float16"}, r"NetCDF cannot store float16"),
        (
            TAS,
            "o.png",
            {},
            r"an image holds dims \(y, x\) or \(channel, y, x\) but 'tas' has \('time', 'lat', 'lon'\)",
        ),
        (
            TAS,
            "o.tif",
            {},
            r"GeoTIFF needs a regular grid but 'lat' of 'tas' is not \(Gaussian latitudes, N=96\)",
        ),
        (TAS, "o.nii.gz", {}, r"NIfTI would lose the geometry of 'tas' \(lon, lat\)"),
        (DEM, "o.nii", {}, r"NIfTI would lose the geometry of 'band_data' \(y, x, CRS spatial_ref\)"),
        (DEM, "o.png", {}, r"an image holds dims .* 'band_data' has \('band', 'y', 'x'\)"),
        (PHOTO, "o.png", {"dtype": "int16"}, r"image files store 8/16-bit pixels, not int16"),
        (PHOTO, "o.png", {"dtype": "float32"}, r"image files store 8/16-bit pixels, not float32"),
        (MRI, "o.nii", {"dtype": "float16"}, r"NIfTI cannot store 'image' as float16"),
    ],
)
def test_refused_before_the_model_runs(tmp_path, counted, src, out, opts, match):
    model, calls = counted
    with pytest.raises(ValueError, match=match):
        sciSR.downscale(src, model=model, scale=2, out=tmp_path / out, **opts)
    assert not calls
    assert list(tmp_path.iterdir()) == []


def test_multivariable_dataset_into_single_volume_and_image(tmp_path, counted):
    model, calls = counted
    lat, lon = np.linspace(-10, 10, 8), np.linspace(0, 14, 8)
    ds = xr.Dataset(
        {n: (("y", "x"), np.random.default_rng(0).normal(size=(8, 8)).astype("f4")) for n in ("u", "v")},
        coords={"y": lat, "x": lon},
    )
    ds.to_netcdf(tmp_path / "uv.nc")
    for out, match in [
        ("o.nii", r"a NIfTI file holds one volume but \['u', 'v'\]"),
        ("o.png", r"holds one variable"),
    ]:
        with pytest.raises(ValueError, match=match):
            sciSR.downscale(tmp_path / "uv.nc", model=model, scale=2, out=tmp_path / out)
    assert not calls
    # with one variable selected the NIfTI check passes the count but still protects the geometry
    with pytest.raises(ValueError, match=r"NIfTI would lose the geometry of 'u' \(y, x\)"):
        sciSR.downscale(tmp_path / "uv.nc", model=model, scale=2, out=tmp_path / "u.nii", variables="u")


def test_geotiff_refuses_two_loop_dims_before_running(tmp_path, counted):
    model, calls = counted
    ds = xr.Dataset(
        {"v": (("time", "lev", "y", "x"), np.zeros((2, 3, 8, 8), "f4"))},
        coords={"y": np.arange(8.0), "x": np.arange(8.0)},
    )
    ds.to_netcdf(tmp_path / "v.nc")
    with pytest.raises(
        ValueError, match=r"GeoTIFF holds one band dim but 'v' has \['time', 'lev'\].*isel\(time=0\)"
    ):
        sciSR.downscale(tmp_path / "v.nc", model=model, scale=2, out=tmp_path / "v.tif")
    assert not calls


def test_capable_outputs_still_written(tmp_path):
    sciSR.downscale(PHOTO, model="bicubic", scale=2, out=tmp_path / "p.png", dtype="uint8")
    sciSR.downscale(DEM, model="bicubic", scale=2, out=tmp_path / "d.nc")
    sciSR.downscale(TAS, model="bicubic", scale=2, out=tmp_path / "t.nc", dtype="float64")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.nc", "p.png", "t.nc"]


def test_nifti_write_refuses_geometry_loss_and_allows_a_plain_grid(tmp_path):
    ds = sciSR.open(TAS)
    with pytest.raises(ValueError, match=r"NIfTI would lose the geometry"):
        sciSR.write(ds[["tas"]], tmp_path / "t.nii")
    plain = ds[["tas"]].drop_vars(["lat", "lon"]).transpose("lon", "lat", "time")
    sciSR.write(plain, tmp_path / "t.nii")
    back = sciSR.open(tmp_path / "t.nii")
    np.testing.assert_array_equal(back.image.values, plain.tas.values)
