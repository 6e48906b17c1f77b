"""Smoke test of ``recipes/hydrology/precipitation.py`` (Stage IV ×4 with an ETOPO5 orography covariate,
softmax constraint, fine-tune, evaluate, CF NetCDF out) on the Stage IV and ETOPO5 crops shipped
beside the recipe (``recipes/hydrology/data``: hours 0-11 train, 12-15 are scored).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "recipes" / "hydrology" / "data"
STAGEIV = DATA / "stageiv_florence_h00_15.nc"
ETOPO5 = DATA / "etopo5_carolinas.nc"


def _load(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_precipitation_recipe_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd
    import xarray as xr

    import sciSR

    assert STAGEIV.is_file() and ETOPO5.is_file()  # shipped with the recipe
    monkeypatch.setenv("SCISR_NO_PROGRESS", "1")
    rec = _load(ROOT / "recipes" / "hydrology" / "precipitation.py", "recipe_precipitation")
    cfg = ROOT / "recipes" / "hydrology" / "precipitation_smoke.toml"
    out = rec.main(["--config", str(cfg), "--out", str(tmp_path / "run")])
    summary = json.loads((out / "summary.json").read_text())

    # the report holds the baselines, the shipped model and both experiments, with its own numbers
    table = pd.read_csv(Path(summary["reports"]["report"]) / "metrics.csv", index_col=[0, 1])
    methods = [m for _, m in table.index]
    for m in ("nearest", "bilinear", "bicubic", "block", "espcn", "ft", "ft+orog+softmax"):
        assert m in methods
    rmse = {m: float(v) for (_, m), v in table["rmse"].items()}
    assert rmse == pytest.approx({m: summary["rmse_mm_per_h"][m] for m in rmse})
    soft = pd.read_csv(
        Path(summary["reports"]["report_softmax_at_inference"]) / "metrics.csv", index_col=[0, 1]
    )
    soft_methods = [m for _, m in soft.index]
    assert "ft+softmax@inference" in soft_methods and "espcn+softmax@inference" in soft_methods
    assert "ft+orog+softmax+softmax@inference" not in soft_methods  # trained with the layer: first report
    # the layer at inference keeps block means: its consistency error is at float precision
    assert float(soft.loc[(soft.index[0][0], "ft+softmax@inference"), "consistency"]) < 1e-4
    assert rmse["nearest"] == pytest.approx(rmse["block"], rel=1e-9)  # block replication = nearest at ×s

    # the weights of the covariate experiment record the covariate and the constraint
    from sciSR.models import catalog

    meta = catalog.read_metadata(summary["experiments"]["ft+orog+softmax"]["weights"])
    assert json.loads(meta["scisr_covariates"])[0]["name"] == "orog"
    assert meta["scisr_constraint"] == "softmax"

    # CF NetCDF out: HR grid ×4, non-negative rain, block means return the coarse input (softmax)
    with xr.open_dataset(summary["downscaled"]) as hr:
        v = hr[summary["variable"]]
        assert v.shape == (4, 64, 48)  # hours 12-15
        assert float(np.nanmin(v.values)) >= 0.0
        assert "lat" in hr.coords and hr["lat"].shape == (64, 48)
        assert "softmax" in v.attrs["scisr_constraint"]
    assert summary["downscaled_consistency"] < 1e-5

    # the orography covariate is ETOPO5 on the HR Stage IV lat/lon: the Appalachians rise to the west
    ds = rec.open_stageiv(STAGEIV, summary["variable"], 4)
    orog = rec.orography_on(ds, summary["variable"], {"path": str(ETOPO5), "clip_below": 0.0}, ROOT)
    assert orog.shape == ds[summary["variable"]].shape[-2:]
    assert float(orog.min()) >= 0.0 and 100.0 < float(orog.max()) < 2100.0  # coastal plain, Piedmont
    west = float(orog.values[:, : orog.shape[1] // 4].mean())
    east = float(orog.values[:, -orog.shape[1] // 4 :].mean())
    assert west > east
    assert sciSR.covariates.METADATA_KEY == "scisr_covariates"
