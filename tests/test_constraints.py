"""Consistency constraints (sciSR.constraints): coarsening the constrained output returns the input,
with area weights and masks, in numpy, through downscale (eager, tiled, dask-chunked) and in training."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import xarray as xr

import sciSR
from sciSR import constraints as C
from sciSR.data import sample_path
from sciSR.grid import Grid
from sciSR.pipeline import Pipeline
from sciSR.train import TrainConfig, degrade, fit
from sciSR.train.data import load_luma

S = 4


@pytest.fixture(scope="module")
def tas() -> xr.Dataset:
    with xr.open_dataset(sample_path("cmip5_tas_mpi-esm-lr_2005.nc")) as ds:
        return ds.load()


def _weighted_coarsen(hr: np.ndarray, w: np.ndarray, s: int = S) -> np.ndarray:
    """Reference area-weighted block mean over finite cells, written with numpy reshapes."""
    *lead, h, wd = hr.shape
    ww = np.broadcast_to(w, hr.shape) * np.isfinite(hr)
    v = np.where(np.isfinite(hr), hr, 0.0)
    num = (ww * v).reshape(*lead, h // s, s, wd // s, s).sum(axis=(-3, -1))
    den = ww.reshape(*lead, h // s, s, wd // s, s).sum(axis=(-3, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _case(tas: xr.Dataset, dtype: type) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HR-like field (real tas plus noise), its LR by cos-weighted block mean, HR weights; masked."""
    hr_true = tas.tas.values[:2, None].astype(np.float64)  # (2, 1, 96, 192), K
    lat_hr = tas.lat.values
    w = C.latitude_weights(lat_hr)[:, None]
    x = _weighted_coarsen(hr_true, w)
    rng = np.random.default_rng(0)
    y = hr_true + rng.normal(0.0, 3.0, hr_true.shape)  # a model's error
    y[0, 0, 8:16, 40:48] = np.nan  # a fully invalid 2×2 block of LR cells
    x[0, 0, 2:4, 10:12] = np.nan
    y[1, 0, 30, 50] = np.nan  # one invalid HR cell inside a block
    return y.astype(dtype), x.astype(dtype), w


@pytest.mark.parametrize("kind", C.CONSTRAINTS)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_each_constraint_reproduces_weighted_block_means_with_masks(tas, kind, dtype, tol) -> None:
    y, x, w = _case(tas, dtype)
    out = C.get_constraint(kind).apply(y, x, S, w)
    assert out.dtype == dtype and out.shape == y.shape
    back = _weighted_coarsen(out.astype(np.float64), w)
    ok = np.isfinite(x)
    rel = np.abs(back[ok] - x[ok].astype(np.float64)) / np.abs(x[ok].astype(np.float64))
    assert rel.max() < tol, rel.max()
    # NaN stays NaN and nothing else becomes NaN; a fully invalid LR cell stays NaN
    assert np.array_equal(np.isnan(out), np.isnan(y))
    assert np.isnan(back[0, 0, 2:4, 10:12]).all()
    # the weights matter: the unweighted block mean of the output misses x by far more
    plain = _weighted_coarsen(out.astype(np.float64), np.ones_like(w))
    assert np.nanmax(np.abs(plain - x) / np.abs(x)) > 100 * tol


def test_mult_and_softmax_outputs_are_non_negative_and_handle_zero_blocks() -> None:
    rng = np.random.default_rng(1)
    x = rng.gamma(0.5, 2.0, (1, 1, 5, 6))
    x[0, 0, 0, 0] = 0.0
    y = rng.normal(0.0, 3.0, (1, 1, 20, 24))  # negative outputs, as an unconstrained model may give
    y[0, 0, 4:8, 4:8] = -1.0  # block (1, 1): no positive output at all
    for kind in ("mult", "softmax"):
        out = C.get_constraint(kind).apply(y, x, S)
        assert out.min() >= 0.0
        np.testing.assert_allclose(_weighted_coarsen(out, np.ones((1, 1))), x, rtol=1e-12, atol=1e-15)
        assert np.all(out[0, 0, :4, :4] == 0.0)  # x = 0 → a zero block
    out = C.get_constraint("mult").apply(y, x, S)
    np.testing.assert_allclose(out[0, 0, 4:8, 4:8], x[0, 0, 1, 1])  # nothing to scale: uniform x
    # add keeps the model's spatial pattern: only a constant per block changes
    out = C.get_constraint("add").apply(y, x, S)
    d = (out - y).reshape(5, S, 6, S)
    assert np.allclose(d, d[:, :1, :, :1])


