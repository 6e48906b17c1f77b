"""Memory: calls that cannot fit are refused before reading, with the figures and the fix; files
that declare huge grids open (and ``scisr info`` describes them) without reading their data."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import dask
import netCDF4
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

import sciSR
from sciSR.data import sample_path
from sciSR.io import describe, memory
from sciSR.io.geotiff import _RasterReader
from sciSR.io.memory import InsufficientMemoryError, parse_bytes


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1000", 1000),
        ("2K", 2048),
        ("1.5g", 1.5 * 2**30),
        ("3GiB", 3 * 2**30),
        ("1e3", 1000),
        ("2 T", 2 * 2**40),
    ],
)
def test_parse_bytes(text, value):
    assert parse_bytes(text) == value


def test_parse_bytes_refuses_nonsense():
    with pytest.raises(ValueError, match=r"SCISR_MEMORY_LIMIT='lots' is not a size"):
        parse_bytes("lots")


@pytest.fixture
def huge_tif(tmp_path):
    """A 1.8 MB GeoTIFF that declares 100000 × 100000 float32 pixels (37 GiB): sparse tiles."""
    p = tmp_path / "huge.tif"
    with rasterio.open(
        p, "w", driver="GTiff", width=100_000, height=100_000, count=1, dtype="float32", crs="EPSG:4326",
        transform=from_origin(0, 90, 0.0018, 0.0018), tiled=True, compress="deflate", sparse_ok=True,
        BIGTIFF="YES",
    ) as dst:  # fmt: skip
        dst.write(np.ones((1, 256, 256), np.float32), window=Window(0, 0, 256, 256))
    assert p.stat().st_size < 4 << 20
    return p


@pytest.fixture
def huge_nc(tmp_path):
    """A NetCDF file of under 1 MB declaring a 30000 × 30000 float32 grid (unwritten chunks)."""
    p = tmp_path / "huge.nc"
    with netCDF4.Dataset(p, "w") as nc:
        nc.createDimension("lat", 30_000)
        nc.createDimension("lon", 30_000)
        la = nc.createVariable("lat", "f8", ("lat",))
        la[:] = -90 + 0.006 * (np.arange(30_000) + 0.5)
        la.units = "degrees_north"
        lo = nc.createVariable("lon", "f8", ("lon",))
        lo[:] = 0.012 * np.arange(30_000)
        lo.units = "degrees_east"
        v = nc.createVariable("t", "f4", ("lat", "lon"), zlib=True, chunksizes=(1000, 1000))
        v[:10, :10] = 1.0
    assert p.stat().st_size < 1 << 20
    return p


def test_huge_geotiff_opens_and_is_described_without_reading(huge_tif, monkeypatch):
    def no_read(self, key):
        raise AssertionError(f"data read: {key}")

    monkeypatch.setattr(_RasterReader, "__call__", no_read)
    ds = sciSR.open(huge_tif)
    assert ds.band_data.shape == (1, 100_000, 100_000)
    text = describe(huge_tif)
    assert "band_data (band: 1, y: 100000, x: 100000) float32" in text and "valid not scanned" in text
    with pytest.raises(
        InsufficientMemoryError,
        match=r"downscaling band_data ×2 needs about .* TiB of memory .* is available: .*window",
    ):
        sciSR.downscale(huge_tif, model="bicubic", scale=2)


def test_huge_geotiff_window_reads_only_that_window(huge_tif):
    ds = sciSR.open(huge_tif).isel(y=slice(0, 300), x=slice(0, 300))
    vals = ds.band_data.values
    assert vals.shape == (1, 300, 300)
    assert np.all(vals[0, :256, :256] == 1.0)
    out = sciSR.downscale(ds, model="bicubic", scale=2)
    assert out.band_data.shape == (1, 600, 600)


def test_huge_netcdf_is_described_and_refused_before_reading(huge_nc):
    text = describe(huge_nc)
    assert "t (lat: 30000, lon: 30000) float32" in text and "valid not scanned" in text
    with pytest.raises(
        InsufficientMemoryError, match=r"downscaling t ×2 needs about .* GiB .*spatial subset"
    ):
        sciSR.downscale(huge_nc, model="bicubic", scale=2)


def test_reading_a_whole_huge_raster_is_refused(huge_tif, monkeypatch):
    monkeypatch.setenv("SCISR_MEMORY_LIMIT", "8G")
    with pytest.raises(
        InsufficientMemoryError, match=r"reading .*huge.tif \(1×100000×100000\) needs about .* GiB"
    ):
        _ = sciSR.open(huge_tif).band_data.values


_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def _estimate(ds, k, monkeypatch):
    """The estimate the adapter makes for ×k, read off its refusal at a 1-byte budget."""
    monkeypatch.setenv("SCISR_MEMORY_LIMIT", "1")
    with pytest.raises(InsufficientMemoryError) as err:
        sciSR.downscale(ds, model="bicubic", scale=k)
    monkeypatch.delenv("SCISR_MEMORY_LIMIT")
    value, unit = str(err.value).split("needs about ")[1].split(" of memory")[0].split()
    return float(value) * _UNITS[unit]


def test_large_scale_refused_with_a_scale_that_fits(monkeypatch):
    ds = sciSR.open(sample_path("etopo5_alps.tif"))
    with pytest.raises(InsufficientMemoryError, match=r"downscaling band_data ×4096 needs about .* TiB"):
        sciSR.downscale(ds, model="bicubic", scale=4096)
    need4, need8 = _estimate(ds, 4, monkeypatch), _estimate(ds, 8, monkeypatch)
    assert 3.5 < need8 / need4 < 4.5  # the output grows with scale²
    monkeypatch.setenv("SCISR_MEMORY_LIMIT", str(int((need4 + need8) / 2)))
    with pytest.raises(InsufficientMemoryError, match=r"use a smaller scale \(scale=[4-7] needs about"):
        sciSR.downscale(ds, model="bicubic", scale=8)
    assert sciSR.downscale(ds, model="bicubic", scale=4).band_data.shape[-1] == 4 * ds.sizes["x"]


def test_eager_time_series_refused_but_streaming_fits(monkeypatch):
    tas = sciSR.open(sample_path("cmip5_tas_mpi-esm-lr_2005.nc"))
    with dask.config.set(num_workers=1):
        eager = _estimate(tas, 8, monkeypatch)
        lazy = _estimate(tas.chunk({"time": 1}), 8, monkeypatch)
        assert lazy < 0.6 * eager  # one time step in memory instead of three
        monkeypatch.setenv("SCISR_MEMORY_LIMIT", str(int((lazy + eager) / 2)))
        with pytest.raises(
            InsufficientMemoryError, match=r"stream the time steps: open with chunks=\{'time': 1\}"
        ):
            sciSR.downscale(tas, model="bicubic", scale=8)
        out = sciSR.downscale(tas.chunk({"time": 1}), model="bicubic", scale=8)
    assert out.tas.shape == (3, 768, 1536)


_PEAK = textwrap.dedent(
    """
    import json, os, sys, threading, time, warnings
    import numpy as np, rasterio
    from rasterio.transform import from_origin
    warnings.simplefilter("ignore")
    path, model, scale = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with rasterio.open(path, "w", driver="GTiff", width=1000, height=1000, count=1, dtype="float32",
                       crs="EPSG:32633", transform=from_origin(5e5, 5e6, 30, 30)) as d:
        d.write(np.random.default_rng(0).normal(size=(1, 1000, 1000)).astype("float32").cumsum(axis=2))
    import sciSR
    import sciSR.io.memory as M
    seen = []
    orig = M.call_need
    M.call_need = lambda plans, pipe, k: seen.append(orig(plans, pipe, k)) or seen[-1]
    sciSR.downscale(sciSR.open(path).isel(x=slice(0, 64), y=slice(0, 64)), model=model, scale=scale)
    page = os.sysconf("SC_PAGE_SIZE")

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page

    # the call's own peak: resident memory sampled every millisecond during the call, above
    # what was resident just before it (ru_maxrss would also count earlier high-water marks)
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.001)

    before = rss()
    seen.clear()
    th = threading.Thread(target=sample)
    th.start()
    try:
        sciSR.downscale(path, model=model, scale=scale)
    finally:
        done.set()
        th.join()
    print(json.dumps({"peak": peak[0] - before, "estimate": seen[0].total}))
    """
)


@pytest.mark.parametrize(("model", "scale"), [("bicubic", 4), ("espcn", 2)])
def test_estimate_bounds_the_measured_peak(tmp_path, model, scale):
    """The estimate is at least the measured peak and at most three times it (own process)."""
    res = subprocess.run(
        [sys.executable, "-c", _PEAK, str(tmp_path / "m.tif"), model, str(scale)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["peak"] > 50 << 20  # the call really allocated (the measurement is not empty)
    assert got["peak"] <= got["estimate"] <= 3 * got["peak"], got


def test_available_bytes_env_and_proc():
    import os

    old = os.environ.pop("SCISR_MEMORY_LIMIT", None)
    try:
        real = memory.available_bytes()
        assert 0 < real < 1 << 50
        os.environ["SCISR_MEMORY_LIMIT"] = "123M"
        assert memory.available_bytes() == 123 * 2**20
    finally:
        os.environ.pop("SCISR_MEMORY_LIMIT", None)
        if old is not None:
            os.environ["SCISR_MEMORY_LIMIT"] = old
