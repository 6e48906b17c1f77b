"""sciSR.evaluate and ``scisr evaluate`` on the shipped samples (small crops, fast models)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

import sciSR
from sciSR import metrics
from sciSR.cli import main
from sciSR.data import sample_path
from sciSR.evaluation import EvaluationReport, check_nesting


def _block(a: np.ndarray, s: int) -> np.ndarray:
    h, w = a.shape[-2:]
    return a.reshape(*a.shape[:-2], h // s, s, w // s, s).mean(axis=(-3, -1))


def _coarse_with_bounds(tas: xr.Dataset) -> xr.Dataset:
    """The ×4 LR of the Gaussian grid by xarray's own coarsening, with merged latitude bounds."""
    lr = tas[["tas"]].coarsen(lat=4, lon=4).mean()
    b = tas["lat_bnds"].values
    lr["lat_bnds"] = (("lat", "nb2"), np.stack([b[::4, 0], b[3::4, 1]], axis=1))
    return lr.assign_coords(lat=lr["lat"].assign_attrs(tas["lat"].attrs))


@pytest.fixture(scope="module")
def dem() -> xr.Dataset:
    ds = sciSR.open(sample_path("etopo5_alps.tif"))
    return ds.isel(y=slice(8, 56), x=slice(16, 80)).load()  # 48 × 64 cells of the Alps


@pytest.fixture(scope="module")
def dem_report(dem: xr.Dataset) -> EvaluationReport:
    return sciSR.evaluate(
        dem, 4, models=["espcn"], metrics=["rmse", "psnr", "ssim", "consistency", "improvement", "lsd"]
    )


@pytest.fixture(scope="module")
def tas() -> xr.Dataset:
    ds = sciSR.open(sample_path("cmip5_tas_mpi-esm-lr_2005.nc"))
    return ds.isel(time=[0]).load()


def test_every_method_is_scored_on_the_same_lr(dem: xr.Dataset, dem_report: EvaluationReport) -> None:
    t = dem_report.table
    methods = ["nearest", "bilinear", "bicubic", "block", "espcn"]
    assert list(t.index) == [("band_data", m) for m in methods]
    assert dem_report.roles == {**dict.fromkeys(methods[:4], "baseline"), "espcn": "model"}
    truth = dem["band_data"].values[0].astype(np.float64)
    lr = _block(truth, 4)  # the "area" operator, written out
    bicubic = sciSR.downscale(lr.astype(np.float32), model="bicubic", scale=4)
    assert t.loc[("band_data", "bicubic"), "rmse"] == pytest.approx(metrics.rmse(bicubic, truth), rel=1e-5)
    block = np.kron(lr, np.ones((4, 4)))
    assert t.loc[("band_data", "block"), "rmse"] == pytest.approx(metrics.rmse(block, truth), rel=1e-12)
    # nearest through the pipeline is the block replicate at an integer scale; both conserve exactly
    np.testing.assert_allclose(t.loc["band_data"].loc["nearest"], t.loc["band_data"].loc["block"], rtol=1e-6)
    assert t.loc[("band_data", "block"), "consistency"] == pytest.approx(0.0, abs=1e-9)
    assert t.loc[("band_data", "bicubic"), "consistency"] > 1.0
    # the baseline ladder is ordered on real relief, and the detail fractions are relative to bicubic
    r = t["rmse"].loc["band_data"]
    assert r["bicubic"] < r["bilinear"] < r["nearest"]
    assert t.loc[("band_data", "bicubic"), "improvement"] == 0.0


