"""File-to-file downscaling streams region by region: same values and metadata as the eager path."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import sciSR
from sciSR.io import streaming

rasterio = pytest.importorskip("rasterio")
from rasterio.transform import from_origin  # noqa: E402

FAST = {"progress": False}
#: small tiler windows, so that small rasters are cut into many windows and blocks
TILED = {"progress": False, "tile": 24}


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of about 64×64 HR cells, so small rasters are cut into many blocks."""
    monkeypatch.setattr(streaming, "TARGET_HR_CELLS", 64 * 64)


def _raster(path: Path, data: np.ndarray, **profile: object) -> Path:
    prof = dict(
        driver="GTiff",
        width=data.shape[-1],
        height=data.shape[-2],
        count=data.shape[0],
        dtype=data.dtype.name,
        crs="EPSG:32633",
        transform=from_origin(500000, 4000000, 30, 30),
    )
    prof.update(profile)
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(data)
        for i in range(data.shape[0]):
            dst.set_band_description(i + 1, f"band {i}")
            dst.update_tags(i + 1, kind=f"k{i}")
        dst.update_tags(mission="test")
    return path


def _field(h: int, w: int, bands: int = 1, seed: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    out = [np.sin(yy / (9 + b)) * np.cos(xx / 7) * 40 + 300 + rng.normal(size=(h, w)) for b in range(bands)]
    return np.stack(out).astype(np.float32)


def _eager(src: Path, out: Path, model: str, scale: int, **kw: object) -> None:
    ds = sciSR.open(src).load()
    sciSR.write(sciSR.downscale(ds, model=model, scale=scale, **TILED, **kw), out)


def _same_tiff(a: Path, b: Path, tol: float) -> None:
    with rasterio.open(a) as s, rasterio.open(b) as e:
        ps, pe = dict(s.profile), dict(e.profile)
        ns, ne = ps.pop("nodata"), pe.pop("nodata")
        assert ps == pe
        assert ns == ne or (ns is not None and ne is not None and np.isnan(ns) and np.isnan(ne))
        assert s.descriptions == e.descriptions and s.units == e.units
        assert s.scales == e.scales and s.offsets == e.offsets
        for i in range(1, s.count + 1):
            assert s.tags(i) == e.tags(i)
        ts, te = s.tags(), e.tags()
        assert ts.pop("history").split(": ", 1)[1] == te.pop("history").split(": ", 1)[1]  # timestamps aside
        assert ts == te
        x, y = s.read(masked=True), e.read(masked=True)
        np.testing.assert_array_equal(x.mask, y.mask)
        if x.dtype.kind == "f":
            assert float(np.abs(x - y).max()) <= tol
        else:
            assert int(np.abs(x.astype(np.int64) - y.astype(np.int64)).max()) <= tol


def test_default_tiles_equal_eager_for_a_learned_model(tmp_path):
    a = _field(300, 280)
    a[0, 100:200, 20:90] = np.nan
    src = _raster(tmp_path / "in.tif", a, nodata=np.nan)
    sciSR.downscale(src, model="espcn", scale=4, out=tmp_path / "s.tif", **FAST)  # 256-px windows
    ds = sciSR.open(src).load()
    sciSR.write(sciSR.downscale(ds, model="espcn", scale=4, **FAST), tmp_path / "e.tif")  # one window
    _same_tiff(tmp_path / "s.tif", tmp_path / "e.tif", 1e-5)


@pytest.mark.parametrize("model,tol", [("bicubic", 1e-4), ("espcn", 1e-5)])
def test_float_raster_with_large_nodata_areas_equals_eager(tmp_path, small_blocks, model, tol):
    a = _field(90, 110, bands=2)
    yy, xx = np.mgrid[0:90, 0:110]
    a[0][(xx - 40) ** 2 + (yy - 45) ** 2 < 30**2] = -9999  # a hole spanning several blocks
    a[1][:, 95:] = -9999
    src = _raster(tmp_path / "in.tif", a, nodata=-9999)
    sciSR.downscale(src, model=model, scale=4, out=tmp_path / "s.tif", **TILED)
    _eager(src, tmp_path / "e.tif", model, 4)
    with rasterio.open(tmp_path / "s.tif") as f:
        assert f.block_shapes[0] == (256, 256)
    _same_tiff(tmp_path / "s.tif", tmp_path / "e.tif", tol)


def test_blended_model_streams_each_window_once_and_equals_eager(tmp_path, small_blocks):
    """RCAN (unbounded receptive field, blended windows): a window graph, each window run once."""
    from sciSR.pipeline import Pipeline

    a = _field(90, 110, bands=2)
    a[1][30:60, 40:80] = -9999
    src = _raster(tmp_path / "in.tif", a, nodata=-9999)
    net = sciSR.create_model("rcan", scale=2, pretrained=False, n_resgroups=1, n_resblocks=1, n_feats=8)
    calls: list[int] = []
    net.register_forward_hook(lambda _m, inp, _o: calls.append(inp[0].shape[0]))
    sciSR.downscale(src, model=net, scale=2, out=tmp_path / "s.tif", **TILED)
    n_windows = len(Pipeline.build(net, 2, tile=24).stream_tiler(90, 110).windows(90, 110))
    # two bands, every window once (blocks are far smaller than windows), plus at most one probe pass
    # of the precision set-up
    assert 2 * n_windows <= sum(calls) <= 2 * n_windows + 1
    _eager(src, tmp_path / "e.tif", net, 2)
    _same_tiff(tmp_path / "s.tif", tmp_path / "e.tif", 1e-5)


def test_integer_raster_dtype_source_repacks_like_eager(tmp_path, small_blocks):
    a = np.round(_field(70, 80, bands=2) * 10).astype(np.int16)
    a[0, 5:20, 5:30] = -32768
    src = tmp_path / "int.tif"
    _raster(src, a, nodata=-32768)
    with rasterio.open(src, "r+") as f:
        f.scales, f.offsets = (0.1, 0.5), (0.0, -3.0)
    sciSR.downscale(src, model="bicubic", scale=2, out=tmp_path / "s.tif", dtype="source", **TILED)
    _eager(src, tmp_path / "e.tif", "bicubic", 2, dtype="source")
    _same_tiff(tmp_path / "s.tif", tmp_path / "e.tif", 0)
    with rasterio.open(tmp_path / "s.tif") as f:
        assert f.dtypes[0] == "int16" and f.scales == (0.1, 0.5) and f.nodata == -32768


def test_sample_dem_and_cog_output(tmp_path, small_blocks):
    src = sciSR.data.sample_path("etopo5_alps.tif")
    sciSR.downscale(src, model="espcn", scale=4, out=tmp_path / "s.cog.tif", **TILED)
    _eager(src, tmp_path / "e.cog.tif", "espcn", 4)
    _same_tiff(tmp_path / "s.cog.tif", tmp_path / "e.cog.tif", 1e-5)


def test_global_raster_wraps_longitude_like_eager(tmp_path, small_blocks):
    a = _field(45, 90)
    a[0, 10:30, 80:] = np.nan  # a gap at the antimeridian
    geo = {"crs": "EPSG:4326", "transform": from_origin(-180, 90, 4, 4)}
    src = _raster(tmp_path / "g.tif", a, nodata=np.nan, **geo)
    sciSR.downscale(src, model="espcn", scale=2, out=tmp_path / "s.tif", **TILED)
    _eager(src, tmp_path / "e.tif", "espcn", 2)
    _same_tiff(tmp_path / "s.tif", tmp_path / "e.tif", 1e-5)


def test_float_without_nodata_gets_nan_nodata_only_when_needed(tmp_path, small_blocks):
    src = _raster(tmp_path / "plain.tif", _field(40, 50))
    sciSR.downscale(src, model="bicubic", scale=2, out=tmp_path / "s.tif", **TILED)
    _eager(src, tmp_path / "e.tif", "bicubic", 2)
    _same_tiff(tmp_path / "s.tif", tmp_path / "e.tif", 1e-4)
    with rasterio.open(tmp_path / "s.tif") as f:
        assert f.nodata is None


def test_result_is_lazy_and_blocks_follow_the_plan(tmp_path, small_blocks):
    src = _raster(tmp_path / "in.tif", _field(60, 70))
    res = sciSR.downscale(src, model="bicubic", scale=2, out=tmp_path / "s.tif", **TILED)
    chunks = res.band_data.data.chunks
    assert len(chunks[1]) > 1 and len(chunks[2]) > 1  # several HR blocks per axis
    with rasterio.open(tmp_path / "s.tif") as f:
        np.testing.assert_allclose(res.band_data.values, f.read(), atol=1e-6)


def test_percentile_norm_streams_exactly(tmp_path, small_blocks):
    a = _field(50, 60)
    src = _raster(tmp_path / "in.tif", a)
    res = sciSR.downscale(src, model="espcn", scale=2, norm="percentile", out=tmp_path / "s.tif", **TILED)
    lo, hi = np.percentile(a[0].astype(np.float64), [1, 99])
    params = json.loads(res.band_data.attrs["scisr_norm_params"])
    assert params == {"lo": float(lo), "hi": float(hi)}


def test_progress_bar_over_blocks(tmp_path, small_blocks, capsys, monkeypatch):
    monkeypatch.delenv("SCISR_NO_PROGRESS", raising=False)
    src = _raster(tmp_path / "in.tif", _field(40, 40))
    sciSR.downscale(src, model="bicubic", scale=2, out=tmp_path / "s.tif", tile=24, progress=True)
    assert "block" in capsys.readouterr().err
    sciSR.downscale(src, model="bicubic", scale=2, out=tmp_path / "q.tif", tile=24, progress=False)
    assert "block" not in capsys.readouterr().err


def test_error_mid_write_leaves_nothing_and_input_untouched(tmp_path, small_blocks, monkeypatch):
    src = _raster(tmp_path / "in.tif", _field(60, 60))
    before = src.read_bytes()
    calls = []
    real = streaming._RegionTask.__call__

    def flaky(self, read, plan):
        calls.append(plan.region)
        if len(calls) == 3:
            raise RuntimeError("planted failure in block 3")
        return real(self, read, plan)

    monkeypatch.setattr(streaming._RegionTask, "__call__", flaky)
    with pytest.raises(RuntimeError, match="planted failure"):
        sciSR.downscale(src, model="bicubic", scale=2, out=tmp_path / "out.tif", **TILED)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]
    assert src.read_bytes() == before


