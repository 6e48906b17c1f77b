"""Small files that declare huge grids, and scales that explode memory: refused before reading.

Each case runs ``scisr`` in a subprocess whose address space is capped (4 GiB), so a regression
fails the case instead of exhausting the machine; ``SCISR_MEMORY_LIMIT`` fixes the memory the
estimate is compared with, so the outcome does not depend on the machine.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import numpy as np
import pytest

from .conftest import one_line

CAP = 4 << 30
N = 100_000


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


def _scisr(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SCISR_MEMORY_LIMIT="2G", PYTHONWARNINGS="ignore", SCISR_NO_PROGRESS="1")
    return subprocess.run(
        [sys.executable, "-m", "sciSR", *args],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=_capped,
        timeout=300,
    )


@pytest.fixture
def huge_nc(guard):
    import netCDF4

    p = guard.root / "huge.nc"
    with netCDF4.Dataset(p, "w") as nc:
        nc.createDimension("lat", N)
        nc.createDimension("lon", N)
        nc.createVariable("lat", "f8", ("lat",))[:] = np.linspace(-90, 90, N)
        nc.createVariable("lon", "f8", ("lon",))[:] = np.linspace(-180, 180, N)
        v = nc.createVariable("t", "f4", ("lat", "lon"), zlib=True, chunksizes=(1000, 1000))
        v[0:10, 0:10] = 1.0
    assert p.stat().st_size < 4 << 20
    guard.watch(p)
    return p


@pytest.fixture
def huge_tif(guard):
    import rasterio
    from rasterio.transform import from_origin

    p = guard.root / "huge.tif"
    profile = dict(driver="GTiff", width=N, height=N, count=1, dtype="float32", tiled=True)
    with rasterio.open(
        p,
        "w",
        **profile,
        compress="deflate",
        sparse_ok=True,
        transform=from_origin(0, 1, 1e-5, 1e-5),
        crs="EPSG:4326",
    ) as ds:
        ds.write(np.ones((1, 256, 256), np.float32), window=((0, 256), (0, 256)))
    assert p.stat().st_size < 4 << 20
    guard.watch(p)
    return p


@pytest.mark.slow
@pytest.mark.parametrize("which", ["huge_nc", "huge_tif"])
def test_declared_huge_grid_is_refused_with_the_figure(guard, request, which) -> None:
    src = request.getfixturevalue(which)
    out = guard.root / f"o{src.suffix}"
    r = _scisr("downscale", str(src), "-o", str(out), "-s", "2")
    assert r.returncode == 1, r.stderr[-2000:]
    line = one_line(r.stderr)
    assert "memory" in line and "GiB" in line and "Unable to allocate" not in line
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("which", ["huge_nc", "huge_tif"])
def test_info_on_a_declared_huge_grid_does_not_read_it(request, which) -> None:
    src = request.getfixturevalue(which)
    r = _scisr("info", str(src))
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{N}" in r.stdout


@pytest.mark.slow
def _medium_nc(guard, n: int = 600):
    import xarray as xr

    p = guard.root / "medium.nc"
    xr.Dataset(
        {"t": (("lat", "lon"), np.random.default_rng(0).random((n, n), dtype=np.float32))},
        coords={"lat": np.linspace(-60, 60, n), "lon": np.linspace(0, 120, n)},
    ).to_netcdf(p)
    guard.watch(p)
    return p


def test_enormous_scale_on_a_medium_file_is_refused(guard) -> None:
    # streamed NetCDF output needs little memory at any scale; ×2000 (1.2 million² cells, ~5 TiB)
    # cannot fit on the disk, which is checked before any work
    p = _medium_nc(guard)
    r = _scisr("downscale", str(p), "-o", str(guard.root / "o.nc"), "-s", "2000")
    assert r.returncode == 1, r.stderr[-2000:]
    line = one_line(r.stderr)
    assert "no space left" in line and "TiB" in line and "o.nc" in line


def test_whole_field_constraint_too_large_for_memory_is_refused(guard) -> None:
    # a constraint that is not local needs each HR field whole: 600² ×64 is 5.5 GiB, over the 2G limit
    p = _medium_nc(guard)
    r = _scisr(
        "downscale", str(p), "-o", str(guard.root / "o.nc"), "-s", "64", "-m", "bicubic",
        "--constraint", "add", "--constraint-degradation", "gaussian",
    )
    assert r.returncode == 1, r.stderr[-2000:]
    line = one_line(r.stderr)
    assert "GiB" in line and "constraint_degradation='area'" in line
