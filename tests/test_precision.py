"""Reduced precision must not change the science: bf16 outputs are fp32-grade on real fields.

The fields are the shipped samples (ETOPO5 Alps DEM, CMIP5 near-surface air temperature),
coarsened by block means; the learned model is the shipped ESPCN. ``precision="bf16"`` is asked
for explicitly so the reduced-precision path runs on every CPU (the ``auto`` choice is tested
separately by pretending the CPU has or lacks fast bf16).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import sciSR
from sciSR import engine
from sciSR.data import sample_path
from sciSR.models.registry import get_entry
from sciSR.pipeline import Pipeline
from sciSR.precision import fp32_marked, profile_model


def _block_mean(a: np.ndarray, s: int) -> np.ndarray:
    h, w = a.shape[-2] // s * s, a.shape[-1] // s * s
    a = a[..., :h, :w]
    return a.reshape(*a.shape[:-2], h // s, s, w // s, s).mean(axis=(-3, -1))


def _field(name: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "dem":
            return sciSR.open(sample_path("etopo5_alps.tif"))["band_data"].values[0].astype(np.float32)
        return sciSR.open(sample_path("cmip5_tas_mpi-esm-lr_2005.nc"))["tas"].values.astype(np.float32)


def _identical_neighbours(y: np.ndarray) -> float:
    """Fraction of horizontally and vertically adjacent pairs with exactly equal values."""
    pairs = [(np.diff(y, axis=-1) == 0).ravel(), (np.diff(y, axis=-2) == 0).ravel()]
    return float(np.mean(np.concatenate(pairs)))


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.mark.parametrize("field", ["dem", "tas"])
@pytest.mark.parametrize("scale", [2, 4])
def test_bf16_is_fp32_grade_on_real_fields(field: str, scale: int) -> None:
    truth = _field(field)
    lr = _block_mean(truth, scale)
    truth = truth[..., : lr.shape[-2] * scale, : lr.shape[-1] * scale]
    y32 = sciSR.downscale(lr, model="espcn", scale=scale, precision="fp32")
    y16 = sciSR.downscale(lr, model="espcn", scale=scale, precision="bf16")
    e32, e16 = _rmse(y32, truth), _rmse(y16, truth)
    assert e16 <= 1.01 * e32, (e16, e32)  # error against truth within 1% of fp32's
    assert _identical_neighbours(y16) <= _identical_neighbours(y32) + 0.01  # no terraces
    assert len(np.unique(y16)) >= 0.9 * len(np.unique(y32))
    # no systematic shift: the mean difference is a small fraction of the fp32 error (ESPCN has
    # no skip connection, so bf16-rounded weights of its middle layer shift it by ~3% of it)
    assert abs(float(np.mean(y16.astype(np.float64) - y32))) < 0.05 * e32
    assert _rmse(y16, y32) < 0.15 * e32  # in quadrature this keeps e16 within ~1.1% of e32


def test_whole_bf16_would_terrace_the_dem_which_is_what_the_fp32_layers_prevent() -> None:
    """The test above is sensitive: rounding the fp32 output to bf16 fails its terrace bound."""
    truth = _field("dem")
    lr = _block_mean(truth, 4)
    pipe = Pipeline.build("espcn", 4, precision="fp32")
    z = pipe.run(lr[None, None], pipe.fit(lr[None, None]))[0, 0]
    nz = pipe.fit(lr[None, None])[0]
    rounded = nz.inverse(torch.from_numpy(nz.forward(z)).bfloat16().float().numpy())
    assert _identical_neighbours(rounded) > _identical_neighbours(z) + 0.05


def _learned_models() -> list[str]:
    return [n for n in sciSR.list_models() if get_entry(n).trainable]


def _tiny(name: str, scale: int) -> torch.nn.Module:
    torch.manual_seed(0)
    kw = get_entry(name).tiny or {}
    return sciSR.create_model(name, scale=scale, in_channels=1, pretrained=False, **kw)


def _dem_lr(scale: int) -> np.ndarray:
    lr = _block_mean(_field("dem"), scale)[:24, :32]
    return ((lr - lr.min()) / (lr.max() - lr.min())).astype(np.float32)[None, None]


@pytest.mark.parametrize("name", _learned_models())
def test_every_learned_model_returns_unquantized_output_under_bf16(name: str) -> None:
    try:
        scale, m = 2, _tiny(name, 2)
    except ValueError:  # ×4-only architectures
        scale, m = 4, _tiny(name, 4)
    if not getattr(m, "reduced_precision", True):
        pytest.skip(f"{name} runs in fp32 only")
    x = _dem_lr(scale)
    p32 = Pipeline.build(m, scale, precision="fp32", norm=None, tile=0)
    p16 = Pipeline.build(m, scale, precision="bf16", norm=None, tile=0)
    y32, y16 = p32.run(x, p32.fit(x)), p16.run(x, p16.fit(x))
    marked = fp32_marked(p16.model)
    assert marked, "no layer kept in fp32"
    # a bf16-rounded output has (nearly) every value exactly representable in bf16
    exact = float(np.mean(y16 == torch.from_numpy(y16).bfloat16().float().numpy()))
    assert exact < 0.02, exact
    spread = float(np.std(y32))
    assert _rmse(y16, y32) < 0.05 * spread, (_rmse(y16, y32), spread)


def test_profile_marks_entry_and_exit_convolutions() -> None:
    m = sciSR.create_model("edsr_baseline", scale=4, in_channels=1, pretrained=False)
    prof = profile_model(m, 1, 4)
    names = dict(m.named_modules())
    first, last = names[prof.fp32_layers[0]], names[prof.fp32_layers[-1]]
    assert first.in_channels == 1 and last.out_channels == 1
    # the feature-space body stays in reduced precision: only image-space layers are marked
    assert len(prof.fp32_layers) == 2
    assert prof.activation_bytes_per_px > 4 * 64  # 64 feature maps at fp32, ×16 HR pixels at the tail


def test_user_module_is_not_modified() -> None:
    torch.manual_seed(0)
    m = sciSR.create_model(
        "edsr_baseline", scale=2, in_channels=1, pretrained=False, n_resblocks=2, n_feats=16
    )
    m.train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    ptrs = {k: v.data_ptr() for k, v in m.state_dict().items()}
    x = np.random.default_rng(0).random((20, 22)).astype(np.float32)
    sciSR.downscale(x, model=m, scale=2, precision="bf16")
    assert m.training
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]) and v.data_ptr() == ptrs[k] and v.dtype == before[k].dtype
        assert v.ndim < 4 or v.is_contiguous()  # not converted to channels_last
    assert not fp32_marked(m)
    assert all(not mod._forward_hooks and not mod._forward_pre_hooks for mod in m.modules())


@pytest.mark.parametrize("fast", [True, False])
def test_auto_precision_follows_the_hardware_and_the_work_share(monkeypatch, fast: bool) -> None:
    monkeypatch.setattr(engine, "cpu_has_fast_bf16", lambda: fast)
    x = _dem_lr(2)[0, 0]
    m = sciSR.create_model("edsr_baseline", scale=2, pretrained=False, n_resblocks=4, n_feats=32)
    pipe = Pipeline.build(m, 2, device="cpu")
    assert pipe.engine.precision == ("bf16" if fast else "fp32")
    assert pipe.engine.channels_last == fast
    auto = sciSR.downscale(x, model=m, scale=2, device="cpu")
    ref = sciSR.downscale(x, model=m, scale=2, precision="bf16" if fast else "fp32")
    np.testing.assert_array_equal(auto, ref)
    # ESPCN's image-space layers are a quarter of its work: bf16 would not pay, auto keeps fp32
    assert engine.reduced_share(_tiny("espcn", 4), 1, 4) < engine.MIN_REDUCED_SHARE
    assert Pipeline.build("espcn", 4, device="cpu").engine.precision == "fp32"
    # baselines never run reduced precision
    assert Pipeline.build("bicubic", 4, device="cpu").engine.precision == "fp32"


def test_fp32_only_models_refuse_explicit_bf16_and_run_fp32_on_auto(monkeypatch) -> None:
    monkeypatch.setattr(engine, "cpu_has_fast_bf16", lambda: True)
    m = sciSR.create_model("edsr_baseline", scale=2, pretrained=False, n_resblocks=4, n_feats=32)
    m.reduced_precision = False
    assert Pipeline.build(m, 2, device="cpu").engine.precision == "fp32"
    with pytest.raises(ValueError, match="fp32 only"):
        Pipeline.build(m, 2, precision="bf16")