def test_report_files_hold_the_table_numbers(dem_report: EvaluationReport, tmp_path) -> None:
    out = dem_report.save(tmp_path / "report")
    csv = pd.read_csv(out / "metrics.csv", index_col=[0, 1])
    pd.testing.assert_frame_equal(csv, dem_report.table, rtol=1e-12, check_exact=False)
    md = (out / "report.md").read_text()
    for (_var, method), row in dem_report.table.iterrows():
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| {method} |"))
        for m in dem_report.metrics:
            assert f"{row[m]:.6g}" in line, (method, m)
    assert "rmse (m)" in md and "psnr (dB)" in md  # units from the variable's attrs
    meta = json.loads((out / "scisr_report.json").read_text())
    assert meta["config"]["scale"] == 4 and meta["config"]["degradation"] == "area"
    for kind in ("panels", "errors", "spectra", "qq"):
        with Image.open(out / "figures" / f"band_data_{kind}.png") as im:
            assert min(im.size) > 200
            assert np.asarray(im.convert("L")).std() > 10  # not a blank canvas
    # a report folder is replaced; any other folder is refused and left as it was
    dem_report.save(out, figures=False)
    assert not (out / "figures").exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not a sciSR report folder"):
        dem_report.save(other)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "report"]  # no temporary leftovers


def test_global_grid_uses_cell_areas_and_a_given_nested_lr_gives_the_same_scores(tas: xr.Dataset) -> None:
    kw = {"models": [], "baselines": ("bicubic", "block"), "metrics": ["rmse", "bias", "consistency"]}
    rep = sciSR.evaluate(tas, 4, **kw)
    assert rep.config["weights"] == "cell areas from latitude bounds"
    truth = tas["tas"].values.astype(np.float64)
    lr = _block(truth, 4)
    w = metrics.cell_area_weights(tas["lat_bnds"].values)
    block = np.kron(lr, np.ones((4, 4)))
    t = rep.table
    assert t.loc[("tas", "block"), "rmse"] == pytest.approx(metrics.rmse(block, truth, weights=w), rel=1e-12)
    assert t.loc[("tas", "block"), "rmse"] != pytest.approx(metrics.rmse(block, truth), rel=1e-3)
    assert t.loc[("tas", "block"), "consistency"] == pytest.approx(0.0, abs=1e-9)
    # the same LR made by xarray's own coarsening, passed as lr=: it nests, and scores agree
    lr_ds = _coarse_with_bounds(tas)
    given = sciSR.evaluate(tas, 4, lr=lr_ds, **kw)
    assert given.config["lr_source"] == "given (lr=)"
    pd.testing.assert_frame_equal(given.table, rep.table, rtol=1e-5, check_exact=False)


def test_mismatched_lr_grids_explain_the_nesting(tas: xr.Dataset) -> None:
    lr_ds = _coarse_with_bounds(tas)
    with pytest.raises(
        ValueError,
        match=r"HR grid 96×192 and LR grid 24×47 do not nest at scale 4: .*"
        r"HR shape = 4 × LR shape \(96×188\), every LR cell split into 4×4 HR cells",
    ):
        sciSR.evaluate(tas, 4, lr=lr_ds.isel(lon=slice(0, 47)), models=[])
    shifted = lr_ds.assign_coords(lon=lr_ds["lon"] + 3.75)  # half an LR cell east
    with pytest.raises(ValueError, match=r"^HR cells are not nested in LR cells along 'lon': LR cell 0"):
        sciSR.evaluate(tas, 4, lr=shifted, models=[])
    hr = tas["tas"]
    check_nesting(hr, lr_ds["tas"], 4, "lat", "lon")  # the unshifted grid passes
    with pytest.raises(ValueError, match="do not nest at scale 2"):
        check_nesting(hr, lr_ds["tas"], 2, "lat", "lon")


def test_masked_fields_numpy_input_and_user_mask() -> None:
    sst = sciSR.open(sample_path("coads_sst_climatology.nc")).isel(TIME=[0], COADSY=slice(20, 68)).load()
    rep = sciSR.evaluate(sst, 4, models=[], baselines=("bicubic", "block"), metrics=["rmse", "consistency"])
    truth = sst["SST"].values.astype(np.float64)
    assert np.isnan(truth).any()  # land
    block = np.kron(_block(truth, 4), np.ones((4, 4)))  # a block touching land is NaN
    w = metrics.latitude_weights(sst["COADSY"].values)
    want = metrics.rmse(block, truth, weights=w)  # cells NaN in either are left out
    assert np.isfinite(block).sum() < np.isfinite(truth).sum()
    assert rep.table.loc[("SST", "block"), "rmse"] == pytest.approx(want, rel=1e-9)
    # a numpy array and a user mask: only the masked-in cells count, for every method
    arr = sciSR.open(sample_path("etopo5_alps.tif"))["band_data"].values[0, :32, :48].astype(np.float64)
    mask = np.zeros(arr.shape, bool)
    mask[4:20, 8:40] = True
    r = sciSR.evaluate(arr, 4, models=[], baselines=("block",), metrics=["rmse", "mae"], mask=mask)
    blk = np.kron(_block(arr, 4), np.ones((4, 4)))
    assert r.table.loc[("data", "block"), "mae"] == pytest.approx(np.abs(blk - arr)[mask].mean(), rel=1e-12)
    assert r.config["weights"] == "uniform"