def test_softmax_on_the_log_of_a_field_estimate_is_mult_and_on_logits_is_harder_et_al() -> None:
    rng = np.random.default_rng(5)
    x = rng.gamma(0.5, 2.0, (1, 2, 4, 5))
    y = rng.normal(0.5, 1.0, (1, 2, 16, 20))
    log_softmax = C.Constraint("softmax", logits="log")
    np.testing.assert_allclose(
        log_softmax.apply(y, x, S), C.get_constraint("mult").apply(y, x, S), rtol=1e-12
    )
    # logits: the paper's exp(y_i) · x / mean_block(exp(y)) with uniform weights
    out = C.get_constraint("softmax").apply(y, x, S)
    e = np.exp(y).reshape(1, 2, 4, S, 5, S)
    ref = (e * x[:, :, :, None, :, None] / e.mean(axis=(3, 5), keepdims=True)).reshape(y.shape)
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    # a constant shift of the logits changes nothing; large logits do not overflow
    np.testing.assert_allclose(C.get_constraint("softmax").apply(y + 800.0, x, S), out, rtol=1e-10)


@pytest.mark.parametrize(
    "method,opts", [("gaussian", {}), ("gaussian", {"sigma": 1.2}), ("slice", {"axis": -1}), ("bicubic", {})]
)
def test_add_projects_onto_other_linear_degradations_with_least_norm(method, opts) -> None:
    rng = np.random.default_rng(2)
    hr = torch.from_numpy(rng.normal(size=(1, 1, 24, 32)))
    x = degrade(hr, S, method, **opts)
    y = hr + torch.from_numpy(rng.normal(0.0, 0.5, hr.shape))
    cons = C.get_constraint("add", method, **opts)
    before = float(cons.residual(y, x, S).abs().max())
    out = cons.apply(y, x, S)
    after = float(cons.residual(out, x, S).abs().max())
    assert before > 0.1 and after < 1e-12 * max(1.0, before)
    # least norm: the dense pseudo-inverse of the full operator gives the same correction
    rows = C.axis_matrix(method, 24, S, -2, **opts)
    cols = C.axis_matrix(method, 32, S, -1, **opts)
    a = np.kron(rows if rows is not None else np.eye(24), cols if cols is not None else np.eye(32))
    r = x.numpy().ravel() - a @ y.numpy().ravel()
    ref = y.numpy().ravel() + np.linalg.pinv(a) @ r
    np.testing.assert_allclose(out.numpy().ravel(), ref, atol=1e-10)


def test_downscale_of_a_lat_lon_dataset_uses_cell_areas_and_records_the_constraint(tas) -> None:
    ds = tas.isel(time=slice(0, 1))
    out = sciSR.downscale(ds, model="bicubic", scale=S, constraint="softmax")
    assert out.tas.attrs["scisr_constraint"] == (
        "softmax (area; weights: cell areas from latitude bounds; logits: log of the output)"
    )
    w = C.area_weights_for_grid(Grid(ds, "lat", "lon"), S)
    assert w is not None and w.rows is not None
    # the weights are the refined cells' areas: sin φ differences of the refined latitude bounds
    hb = np.deg2rad(out.lat_bnds.values)
    np.testing.assert_allclose(w.rows, np.abs(np.sin(hb[:, 1]) - np.sin(hb[:, 0])), rtol=1e-12)
    back = _weighted_coarsen(out.tas.values.astype(np.float64), w.rows[:, None])
    rel = np.abs(back - ds.tas.values) / np.abs(ds.tas.values)
    assert rel.max() < 1e-6
    assert (out.tas.values >= 0).all()
    free = sciSR.downscale(ds, model="bicubic", scale=S)
    assert "scisr_constraint" not in free.tas.attrs
    assert (
        np.abs(_weighted_coarsen(free.tas.values.astype(np.float64), w.rows[:, None]) - ds.tas.values).max()
        > 0.1
    )


