"""The domain recipes run end to end on the shipped samples (smoke configs: a few steps, small windows).

``recipes/dem/run.py`` and ``recipes/hydrology/temperature.py`` fine-tune a shipped network, score it
with ``sciSR.evaluate`` against the baseline ladder and write the downscaled file; these tests check
the report holds every baseline and the model rows with the report's own numbers, and that the
written GeoTIFF / NetCDF keep their georeferencing and coordinates. ``recipes/evaluate/heldout_report.py``
is checked on its table formatting (the full report runs on reserved data outside the tests).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import sciSR

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ["nearest", "bilinear", "bicubic", "block"]


def load(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def read_table(folder: Path) -> dict[str, dict[str, float]]:
    """``metrics.csv`` of a report folder as ``{method: {metric: value}}``."""
    import pandas as pd

    t = pd.read_csv(folder / "metrics.csv", index_col=[0, 1])
    return {str(m): {k: float(v) for k, v in row.items()} for (_, m), row in t.iterrows()}


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCISR_NO_PROGRESS", "1")


@pytest.mark.slow
def test_dem_recipe_smoke(tmp_path: Path) -> None:
    import rasterio
    from safetensors import safe_open

    run = load(ROOT / "recipes" / "dem" / "run.py", "recipe_dem_run")
    out = run.main(["--config", str(ROOT / "recipes/dem/smoke.toml"), "--out", str(tmp_path / "dem")])
    table = read_table(out / "report")
    assert list(table) == [*BASELINES, "espcn", "espcn[finetuned]"]
    assert table["block"]["consistency"] == pytest.approx(0.0, abs=1e-6)
    assert all(np.isfinite(r["rmse"]) and r["rmse"] > 0 for r in table.values())
    assert "espcn[finetuned]" in (out / "report" / "report.md").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rmse"]["bicubic"] == pytest.approx(table["bicubic"]["rmse"])

    with safe_open(str(out / "espcn_x4_dem.safetensors"), "pt") as f:
        assert f.metadata()["scisr_tag"] == "dem"
    src = sciSR.data.sample_path("etopo5_alps.tif")
    with rasterio.open(src) as a, rasterio.open(out / "etopo5_alps_x4.tif") as b:
        assert b.crs == a.crs
        assert (b.height, b.width) == (4 * a.height, 4 * a.width)
        assert np.allclose(tuple(b.bounds), tuple(a.bounds), atol=1e-9)
        assert np.allclose(b.res, np.asarray(a.res) / 4, rtol=1e-12)
        hr = b.read(1).astype(np.float64)
        lr = a.read(1).astype(np.float64)
    # the output describes the same terrain: its 4×4 block means follow the input closely
    blocks = hr.reshape(lr.shape[0], 4, lr.shape[1], 4).mean(axis=(1, 3))
    assert np.corrcoef(blocks.ravel(), lr.ravel())[0, 1] > 0.99


@pytest.mark.slow
def test_temperature_recipe_smoke(tmp_path: Path) -> None:
    import xarray as xr

    rec = load(ROOT / "recipes" / "hydrology" / "temperature.py", "recipe_hydrology_temperature")
    out = rec.main(
        ["--config", str(ROOT / "recipes/hydrology/temperature_smoke.toml"), "--out", str(tmp_path / "tas")]
    )
    table = read_table(out / "report")
    assert list(table) == [*BASELINES, "espcn", "espcn[finetuned]"]
    meta = json.loads((out / "report" / "scisr_report.json").read_text())
    assert meta["roles"]["espcn[finetuned]"] == "model" and meta["roles"]["bicubic"] == "baseline"
    assert "area" in meta["config"]["weights"] or "cos" in meta["config"]["weights"]

    src = sciSR.data.sample_path("cmip5_tas_mpi-esm-lr_2005.nc")
    with xr.open_dataset(src) as s:
        lr = s["tas"].isel(time=slice(2, 3), lat=slice(40, 64), lon=slice(96, 144)).load()
    with xr.open_dataset(out / "cmip5_tas_mpi-esm-lr_2005_x4.nc") as d:
        hr = d["tas"].load()
        attrs = dict(d.attrs)
    assert hr.dims == ("time", "lat", "lon") and hr.shape == (1, 96, 192)
    assert hr.attrs.get("units") == "K" and "Conventions" in attrs
    # refined grid: each block of 4 HR centres averages to its LR centre
    assert np.allclose(hr["lat"].values.reshape(-1, 4).mean(axis=1), lr["lat"].values, atol=1e-6)
    assert np.allclose(hr["lon"].values.reshape(-1, 4).mean(axis=1), lr["lon"].values, atol=1e-6)
    assert abs(float(hr.mean()) - float(lr.mean())) < 0.5


def test_recipe_config_errors(tmp_path: Path) -> None:
    run = load(ROOT / "recipes" / "dem" / "run.py", "recipe_dem_run")
    with pytest.raises(SystemExit, match="not found"):
        run.main(["--config", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o")])
    bad = tmp_path / "bad.toml"
    smoke = (ROOT / "recipes/dem/smoke.toml").read_text()
    bad.write_text(smoke.replace("x = [0, 64]", "col = [0, 64]"), encoding="utf-8")
    with pytest.raises(SystemExit, match="window dim 'col'"):
        run.main(["--config", str(bad), "--out", str(tmp_path / "o2")])


def test_heldout_table_bolds_the_best_per_column() -> None:
    import pandas as pd

    hr = load(ROOT / "recipes" / "evaluate" / "heldout_report.py", "recipe_heldout_report")
    assert hr.best_rows([3.0, 1.0, 2.0, 1.0], "rmse") == {1, 3}
    assert hr.best_rows([-0.5, 0.2, -0.1], "bias") == {2}
    assert hr.best_rows([0.9, 0.95, 0.7], "correlation") == {1}
    idx = pd.MultiIndex.from_tuples([("v", "bicubic"), ("v", "rcan")], names=["variable", "method"])
    rep = types.SimpleNamespace(
        table=pd.DataFrame({"rmse": [2.0, 1.5], "bias": [0.1, -0.3]}, index=idx),
        roles={"bicubic": "baseline", "rcan": "model"},
    )
    lines = hr.table_markdown(rep, "v", ("rmse", "bias"), "m")
    assert lines[0] == "| method | role | rmse (m) | bias (m) |"
    assert lines[2] == "| `bicubic` | baseline | 2 | **0.1** |"
    assert lines[3] == "| `rcan` | model | **1.5** | -0.3 |"
    assert hr.best_rows([1e-9, 0.0, 0.3], "bias") == {0, 1}  # float-precision zeros tie
    want = "best model `rcan` RMSE 1.5 (-25.0 % against the best baseline, `bicubic`: 2)"
    assert hr.headline(rep, "v") == want