def test_bad_evaluate_input_is_refused_in_one_line(dem: xr.Dataset) -> None:
    cases = [
        ({"degradation": "slice"}, "reduces one axis only"),
        ({"degradation": "blur"}, "unknown degradation 'blur'"),
        ({"metrics": ["crps"]}, "scores ensembles"),
        ({"baselines": ("lanczos",)}, "unknown baseline 'lanczos'"),
        ({"variables": ["tas"]}, r"variable\(s\) tas not found"),
        (
            {"baselines": ("block",), "metrics": ["omission"]},
            "reference baseline 'bicubic' is not among the methods",
        ),
    ]
    for kw, msg in cases:
        with pytest.raises(ValueError, match=msg) as info:
            sciSR.evaluate(dem, 4, models=[], **kw)
        assert "\n" not in str(info.value)


def test_cli_evaluate_happy_path_matches_the_api(tmp_path, capsys) -> None:
    path = str(sample_path("etopo5_alps.tif"))
    out = tmp_path / "rep"
    argv = [
        "evaluate",
        path,
        "-s",
        "4",
        "-m",
        "bicubic,espcn",
        "-o",
        str(out),
        "--metrics",
        "rmse,psnr",
        "--baselines",
        "bicubic,block",
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "| espcn | model |" in captured.out and "report written to" in captured.err
    csv = pd.read_csv(out / "metrics.csv", index_col=[0, 1])
    assert list(csv.index.get_level_values(1)) == ["bicubic", "block", "espcn"]
    api = sciSR.evaluate(path, 4, models=["espcn"], baselines=("bicubic", "block"), metrics=["rmse", "psnr"])
    pd.testing.assert_frame_equal(csv, api.table, rtol=1e-9, check_exact=False)
    assert (out / "figures" / "band_data_panels.png").is_file()


def test_cli_evaluate_bad_input(tmp_path, capsys) -> None:
    path = str(sample_path("etopo5_alps.tif"))
    assert main(["evaluate", str(tmp_path / "none.nc"), "-o", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("scisr: error: no such file") and "\n" not in err
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "data.nc").write_bytes(b"x")
    assert main(["evaluate", path, "-o", str(keep)]) == 1
    assert "not a sciSR report folder" in capsys.readouterr().err
    assert [p.name for p in keep.iterdir()] == ["data.nc"]
    assert main(["evaluate", path, "-o", str(tmp_path / "r2"), "--degradation", "slice"]) == 1
    err = capsys.readouterr().err.strip()
    assert "reduces one axis only" in err and "\n" not in err
    assert not (tmp_path / "r2").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]


def test_evaluate_is_exposed_lazily() -> None:
    code = (
        "import sys, sciSR; assert 'torch' not in sys.modules and 'xarray' not in sys.modules; "
        "f = sciSR.evaluate; from sciSR.evaluation import evaluate; assert f is evaluate and callable(f); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_models_can_carry_their_own_labels():
    import sciSR
    from sciSR.data import sample_path

    ds = sciSR.open(sample_path("cmip5_tas_mpi-esm-lr_2005.nc")).isel(time=slice(0, 1))
    net = sciSR.create_model("espcn", scale=2)
    rep = sciSR.evaluate(
        ds,
        scale=2,
        models=[("my-espcn", net), ("espcn-shipped", "espcn", {})],
        baselines=("bicubic",),
        progress=False,
    )
    names = set(rep.table.reset_index().iloc[:, :3].astype(str).values.ravel())
    assert {"my-espcn", "espcn-shipped"} <= names