def test_memory_check_accepts_a_streamed_call_that_fits_per_block(tmp_path, monkeypatch):
    from sciSR.io.memory import InsufficientMemoryError

    src = _raster(tmp_path / "in.tif", _field(600, 600))
    monkeypatch.setenv("SCISR_MEMORY_LIMIT", "300M")
    with pytest.raises(InsufficientMemoryError):  # the whole-array call does not fit
        sciSR.downscale(sciSR.open(src), model="bicubic", scale=8, **FAST)
    sciSR.downscale(src, model="bicubic", scale=8, out=tmp_path / "s.tif", **TILED)
    with rasterio.open(tmp_path / "s.tif") as f:
        assert f.shape == (4800, 4800)


# ---------------------------------------------------------------- NetCDF / Zarr
@pytest.mark.parametrize("ext", [".nc", ".zarr"])
def test_gridded_sample_path_to_path_equals_eager(tmp_path, ext):
    src = sciSR.data.sample_path("cmip5_tas_mpi-esm-lr_2005.nc")
    if ext == ".zarr":
        import xarray as xr

        with xr.open_dataset(src) as ds:
            ds.load().to_zarr(tmp_path / "in.zarr", mode="w")
        src = tmp_path / "in.zarr"
    out = tmp_path / f"s{ext}"
    res = sciSR.downscale(src, model="espcn", scale=2, out=out, **FAST)
    # fields of one block go through the window graph: NetCDF one time step at a time, Zarr its own
    # chunks (written whole here)
    assert res.tas.data.chunks[0] == ((1, 1, 1) if ext == ".nc" else (3,))
    eager = sciSR.downscale(sciSR.open(src).load(), model="espcn", scale=2, **FAST)
    got = sciSR.open(out).load()
    assert float(np.abs(got.tas.values - eager.tas.values).max()) <= 1e-5
    assert {k: v for k, v in got.tas.attrs.items()} == {k: v for k, v in eager.tas.attrs.items()}
    np.testing.assert_array_equal(got.lat.values, eager.lat.values)
    np.testing.assert_array_equal(got.lon.values, eager.lon.values)