def test_tiled_and_dask_chunked_outputs_equal_the_whole_array_with_a_constraint(tas) -> None:
    pytest.importorskip("dask")
    ds = tas.isel(time=slice(0, 2))
    kw = dict(model="espcn", scale=S, constraint="add", precision="fp32", device="cpu")
    whole = sciSR.downscale(ds, tile=0, **kw)
    tiled = sciSR.downscale(ds, tile=24, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lazy = sciSR.downscale(ds.chunk({"time": 1, "lat": 48, "lon": 64}), **kw)
    assert lazy.tas.chunks is not None and len(lazy.tas.chunks[1]) == 2  # stayed chunked in space
    ref = whole.tas.values
    np.testing.assert_allclose(tiled.tas.values, ref, rtol=0, atol=2e-4)
    np.testing.assert_allclose(lazy.tas.compute().values, ref, rtol=0, atol=2e-4)
    assert lazy.tas.attrs["scisr_constraint"] == whole.tas.attrs["scisr_constraint"]


def test_numpy_downscale_applies_the_constraint_and_refuses_bad_input() -> None:
    rng = np.random.default_rng(3)
    x = rng.gamma(0.7, 3.0, (3, 20, 24)).astype(np.float32)
    x[1, 5:8, 2:6] = np.nan
    out = sciSR.downscale(x, model="bicubic", scale=S, constraint="mult")
    back = _weighted_coarsen(out.astype(np.float64), np.ones((1, 1)))
    ok = np.isfinite(x)
    assert np.isnan(back[~ok]).all() and np.abs(back[ok] - x[ok]).max() / np.abs(x[ok]).max() < 1e-6
    with pytest.raises(ValueError, match=r"non-negative.*constraint='add'"):
        sciSR.downscale(x - 1.0, model="bicubic", scale=S, constraint="softmax")
    with pytest.raises(ValueError, match=r"unknown constraint 'sum'; choose one of add, mult, softmax"):
        sciSR.downscale(x, model="bicubic", scale=S, constraint="sum")
    with pytest.raises(ValueError, match=r"constraint='mult' is exact only for the block mean.*'add'"):
        sciSR.downscale(x, model="bicubic", scale=S, constraint="mult", constraint_degradation="gaussian")
    # gaussian projection through downscale: whole fields, and masked fields are refused
    g = sciSR.downscale(
        np.nan_to_num(x), model="bicubic", scale=S, constraint="add", constraint_degradation="gaussian"
    )
    res = C.get_constraint("add", "gaussian").residual(
        g[:, None].astype(np.float64), np.nan_to_num(x)[:, None], S
    )
    assert np.abs(res).max() < 1e-5
    with pytest.raises(ValueError, match="without invalid"):
        sciSR.downscale(x, model="bicubic", scale=S, constraint="add", constraint_degradation="gaussian")


def test_region_run_refuses_a_non_local_projection() -> None:
    pipe = Pipeline.build("bicubic", S, constraint="add", constraint_degradation="gaussian")
    x = np.random.default_rng(4).normal(size=(1, 1, 40, 40))
    plan = pipe.plan_region((40, 40), (0, 20, 0, 20))
    with pytest.raises(ValueError, match="not local"):
        pipe.run_region(plan.read_box(lambda a, b, c, d: x[..., a:b, c:d]), plan, pipe.fit(x))


def test_training_with_a_constraint_applies_it_and_records_it_for_downscale(tmp_path) -> None:
    luma = load_luma(sample_path("ladybird_crop.png"))
    torch.manual_seed(0)
    model = sciSR.create_model("espcn", scale=2, pretrained=False, channels=(8, 8))
    cfg = TrainConfig(
        steps=3, batch_size=2, patch=32, log_every=3, threads=1, degradation="area", constraint="softmax"
    )
    meta: dict[str, str] = {}
    out = tmp_path / "w.safetensors"
    rec = fit(model, [luma[:, :160]], cfg, val_images=[luma[:64, 160:]], out=out, metadata=meta)
    assert rec["config"]["constraint"] == "softmax" and np.isfinite(rec["history"][-1]["psnr"])
    assert meta["scisr_constraint"] == "softmax" and meta["scisr_constraint_degradation"] == "area"
    from sciSR.models.weights_io import read_state_dict

    _sd, saved = read_state_dict(out)
    assert saved["scisr_constraint"] == "softmax"
    back = sciSR.create_model("espcn", scale=2, pretrained=out, channels=(8, 8))
    pipe = Pipeline.build(back, 2)
    assert pipe.constraint == C.Constraint("softmax", "area")
    assert Pipeline.build(back, 2, constraint="none").constraint is None
    x = luma[:40, :48]
    y = sciSR.downscale(x, back, 2)
    np.testing.assert_allclose(
        _weighted_coarsen(y.astype(np.float64), np.ones((1, 1)), 2), x, rtol=1e-5, atol=1e-6
    )
    # the training default degradation (bicubic) takes the add projection; mult needs "area"
    fit(model, [luma], TrainConfig(steps=1, batch_size=2, patch=32, log_every=1, threads=1, constraint="add"))
    with pytest.raises(ValueError, match="exact only for the block mean"):
        fit(model, [luma], TrainConfig(steps=1, batch_size=2, patch=32, constraint="mult"))
    assert json.loads(json.dumps(rec["config"]))["constraint"] == "softmax"


def test_raster_and_volume_adapters_apply_and_record_the_constraint() -> None:
    rioxarray = pytest.importorskip("rioxarray")
    path = sample_path("etopo5_alps.tif")
    src = rioxarray.open_rasterio(path).values.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = sciSR.downscale(path, model="bicubic", scale=S, constraint="add")
    y = out.band_data.values.astype(np.float64)
    assert out.band_data.attrs["scisr_constraint"] == "add (area; weights: uniform)"
    back = _weighted_coarsen(y, np.ones((1, 1)))
    assert np.nanmax(np.abs(back - src)) / np.nanmax(np.abs(src)) < 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vol = sciSR.downscale(
            sample_path("mni152_t1_slab.nii.gz"), model="bicubic", scale=2, constraint="mult"
        )
    assert vol.image.attrs["scisr_constraint"] == "mult (area; weights: uniform)"
