"""Fixtures for the xarray adapter tests: the shipped NetCDF samples and small synthetic CF grids."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import sciSR
from sciSR.data import sample_path

TAS = "cmip5_tas_mpi-esm-lr_2005.nc"
SST = "coads_sst_climatology.nc"
#: training pool of DATA.md (filled by tools/fetch-training-pool.sh); tests using it skip without it
POOL = Path(os.environ.get("SCISR_POOL", Path.home() / ".cache" / "scisr-pool"))


@pytest.fixture
def tas_path():
    return sample_path(TAS)


@pytest.fixture
def tas(tas_path):
    ds = sciSR.open(tas_path)
    yield ds
    ds.close()


@pytest.fixture
def sst():
    with pytest.warns(UserWarning, match=r"kept as raw numbers.*year 0"):
        ds = sciSR.open(sample_path(SST))
    yield ds
    ds.close()


def rot2geo(
    rlon: np.ndarray, rlat: np.ndarray, pole_lon: float, pole_lat: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rotated-pole → geographic by explicit rotations (independent of pyproj)."""
    theta, phi = np.deg2rad(90.0 - pole_lat), np.deg2rad(pole_lon + 180.0)
    lon, lat = np.deg2rad(rlon), np.deg2rad(rlat)
    x, y, z = np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)
    x2, z2 = np.cos(theta) * x - np.sin(theta) * z, np.sin(theta) * x + np.cos(theta) * z
    x3, y3 = np.cos(phi) * x2 - np.sin(phi) * y, np.sin(phi) * x2 + np.cos(phi) * y
    return np.rad2deg(np.arctan2(y3, x3)), np.rad2deg(np.arcsin(np.clip(z2, -1, 1)))


@pytest.fixture
def rotated() -> xr.Dataset:
    """Small CF rotated-pole dataset (EURO-CORDEX-like pole) with 2-D lat/lon."""
    rlat = np.round(-4.4 + 0.44 * np.arange(10), 10)
    rlon = np.round(-6.6 + 0.44 * np.arange(12), 10)
    lon, lat = rot2geo(*np.meshgrid(rlon, rlat), pole_lon=-162.0, pole_lat=39.25)
    rng = np.random.default_rng(0)
    data = (280 + rng.normal(size=(2, 10, 12))).astype(np.float32)
    return xr.Dataset(
        {
            "tas": (
                ("time", "rlat", "rlon"),
                data,
                {"units": "K", "grid_mapping": "rotated_pole", "standard_name": "air_temperature"},
            ),
            "rotated_pole": (
                (),
                np.int32(0),
                {
                    "grid_mapping_name": "rotated_latitude_longitude",
                    "grid_north_pole_latitude": 39.25,
                    "grid_north_pole_longitude": -162.0,
                },
            ),
        },
        coords={
            "time": ("time", np.array([0.0, 1.0]), {"units": "days since 2000-01-01"}),
            "rlat": ("rlat", rlat, {"standard_name": "grid_latitude", "units": "degrees", "axis": "Y"}),
            "rlon": ("rlon", rlon, {"standard_name": "grid_longitude", "units": "degrees", "axis": "X"}),
            "lat": (("rlat", "rlon"), lat, {"standard_name": "latitude", "units": "degrees_north"}),
            "lon": (("rlat", "rlon"), lon, {"standard_name": "longitude", "units": "degrees_east"}),
        },
        attrs={"Conventions": "CF-1.8", "history": "made by the test"},
    )