def _gridded(path: Path, steps: int = 2, h: int = 90, w: int = 110) -> Path:
    import xarray as xr

    data = np.stack([_field(h, w, seed=t)[0] for t in range(steps)]).astype(np.float32)
    data[-1, 30:60, 40:80] = np.nan  # a gap across several blocks
    ds = xr.Dataset(
        {"tas": (("time", "lat", "lon"), data, {"units": "K", "long_name": "air temperature"})},
        coords={"time": np.arange(steps), "lat": np.linspace(-30, 30, h), "lon": np.linspace(0, 80, w)},
        attrs={"title": "streamed"},
    )
    if path.suffix == ".nc":
        ds.to_netcdf(path)
    else:
        ds.to_zarr(path)
    return path


@pytest.mark.parametrize("ext", [".nc", ".zarr"])
@pytest.mark.parametrize("kind", ["cropped", "blended"])
def test_gridded_blocks_are_written_one_by_one_and_equal_eager(tmp_path, small_blocks, ext, kind):
    """Many blocks per field: cropped models give equal blocks (one file chunk each); blended
    models' blocks follow their windows and are unequal, so Zarr/NetCDF chunks divide them and the
    chunks on block edges are written in two parts, one block after the other."""
    import xarray as xr

    src = _gridded(tmp_path / f"in{ext}")
    if kind == "cropped":
        model, scale, opts = "espcn", 4, dict(TILED)
    else:
        model = sciSR.create_model("rcan", scale=2, pretrained=False, n_resgroups=1, n_resblocks=1, n_feats=8)
        scale, opts = 2, dict(TILED)
    res = sciSR.downscale(src, model=model, scale=scale, out=tmp_path / f"s{ext}", **opts)
    ychunks = res.tas.data.chunks[1]
    assert len(ychunks) > 2
    assert (len(set(ychunks[:-1])) == 1) == (kind == "cropped")
    eager = sciSR.downscale(sciSR.open(src).load(), model=model, scale=scale, **opts)
    with xr.open_dataset(tmp_path / f"s{ext}", engine="zarr" if ext == ".zarr" else "netcdf4") as got:
        np.testing.assert_array_equal(np.isnan(got.tas.values), np.isnan(eager.tas.values))
        assert float(np.nanmax(np.abs(got.tas.values - eager.tas.values))) <= 1e-5
        assert got.tas.attrs == {k: v for k, v in eager.tas.attrs.items()}
        assert got.attrs["title"] == "streamed"
        np.testing.assert_array_equal(got.lat.values, eager.lat.values)
        chunks = got.tas.encoding["chunks" if ext == ".zarr" else "chunksizes"]
        assert chunks[0] == 1
        if kind == "cropped":
            assert tuple(chunks[1:]) == (ychunks[0], res.tas.data.chunks[2][0])
        else:
            assert chunks[1] < min(ychunks) and chunks[1] & (chunks[1] - 1) == 0


def test_block_progress_counts_every_block(tmp_path, small_blocks, monkeypatch):
    """The streamed NetCDF writer shows one bar step per computed block."""
    updates: list[int] = []

    class Bar:
        def __init__(self, total: int, desc: str) -> None:
            updates.append(-total)

        def update(self, n: int) -> None:
            updates.append(n)

        def close(self) -> None:
            pass

    monkeypatch.setattr(streaming, "progress_bar", Bar)
    src = _gridded(tmp_path / "in.nc")
    res = sciSR.downscale(src, model="bicubic", scale=4, out=tmp_path / "s.nc", progress=True, tile=24)
    blocks = int(np.prod(res.tas.data.numblocks))
    assert blocks > 4 and updates == [-blocks] + [1] * blocks


def test_zarr_output_chunks_follow_spatial_blocks():
    import dask.array as dsa
    import xarray as xr

    from sciSR.io.zarr import output_chunks

    data = dsa.zeros((40, 800, 1200), chunks=(1, 256, 512), dtype=np.float32)
    da = xr.DataArray(data, dims=("time", "lat", "lon"))
    assert output_chunks(da) == (1, 256, 512)  # each computed block is one chunk
    assert output_chunks(da.compute()) == (4, 800, 1200)  # in memory: loop dims grouped up to 16 MiB
    uneven = dsa.zeros((2, 800, 1200), chunks=((1, 1), (300, 500), (600, 600)), dtype=np.float32)
    assert output_chunks(xr.DataArray(uneven, dims=("time", "lat", "lon"))) == (1, 256, 600)


# ---------------------------------------------------------------- peak memory
_RSS_CHILD = textwrap.dedent(
    r"""
    import json, resource, sys
    import numpy as np, rasterio, sciSR
    import sciSR.io.geotiff, sciSR.io.streaming as st, dask.array, torch  # imports before the baseline
    src, out, eager = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    def rss():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) * 1024
    base = rss()
    if eager:
        sciSR.write(sciSR.downscale(sciSR.open(src).load(), model="bicubic", scale=4, progress=False), out)
    else:
        sciSR.downscale(src, model="bicubic", scale=4, out=out, progress=False)
    print(json.dumps({"base": base, "peak": rss(), "block": st.TARGET_HR_CELLS * 4}))
    """
)


def _peak_growth(src: Path, out: Path, eager: bool) -> dict[str, int]:
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(src), str(out), "1" if eager else "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_peak_memory_is_set_by_block_size_not_file_size(tmp_path):
    """1500×1500 ×4 (144 MB float32 output): growth of the peak RSS over the import baseline stays
    under a bound set by the HR block size (one block at a time and its temporaries), where the
    eager path holds the whole output several times."""
    n = 1500
    src = _raster(tmp_path / "in.tif", _field(n, n), tiled=True, blockxsize=256, blockysize=256)
    s = _peak_growth(src, tmp_path / "s.tif", eager=False)
    bound = (96 << 20) + 16 * s["block"]  # libraries' state + block temporaries: 160 MiB for 1024² blocks
    output = (4 * n) ** 2 * 4
    assert bound < output * 1.5  # the bound is below what holding the output (plus one copy) costs
    assert s["peak"] - s["base"] < bound, (s["peak"] - s["base"]) / 2**20
    e = _peak_growth(src, tmp_path / "e.tif", eager=True)
    assert e["peak"] - e["base"] > bound  # the same bound fails for the eager path


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
@pytest.mark.parametrize("ext", [".nc", ".zarr"])
def test_gridded_peak_memory_is_set_by_block_size_not_file_size(tmp_path, ext):
    """Two 1200×1200 time steps ×4 (184 MB float32 output) to NetCDF / Zarr: the written blocks are
    independent (each reads its own LR box), so the peak grows by about one block, as for GeoTIFF."""
    import xarray as xr

    n, steps = 1200, 2
    data = np.stack([_field(n, n)[0] + t for t in range(steps)]).astype(np.float32)
    ds = xr.Dataset(
        {"tas": (("time", "lat", "lon"), data, {"units": "K"})},
        coords={"time": np.arange(steps), "lat": np.linspace(-60, 60, n), "lon": np.linspace(0, 120, n)},
    )
    src = tmp_path / f"in{ext}"
    if ext == ".nc":
        ds.to_netcdf(src, encoding={"tas": {"chunksizes": (1, 256, 256)}})
    else:
        ds.chunk({"time": 1, "lat": 256, "lon": 256}).to_zarr(src)
    s = _peak_growth(src, tmp_path / f"s{ext}", eager=False)
    bound = (96 << 20) + 16 * s["block"]
    output = steps * (4 * n) ** 2 * 4
    assert bound < output
    assert s["peak"] - s["base"] < bound, (s["peak"] - s["base"]) / 2**20
    got = xr.open_dataset(tmp_path / f"s{ext}", engine="zarr" if ext == ".zarr" else "netcdf4")
    assert got.tas.shape == (steps, 4 * n, 4 * n)
    assert np.isfinite(got.tas[-1, -5:, -5:].values).all()
    got.close()


@pytest.mark.parametrize("order", ["rows", "shuffled"])
def test_window_cache_blocks_equal_whole_field_inference_in_any_order(small_blocks, order):
    """Blended blocks share a window cache: in row order every window runs once; in a scattered
    order under a tiny cap evicted windows run again, and the blocks still equal whole-field run."""
    import random

    import torch

    from sciSR.io import window_cache
    from sciSR.pipeline import Pipeline

    torch.manual_seed(0)
    net = sciSR.create_model("rcan", scale=2, pretrained=False, n_resgroups=1, n_resblocks=1, n_feats=8)
    pipe = streaming.stream_pipeline(Pipeline.build(net, 2, tile=24, progress=False))
    x = _field(90, 110)
    x[0, 30:50, 20:60] = np.nan
    normalizers = pipe.fit(x[None])
    whole = pipe.run(x[None], normalizers)[0]
    layout = streaming.region_layout(pipe, (90, 110))
    rows, cols = layout.rows, layout.cols
    arr = window_cache.blended_blocks(x, layout, normalizers, lambda y: y, np.float32, 1)
    cache = next(t[0].args[0] for t in arr.dask.values() if hasattr(t[0], "args"))
    n_windows = len(cache.wins)
    idx = [(i, j) for i in range(len(rows)) for j in range(len(cols))]
    if order == "shuffled":
        random.Random(0).shuffle(idx)
        cache.cap = 0
    got = np.full((1, 180, 220), -1.0, np.float32)
    for i, j in idx:
        (y0, y1), (x0, x1) = rows[i], cols[j]
        got[:, 2 * y0 : 2 * y1, 2 * x0 : 2 * x1] = arr.blocks[0, i, j].compute(scheduler="synchronous")
    np.testing.assert_allclose(got, whole, atol=1e-5)
    assert len(idx) > 4 and not cache.outputs and cache.held == 0
    if order == "rows":
        assert cache.runs == n_windows
    else:
        assert cache.runs > n_windows


@pytest.mark.parametrize("ext", [".nc", ".zarr", ".tif"])
def test_streamed_writers_visit_blocks_in_row_order(tmp_path, small_blocks, monkeypatch, ext):
    """Every writer stores blended blocks row by row (xarray's own order is scattered), so the shared
    window cache runs each window once and holds about two rows of windows."""
    from sciSR.io import window_cache

    caches: list[window_cache.WindowCache] = []
    seen: list[tuple[int, int]] = []
    init, block = window_cache.WindowCache.__init__, window_cache._block

    def record_init(self, *a, **k):
        init(self, *a, **k)
        caches.append(self)

    def record_block(cache, ks, region, cast, counter):
        seen.append(region[::2])
        return block(cache, ks, region, cast, counter)

    monkeypatch.setattr(window_cache.WindowCache, "__init__", record_init)
    monkeypatch.setattr(window_cache, "_block", record_block)
    src = _gridded(tmp_path / "in.nc", steps=1)
    net = sciSR.create_model("rcan", scale=2, pretrained=False, n_resgroups=1, n_resblocks=1, n_feats=8)
    sciSR.downscale(src, model=net, scale=2, out=tmp_path / f"s{ext}", **TILED)
    assert len(caches) == 1 and len(seen) > 4
    # row by row (a GeoTIFF written north-up from a south-up grid goes from the last row up)
    assert seen in (sorted(seen), sorted(seen, key=lambda r: (-r[0], r[1]))), seen
    assert caches[0].runs == len(caches[0].wins)
